//! `lifeboat-verify-replica`: the verify-replica step (see docs/workflows.md).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lifeboat_lambda::run_step(lifeboat_steps::Step::VerifyReplica).await
}
