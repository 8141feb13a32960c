//! What each state type does with its raw input, one attempt at a time
//! (Retry and Catch are in the runner).

use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use serde_json::{json, Value};

use super::runner::{child_scope, scale, Runner, Step};
use super::TaskContext;
use crate::choice::parse_timestamp;
use crate::error::{names, StateError};
use crate::history::{HistoryEvent, HistoryEventType};
use crate::io;
use crate::model::{
    ChoiceState, Count, FailField, FailState, MapState, ParallelState, PassState, State, TaskState,
    WaitFor, WaitState,
};
use crate::path::Path;

/// A count at a Path (TimeoutSecondsPath, MaxConcurrencyPath, SecondsPath).
fn count_at(path: &Path, input: &Value, ctx: &Value, field: &str) -> Result<u64, StateError> {
    let value = path
        .select(input, ctx)
        .map_err(|e| StateError::runtime(format!("{field}: {e}")))?;
    value.as_u64().ok_or_else(|| {
        StateError::runtime(format!(
            "{field}: \"{path}\" selects {value}, not a non-negative integer"
        ))
    })
}

fn count(count: &Count, input: &Value, ctx: &Value, field: &str) -> Result<u64, StateError> {
    match count {
        Count::Fixed(n) => Ok(*n),
        Count::Path(path) => count_at(path, input, ctx, field),
    }
}

pub(crate) fn pass(pass: &PassState, raw: Value, ctx: &Value) -> Result<Value, StateError> {
    let effective = io::input_path(pass.filters.input_path.as_ref(), &raw, ctx)?;
    let effective = io::template(pass.parameters.as_ref(), effective, ctx)?;
    let result = pass.result.clone().unwrap_or(effective);
    let output = io::result_path(pass.result_path.as_ref(), raw, result)?;
    io::output_path(pass.filters.output_path.as_ref(), output, ctx)
}

pub(crate) fn choice<'a>(
    choice: &'a ChoiceState,
    raw: Value,
    ctx: &Value,
) -> Result<Step<'a>, StateError> {
    let effective = io::input_path(choice.filters.input_path.as_ref(), &raw, ctx)?;
    let mut next = None;
    for rule in &choice.choices {
        if rule.rule.evaluate(&effective, ctx)? {
            next = Some(rule.next.as_str());
            break;
        }
    }
    let next = next.or(choice.default.as_deref()).ok_or_else(|| {
        StateError::new(
            names::NO_CHOICE_MATCHED,
            "no Choice Rule matched the input and there is no Default",
        )
    })?;
    Ok(Step {
        output: io::output_path(choice.filters.output_path.as_ref(), effective, ctx)?,
        next: Some(next),
    })
}

/// The error a Fail State reports.
pub(crate) fn fail(fail: &FailState, raw: &Value, ctx: &Value) -> StateError {
    let field = |field: Option<&FailField>, name: &str| -> Result<String, StateError> {
        let value = match field {
            None => return Ok(String::new()),
            Some(FailField::Literal(text)) => return Ok(text.clone()),
            Some(FailField::Path(path)) => path
                .select(raw, ctx)
                .map_err(|e| StateError::runtime(format!("{name}Path: {e}")))?,
            Some(FailField::Intrinsic(call)) => call
                .evaluate(raw, ctx)
                .map_err(|e| StateError::runtime(format!("{name}Path: {e}")))?,
        };
        match value {
            Value::String(text) => Ok(text),
            other => Err(StateError::runtime(format!(
                "{name}Path must yield a string, not {other}"
            ))),
        }
    };
    match (
        field(fail.error.as_ref(), "Error"),
        field(fail.cause.as_ref(), "Cause"),
    ) {
        (Ok(error), Ok(cause)) => StateError::new(error, cause),
        (Err(e), _) | (_, Err(e)) => e,
    }
}

impl Runner {
    pub(crate) async fn wait(
        &self,
        wait: &WaitState,
        raw: Value,
        ctx: &Value,
    ) -> Result<Value, StateError> {
        let effective = io::input_path(wait.filters.input_path.as_ref(), &raw, ctx)?;
        let until = |time: chrono::DateTime<chrono::FixedOffset>| {
            (time.with_timezone(&Utc) - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
        };
        let duration = match &wait.wait {
            WaitFor::Seconds(seconds) => Duration::from_secs(*seconds),
            WaitFor::SecondsPath(path) => {
                Duration::from_secs(count_at(path, &effective, ctx, "SecondsPath")?)
            }
            WaitFor::Timestamp(time) => until(*time),
            WaitFor::TimestampPath(path) => {
                let value = path
                    .select(&effective, ctx)
                    .map_err(|e| StateError::runtime(format!("TimestampPath: {e}")))?;
                let time = value.as_str().and_then(parse_timestamp).ok_or_else(|| {
                    StateError::runtime(format!(
                        "TimestampPath: \"{path}\" selects {value}, not a timestamp"
                    ))
                })?;
                until(time)
            }
        };
        self.sleep(duration).await;
        io::output_path(wait.filters.output_path.as_ref(), effective, ctx)
    }

    pub(crate) async fn task(
        &self,
        state: &State,
        task: &TaskState,
        raw: &Value,
        ctx: &Value,
        retry_count: u32,
        scope: &str,
    ) -> Result<Value, StateError> {
        let effective = io::input_path(task.filters.input_path.as_ref(), raw, ctx)?;
        let timeout = match &task.timeout {
            Some(c) => Some(Duration::from_secs(count(
                c,
                &effective,
                ctx,
                "TimeoutSecondsPath",
            )?)),
            None => self.default_task_timeout,
        };
        let heartbeat = match &task.heartbeat {
            Some(c) => Some(Duration::from_secs(count(
                c,
                &effective,
                ctx,
                "HeartbeatSecondsPath",
            )?)),
            None => None,
        };
        let effective = io::template(task.results.parameters.as_ref(), effective, ctx)?;
        let task_ctx = TaskContext {
            execution_id: self.execution_id().to_string(),
            execution_name: self.execution_name().to_string(),
            state_name: state.name.clone(),
            retry_count,
            timeout,
            heartbeat,
            context_object: ctx.clone(),
        };
        let event = |event_type| {
            HistoryEvent::new(event_type, scope)
                .state(&state.name)
                .resource(&task.resource)
        };
        self.record(
            event(HistoryEventType::TaskScheduled)
                .attempt(retry_count)
                .data(&effective),
        );
        let call = self.invoker.invoke(&task.resource, effective, &task_ctx);
        let outcome = match timeout {
            Some(limit) => tokio::time::timeout(scale(limit, self.timeout_scale), call)
                .await
                .ok(),
            None => Some(call.await),
        };
        let result = match outcome {
            Some(Ok(result)) => {
                self.record(event(HistoryEventType::TaskSucceeded).data(&result));
                result
            }
            Some(Err(failure)) => {
                self.record(
                    event(HistoryEventType::TaskFailed).failure(&failure.error, &failure.cause),
                );
                return Err(StateError::new(failure.error, failure.cause));
            }
            None => {
                let cause = format!(
                    "the task ran longer than its timeout of {}s",
                    timeout.unwrap_or_default().as_secs()
                );
                self.record(event(HistoryEventType::TaskTimedOut).failure(names::TIMEOUT, &cause));
                return Err(StateError::new(names::TIMEOUT, cause));
            }
        };
        let result = io::template(task.results.result_selector.as_ref(), result, ctx)?;
        let output = io::result_path(task.results.result_path.as_ref(), raw.clone(), result)?;
        io::output_path(task.filters.output_path.as_ref(), output, ctx)
    }

    pub(crate) async fn map(
        &self,
        state: &State,
        map: &MapState,
        raw: &Value,
        ctx: &Value,
        scope: &str,
    ) -> Result<Value, StateError> {
        let effective = io::input_path(map.filters.input_path.as_ref(), raw, ctx)?;
        let items = match map.items_path.select(&effective, ctx) {
            Ok(Value::Array(items)) => items,
            Ok(other) => {
                return Err(StateError::runtime(format!(
                    "ItemsPath \"{}\" selects {other}, not an array",
                    map.items_path
                )))
            }
            Err(e) => return Err(StateError::runtime(format!("ItemsPath: {e}"))),
        };
        let max = count(&map.max_concurrency, &effective, ctx, "MaxConcurrencyPath")?;
        let total = items.len();
        let limit = match usize::try_from(max) {
            Ok(0) | Err(_) => total.max(1),
            Ok(n) => n.min(total.max(1)),
        };
        let effective = &effective;
        let iterations = items.into_iter().enumerate().map(|(index, item)| {
            let scope = child_scope(scope, &format!("{}[{index}]", state.name));
            async move {
                let mut item_ctx = ctx.clone();
                if let Value::Object(fields) = &mut item_ctx {
                    fields.insert(
                        "Map".to_string(),
                        json!({ "Item": { "Index": index, "Value": item.clone() } }),
                    );
                }
                // ItemSelector sees the Map's effective input as `$` and the
                // item as `$$.Map.Item.Value`.
                let input = match map.results.parameters.as_ref() {
                    Some(selector) => selector.evaluate(effective, &item_ctx)?,
                    None => item,
                };
                self.record(
                    HistoryEvent::new(HistoryEventType::MapIterationStarted, &scope)
                        .state(&state.name)
                        .data(&input),
                );
                let result = self.run_machine(&map.processor, input, scope.clone()).await;
                self.record(match &result {
                    Ok(output) => {
                        HistoryEvent::new(HistoryEventType::MapIterationSucceeded, &scope)
                            .state(&state.name)
                            .data(output)
                    }
                    Err(e) => HistoryEvent::new(HistoryEventType::MapIterationFailed, &scope)
                        .state(&state.name)
                        .failure(&e.error, &e.cause),
                });
                result.map(|output| (index, output))
            }
        });
        let mut results = vec![Value::Null; total];
        let mut running = futures::stream::iter(iterations).buffer_unordered(limit);
        while let Some(outcome) = running.next().await {
            let (index, output) = outcome?;
            if let Some(slot) = results.get_mut(index) {
                *slot = output;
            }
        }
        drop(running);
        let result = io::template(
            map.results.result_selector.as_ref(),
            Value::Array(results),
            ctx,
        )?;
        let output = io::result_path(map.results.result_path.as_ref(), raw.clone(), result)?;
        io::output_path(map.filters.output_path.as_ref(), output, ctx)
    }

    pub(crate) async fn parallel(
        &self,
        state: &State,
        parallel: &ParallelState,
        raw: &Value,
        ctx: &Value,
        scope: &str,
    ) -> Result<Value, StateError> {
        let effective = io::input_path(parallel.filters.input_path.as_ref(), raw, ctx)?;
        let effective = io::template(parallel.results.parameters.as_ref(), effective, ctx)?;
        let branches = parallel.branches.iter().enumerate().map(|(index, branch)| {
            let scope = child_scope(scope, &format!("{}.Branches[{index}]", state.name));
            let input = effective.clone();
            async move {
                self.record(
                    HistoryEvent::new(HistoryEventType::ParallelBranchStarted, &scope)
                        .state(&state.name)
                        .data(&input),
                );
                let result = self.run_machine(branch, input, scope.clone()).await;
                self.record(match &result {
                    Ok(output) => {
                        HistoryEvent::new(HistoryEventType::ParallelBranchSucceeded, &scope)
                            .state(&state.name)
                            .data(output)
                    }
                    Err(e) => HistoryEvent::new(HistoryEventType::ParallelBranchFailed, &scope)
                        .state(&state.name)
                        .failure(&e.error, &e.cause),
                });
                result
            }
        });
        let results = futures::future::try_join_all(branches).await?;
        let result = io::template(
            parallel.results.result_selector.as_ref(),
            Value::Array(results),
            ctx,
        )?;
        let output = io::result_path(parallel.results.result_path.as_ref(), raw.clone(), result)?;
        io::output_path(parallel.filters.output_path.as_ref(), output, ctx)
    }
}
