//! Errors: [`AslError`] for definitions that cannot be parsed or validated,
//! [`StateError`] for what a state reports while the machine runs, and the
//! predefined error names of the specification ([`names`]).

use serde_json::{json, Value};
use thiserror::Error;

/// The predefined Error Names of the States Language (its Appendix A) that
/// this interpreter reports or matches.
pub mod names {
    /// Wildcard matching any error name except [`RUNTIME`].
    pub const ALL: &str = "States.ALL";
    /// A Task did not heartbeat within `HeartbeatSeconds` (not raised here:
    /// heartbeats are not enforced), matched by [`TIMEOUT`] too.
    pub const HEARTBEAT_TIMEOUT: &str = "States.HeartbeatTimeout";
    /// A Task ran longer than its `TimeoutSeconds`, or the machine longer than
    /// its top-level `TimeoutSeconds`.
    pub const TIMEOUT: &str = "States.Timeout";
    /// Wildcard matching any error except [`TIMEOUT`] (and [`HEARTBEAT_TIMEOUT`]).
    pub const TASK_FAILED: &str = "States.TaskFailed";
    /// A Task lacked the privileges to run its resource.
    pub const PERMISSIONS: &str = "States.Permissions";
    /// `ResultPath` could not be applied to the state's raw input.
    pub const RESULT_PATH_MATCH_FAILURE: &str = "States.ResultPathMatchFailure";
    /// A `.$` path of a Payload Template (Parameters, ResultSelector,
    /// ItemSelector) could not be applied.
    pub const PARAMETER_PATH_FAILURE: &str = "States.ParameterPathFailure";
    /// A branch of a Parallel State failed (the branch's own error is reported).
    pub const BRANCH_FAILED: &str = "States.BranchFailed";
    /// A Choice State matched no rule and has no `Default`.
    pub const NO_CHOICE_MATCHED: &str = "States.NoChoiceMatched";
    /// An intrinsic function failed.
    pub const INTRINSIC_FAILURE: &str = "States.IntrinsicFailure";
    /// An error that neither Retry nor Catch handle (a bad InputPath,
    /// OutputPath, ItemsPath, Choice Variable, Wait or Fail path, ...).
    pub const RUNTIME: &str = "States.Runtime";
}

/// A definition that is not valid JSON, not a valid States Language
/// document, or that uses a feature this interpreter does not support.
///
/// `location` names where the problem is: `top level`, `state "Name"`, or a
/// nested machine such as `Map "CopyAll" ItemProcessor`.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AslError {
    /// The definition is not JSON.
    #[error("the definition is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A required field is absent.
    #[error("{location}: missing required field \"{field}\"")]
    MissingField {
        /// Where the field is missing.
        location: String,
        /// The field.
        field: String,
    },
    /// A field has a value the specification does not allow.
    #[error("{location}: field \"{field}\": {message}")]
    InvalidField {
        /// Where the field is.
        location: String,
        /// The field.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A field the specification does not define for this place.
    #[error("{location}: unknown field \"{field}\"")]
    UnknownField {
        /// Where the field is.
        location: String,
        /// The field.
        field: String,
    },
    /// A field of the specification this interpreter does not implement.
    #[error("{location}: field \"{field}\" is not supported by this interpreter")]
    Unsupported {
        /// Where the field is.
        location: String,
        /// The field.
        field: String,
    },
    /// A transition (`StartAt`, `Next`, `Default`, a Catcher's `Next`) names
    /// a state that does not exist in the same `States` object.
    #[error("{location}: field \"{field}\" names state \"{target}\", which does not exist here")]
    UnknownState {
        /// Where the transition is.
        location: String,
        /// The field holding the transition.
        field: String,
        /// The missing state.
        target: String,
    },
    /// Two states share a name (names are unique in the whole machine).
    #[error("state name \"{name}\" is used more than once")]
    DuplicateStateName {
        /// The name.
        name: String,
    },
    /// A state no transition leads to.
    #[error("{location}: state \"{state}\" cannot be reached from StartAt")]
    Unreachable {
        /// The machine (top level or nested) holding the state.
        location: String,
        /// The state.
        state: String,
    },
    /// A machine (top level or nested) with no Succeed, Fail or End state.
    #[error("{location}: no terminal state (Succeed, Fail or \"End\": true)")]
    NoTerminalState {
        /// The machine.
        location: String,
    },
    /// [`substitute`](crate::substitute) met a `${Key}` with no value.
    #[error("no substitution for \"${{{key}}}\"")]
    UnknownSubstitution {
        /// The key.
        key: String,
    },
    /// [`substitute`](crate::substitute) met a `${` with no closing `}`.
    #[error("unterminated \"${{\" placeholder at byte {offset}")]
    UnterminatedPlaceholder {
        /// Byte offset of the `$`.
        offset: usize,
    },
}

impl AslError {
    pub(crate) fn invalid(location: &str, field: &str, message: impl Into<String>) -> Self {
        AslError::InvalidField {
            location: location.to_string(),
            field: field.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn missing(location: &str, field: &str) -> Self {
        AslError::MissingField {
            location: location.to_string(),
            field: field.to_string(),
        }
    }
}

/// An error a state reports while the machine runs: an Error Name and a
/// human-readable Cause, as in the specification's Error Output.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{error}: {cause}")]
pub struct StateError {
    /// The Error Name (`States.Timeout`, `Lifeboat.Retryable`, ...).
    pub error: String,
    /// Human-readable text about the error.
    pub cause: String,
    /// The state that reported it, once known.
    pub state: Option<String>,
}

impl StateError {
    /// An error with this name and cause.
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        StateError {
            error: error.into(),
            cause: cause.into(),
            state: None,
        }
    }

    /// A `States.Runtime` error, which Retry and Catch never handle.
    pub fn runtime(cause: impl Into<String>) -> Self {
        StateError::new(names::RUNTIME, cause)
    }

    /// Whether this is a `States.Runtime` error.
    pub fn is_runtime(&self) -> bool {
        self.error == names::RUNTIME
    }

    /// The Error Output a Catcher passes on: `{"Error": ..., "Cause": ...}`.
    pub fn output(&self) -> Value {
        json!({ "Error": self.error, "Cause": self.cause })
    }

    /// Records the state that reported the error, unless one is known already.
    pub(crate) fn in_state(mut self, state: &str) -> Self {
        if self.state.is_none() {
            self.state = Some(state.to_string());
        }
        self
    }
}
