//! Helpers for the tests that run workflows against the local clusters.

use super::Env;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};

/// Run the substrate's kubectl on `cluster`, with `stdin` if given: whether
/// it succeeded, and its stdout and stderr.
pub fn kubectl(cluster: &str, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new(lifeboat_tests::repo_root().join("tests/substrate/clusters"))
        .arg("kubectl")
        .arg(cluster)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Deletes the test namespace from both clusters, and the cluster-scoped
/// VolumeSnapshotContents of its snapshots (an imported one is Retain, so
/// the namespace's deletion leaves it), even when a test fails.
pub struct Cleanup(pub String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in ["primary", "dr"] {
            let path = format!(
                "jsonpath={{range .items[?(@.spec.volumeSnapshotRef.namespace==\"{}\")]}}{{.metadata.name}} {{end}}",
                self.0
            );
            let (ok, names) = kubectl(c, &["get", "volumesnapshotcontents", "-o", &path], None);
            let names: Vec<&str> = names.split_whitespace().collect();
            if ok && !names.is_empty() {
                let mut args = vec![
                    "delete",
                    "volumesnapshotcontent",
                    "--wait=false",
                    "--ignore-not-found",
                ];
                args.extend(names);
                let _ = kubectl(c, &args, None);
            }
            let _ = kubectl(
                c,
                &[
                    "delete",
                    "namespace",
                    &self.0,
                    "--wait=false",
                    "--ignore-not-found",
                ],
                None,
            );
        }
    }
}

pub fn write_json(path: &Path, v: &Value) {
    std::fs::write(path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

/// The execution (`--json`) of a workflow command, and its exit code.
pub fn run(env: &Env, args: &[&str]) -> (i32, Value) {
    let out = env.cmd(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let execution: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: no JSON on stdout ({e}):\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), execution)
}

/// `lifeboat --json workflow run infra/statemachine/<definition>` with
/// `input`, the fleet file, the DR region's repository (if any) and `extra`
/// arguments: exit code and execution.
pub fn run_definition(
    env: &Env,
    definition: &str,
    input: &Path,
    fleet: &Path,
    replica: Option<&str>,
    extra: &[&str],
) -> (i32, Value) {
    let def = lifeboat_tests::repo_root()
        .join("infra/statemachine")
        .join(definition);
    let mut args = vec![
        "--json",
        "workflow",
        "run",
        def.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--fleet",
        fleet.to_str().unwrap(),
    ];
    if let Some(r) = replica {
        args.extend(["--replica", r]);
    }
    args.extend(extra);
    run(env, &args)
}

/// `lifeboat --json workflow run` of the backup definition with `input`,
/// the fleet file and the DR region's repository: exit code and execution.
pub fn run_backup(env: &Env, input: &Path, fleet: &Path, replica: &str) -> (i32, Value) {
    run_definition(env, "backup.asl.json", input, fleet, Some(replica), &[])
}

/// `lifeboat --json failover` of primary (us-east-1) into dr (us-west-2)
/// with the restore definition: exit code and execution.
pub fn run_failover(env: &Env, fleet: &Path) -> (i32, Value) {
    run_failover_with(env, fleet, &[])
}

/// `lifeboat --json failover` from us-east-1 to us-west-2, restoring
/// primary's latest snapshot into dr, with `extra` arguments (maps,
/// modifiers): exit code and execution.
pub fn run_failover_with(env: &Env, fleet: &Path, extra: &[&str]) -> (i32, Value) {
    let def = lifeboat_tests::repo_root().join("infra/statemachine/restore.asl.json");
    let fleet = fleet.to_str().unwrap();
    let def = def.to_str().unwrap();
    let mut args = vec![
        "--json",
        "failover",
        "--from-region",
        "us-east-1",
        "--to-region",
        "us-west-2",
        "--cluster",
        "dr",
        "--source-cluster",
        "primary",
        "--fleet",
        fleet,
        "--definition",
        def,
    ];
    args.extend_from_slice(extra);
    run(env, &args)
}

/// The Task states an execution entered, in order.
pub fn entered_tasks(execution: &Value) -> Vec<String> {
    execution["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event_type"] == "TaskStateEntered")
        .filter_map(|e| e["state"].as_str().map(str::to_string))
        .collect()
}

/// The result of the last successful invocation of Task `state`.
pub fn task_result(execution: &Value, state: &str) -> Option<Value> {
    execution["history"]
        .as_array()?
        .iter()
        .rev()
        .find(|e| e["event_type"] == "TaskSucceeded" && e["state"] == state)
        .map(|e| e["data"].clone())
}
