//! Harness for Lifeboat's cross-crate tests (`tests/e2e/`).
//!
//! The tests run against real parts started on loopback by the scripts in
//! `tests/substrate/`: `tests/substrate/aws up` starts moto and writes
//! `target/substrate/aws.env`, which [`aws_env`] reads; `tests/substrate/gcs up`
//! starts fake-gcs-server and writes `target/substrate/gcs.env` ([`gcs_env`]);
//! `tests/substrate/azure up` starts Azurite and writes `target/substrate/azure.env`
//! ([`azure_env`]). The harness never starts
//! services itself, so a test run does not leave servers behind.

pub mod alert_inbox;
pub mod azure_admin;
pub mod fault_proxy;
pub mod gcs_admin;
pub mod s3_admin;

use std::fs;
use std::path::{Path, PathBuf};

/// The root of the Lifeboat repository (the workspace): the nearest
/// directory at or above the package under test that holds `tests/substrate`.
///
/// Read at run time: `cargo test` sets `CARGO_MANIFEST_DIR` to the package
/// under test (`cli`, `shared/aws`, `functions/trigger`...). The compile-time
/// value could name another checkout when several share one `CARGO_TARGET_DIR`.
pub fn repo_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
        .ancestors()
        .find(|d| d.join("tests").join("substrate").is_dir())
        .map_or_else(|| manifest_dir.clone(), Path::to_path_buf)
}

/// Where the substrate scripts keep their pid, log and env files.
pub fn substrate_dir() -> PathBuf {
    repo_root().join("target").join("substrate")
}

/// The environment that points the AWS SDKs at the running moto server
/// (`AWS_ENDPOINT_URL`, region, test credentials, path-style addressing).
///
/// # Panics
/// When moto is not running, with a message saying how to start it: a test that
/// needs it cannot do anything useful without it.
#[allow(clippy::panic)]
pub fn aws_env() -> Vec<(String, String)> {
    let path = substrate_dir().join("aws.env");
    match fs::read_to_string(&path) {
        Ok(text) => parse_env(&text),
        Err(e) => panic!(
            "moto is not running: start it with tests/substrate/aws up (the README test command does) \
             [{}: {e}]",
            path.display()
        ),
    }
}

/// The environment that points the Azure Blob store at the running Azurite
/// (`AZURE_STORAGE_CONNECTION_STRING` with the emulator's well-known
/// development account, `AZURE_STORAGE_BLOB_ENDPOINT`).
///
/// # Panics
/// When Azurite is not running, with a message saying how to start it.
#[allow(clippy::panic)]
pub fn azure_env() -> Vec<(String, String)> {
    let path = substrate_dir().join("azure.env");
    match fs::read_to_string(&path) {
        Ok(text) => parse_env(&text),
        Err(e) => panic!(
            "Azurite is not running: start it with tests/substrate/azure up \
             (and stop it with tests/substrate/azure down) [{}: {e}]",
            path.display()
        ),
    }
}

/// The environment that points a Google Cloud Storage client at the running
/// fake-gcs-server (`STORAGE_EMULATOR_HOST`).
///
/// # Panics
/// When fake-gcs-server is not running, with a message saying how to start it.
#[allow(clippy::panic)]
pub fn gcs_env() -> Vec<(String, String)> {
    let path = substrate_dir().join("gcs.env");
    match fs::read_to_string(&path) {
        Ok(text) => parse_env(&text),
        Err(e) => panic!(
            "fake-gcs-server is not running: start it with tests/substrate/gcs up \
             (and stop it with tests/substrate/gcs down) [{}: {e}]",
            path.display()
        ),
    }
}

/// The AWS SDK configuration for the running moto server: its endpoint,
/// region and test credentials from [`aws_env`].
pub(crate) async fn moto_sdk() -> aws_config::SdkConfig {
    let env = aws_env();
    let value = |key: &str| {
        env.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let creds = aws_credential_types::Credentials::new(
        value("AWS_ACCESS_KEY_ID"),
        value("AWS_SECRET_ACCESS_KEY"),
        None,
        None,
        "lifeboat-tests",
    );
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(value("AWS_ENDPOINT_URL"))
        .region(aws_config::Region::new(value("AWS_REGION")))
        .credentials_provider(creds)
        .load()
        .await
}

/// Run `f` to completion on a runtime of its own (the harness's blocking calls).
pub(crate) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    #[allow(clippy::expect_used)]
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a test runtime")
        .block_on(f)
}

/// Parse shell `KEY=value` (or `export KEY=value`) lines; blank lines and `#`
/// comments are skipped and one level of surrounding quotes is removed.
pub fn parse_env(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| line.strip_prefix("export ").unwrap_or(line))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| {
            let value = value.trim();
            let unquoted = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value);
            (key.trim().to_string(), unquoted.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_shell_env_lines() {
        let env = parse_env("# moto\nAWS_REGION=us-east-1\n\nA='x y'\nB=\"z\"\n");
        let expected = [("AWS_REGION", "us-east-1"), ("A", "x y"), ("B", "z")];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(env, expected);
    }

    #[test]
    fn finds_the_workspace_root() {
        assert!(repo_root().join("Cargo.toml").is_file());
        assert!(repo_root()
            .join("tests")
            .join("substrate")
            .join("aws")
            .is_file());
    }
}
