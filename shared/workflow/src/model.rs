//! The typed model of a state machine, as [`StateMachine::from_json`]
//! produces it from a validated definition.
//!
//! Optional paths follow the specification's defaults: an absent `InputPath`,
//! `OutputPath` or `ResultPath` is `Some($)`, an explicit `null` is `None`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, FixedOffset};
use serde_json::Value;

use crate::choice::ChoiceRule;
use crate::intrinsic::Intrinsic;
use crate::path::Path;
use crate::template::Template;

/// A state machine: the top-level definition, a Parallel branch or a Map's
/// ItemProcessor.
#[derive(Debug, Clone, PartialEq)]
pub struct StateMachine {
    /// `Comment`.
    pub comment: Option<String>,
    /// `StartAt`: the first state.
    pub start_at: String,
    /// `States`, by name.
    pub states: BTreeMap<String, State>,
    /// Top-level `TimeoutSeconds` (never set on nested machines).
    pub timeout_seconds: Option<u64>,
}

impl StateMachine {
    /// Every Task `Resource`, including those in Parallel branches and Map
    /// processors, sorted and without duplicates.
    pub fn resources(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        self.collect_resources(&mut out);
        out
    }

    fn collect_resources(&self, out: &mut BTreeSet<String>) {
        for state in self.states.values() {
            match &state.kind {
                StateKind::Task(task) => {
                    out.insert(task.resource.clone());
                }
                StateKind::Parallel(parallel) => {
                    for branch in &parallel.branches {
                        branch.collect_resources(out);
                    }
                }
                StateKind::Map(map) => map.processor.collect_resources(out),
                _ => {}
            }
        }
    }
}

/// A state.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// Its name (unique in the whole machine).
    pub name: String,
    /// `Comment`.
    pub comment: Option<String>,
    /// What it does.
    pub kind: StateKind,
}

impl State {
    /// Its `Type`.
    pub fn state_type(&self) -> StateType {
        match self.kind {
            StateKind::Pass(_) => StateType::Pass,
            StateKind::Task(_) => StateType::Task,
            StateKind::Choice(_) => StateType::Choice,
            StateKind::Wait(_) => StateType::Wait,
            StateKind::Succeed(_) => StateType::Succeed,
            StateKind::Fail(_) => StateType::Fail,
            StateKind::Parallel(_) => StateType::Parallel,
            StateKind::Map(_) => StateType::Map,
        }
    }
}

/// A state's `Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[allow(missing_docs)]
pub enum StateType {
    Pass,
    Task,
    Choice,
    Wait,
    Succeed,
    Fail,
    Parallel,
    Map,
}

impl fmt::Display for StateType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StateType::Pass => "Pass",
            StateType::Task => "Task",
            StateType::Choice => "Choice",
            StateType::Wait => "Wait",
            StateType::Succeed => "Succeed",
            StateType::Fail => "Fail",
            StateType::Parallel => "Parallel",
            StateType::Map => "Map",
        })
    }
}

/// A state's fields, by type.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum StateKind {
    Pass(PassState),
    Task(TaskState),
    Choice(ChoiceState),
    Wait(WaitState),
    Succeed(SucceedState),
    Fail(FailState),
    Parallel(ParallelState),
    Map(MapState),
}

/// Where a state goes when it is done: `Next` or `"End": true`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// `Next`: the state's name.
    Next(String),
    /// `"End": true`.
    End,
}

impl Transition {
    /// The next state, if any.
    pub fn next(&self) -> Option<&str> {
        match self {
            Transition::Next(name) => Some(name),
            Transition::End => None,
        }
    }
}

/// `InputPath` and `OutputPath` (`None`: an explicit `null`).
#[derive(Debug, Clone, PartialEq)]
pub struct Filters {
    /// `InputPath`, applied to the raw input.
    pub input_path: Option<Path>,
    /// `OutputPath`, applied to the output after ResultPath.
    pub output_path: Option<Path>,
}

/// `Parameters`, `ResultSelector` and `ResultPath` of a state that produces
/// a result.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultHandling {
    /// `Parameters` (for a Map: `ItemSelector`, see [`MapState`]).
    pub parameters: Option<Template>,
    /// `ResultSelector`.
    pub result_selector: Option<Template>,
    /// `ResultPath` (`None`: `null`, the result is discarded).
    pub result_path: Option<Path>,
}

/// A Pass State.
#[derive(Debug, Clone, PartialEq)]
pub struct PassState {
    /// InputPath / OutputPath.
    pub filters: Filters,
    /// `Parameters`.
    pub parameters: Option<Template>,
    /// `Result`: when present, the state's result instead of its effective input.
    pub result: Option<Value>,
    /// `ResultPath`.
    pub result_path: Option<Path>,
    /// Next / End.
    pub transition: Transition,
}

/// A Task State.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskState {
    /// `Resource`, handed to the [`TaskInvoker`](crate::TaskInvoker).
    pub resource: String,
    /// InputPath / OutputPath.
    pub filters: Filters,
    /// Parameters / ResultSelector / ResultPath.
    pub results: ResultHandling,
    /// `Retry`.
    pub retry: Vec<Retrier>,
    /// `Catch`.
    pub catch: Vec<Catcher>,
    /// `TimeoutSeconds` or `TimeoutSecondsPath` (`None`: the run's default,
    /// [`RunOptions::default_task_timeout`](crate::RunOptions)). A path
    /// applies to the input after InputPath, before Parameters.
    pub timeout: Option<Count>,
    /// `HeartbeatSeconds` or `HeartbeatSecondsPath` (passed on, not enforced).
    pub heartbeat: Option<Count>,
    /// Next / End.
    pub transition: Transition,
}

/// A positive count given directly or by a Reference Path into the
/// effective input.
#[derive(Debug, Clone, PartialEq)]
pub enum Count {
    /// The number itself.
    Fixed(u64),
    /// A Path selecting it.
    Path(Path),
}

/// A Choice State.
#[derive(Debug, Clone, PartialEq)]
pub struct ChoiceState {
    /// InputPath / OutputPath.
    pub filters: Filters,
    /// `Choices`, tried in order.
    pub choices: Vec<Choice>,
    /// `Default`.
    pub default: Option<String>,
}

/// A top-level Choice Rule and its `Next`.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// The rule.
    pub rule: ChoiceRule,
    /// Where to go when it holds.
    pub next: String,
}

/// A Wait State.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitState {
    /// InputPath / OutputPath.
    pub filters: Filters,
    /// How long.
    pub wait: WaitFor,
    /// Next / End.
    pub transition: Transition,
}

/// What a Wait State waits for.
#[derive(Debug, Clone, PartialEq)]
pub enum WaitFor {
    /// `Seconds`.
    Seconds(u64),
    /// `SecondsPath`.
    SecondsPath(Path),
    /// `Timestamp`.
    Timestamp(DateTime<FixedOffset>),
    /// `TimestampPath`.
    TimestampPath(Path),
}

/// A Succeed State.
#[derive(Debug, Clone, PartialEq)]
pub struct SucceedState {
    /// InputPath / OutputPath.
    pub filters: Filters,
}

/// A Fail State.
#[derive(Debug, Clone, PartialEq)]
pub struct FailState {
    /// `Error` or `ErrorPath`.
    pub error: Option<FailField>,
    /// `Cause` or `CausePath`.
    pub cause: Option<FailField>,
}

/// A Fail State's Error or Cause.
#[derive(Debug, Clone, PartialEq)]
pub enum FailField {
    /// `Error` / `Cause`.
    Literal(String),
    /// `ErrorPath` / `CausePath` holding a Reference Path.
    Path(Path),
    /// `ErrorPath` / `CausePath` holding an intrinsic function.
    Intrinsic(Intrinsic),
}

/// A Parallel State.
#[derive(Debug, Clone, PartialEq)]
pub struct ParallelState {
    /// InputPath / OutputPath.
    pub filters: Filters,
    /// Parameters / ResultSelector / ResultPath.
    pub results: ResultHandling,
    /// `Branches`, run concurrently; the result lists their outputs in this order.
    pub branches: Vec<StateMachine>,
    /// `Retry`.
    pub retry: Vec<Retrier>,
    /// `Catch`.
    pub catch: Vec<Catcher>,
    /// Next / End.
    pub transition: Transition,
}

/// A Map State (inline: every iteration runs in this process).
#[derive(Debug, Clone, PartialEq)]
pub struct MapState {
    /// InputPath / OutputPath.
    pub filters: Filters,
    /// `ItemSelector` (or the deprecated `Parameters`) in `parameters`,
    /// ResultSelector / ResultPath.
    pub results: ResultHandling,
    /// `ItemsPath` on the effective input (default `$`).
    pub items_path: Path,
    /// `ItemProcessor` (or the deprecated `Iterator`).
    pub processor: StateMachine,
    /// `MaxConcurrency` / `MaxConcurrencyPath` (0: unbounded).
    pub max_concurrency: Count,
    /// `Retry`.
    pub retry: Vec<Retrier>,
    /// `Catch`.
    pub catch: Vec<Catcher>,
    /// Next / End.
    pub transition: Transition,
}

/// A Retrier.
#[derive(Debug, Clone, PartialEq)]
pub struct Retrier {
    /// `ErrorEquals`.
    pub error_equals: Vec<String>,
    /// `IntervalSeconds` (default 1).
    pub interval_seconds: u64,
    /// `MaxAttempts` (default 3; 0 means never retry).
    pub max_attempts: u32,
    /// `BackoffRate` (default 2.0, at least 1.0).
    pub backoff_rate: f64,
    /// `MaxDelaySeconds`: a cap on each interval.
    pub max_delay_seconds: Option<u64>,
    /// `JitterStrategy` (default NONE).
    pub jitter: Jitter,
}

/// A Retrier's `JitterStrategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// `NONE`: wait exactly the computed interval.
    None,
    /// `FULL`: wait a random time between 0 and the computed interval.
    Full,
}

/// A Catcher.
#[derive(Debug, Clone, PartialEq)]
pub struct Catcher {
    /// `ErrorEquals`.
    pub error_equals: Vec<String>,
    /// `Next`.
    pub next: String,
    /// `ResultPath` for the Error Output on the raw input (default `$`).
    pub result_path: Option<Path>,
}
