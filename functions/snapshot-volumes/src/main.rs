//! `lifeboat-snapshot-volumes`: the snapshot-volumes step (see docs/workflows.md).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lifeboat_lambda::run_step(lifeboat_steps::Step::SnapshotVolumes).await
}
