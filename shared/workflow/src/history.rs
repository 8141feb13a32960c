//! The execution history: one [`HistoryEvent`] per step, in the spirit of
//! Step Functions' `GetExecutionHistory`, for a CLI to print.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::model::StateType;

/// What happened. Displays (and serializes) as Step Functions names it:
/// `TaskStateEntered`, `TaskFailed`, `ExecutionFailed`...
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryEventType {
    /// The execution began.
    ExecutionStarted,
    /// The execution reached a terminal state.
    ExecutionSucceeded,
    /// A state failed and nothing caught it (or a Fail State was reached).
    ExecutionFailed,
    /// The machine ran longer than its top-level `TimeoutSeconds`.
    ExecutionTimedOut,
    /// A state was entered (`TaskStateEntered`, `ChoiceStateEntered`, ...).
    StateEntered(StateType),
    /// A state finished and passed on its output (`TaskStateExited`, ...).
    StateExited(StateType),
    /// A Task's resource was invoked.
    TaskScheduled,
    /// The resource returned a result.
    TaskSucceeded,
    /// The resource reported an error.
    TaskFailed,
    /// The resource ran longer than `TimeoutSeconds`.
    TaskTimedOut,
    /// A Retrier matched the error; the state runs again after a delay.
    RetryScheduled,
    /// A Catcher matched the error; the machine goes to its `Next`.
    ErrorCaught,
    /// A Map iteration began.
    MapIterationStarted,
    /// A Map iteration finished.
    MapIterationSucceeded,
    /// A Map iteration failed (the Map fails with its error).
    MapIterationFailed,
    /// A Parallel branch began.
    ParallelBranchStarted,
    /// A Parallel branch finished.
    ParallelBranchSucceeded,
    /// A Parallel branch failed (the Parallel fails with its error).
    ParallelBranchFailed,
}

impl fmt::Display for HistoryEventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HistoryEventType::StateEntered(t) => write!(f, "{t}StateEntered"),
            HistoryEventType::StateExited(t) => write!(f, "{t}StateExited"),
            other => write!(f, "{other:?}"),
        }
    }
}

impl Serialize for HistoryEventType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// One event of an execution's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEvent {
    /// 1, 2, 3... in the order recorded.
    pub id: u64,
    /// When.
    pub timestamp: DateTime<Utc>,
    /// What.
    pub event_type: HistoryEventType,
    /// Where in nested machines: empty at the top level, else like
    /// `CopyAll[3]` (Map iteration 3) or `Fanout.Branches[1]/Inner[0]`.
    pub scope: String,
    /// The state concerned, if any.
    pub state: Option<String>,
    /// A Task's Resource.
    pub resource: Option<String>,
    /// Error name, for failures, retries and catches.
    pub error: Option<String>,
    /// Error cause.
    pub cause: Option<String>,
    /// For retries: which retry of its Retrier (1-based); for a Task invocation,
    /// the state's retry count so far.
    pub retry_attempt: Option<u32>,
    /// Extra words: a retry's delay, a Catcher's or Choice's next state.
    pub detail: Option<String>,
    /// The JSON concerned: a state's input when entered, its output when
    /// exited, a Task's input and result, an execution's input and output.
    pub data: Option<Value>,
}

impl HistoryEvent {
    pub(crate) fn new(event_type: HistoryEventType, scope: &str) -> Self {
        HistoryEvent {
            id: 0,
            timestamp: Utc::now(),
            event_type,
            scope: scope.to_string(),
            state: None,
            resource: None,
            error: None,
            cause: None,
            retry_attempt: None,
            detail: None,
            data: None,
        }
    }

    pub(crate) fn state(mut self, state: &str) -> Self {
        self.state = Some(state.to_string());
        self
    }

    pub(crate) fn resource(mut self, resource: &str) -> Self {
        self.resource = Some(resource.to_string());
        self
    }

    pub(crate) fn failure(mut self, error: &str, cause: &str) -> Self {
        self.error = Some(error.to_string());
        self.cause = Some(cause.to_string());
        self
    }

    pub(crate) fn attempt(mut self, attempt: u32) -> Self {
        self.retry_attempt = Some(attempt);
        self
    }

    pub(crate) fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub(crate) fn data(mut self, data: &Value) -> Self {
        self.data = Some(data.clone());
        self
    }
}

/// One line: `time type scope/state (resource) attempt detail error: cause`.
impl fmt::Display for HistoryEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.timestamp.to_rfc3339_opts(SecondsFormat::Millis, true),
            self.event_type
        )?;
        match (&self.state, self.scope.is_empty()) {
            (Some(state), true) => write!(f, " {state}")?,
            (Some(state), false) => write!(f, " {}/{state}", self.scope)?,
            (None, false) => write!(f, " {}", self.scope)?,
            (None, true) => {}
        }
        if let Some(resource) = &self.resource {
            write!(f, " ({resource})")?;
        }
        if let Some(attempt) = self.retry_attempt {
            write!(f, " attempt {attempt}")?;
        }
        if let Some(detail) = &self.detail {
            write!(f, " {detail}")?;
        }
        if let Some(error) = &self.error {
            write!(f, " {error}")?;
            if let Some(cause) = self.cause.as_deref().filter(|c| !c.is_empty()) {
                write!(f, ": {cause}")?;
            }
        }
        Ok(())
    }
}

/// A callback for every event as it is recorded (progress output).
pub type Observer = Arc<dyn Fn(&HistoryEvent) + Send + Sync>;

/// Collects events from every concurrent branch of an execution.
pub(crate) struct Recorder {
    events: Mutex<Vec<HistoryEvent>>,
    observer: Option<Observer>,
}

impl Recorder {
    pub(crate) fn new(observer: Option<Observer>) -> Self {
        Recorder {
            events: Mutex::new(Vec::new()),
            observer,
        }
    }

    pub(crate) fn record(&self, mut event: HistoryEvent) {
        let mut events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        event.id = events.len() as u64 + 1;
        if let Some(observer) = &self.observer {
            observer(&event);
        }
        events.push(event);
    }

    pub(crate) fn take(&self) -> Vec<HistoryEvent> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(PoisonError::into_inner))
    }
}
