//! The steps of Lifeboat's workflows. Each step is one Lambda function in
//! AWS (`functions/<step>`, a few lines over [`Step::run`]) and one Task in
//! the Step Functions definitions (`infra/statemachine/*.asl.json`); the
//! same handlers run in-process under `lifeboat workflow run` through
//! [`LocalInvoker`]. docs/workflows.md is the contract between them.
//!
//! A step reads the execution state (the [`Request`] at the top level and
//! earlier steps' results), does one use case of `lifeboat-ops`, and returns
//! a small result; it fails with a [`StepError`] whose [`ErrorKind`] name the
//! definitions' Retry and Catch match.

mod alerts;
pub mod authorize;
mod backup;
mod dispatch;
pub mod env;
mod error;
pub mod fingerprints;
pub mod fleet;
pub mod pinned;
mod report;
pub mod request;
mod restore;
pub mod state;
#[cfg(test)]
mod test_env;
pub mod trigger;
pub mod volumes;

pub use alerts::Alert;
pub use dispatch::{local_substitutions, LocalInvoker, Step};
pub use env::{Environment, Settings, StepEnv};
pub use error::{ErrorKind, StepError};
pub use fleet::{ClusterAccess, Fleet};
pub use report::{WorkflowReport, WORKFLOW_REPORT_KIND};
pub use request::{Action, Request};
