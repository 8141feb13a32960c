//! One name per step, and running a step by name: what a Lambda function
//! does with its event, and what `lifeboat workflow run` does for a Task.

use crate::env::StepEnv;
use crate::state::State;
use crate::{backup, report, restore, StepError};
use async_trait::async_trait;
use lifeboat_workflow::{TaskContext, TaskFailure, TaskInvoker};
use serde_json::Value;
use std::sync::Arc;
use tracing::Instrument;

/// Every workflow step (each is one Lambda function, `lifeboat-<name>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    Prepare,
    ExportState,
    SnapshotVolumes,
    CopyVolume,
    Commit,
    Verify,
    ApplyLock,
    Replicate,
    VerifyReplica,
    Report,
    Resolve,
    RestoreState,
    RestoreVolumes,
    CheckReadiness,
}

impl Step {
    pub const ALL: [Step; 14] = [
        Step::Prepare,
        Step::ExportState,
        Step::SnapshotVolumes,
        Step::CopyVolume,
        Step::Commit,
        Step::Verify,
        Step::ApplyLock,
        Step::Replicate,
        Step::VerifyReplica,
        Step::Report,
        Step::Resolve,
        Step::RestoreState,
        Step::RestoreVolumes,
        Step::CheckReadiness,
    ];

    /// The step's name, as in `lifeboat-<name>` and docs/workflows.md.
    pub fn name(self) -> &'static str {
        match self {
            Step::Prepare => "prepare",
            Step::ExportState => "export-state",
            Step::SnapshotVolumes => "snapshot-volumes",
            Step::CopyVolume => "copy-volume",
            Step::Commit => "commit",
            Step::Verify => "verify",
            Step::ApplyLock => "apply-lock",
            Step::Replicate => "replicate",
            Step::VerifyReplica => "verify-replica",
            Step::Report => "report",
            Step::Resolve => "resolve",
            Step::RestoreState => "restore-state",
            Step::RestoreVolumes => "restore-volumes",
            Step::CheckReadiness => "check-readiness",
        }
    }

    pub fn from_name(name: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The `DefinitionSubstitutions` key of its function's ARN.
    pub fn substitution_key(self) -> String {
        let camel: String = self
            .name()
            .split('-')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect();
        format!("{camel}FunctionArn")
    }

    /// The ARN a local run gives its function.
    pub fn local_arn(self) -> String {
        format!(
            "arn:aws:lambda:local:000000000000:function:lifeboat-{}",
            self.name()
        )
    }

    /// Run the step on `input` (the execution state, or a Map item).
    pub async fn run(self, env: &dyn StepEnv, input: Value) -> Result<Value, StepError> {
        let span = tracing::info_span!("step", step = self.name());
        // Boxed: each step is a deep async state machine, and callers that
        // nest this future (a Lambda handler, the interpreter) would exceed
        // the compiler's query depth computing its layout inline.
        Box::pin(self.run_inner(env, input)).instrument(span).await
    }

    async fn run_inner(self, env: &dyn StepEnv, input: Value) -> Result<Value, StepError> {
        if self == Step::CopyVolume {
            return crate::volumes::copy_volume(env, input).await;
        }
        let state = State::parse(input)?;
        match self {
            Step::Prepare => backup::prepare(env, state).await,
            Step::ExportState => backup::export_state(env, state).await,
            Step::SnapshotVolumes => crate::volumes::snapshot_volumes(env, state).await,
            Step::CopyVolume => crate::volumes::copy_volume(env, Value::Null).await,
            Step::Commit => backup::commit(env, state).await,
            Step::Verify => backup::verify(env, state).await,
            Step::ApplyLock => backup::apply_lock(env, state).await,
            Step::Replicate => backup::replicate(env, state).await,
            Step::VerifyReplica => backup::verify_replica(env, state).await,
            Step::Report => report::report(env, state).await,
            Step::Resolve => restore::resolve(env, state).await,
            Step::RestoreState => restore::restore_state(env, state).await,
            Step::RestoreVolumes => crate::volumes::restore_volumes(env, state).await,
            Step::CheckReadiness => restore::check_readiness(env, state).await,
        }
    }
}

/// The substitutions of a local run: every step's key to its local ARN.
pub fn local_substitutions() -> std::collections::BTreeMap<String, String> {
    Step::ALL
        .iter()
        .map(|s| (s.substitution_key(), s.local_arn()))
        .collect()
}

/// Runs a definition's Tasks in-process: the Resource's function name
/// (`...:function:lifeboat-<step>`) picks the handler.
pub struct LocalInvoker {
    env: Arc<dyn StepEnv>,
}

impl std::fmt::Debug for LocalInvoker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalInvoker")
    }
}

impl LocalInvoker {
    pub fn new(env: Arc<dyn StepEnv>) -> Self {
        LocalInvoker { env }
    }
}

#[async_trait]
impl TaskInvoker for LocalInvoker {
    async fn invoke(
        &self,
        resource: &str,
        input: Value,
        _ctx: &TaskContext,
    ) -> Result<Value, TaskFailure> {
        let step = resource
            .rsplit_once(":function:lifeboat-")
            .and_then(|(_, name)| Step::from_name(name))
            .ok_or_else(|| {
                TaskFailure::new(
                    "States.Runtime",
                    format!("{resource} is not a Lifeboat function (expected ...:function:lifeboat-<step>)"),
                )
            })?;
        step.run(self.env.as_ref(), input)
            .await
            .map_err(|e| TaskFailure::new(e.kind.name(), e.message))
    }
}
