//! An SNS topic with an SQS queue subscribed to it, on moto: where a test
//! points `LIFEBOAT_ALERT_TOPIC` and then reads what was published.

use crate::{block_on, moto_sdk};
use aws_sdk_sqs::types::QueueAttributeName;

/// A topic and its subscribed queue.
#[derive(Debug, Clone)]
pub struct AlertInbox {
    pub topic_arn: String,
    queue_url: String,
}

/// One message SNS delivered to the queue: its envelope's fields.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub message_id: String,
    pub subject: String,
    pub message: String,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl AlertInbox {
    /// Create topic `name` and queue `name`-inbox, subscribed to it.
    pub fn create(name: &str) -> Result<AlertInbox, String> {
        block_on(async {
            let sdk = moto_sdk().await;
            let sns = aws_sdk_sns::Client::new(&sdk);
            let sqs = aws_sdk_sqs::Client::new(&sdk);
            let topic = sns.create_topic().name(name).send().await.map_err(err)?;
            let topic_arn = topic.topic_arn().ok_or("no topic ARN")?.to_string();
            let queue = sqs
                .create_queue()
                .queue_name(format!("{name}-inbox"))
                .send()
                .await
                .map_err(err)?;
            let queue_url = queue.queue_url().ok_or("no queue URL")?.to_string();
            let attrs = sqs
                .get_queue_attributes()
                .queue_url(&queue_url)
                .attribute_names(QueueAttributeName::QueueArn)
                .send()
                .await
                .map_err(err)?;
            let queue_arn = attrs
                .attributes()
                .and_then(|a| a.get(&QueueAttributeName::QueueArn))
                .ok_or("no queue ARN")?
                .clone();
            sns.subscribe()
                .topic_arn(&topic_arn)
                .protocol("sqs")
                .endpoint(queue_arn)
                .send()
                .await
                .map_err(err)?;
            Ok(AlertInbox {
                topic_arn,
                queue_url,
            })
        })
    }

    /// Every message waiting in the queue (waits up to a second for the first).
    pub fn drain(&self) -> Result<Vec<Delivered>, String> {
        block_on(async {
            let sqs = aws_sdk_sqs::Client::new(&moto_sdk().await);
            let mut out = Vec::new();
            loop {
                let got = sqs
                    .receive_message()
                    .queue_url(&self.queue_url)
                    .max_number_of_messages(10)
                    .wait_time_seconds(if out.is_empty() { 1 } else { 0 })
                    .send()
                    .await
                    .map_err(err)?;
                if got.messages().is_empty() {
                    return Ok(out);
                }
                for m in got.messages() {
                    let body = m.body().ok_or("a message without a body")?;
                    let envelope: serde_json::Value =
                        serde_json::from_str(body).map_err(|e| format!("{e}: {body}"))?;
                    let field = |k: &str| envelope[k].as_str().unwrap_or_default().to_string();
                    out.push(Delivered {
                        message_id: field("MessageId"),
                        subject: field("Subject"),
                        message: field("Message"),
                    });
                    if let Some(handle) = m.receipt_handle() {
                        sqs.delete_message()
                            .queue_url(&self.queue_url)
                            .receipt_handle(handle)
                            .send()
                            .await
                            .map_err(err)?;
                    }
                }
            }
        })
    }
}
