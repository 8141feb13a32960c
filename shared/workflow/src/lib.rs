//! An interpreter of the Amazon States Language (ASL), the JSON language of
//! AWS Step Functions state machines, so that Lifeboat's workflow definitions
//! (`infra/statemachine/*.asl.json`) run locally exactly as they are
//! deployed. It follows the specification at
//! <https://states-language.net/spec.html> for the JSONPath query language.
//!
//! # Use
//!
//! 1. [`substitute`] fills the `${Key}` placeholders that CloudFormation's
//!    `DefinitionSubstitutions` would fill.
//! 2. [`StateMachine::from_json`] parses the definition into a typed model
//!    and validates it ([`AslError`] names the state and the field).
//!    [`StateMachine::resources`] lists every Task `Resource`.
//! 3. [`run`] executes it: Task States call your [`TaskInvoker`]; the
//!    [`Execution`] holds the status, the output and the [`HistoryEvent`]s.
//!
//! # Supported
//!
//! - States: Task, Choice, Map (inline), Parallel, Pass, Wait, Succeed, Fail.
//! - Input and output processing in the specification's order: InputPath,
//!   Parameters, ResultSelector, ResultPath (including `null` and creating
//!   missing fields), OutputPath; Payload Templates with `.$` fields holding
//!   Paths, Context Object paths (`$$`) and intrinsic functions.
//! - Paths: `$`, `.name`, `['name']`, `[0]`, `[-1]`, `*`, slices and unions
//!   (see [`Path`]); Reference Paths where the specification requires them.
//! - The Context Object: `Execution.{Id,Name,StartTime,Input}`,
//!   `State.{Name,EnteredTime,RetryCount}`, `StateMachine.{Id,Name}`, and
//!   `Map.Item.{Index,Value}` in a Map's ItemSelector.
//! - Intrinsic functions: `States.Format`, `StringToJson`, `JsonToString`,
//!   `Array`, `ArrayPartition`, `ArrayContains`, `ArrayRange`,
//!   `ArrayGetItem`, `ArrayLength`, `ArrayUnique`, `Base64Encode`,
//!   `Base64Decode`, `JsonMerge`, `MathRandom`, `MathAdd`, `StringSplit`,
//!   `UUID`.
//! - Choice Rules: every comparison operator and its `...Path` form,
//!   `StringMatches`, the `Is*` tests, `And`/`Or`/`Not`, `Default`.
//! - Retry (ErrorEquals, IntervalSeconds, MaxAttempts including 0,
//!   BackoffRate, MaxDelaySeconds, JitterStrategy FULL/NONE; counts per
//!   Retrier) and Catch (ErrorEquals, Next, ResultPath) on Task, Map and
//!   Parallel; `States.ALL`, `States.TaskFailed` (any error but a timeout);
//!   `States.Runtime` errors are never retried or caught.
//! - Task `TimeoutSeconds`/`TimeoutSecondsPath` (`States.Timeout`); the
//!   machine's top-level `TimeoutSeconds` ([`ExecutionStatus::TimedOut`]).
//! - Map `MaxConcurrency`/`MaxConcurrencyPath`, truly bounded; Parallel
//!   branches run concurrently; results keep the order of items/branches.
//!   A failing iteration or branch stops the others and the Map or Parallel
//!   fails with its error.
//!
//! # Not supported
//!
//! - JSONata (`QueryLanguage: JSONata`), variables (`Assign`), `Arguments`,
//!   `Output`: refused when parsing.
//! - Distributed Map features (`ItemReader`, `ItemBatcher`, `ResultWriter`,
//!   `ToleratedFailure*`, `Label`): refused; `ProcessorConfig` is accepted
//!   and every Map runs inline.
//! - JSONPath filters (`[?(...)]`), scripts and recursive descent (`..`).
//! - `States.Hash` (it would need digest crates).
//! - `HeartbeatSeconds` is validated and passed to the invoker in
//!   [`TaskContext`] but not enforced: nothing here sends heartbeats.
//! - `Credentials` on a Task is accepted and ignored.

#![warn(missing_docs)]

mod choice;
mod error;
mod exec;
mod functions;
mod history;
mod intrinsic;
mod io;
mod model;
mod parse;
mod path;
mod random;
mod retry;
mod substitute;
mod template;

#[cfg(test)]
mod tests;

pub use choice::{ChoiceRule, DataTest, Operand, Operator};
pub use error::{names, AslError, StateError};
pub use exec::{
    run, Execution, ExecutionStatus, RunOptions, TaskContext, TaskFailure, TaskInvoker,
};
pub use history::{HistoryEvent, HistoryEventType, Observer};
pub use intrinsic::Intrinsic;
pub use model::{
    Catcher, Choice, ChoiceState, Count, FailField, FailState, Filters, Jitter, MapState,
    ParallelState, PassState, ResultHandling, Retrier, State, StateKind, StateMachine, StateType,
    SucceedState, TaskState, Transition, WaitFor, WaitState,
};
pub use path::Path;
pub use retry::{error_matches, find_catcher, jittered, PlannedRetry, RetryCounter};
pub use substitute::substitute;
pub use template::Template;
