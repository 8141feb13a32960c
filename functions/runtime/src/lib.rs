//! What every Lifeboat Lambda function shares. A function is one line over
//! [`run_step`]: the event is the execution state, the handler is the step's
//! (in `lifeboat-steps`), and a failure reaches Step Functions with the step's
//! error name as `errorType`, which the definitions' Retry and Catch match.

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use lifeboat_steps::{Environment, Step, StepEnv, StepError};
use serde_json::Value;
use std::sync::Arc;

/// A step's failure as Lambda reports it.
#[derive(Debug)]
pub struct Failure(pub StepError);

impl From<Failure> for Diagnostic {
    fn from(f: Failure) -> Diagnostic {
        Diagnostic {
            error_type: f.0.kind.name().to_string(),
            error_message: f.0.message,
        }
    }
}

/// Set up a function's process: the allocator's tuning (see
/// [`lifeboat_ops::memory`]), then JSON logs.
pub fn init_process() {
    lifeboat_ops::memory::tune_malloc();
    init_tracing();
}

/// JSON logs to CloudWatch, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_target(false)
        .without_time()
        .init();
}

/// Serve `step` until the Lambda runtime stops the process.
pub async fn run_step(step: Step) -> Result<(), lambda_runtime::Error> {
    init_process();
    let env: Arc<dyn StepEnv> = Arc::new(Environment::from_env());
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let env = env.clone();
        async move {
            let result = step.run(env.as_ref(), event.payload).await;
            if let Err(e) = &result {
                tracing::error!(step = step.name(), error = %e, "step failed");
            }
            result.map_err(Failure)
        }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_steps::ErrorKind;

    #[test]
    fn the_error_type_is_the_step_error_name() {
        let d: Diagnostic = Failure(StepError::new(
            ErrorKind::RepositoryLocked,
            "prune on host-1",
        ))
        .into();
        assert_eq!(d.error_type, "Lifeboat.RepositoryLocked");
        assert_eq!(d.error_message, "prune on host-1");
    }
}
