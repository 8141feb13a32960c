//! The trigger's queue path against moto: a restore request sent to a real
//! SQS queue carries the `SenderId` SQS stamps on it (moto stamps one constant
//! id for every sender); the trigger authorizes it against the fleet file,
//! and a refused one lands in the dead-letter queue with its reason and
//! raises an alert on the topic.
//!
//! `tests/substrate/aws up && cargo test -p lifeboat-tests --test trigger_queue`.

use anyhow::{ensure, Context, Result};
use async_trait::async_trait;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use lifeboat_steps::authorize::EnvGate;
use lifeboat_steps::trigger::{handle_event, Machine, Started, Starter};
use lifeboat_steps::{Environment, Settings, StepError};
use lifeboat_tests::alert_inbox::AlertInbox;
use serde_json::{json, Value};
use std::sync::Mutex;

/// Starts nothing; remembers what it was asked to start.
#[derive(Default)]
struct Recorder(Mutex<Vec<(String, Value)>>);

#[async_trait]
impl Starter for Recorder {
    async fn start(
        &self,
        machine: Machine,
        name: &str,
        input: &Value,
    ) -> Result<Started, StepError> {
        self.0
            .lock()
            .map_err(|_| StepError::failed("poisoned"))?
            .push((name.to_string(), input.clone()));
        Ok(Started {
            execution: format!("{machine:?}:{name}"),
            already_started: false,
        })
    }
}

fn use_moto() {
    for (key, value) in lifeboat_tests::aws_env() {
        std::env::set_var(key, value);
    }
}

fn unique(tag: &str) -> String {
    let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    format!("lb-{tag}-{}-{}", std::process::id(), nanos % 1_000_000_000)
}

/// Send `body` to `queue`, receive it back, and shape it as the Lambda SQS
/// event source does (with the `SenderId` attribute).
async fn through_queue(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    body: &str,
) -> Result<(Value, String)> {
    sqs.send_message()
        .queue_url(queue)
        .message_body(body)
        .send()
        .await?;
    let got = sqs
        .receive_message()
        .queue_url(queue)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .max_number_of_messages(1)
        .send()
        .await?;
    let m = got
        .messages()
        .first()
        .context("the message did not arrive")?;
    let sender = m
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::SenderId))
        .context("SQS gave no SenderId")?
        .clone();
    let record = json!({"Records": [{
        "messageId": m.message_id(), "body": m.body(), "eventSource": "aws:sqs",
        "attributes": {"SenderId": sender}
    }]});
    Ok((record, sender))
}

fn fleet_file(dir: &std::path::Path, grantee: &str) -> Result<String> {
    let path = dir.join(format!("fleet-{}.json", grantee.replace(':', "_")));
    let fleet = json!({"version": 1, "clusters": {
        "prod": {"access": {"eks": {"name": "prod"}}},
        "dr": {"access": {"eks": {"name": "dr"}},
               "restore_from": [{"requesters": [grantee], "sources": ["prod"]}]}}});
    std::fs::write(&path, fleet.to_string())?;
    Ok(path.display().to_string())
}

#[test]
fn a_restore_from_an_unauthorized_sender_goes_to_the_dead_letter_queue() -> Result<()> {
    use_moto();
    let inbox = AlertInbox::create(&unique("alerts")).map_err(anyhow::Error::msg)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let create = |name: String| {
            let sqs = sqs.clone();
            async move {
                let out = sqs.create_queue().queue_name(name).send().await?;
                out.queue_url().map(str::to_string).context("no queue URL")
            }
        };
        let requests = create(unique("requests")).await?;
        let dead = create(unique("dead")).await?;
        let dir = tempfile::tempdir()?;
        let body = r#"{"version":1,"action":"restore","cluster":"dr","source_cluster":"prod","requested_by":"runbook"}"#;

        // The grant names another role: refused, set aside, alerted.
        let settings = Settings {
            fleet: Some(fleet_file(dir.path(), "AROAOTHERROLE:*")?),
            alert_topic: Some(inbox.topic_arn.clone()),
            ..Settings::default()
        };
        let gate = EnvGate {
            env: Environment::new(settings.clone()),
            dead_letter_queue: Some(dead.clone()),
        };
        let recorder = Recorder::default();
        let (event, sender) = through_queue(&sqs, &requests, body).await?;
        let (resp, out) = handle_event(&recorder, &gate, &event, "invocation").await?;
        ensure!(resp.batch_item_failures.is_empty(), "it must not be redelivered: {resp:?}");
        ensure!(recorder.0.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.is_empty());
        let error = out[0].error.clone().unwrap_or_default();
        ensure!(error.contains(&format!("{sender} may not restore")), "{error}");
        let set_aside = sqs.receive_message().queue_url(&dead).send().await?;
        let refused: Value = serde_json::from_str(
            set_aside
                .messages()
                .first()
                .and_then(|m| m.body())
                .context("nothing in the dead-letter queue")?,
        )?;
        ensure!(refused["sender"] == sender.as_str(), "{refused}");
        ensure!(refused["body"] == body, "{refused}");
        ensure!(
            refused["reason"].as_str().unwrap_or_default().contains("restore_from"),
            "{refused}"
        );

        // Granted to the sender SQS authenticated: started, recorded as its sender.
        let settings = Settings {
            fleet: Some(fleet_file(dir.path(), &sender)?),
            ..settings
        };
        let gate = EnvGate {
            env: Environment::new(settings),
            dead_letter_queue: Some(dead.clone()),
        };
        let (event, _) = through_queue(&sqs, &requests, body).await?;
        let (resp, out) = handle_event(&recorder, &gate, &event, "invocation").await?;
        ensure!(resp.batch_item_failures.is_empty() && out[0].started.is_some(), "{out:?}");
        let started = recorder.0.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
        ensure!(started.len() == 1);
        ensure!(started[0].1["sender"] == sender.as_str(), "{:?}", started[0].1);
        ensure!(started[0].1["requested_by"] == "ci", "{:?}", started[0].1);
        Ok::<(), anyhow::Error>(())
    })?;
    let alerts = inbox.drain().map_err(anyhow::Error::msg)?;
    ensure!(
        alerts.len() == 1,
        "one alert for the refused request: {alerts:?}"
    );
    ensure!(alerts[0].message.contains("may not restore"), "{alerts:?}");
    Ok(())
}
