//! The contract between the definitions (infra/statemachine), the handlers
//! and the sample events (events/): every error name a step can fail with is
//! matched by every Task's Retry or Catch and no other Lifeboat name is;
//! every Task resolves to a step; every sample event is accepted by the step
//! or trigger it is for; the CI message schema lists exactly the fields the
//! trigger accepts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use async_trait::async_trait;
use lifeboat_steps::request::FIELDS;
use lifeboat_steps::state::State;
use lifeboat_steps::trigger::{handle_event, Machine, Started, Starter};
use lifeboat_steps::{local_substitutions, ErrorKind, Step, StepError};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|d| d.join("infra/statemachine").is_dir())
        .unwrap()
        .to_path_buf()
}

fn json(rel: &str) -> Value {
    let path = root().join(rel);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const DEFINITIONS: [&str; 3] = [
    "infra/statemachine/backup.asl.json",
    "infra/statemachine/restore.asl.json",
    "infra/statemachine/verify.asl.json",
];

/// Every Task state, recursively (Map processors and Parallel branches).
fn tasks(states: &Value, out: &mut Vec<(String, Value)>) {
    for (name, s) in states.as_object().unwrap() {
        if s["Type"] == "Task" {
            out.push((name.clone(), s.clone()));
        }
        for key in ["ItemProcessor", "Iterator"] {
            if let Some(p) = s.get(key) {
                tasks(&p["States"], out);
            }
        }
        if let Some(bs) = s.get("Branches").and_then(Value::as_array) {
            for b in bs {
                tasks(&b["States"], out);
            }
        }
    }
}

fn lifeboat_names(handlers: Option<&Value>) -> BTreeSet<String> {
    handlers
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|h| h["ErrorEquals"].as_array().unwrap().clone())
        .filter_map(|e| e.as_str().map(str::to_string))
        .filter(|e| e.starts_with("Lifeboat."))
        .collect()
}

/// The Tasks (by function) whose steps wait for mover Jobs.
const IN_PROGRESS_STEPS: [&str; 2] = ["CopyVolumeFunctionArn", "RestoreVolumesFunctionArn"];

#[test]
fn every_task_handles_exactly_the_error_names_the_steps_emit() {
    let emitted: BTreeSet<String> = ErrorKind::ALL
        .iter()
        .map(|k| k.name().to_string())
        .collect();
    for def in DEFINITIONS {
        let mut all = Vec::new();
        tasks(&json(def)["States"], &mut all);
        assert!(!all.is_empty());
        for (name, task) in all {
            let retried = lifeboat_names(task.get("Retry"));
            let caught = lifeboat_names(task.get("Catch"));
            let handled: BTreeSet<String> = retried.union(&caught).cloned().collect();
            // Lifeboat.InProgress comes only from the steps that wait for
            // mover Jobs; their Tasks retry it, no other Task sees it.
            let resource = task["Resource"].as_str().unwrap_or("");
            let waits_for_jobs = IN_PROGRESS_STEPS.iter().any(|s| resource.contains(s));
            let emitted: BTreeSet<String> = emitted
                .iter()
                .filter(|n| waits_for_jobs || *n != ErrorKind::InProgress.name())
                .cloned()
                .collect();
            let retried_kinds: BTreeSet<String> = ErrorKind::ALL
                .iter()
                .filter(|k| k.is_retried())
                .filter(|k| waits_for_jobs || **k != ErrorKind::InProgress)
                .map(|k| k.name().to_string())
                .collect();
            if name.contains("ReportFailure") || task.get("Catch").is_none() {
                // The failure reporter only stores a file (no repository lock)
                // and ends in the Fail state through States.ALL either way; a
                // Task in a Map is caught by the Map state.
                assert!(
                    handled.is_subset(&emitted),
                    "{def}: Task {name}: {handled:?}"
                );
                assert!(
                    retried.is_subset(&retried_kinds),
                    "{def}: Task {name}: {retried:?}"
                );
            } else {
                assert_eq!(handled, emitted, "{def}: Task {name}");
                assert_eq!(retried, retried_kinds, "{def}: Task {name} retries");
            }
        }
    }
}

#[test]
fn every_task_resolves_to_a_step_and_every_step_is_used() {
    let subs = local_substitutions();
    let mut used = BTreeSet::new();
    for def in DEFINITIONS {
        let text = std::fs::read_to_string(root().join(def)).unwrap();
        let text = lifeboat_workflow::substitute(&text, &subs).unwrap();
        let machine = lifeboat_workflow::StateMachine::from_json(&text).unwrap();
        for r in machine.resources() {
            let step = r
                .rsplit_once(":function:lifeboat-")
                .and_then(|(_, n)| Step::from_name(n))
                .unwrap_or_else(|| panic!("{def}: {r} is no step"));
            used.insert(step.name());
        }
    }
    let all: BTreeSet<&str> = Step::ALL.iter().map(|s| s.name()).collect();
    assert_eq!(used, all);
}

#[test]
fn every_step_event_is_a_state_its_step_accepts() {
    let dir = root().join("events/steps");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let step_name = name.split('.').next().unwrap();
        let step =
            Step::from_name(step_name).unwrap_or_else(|| panic!("{name}: no step {step_name}"));
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        if step == Step::CopyVolume {
            assert!(v.get("volume").is_some(), "{name}: a Map item has `volume`");
        } else {
            let state = State::parse(v).unwrap_or_else(|e| panic!("{name}: {e}"));
            let needs: &[(&str, bool)] = match step {
                Step::Commit | Step::ExportState => &[("plan", state.plan.is_some())],
                Step::Verify | Step::VerifyReplica => &[(
                    "commit (backup) or resolved (verify)",
                    state.commit.is_some() || state.resolved.is_some(),
                )],
                Step::RestoreState | Step::CheckReadiness => {
                    &[("resolved", state.resolved.is_some())]
                }
                _ => &[],
            };
            for (field, present) in needs {
                assert!(present, "{name}: the {} step needs `{field}`", step.name());
            }
        }
        seen += 1;
    }
    assert!(seen >= Step::ALL.len(), "one event per step at least");
}

struct Recorder;

/// Grants what the sample events ask for; a refusal fails the test.
struct SampleGate;

#[async_trait]
impl lifeboat_steps::authorize::Gate for SampleGate {
    async fn fleet(&self) -> Result<lifeboat_steps::Fleet, StepError> {
        lifeboat_steps::Fleet::parse(
            r#"{"version":1,"clusters":{
                "shop-prod":{"access":{"eks":{"name":"shop-prod"}}},
                "shop-dr":{"access":{"eks":{"name":"shop-dr"}},"restore_from":[
                  {"requesters":["invoke"],"sources":["shop-prod"]}]},
                "shop-preview-42":{"access":{"eks":{"name":"shop-preview-42"}},"restore_from":[
                  {"requesters":["AROAEXAMPLEROLEID:*"],"sources":["shop-prod"]}]}},
              "reply_queues":["https://sqs.us-east-1.amazonaws.com/123456789012/ci-results"]}"#,
            "sample",
        )
    }
    async fn refuse(&self, r: &lifeboat_steps::authorize::Refused) -> Result<(), StepError> {
        panic!("sample event refused: {r:?}")
    }
}

#[async_trait]
impl Starter for Recorder {
    async fn start(&self, machine: Machine, name: &str, _: &Value) -> Result<Started, StepError> {
        Ok(Started {
            execution: format!("{machine:?}:{name}"),
            already_started: false,
        })
    }
}

#[tokio::test]
async fn every_trigger_event_is_handled_and_only_invalid_messages_fail() {
    for (file, failures, machine) in [
        ("events/trigger/ci-backup.sqs.json", 0, "Backup"),
        ("events/trigger/ci-restore.sqs.json", 0, "Restore"),
        ("events/trigger/ci-verify.sqs.json", 0, "Verify"),
        ("events/trigger/ci-invalid.sqs.json", 1, "Backup"),
        ("events/trigger/schedule.eventbridge.json", 0, "Backup"),
        ("events/trigger/failover.json", 0, "Restore"),
    ] {
        let (resp, outcomes) = handle_event(&Recorder, &SampleGate, &json(file), "sample-request")
            .await
            .unwrap();
        assert_eq!(
            resp.batch_item_failures.len(),
            failures,
            "{file}: {outcomes:?}"
        );
        for o in outcomes.iter().filter(|o| o.started.is_some()) {
            assert!(
                o.started.as_ref().unwrap().execution.starts_with(machine),
                "{file}"
            );
        }
        if failures > 0 {
            let err = outcomes.iter().find_map(|o| o.error.clone()).unwrap();
            assert!(err.contains("field `cluster`"), "{file}: {err}");
        }
    }
}

#[test]
fn the_published_schema_lists_exactly_the_accepted_fields() {
    let schema = json("docs/ci-message.schema.json");
    let props: BTreeSet<&str> = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let fields: BTreeSet<&str> = FIELDS.iter().map(|(f, _, _)| *f).collect();
    assert_eq!(props, fields);
    let required: BTreeSet<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let must: BTreeSet<&str> = FIELDS
        .iter()
        .filter(|(_, _, r)| *r)
        .map(|(f, _, _)| *f)
        .collect();
    assert_eq!(required, must);
    assert_eq!(schema["additionalProperties"], false);
    for (f, ty, _) in FIELDS {
        assert_eq!(schema["properties"][f]["type"], *ty, "type of {f}");
    }
}
