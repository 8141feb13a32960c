//! Starting Step Functions executions, at most once per idempotency key.
//!
//! Step Functions keeps an execution's name unique per state machine (for 90
//! days after it closes, for standard workflows), so the execution name is
//! derived from the request's idempotency key ([`execution_name`]) and a
//! repeated request finds the execution the first one started.

use crate::error::{from_sdk, region_name, AwsError};
use aws_config::SdkConfig;
use chrono::{DateTime, Utc};

/// The longest execution name Step Functions accepts.
const MAX_NAME: usize = 80;
/// Hex digits of the key's hash at the end of every name (64 bits).
const HASH_HEX: usize = 16;

/// The execution a [`start_execution`] started or found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Started {
    pub execution_arn: String,
    pub start_date: DateTime<Utc>,
    /// Whether an execution of that name existed already, so that this call
    /// started nothing (see [`start_execution`]).
    pub already_started: bool,
}

/// A valid execution name for `idempotency_key`: 1 to 80 characters of
/// `[A-Za-z0-9_-]` (the set that keeps CloudWatch logging usable).
///
/// The name is the key with every run of other characters turned into one
/// `-` (cut to fit), then `-` and 16 hex digits of the key's BLAKE3 hash, so
/// that two keys the sanitising makes alike (`a b`, `a/b`) still differ. The
/// same key always gives the same name.
pub fn execution_name(idempotency_key: &str) -> String {
    let hash = blake3::hash(idempotency_key.as_bytes());
    let hash = &hash.to_hex()[..HASH_HEX];
    let mut prefix = String::new();
    for c in idempotency_key.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            c
        } else {
            '-'
        };
        if !(c == '-' && prefix.ends_with('-')) {
            prefix.push(c);
        }
    }
    // All ASCII from here, so byte lengths are character counts.
    prefix.truncate(MAX_NAME - HASH_HEX - 1);
    let prefix = prefix.trim_matches('-');
    if prefix.is_empty() {
        hash.to_string()
    } else {
        format!("{prefix}-{hash}")
    }
}

/// The ARN of the execution `name` of the state machine `state_machine_arn`
/// (`arn:<partition>:states:<region>:<account>:stateMachine:<machine>[:<version or alias>]`
/// gives `arn:<partition>:states:<region>:<account>:execution:<machine>:<name>`).
pub fn execution_arn(state_machine_arn: &str, name: &str) -> Result<String, AwsError> {
    let parts: Vec<&str> = state_machine_arn.split(':').collect();
    match parts.as_slice() {
        ["arn", partition, "states", region, account, "stateMachine", machine, ..]
            if !machine.is_empty() =>
        {
            Ok(format!(
                "arn:{partition}:states:{region}:{account}:execution:{machine}:{name}"
            ))
        }
        _ => Err(AwsError::InvalidInput(format!(
            "not a state machine ARN: {state_machine_arn:?}"
        ))),
    }
}

/// Start an execution called `name` of `state_machine_arn` with `input_json`.
///
/// When Step Functions refuses because an execution of that name exists
/// (`ExecutionAlreadyExists`: it has closed, or it was started with another
/// input), that execution is described: with the same input (as JSON) it is
/// returned with `already_started`; with another input the name (an
/// idempotency key) was reused for a different request, and the call fails
/// with [`AwsError::InvalidInput`] naming the execution.
/// For a standard workflow, a request with the same name *and input* as a
/// running execution is answered by Step Functions itself as though it
/// started it, with the running one's ARN and start date: then
/// `already_started` is false although nothing new runs. Either way a
/// repeated request gets the first request's execution ARN.
pub async fn start_execution(
    sdk: &SdkConfig,
    state_machine_arn: &str,
    name: &str,
    input_json: &str,
) -> Result<Started, AwsError> {
    let what = format!(
        "execution {name:?} of state machine {state_machine_arn} in {}",
        region_name(sdk)
    );
    let client = aws_sdk_sfn::Client::new(sdk);
    let result = client
        .start_execution()
        .state_machine_arn(state_machine_arn)
        .name(name)
        .input(input_json)
        .send()
        .await;
    let err = match result {
        Ok(out) => {
            tracing::info!(execution = out.execution_arn(), "started execution");
            return Ok(Started {
                execution_arn: out.execution_arn().to_string(),
                start_date: to_chrono(&what, out.start_date())?,
                already_started: false,
            });
        }
        Err(e) => e,
    };
    let exists = err
        .as_service_error()
        .is_some_and(|e| e.is_execution_already_exists());
    if !exists {
        return Err(from_sdk(&what, err));
    }
    let execution_arn = execution_arn(state_machine_arn, name)?;
    let out = client
        .describe_execution()
        .execution_arn(&execution_arn)
        .send()
        .await
        .map_err(|e| from_sdk(&what, e))?;
    if !same_input(out.input(), input_json) {
        return Err(AwsError::InvalidInput(format!(
            "{what}: an execution of that name (idempotency key) already exists \
             with a different request; use a new idempotency key for a new request"
        )));
    }
    tracing::info!(
        execution = out.execution_arn(),
        status = out.status().as_str(),
        "execution already started"
    );
    Ok(Started {
        execution_arn: out.execution_arn().to_string(),
        start_date: to_chrono(&what, out.start_date())?,
        already_started: true,
    })
}

/// Whether an existing execution's input is the request's: equal as JSON, so
/// that formatting does not matter. An execution whose input is not shown
/// (DescribeExecution leaves it out above 256 KiB) counts as different.
fn same_input(existing: Option<&str>, ours: &str) -> bool {
    let parse = |s: &str| serde_json::from_str::<serde_json::Value>(s).ok();
    match (existing.and_then(parse), parse(ours)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

fn to_chrono(what: &str, t: &aws_sdk_sfn::primitives::DateTime) -> Result<DateTime<Utc>, AwsError> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
        .ok_or_else(|| AwsError::other(what, format!("start date out of range: {t}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn valid(name: &str) -> bool {
        (1..=MAX_NAME).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }

    #[test]
    fn names_are_readable_and_end_with_the_hash() {
        let n = execution_name("deploy-4711");
        assert!(n.starts_with("deploy-4711-"), "{n}");
        assert_eq!(n.len(), "deploy-4711-".len() + HASH_HEX);
        assert_eq!(n, execution_name("deploy-4711"));
    }

    #[test]
    fn every_key_gives_a_valid_name() {
        let long = "x".repeat(500);
        let keys = [
            "",
            "-",
            "  ",
            "failover-2026-11-27",
            "a b/c:d",
            "ünïcödé ☃",
            "---a---",
            long.as_str(),
            "ci/main#1234 (retry)",
        ];
        for key in keys {
            let n = execution_name(key);
            assert!(valid(&n), "{key:?} -> {n:?}");
            assert!(!n.starts_with('-') && !n.contains("--"), "{key:?} -> {n:?}");
        }
        assert_eq!(execution_name(&long).len(), MAX_NAME);
        assert_eq!(execution_name("").len(), HASH_HEX);
    }

    #[test]
    fn keys_alike_after_sanitising_still_differ() {
        assert_ne!(execution_name("a b"), execution_name("a/b"));
        assert_ne!(execution_name("a-b"), execution_name("a b"));
        let long = "y".repeat(200);
        assert_ne!(execution_name(&long), execution_name(&format!("{long}z")));
    }

    #[test]
    fn a_repeated_name_counts_as_the_same_request_only_with_the_same_input() {
        let ours = r#"{"action":"restore","cluster":"dr","idempotency_key":"k"}"#;
        let reformatted = r#"{ "cluster": "dr", "idempotency_key": "k", "action": "restore" }"#;
        assert!(same_input(Some(reformatted), ours));
        let other =
            r#"{"action":"restore","cluster":"dr","idempotency_key":"k","snapshot":"ab12"}"#;
        assert!(!same_input(Some(other), ours));
        assert!(!same_input(None, ours));
    }

    #[test]
    fn execution_arns_come_from_the_state_machine_arn() {
        let sm = "arn:aws:states:us-east-1:123456789012:stateMachine:lifeboat-backup";
        assert_eq!(
            execution_arn(sm, "deploy-1").unwrap(),
            "arn:aws:states:us-east-1:123456789012:execution:lifeboat-backup:deploy-1"
        );
        let version = "arn:aws-cn:states:cn-north-1:1:stateMachine:m:3";
        assert_eq!(
            execution_arn(version, "n").unwrap(),
            "arn:aws-cn:states:cn-north-1:1:execution:m:n"
        );
        assert!(matches!(
            execution_arn("arn:aws:lambda:us-east-1:1:function:f", "n"),
            Err(AwsError::InvalidInput(_))
        ));
    }
}
