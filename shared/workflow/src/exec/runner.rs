//! The interpreter loop: from state to state in one machine, with Retry and
//! Catch around Task, Map and Parallel States.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use futures::future::BoxFuture;
use serde_json::{json, Value};

use super::{states, RunOptions, TaskInvoker};
use crate::error::StateError;
use crate::history::{HistoryEvent, HistoryEventType, Recorder};
use crate::io;
use crate::model::{State, StateKind, StateMachine};
use crate::retry::{find_catcher, RetryCounter};

/// Where a state leads: its output and the next state (`None`: the machine ends).
pub(crate) struct Step<'a> {
    pub(crate) output: Value,
    pub(crate) next: Option<&'a str>,
}

pub(crate) struct Runner {
    pub(crate) invoker: Arc<dyn TaskInvoker>,
    recorder: Recorder,
    time_scale: f64,
    pub(crate) timeout_scale: f64,
    pub(crate) default_task_timeout: Option<Duration>,
    execution_id: String,
    execution_name: String,
    /// `$$.Execution` and `$$.StateMachine`.
    execution: Value,
    state_machine: Value,
}

/// `duration * factor`; a factor that is not a positive number gives zero.
pub(crate) fn scale(duration: Duration, factor: f64) -> Duration {
    if factor.is_nan() || factor <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(duration.as_secs_f64() * factor).unwrap_or(Duration::MAX)
}

pub(crate) fn timestamp(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The scope of a nested machine: `parent/label`.
pub(crate) fn child_scope(scope: &str, label: &str) -> String {
    if scope.is_empty() {
        label.to_string()
    } else {
        format!("{scope}/{label}")
    }
}

impl Runner {
    pub(crate) fn new(
        name: &str,
        opts: &RunOptions,
        invoker: Arc<dyn TaskInvoker>,
        input: &Value,
        started_at: DateTime<Utc>,
    ) -> Self {
        let machine = &opts.state_machine_name;
        let machine_id = format!("arn:aws:states:local:000000000000:stateMachine:{machine}");
        let execution_id = format!("arn:aws:states:local:000000000000:execution:{machine}:{name}");
        let timeout_scale = if opts.timeout_scale.is_finite() && opts.timeout_scale > 0.0 {
            opts.timeout_scale
        } else {
            1.0
        };
        Runner {
            invoker,
            recorder: Recorder::new(opts.observer.clone()),
            time_scale: opts.time_scale,
            timeout_scale,
            default_task_timeout: opts.default_task_timeout,
            execution: json!({
                "Id": execution_id,
                "Input": input,
                "Name": name,
                "StartTime": timestamp(&started_at),
            }),
            state_machine: json!({ "Id": machine_id, "Name": machine }),
            execution_id,
            execution_name: name.to_string(),
        }
    }

    pub(crate) fn execution_id(&self) -> &str {
        &self.execution_id
    }

    pub(crate) fn execution_name(&self) -> &str {
        &self.execution_name
    }

    pub(crate) fn record(&self, event: HistoryEvent) {
        tracing::debug!(target: "lifeboat_workflow", "{event}");
        self.recorder.record(event);
    }

    pub(crate) fn take_history(&self) -> Vec<HistoryEvent> {
        self.recorder.take()
    }

    /// Sleeps for a Wait or a retry interval, scaled by `time_scale`.
    pub(crate) async fn sleep(&self, duration: Duration) {
        let scaled = scale(duration, self.time_scale);
        if !scaled.is_zero() {
            tokio::time::sleep(scaled).await;
        }
    }

    /// The Context Object for a state entered at `entered`.
    pub(crate) fn context(&self, state: &str, entered: &DateTime<Utc>, retry_count: u32) -> Value {
        json!({
            "Execution": self.execution,
            "State": {
                "EnteredTime": timestamp(entered),
                "Name": state,
                "RetryCount": retry_count,
            },
            "StateMachine": self.state_machine,
        })
    }

    /// Runs a machine (top level, branch or iteration) to its end.
    pub(crate) fn run_machine<'a>(
        &'a self,
        machine: &'a StateMachine,
        input: Value,
        scope: String,
    ) -> BoxFuture<'a, Result<Value, StateError>> {
        Box::pin(async move {
            let mut state = machine
                .states
                .get(&machine.start_at)
                .ok_or_else(|| StateError::runtime(format!("no state \"{}\"", machine.start_at)))?;
            let mut data = input;
            loop {
                let step = self
                    .run_state(state, data, &scope)
                    .await
                    .map_err(|e| e.in_state(&state.name))?;
                let Some(next) = step.next else {
                    return Ok(step.output);
                };
                state = machine
                    .states
                    .get(next)
                    .ok_or_else(|| StateError::runtime(format!("no state \"{next}\"")))?;
                data = step.output;
            }
        })
    }

    async fn run_state<'a>(
        &'a self,
        state: &'a State,
        raw: Value,
        scope: &str,
    ) -> Result<Step<'a>, StateError> {
        let entered = Utc::now();
        let state_type = state.state_type();
        self.record(
            HistoryEvent::new(HistoryEventType::StateEntered(state_type), scope)
                .state(&state.name)
                .data(&raw),
        );
        let step = match &state.kind {
            StateKind::Task(_) | StateKind::Map(_) | StateKind::Parallel(_) => {
                self.with_recovery(state, raw, &entered, scope).await?
            }
            StateKind::Pass(pass) => {
                let ctx = self.context(&state.name, &entered, 0);
                Step {
                    output: states::pass(pass, raw, &ctx)?,
                    next: pass.transition.next(),
                }
            }
            StateKind::Choice(choice) => {
                let ctx = self.context(&state.name, &entered, 0);
                states::choice(choice, raw, &ctx)?
            }
            StateKind::Wait(wait) => {
                let ctx = self.context(&state.name, &entered, 0);
                Step {
                    output: self.wait(wait, raw, &ctx).await?,
                    next: wait.transition.next(),
                }
            }
            StateKind::Succeed(succeed) => {
                let ctx = self.context(&state.name, &entered, 0);
                let effective = io::input_path(succeed.filters.input_path.as_ref(), &raw, &ctx)?;
                Step {
                    output: io::output_path(succeed.filters.output_path.as_ref(), effective, &ctx)?,
                    next: None,
                }
            }
            StateKind::Fail(fail) => {
                let ctx = self.context(&state.name, &entered, 0);
                return Err(states::fail(fail, &raw, &ctx));
            }
        };
        let mut exited = HistoryEvent::new(HistoryEventType::StateExited(state_type), scope)
            .state(&state.name)
            .data(&step.output);
        if let Some(next) = step.next {
            exited = exited.detail(format!("next {next}"));
        }
        self.record(exited);
        Ok(step)
    }

    /// One visit to a Task, Map or Parallel State: attempts, Retry, Catch.
    async fn with_recovery<'a>(
        &'a self,
        state: &'a State,
        raw: Value,
        entered: &DateTime<Utc>,
        scope: &str,
    ) -> Result<Step<'a>, StateError> {
        let (retry, catch, transition) = match &state.kind {
            StateKind::Task(t) => (&t.retry, &t.catch, &t.transition),
            StateKind::Map(m) => (&m.retry, &m.catch, &m.transition),
            StateKind::Parallel(p) => (&p.retry, &p.catch, &p.transition),
            _ => return Err(StateError::runtime("not a Task, Map or Parallel State")),
        };
        let mut counter = RetryCounter::new(retry);
        loop {
            let ctx = self.context(&state.name, entered, counter.total());
            let attempt = match &state.kind {
                StateKind::Task(task) => {
                    self.task(state, task, &raw, &ctx, counter.total(), scope)
                        .await
                }
                StateKind::Map(map) => self.map(state, map, &raw, &ctx, scope).await,
                StateKind::Parallel(parallel) => {
                    self.parallel(state, parallel, &raw, &ctx, scope).await
                }
                _ => Err(StateError::runtime("not a Task, Map or Parallel State")),
            };
            let error = match attempt {
                Ok(output) => {
                    return Ok(Step {
                        output,
                        next: transition.next(),
                    })
                }
                Err(error) if error.is_runtime() => return Err(error),
                Err(error) => error,
            };
            let unit = crate::random::unit().unwrap_or(1.0);
            if let Some(plan) = counter.next(retry, &error.error, unit) {
                self.record(
                    HistoryEvent::new(HistoryEventType::RetryScheduled, scope)
                        .state(&state.name)
                        .failure(&error.error, &error.cause)
                        .attempt(plan.attempt)
                        .detail(format!(
                            "Retry[{}] in {:.3}s",
                            plan.retrier,
                            plan.delay.as_secs_f64()
                        )),
                );
                self.sleep(plan.delay).await;
                continue;
            }
            let Some(catcher) = find_catcher(catch, &error.error) else {
                return Err(error);
            };
            self.record(
                HistoryEvent::new(HistoryEventType::ErrorCaught, scope)
                    .state(&state.name)
                    .failure(&error.error, &error.cause)
                    .detail(format!("next {}", catcher.next)),
            );
            let output = io::result_path(catcher.result_path.as_ref(), raw, error.output())?;
            return Ok(Step {
                output,
                next: Some(&catcher.next),
            });
        }
    }
}
