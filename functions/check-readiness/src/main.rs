//! `lifeboat-check-readiness`: the check-readiness step (see docs/workflows.md).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lifeboat_lambda::run_step(lifeboat_steps::Step::CheckReadiness).await
}
