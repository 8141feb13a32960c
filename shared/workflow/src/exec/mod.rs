//! Running a state machine: [`run`], its options, the [`TaskInvoker`] that
//! Task States call, and the resulting [`Execution`].

mod runner;
mod states;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::error::names;
use crate::history::{HistoryEvent, HistoryEventType, Observer};
use crate::model::StateMachine;
use runner::{scale, Runner};

/// Does the work of Task States.
#[async_trait]
pub trait TaskInvoker: Send + Sync {
    /// Runs `resource` (a Task's `Resource`) on `input` (its effective input)
    /// and returns its result, or the error it reports: the error name is what
    /// Retry and Catch match (`Lifeboat.Retryable`, `Lambda.ServiceException`...).
    async fn invoke(
        &self,
        resource: &str,
        input: Value,
        ctx: &TaskContext,
    ) -> Result<Value, TaskFailure>;
}

/// What a Task invocation knows about where it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskContext {
    /// The execution's id (an ARN-shaped string).
    pub execution_id: String,
    /// The execution's name.
    pub execution_name: String,
    /// The Task State's name.
    pub state_name: String,
    /// Retries of this state made so far (0 on the first attempt).
    pub retry_count: u32,
    /// The timeout applied to this invocation, if any.
    pub timeout: Option<Duration>,
    /// The state's HeartbeatSeconds, if any (informative: not enforced).
    pub heartbeat: Option<Duration>,
    /// The Context Object (`$$`) as the state sees it.
    pub context_object: Value,
}

/// An error reported by a Task's resource.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}: {cause}")]
pub struct TaskFailure {
    /// The error name.
    pub error: String,
    /// Human-readable details.
    pub cause: String,
}

impl TaskFailure {
    /// A failure with this error name and cause.
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        TaskFailure {
            error: error.into(),
            cause: cause.into(),
        }
    }
}

/// How to run an execution.
#[derive(Clone)]
pub struct RunOptions {
    /// The execution's name (default: a random UUID).
    pub name: Option<String>,
    /// The state machine's name, used in `$$.StateMachine` and the ids.
    pub state_machine_name: String,
    /// Multiplies every Wait and retry interval: 1.0 waits for real, 0.0
    /// not at all (tests).
    pub time_scale: f64,
    /// Multiplies every timeout (Task and machine `TimeoutSeconds`); values
    /// that are not positive and finite count as 1.0.
    pub timeout_scale: f64,
    /// The timeout of a Task without TimeoutSeconds: the specification's
    /// default is 60 seconds (Step Functions itself has none: use `None`).
    pub default_task_timeout: Option<Duration>,
    /// Called for every history event as it is recorded.
    pub observer: Option<Observer>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            name: None,
            state_machine_name: "StateMachine".to_string(),
            time_scale: 1.0,
            timeout_scale: 1.0,
            default_task_timeout: Some(Duration::from_secs(60)),
            observer: None,
        }
    }
}

impl fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunOptions")
            .field("name", &self.name)
            .field("state_machine_name", &self.state_machine_name)
            .field("time_scale", &self.time_scale)
            .field("timeout_scale", &self.timeout_scale)
            .field("default_task_timeout", &self.default_task_timeout)
            .field(
                "observer",
                &self.observer.as_ref().map(|_| "Fn(&HistoryEvent)"),
            )
            .finish()
    }
}

/// How an execution ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum ExecutionStatus {
    /// It reached a terminal state.
    Succeeded,
    /// A state failed and nothing caught it, or it reached a Fail State.
    Failed {
        /// The error name.
        error: String,
        /// Its cause.
        cause: String,
    },
    /// It ran longer than the machine's top-level `TimeoutSeconds`.
    TimedOut,
}

impl fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecutionStatus::Succeeded => f.write_str("SUCCEEDED"),
            ExecutionStatus::Failed { error, cause } if cause.is_empty() => {
                write!(f, "FAILED ({error})")
            }
            ExecutionStatus::Failed { error, cause } => write!(f, "FAILED ({error}: {cause})"),
            ExecutionStatus::TimedOut => f.write_str("TIMED_OUT"),
        }
    }
}

/// A finished execution.
#[derive(Debug, Clone, Serialize)]
pub struct Execution {
    /// Its id (`arn:aws:states:local:000000000000:execution:<machine>:<name>`).
    pub id: String,
    /// Its name.
    pub name: String,
    /// How it ended.
    pub status: ExecutionStatus,
    /// The output of its terminal state, when it succeeded.
    pub output: Option<Value>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub stopped_at: DateTime<Utc>,
    /// Everything that happened, in order.
    pub history: Vec<HistoryEvent>,
}

impl Execution {
    /// Whether it succeeded.
    pub fn succeeded(&self) -> bool {
        self.status == ExecutionStatus::Succeeded
    }
}

/// Runs `machine` on `input` to the end and returns what happened.
///
/// Needs a Tokio runtime with the time driver. Tasks call `invoker`; Map
/// iterations and Parallel branches run concurrently on the calling task
/// (an invoker doing blocking work should move it off the runtime, e.g. with
/// `spawn_blocking`).
pub async fn run(
    machine: &StateMachine,
    input: Value,
    invoker: Arc<dyn TaskInvoker>,
    opts: RunOptions,
) -> Execution {
    let started_at = Utc::now();
    let name = opts.name.clone().unwrap_or_else(|| {
        crate::random::uuid_v4()
            .unwrap_or_else(|_| format!("execution-{}", started_at.timestamp_micros()))
    });
    let runner = Runner::new(&name, &opts, invoker, &input, started_at);
    runner.record(HistoryEvent::new(HistoryEventType::ExecutionStarted, "").data(&input));
    let execution = runner.run_machine(machine, input, String::new());
    let outcome = match machine.timeout_seconds {
        Some(seconds) => {
            let limit = scale(Duration::from_secs(seconds), runner.timeout_scale);
            tokio::time::timeout(limit, execution).await.ok()
        }
        None => Some(execution.await),
    };
    let (status, output) = match outcome {
        Some(Ok(output)) => {
            runner
                .record(HistoryEvent::new(HistoryEventType::ExecutionSucceeded, "").data(&output));
            (ExecutionStatus::Succeeded, Some(output))
        }
        Some(Err(error)) => {
            let mut event = HistoryEvent::new(HistoryEventType::ExecutionFailed, "")
                .failure(&error.error, &error.cause);
            event.state = error.state.clone();
            runner.record(event);
            let status = ExecutionStatus::Failed {
                error: error.error,
                cause: error.cause,
            };
            (status, None)
        }
        None => {
            let cause = format!(
                "the execution ran longer than its TimeoutSeconds ({}s)",
                machine.timeout_seconds.unwrap_or_default()
            );
            runner.record(
                HistoryEvent::new(HistoryEventType::ExecutionTimedOut, "")
                    .failure(names::TIMEOUT, &cause),
            );
            (ExecutionStatus::TimedOut, None)
        }
    };
    Execution {
        id: runner.execution_id().to_string(),
        name,
        status,
        output,
        started_at,
        stopped_at: Utc::now(),
        history: runner.take_history(),
    }
}
