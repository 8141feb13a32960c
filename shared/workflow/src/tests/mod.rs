//! Unit tests, by concept, against the specification's examples.

mod choice;
mod exec_basic;
mod exec_concurrency;
mod exec_errors;
mod intrinsics;
mod parse;
mod paths;
mod retry;
mod templates;

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::{run, Execution, RunOptions, StateMachine, TaskContext, TaskFailure, TaskInvoker};

/// A TaskInvoker from a closure.
struct FnInvoker<F>(F);

#[async_trait]
impl<F, Fut> TaskInvoker for FnInvoker<F>
where
    F: Fn(String, Value, TaskContext) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Value, TaskFailure>> + Send,
{
    async fn invoke(
        &self,
        resource: &str,
        input: Value,
        ctx: &TaskContext,
    ) -> Result<Value, TaskFailure> {
        (self.0)(resource.to_string(), input, ctx.clone()).await
    }
}

fn invoker<F, Fut>(f: F) -> Arc<dyn TaskInvoker>
where
    F: Fn(String, Value, TaskContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, TaskFailure>> + Send + 'static,
{
    Arc::new(FnInvoker(f))
}

/// An invoker that returns its input.
fn echo() -> Arc<dyn TaskInvoker> {
    invoker(|_, input, _| async move { Ok(input) })
}

/// Options for tests: no waiting, names fixed.
fn opts() -> RunOptions {
    RunOptions {
        name: Some("test-run".to_string()),
        state_machine_name: "Test".to_string(),
        time_scale: 0.0,
        ..RunOptions::default()
    }
}

fn machine(definition: &str) -> StateMachine {
    match StateMachine::from_json(definition) {
        Ok(machine) => machine,
        Err(e) => panic!("invalid test definition: {e}"),
    }
}

async fn run_with(definition: &str, input: Value, invoker: Arc<dyn TaskInvoker>) -> Execution {
    run(&machine(definition), input, invoker, opts()).await
}

/// The event types of a history, as displayed.
fn event_types(execution: &Execution) -> Vec<String> {
    execution
        .history
        .iter()
        .map(|e| e.event_type.to_string())
        .collect()
}
