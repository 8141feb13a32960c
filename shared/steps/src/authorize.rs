//! Who may ask for what. The trigger authenticates where a request came
//! from ([`Origin`]: an SQS message's `SenderId`, a direct invocation, a
//! schedule) and checks the request against the fleet file before anything
//! starts: a restore needs a grant in the target cluster's `restore_from`
//! naming the requester and the source cluster, and a `reply_to` must be one
//! of the fleet's `reply_queues`. `requested_by` and `sender` are set from the
//! origin; what the body claims is overwritten.

use crate::env::StepEnv;
use crate::fleet::{Fleet, INVOKE_REQUESTER};
use crate::request::{Action, Request, RequestedBy};
use crate::StepError;
use async_trait::async_trait;

/// Where a request came from, as the trigger saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// An SQS message; `sender` is its `SenderId` attribute (an IAM user's
    /// or a role session's unique id), `None` when the record has none.
    Queue { sender: Option<String> },
    /// A direct invocation of the trigger function, which IAM authorized.
    Invoke,
    /// A scheduled EventBridge event.
    Schedule,
}

impl Origin {
    /// The requester as grants name it.
    pub fn requester(&self) -> Option<&str> {
        match self {
            Origin::Queue { sender } => sender.as_deref(),
            Origin::Invoke => Some(INVOKE_REQUESTER),
            Origin::Schedule => Some("schedule"),
        }
    }

    pub fn requested_by(&self) -> RequestedBy {
        match self {
            Origin::Queue { .. } => RequestedBy::Ci,
            Origin::Invoke => RequestedBy::Runbook,
            Origin::Schedule => RequestedBy::Schedule,
        }
    }
}

/// Record who asked (from the origin, not the body), then check that they
/// may. The error is the reason, for the requester and the alert.
pub fn authorize(fleet: &Fleet, request: &mut Request, origin: &Origin) -> Result<(), String> {
    let claimed = request.requested_by;
    request.requested_by = origin.requested_by();
    request.sender = origin.requester().map(str::to_string);
    if claimed != request.requested_by {
        tracing::warn!(claimed = ?claimed, actual = ?request.requested_by,
            "requested_by in the request body replaced by the authenticated origin");
    }
    if let Some(q) = &request.reply_to {
        if !fleet.reply_queues.iter().any(|allowed| allowed == q) {
            return Err(format!(
                "reply_to {q:?} is not one of the fleet file's reply_queues"
            ));
        }
    }
    if request.action != Action::Restore {
        return Ok(());
    }
    let source = request.source().to_string();
    let Some(requester) = origin.requester().filter(|_| *origin != Origin::Schedule) else {
        return Err(match origin {
            Origin::Schedule => "a scheduled event cannot start a restore".to_string(),
            _ => "the SQS message carries no SenderId; a restore needs an authenticated sender"
                .to_string(),
        });
    };
    let target = fleet.cluster(&request.cluster).map_err(|e| e.message)?;
    fleet.cluster(&source).map_err(|e| e.message)?;
    if target.may_restore(requester, &source) {
        Ok(())
    } else {
        Err(format!(
            "{requester} may not restore snapshots of cluster {source:?} into cluster {:?} \
             (no grant in the fleet file's clusters.{}.restore_from names both)",
            request.cluster, request.cluster
        ))
    }
}

/// A request the trigger refused, set aside for a person to look at.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Refused {
    /// The SQS message id, or `event` for an invocation.
    pub message: String,
    pub sender: Option<String>,
    pub reason: String,
    /// The request as it arrived.
    pub body: String,
}

/// What the trigger needs beyond starting executions.
#[async_trait]
pub trait Gate: Send + Sync {
    /// The fleet file (grants, reply queues).
    async fn fleet(&self) -> Result<Fleet, StepError>;
    /// Set a refused request aside (the dead-letter queue, with its reason)
    /// and raise an alert.
    async fn refuse(&self, refused: &Refused) -> Result<(), StepError>;
}

/// The real gate: the fleet file from `LIFEBOAT_FLEET`, refused requests to
/// `LIFEBOAT_DEAD_LETTER_QUEUE` and alerts to `LIFEBOAT_ALERT_TOPIC`.
#[derive(Debug)]
pub struct EnvGate<E: StepEnv> {
    pub env: E,
    pub dead_letter_queue: Option<String>,
}

#[async_trait]
impl<E: StepEnv> Gate for EnvGate<E> {
    async fn fleet(&self) -> Result<Fleet, StepError> {
        self.env.fleet().await
    }

    async fn refuse(&self, refused: &Refused) -> Result<(), StepError> {
        let subject = "Lifeboat refused a request";
        let text = serde_json::to_string(refused)
            .map_err(|e| StepError::failed(format!("refusal not serialisable: {e}")))?;
        self.env.alert(subject, &text).await?;
        let queue = self.dead_letter_queue.as_deref().ok_or_else(|| {
            StepError::invalid(
                "LIFEBOAT_DEAD_LETTER_QUEUE is not set: cannot set a refused request aside",
            )
        })?;
        self.env.send(queue, &text).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const ROLE: &str = "AROAEXAMPLEROLE";

    fn fleet() -> Fleet {
        Fleet::parse(
            &format!(
                r#"{{"version":1,"clusters":{{
                "dr":{{"access":{{"eks":{{"name":"dr"}}}},"restore_from":[
                  {{"requesters":["{ROLE}:*","invoke"],"sources":["prod"]}}]}},
                "prod":{{"access":{{"eks":{{"name":"prod"}}}}}},
                "other":{{"access":{{"eks":{{"name":"other"}}}}}}}},
                "reply_queues":["https://sqs.us-east-1.amazonaws.com/1/ci-results"]}}"#
            ),
            "test",
        )
        .unwrap()
    }

    fn restore(body: &str) -> Request {
        Request::parse(body).unwrap()
    }

    fn queue(sender: &str) -> Origin {
        Origin::Queue {
            sender: Some(sender.into()),
        }
    }

    #[test]
    fn a_granted_role_session_may_fail_over_and_is_recorded_as_sender() {
        let mut r = restore(
            r#"{"version":1,"action":"restore","cluster":"dr","source_cluster":"prod","requested_by":"schedule"}"#,
        );
        authorize(&fleet(), &mut r, &queue(&format!("{ROLE}:runbook"))).unwrap();
        assert_eq!(r.requested_by, RequestedBy::Ci);
        assert_eq!(r.sender.as_deref(), Some("AROAEXAMPLEROLE:runbook"));
        let mut direct = restore(
            r#"{"version":1,"action":"restore","cluster":"dr","source_cluster":"prod","requested_by":"ci"}"#,
        );
        authorize(&fleet(), &mut direct, &Origin::Invoke).unwrap();
        assert_eq!(direct.requested_by, RequestedBy::Runbook);
    }

    #[test]
    fn a_queue_sender_without_a_grant_may_not_restore() {
        let body = r#"{"version":1,"action":"restore","cluster":"dr","source_cluster":"prod"}"#;
        let err = authorize(&fleet(), &mut restore(body), &queue("AIDACISENDER")).unwrap_err();
        assert!(err.contains("AIDACISENDER may not restore"), "{err}");
        let none = Origin::Queue { sender: None };
        assert!(authorize(&fleet(), &mut restore(body), &none)
            .unwrap_err()
            .contains("no SenderId"));
        assert!(authorize(&fleet(), &mut restore(body), &Origin::Schedule).is_err());
    }

    #[test]
    fn a_grant_covers_only_its_source_clusters_and_its_target() {
        let s = queue(&format!("{ROLE}:x"));
        // dr restoring its own snapshots: not granted (only prod's).
        let own = r#"{"version":1,"action":"restore","cluster":"dr"}"#;
        assert!(authorize(&fleet(), &mut restore(own), &s).is_err());
        // prod's snapshots into a cluster without grants.
        let other = r#"{"version":1,"action":"restore","cluster":"other","source_cluster":"prod"}"#;
        assert!(authorize(&fleet(), &mut restore(other), &s).is_err());
        // A target outside the fleet is refused by name.
        let unknown =
            r#"{"version":1,"action":"restore","cluster":"nope","source_cluster":"prod"}"#;
        assert!(authorize(&fleet(), &mut restore(unknown), &s)
            .unwrap_err()
            .contains("\"nope\""));
    }

    #[test]
    fn reply_to_must_be_an_allowed_queue_and_backups_need_no_grant() {
        let ok = r#"{"version":1,"action":"backup","cluster":"prod","reply_to":"https://sqs.us-east-1.amazonaws.com/1/ci-results"}"#;
        authorize(&fleet(), &mut restore(ok), &queue("AIDACISENDER")).unwrap();
        let other = r#"{"version":1,"action":"backup","cluster":"prod","reply_to":"https://sqs.us-east-1.amazonaws.com/1/payroll-results"}"#;
        let err = authorize(&fleet(), &mut restore(other), &queue("AIDACISENDER")).unwrap_err();
        assert!(err.contains("reply_queues"), "{err}");
    }
}
