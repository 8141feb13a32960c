//! Helpers for the CLI tests: run the real `lifeboat` binary against a
//! repository in a temporary directory.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod stores;
pub mod workflow;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const PASSWORD: &str = "correct horse battery staple";

pub struct Env {
    pub dir: tempfile::TempDir,
    pub repo: String,
    pub extra_env: Vec<(String, String)>,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo").display().to_string();
        Env {
            dir,
            repo,
            extra_env: Vec::new(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_lifeboat"));
        // The data sets hold a setuid file and these tests compare metadata
        // exactly: keep set-id bits (cleared by default; the default is
        // tested in lifeboat-ops' restore target tests).
        let keep_setuid =
            args.starts_with(&["volume", "restore"]) && !args.contains(&"--restore-setuid");
        c.args(args)
            .env("LIFEBOAT_REPO", &self.repo)
            .env("LIFEBOAT_PASSWORD", PASSWORD)
            // Mover Jobs run on the test clusters' kubelet stand-in.
            .env("LIFEBOAT_MOVER_IMAGE", "lifeboat.test/lifeboat:dev")
            // Remote repositories' file cache stays in the test's directory.
            .env("LIFEBOAT_CACHE_DIR", self.dir.path().join("cache"))
            .env_remove("LIFEBOAT_PASSWORD_FILE")
            .env_remove("LIFEBOAT_KEY_FILE");
        if keep_setuid {
            c.arg("--restore-setuid");
        }
        for (k, v) in &self.extra_env {
            c.env(k, v);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Run and require success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "lifeboat {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Run and require failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "lifeboat {args:?} should have failed:\nstdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    /// `volume backup` returning the snapshot id.
    pub fn backup(&self, path: &Path) -> String {
        let p = path.display().to_string();
        self.json(&["volume", "backup", &p])["snapshot"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

/// A small data set with every kind of node the format supports.
pub fn make_data(root: &Path, size_mib: u64) {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{FileExt, PermissionsExt};
    lifeboat_ops::sample_data::generate(root, size_mib << 20, 7).unwrap();
    let odd = root.join("odd");
    std::fs::create_dir_all(&odd).unwrap();
    std::fs::write(odd.join("empty"), b"").unwrap();
    std::fs::write(odd.join("secret.key"), b"k").unwrap();
    std::fs::set_permissions(
        odd.join("secret.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::write(odd.join("run.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(odd.join("run.sh"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9-latin1.txt");
    std::fs::write(odd.join(name), b"non-UTF-8 name").unwrap();
    std::os::unix::fs::symlink("../config/app.yaml", odd.join("link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", odd.join("dangling")).unwrap();
    rustix_mkfifo(&odd.join("pipe"));
    // A sparse file whose name does not look like an image, with data at both ends.
    let f = std::fs::File::create(odd.join("sparse.dat")).unwrap();
    f.set_len(32 << 20).unwrap();
    f.write_at(b"head", 0).unwrap();
    f.write_at(b"tail", (32 << 20) - 4).unwrap();
    std::fs::create_dir_all(odd.join("empty-dir")).unwrap();
    std::fs::set_permissions(
        odd.join("empty-dir"),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
}

fn rustix_mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

pub fn assert_identical(a: &Path, b: &Path) {
    let diffs = lifeboat_ops::compare::compare_trees(a, b).unwrap();
    assert!(diffs.is_empty(), "restore differs from source: {diffs:#?}");
}

/// Whether the caller asked to leave the clusters out (`SKIP_CLUSTERS=1 tests/run`).
pub fn skip_clusters() -> bool {
    let skip = std::env::var_os("LIFEBOAT_SKIP_CLUSTERS").is_some_and(|v| v == "1");
    if skip {
        eprintln!("LIFEBOAT_SKIP_CLUSTERS=1: cluster test skipped on request");
    }
    skip
}

/// The kubeconfig of a local test cluster (`primary` or `dr`).
pub fn kubeconfig(cluster: &str) -> PathBuf {
    let p = lifeboat_tests::substrate_dir().join(format!("{cluster}.kubeconfig"));
    assert!(
        p.exists(),
        "{} is missing: the test clusters are not up (tests/run starts them; by hand: tests/substrate/clusters up)",
        p.display()
    );
    p
}

/// `tests/substrate/clusters`' environment file (`clusters.env`): kubeconfigs,
/// CSI directories, the OIDC issuers, ...
pub fn clusters_env() -> HashMap<String, String> {
    let path = lifeboat_tests::substrate_dir().join("clusters.env");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the clusters are not running: start them with tests/substrate/clusters up [{}: {e}]",
            path.display()
        )
    });
    lifeboat_tests::parse_env(&text).into_iter().collect()
}

/// Run a script of the cluster-app fixture (`apply`, `delete`) on a test
/// cluster; its output is the failure message.
pub fn fixture(script: &str, cluster: &str) {
    let path = lifeboat_tests::repo_root()
        .join("tests/fixtures/cluster-app")
        .join(script);
    let out = Command::new(&path)
        .arg(kubeconfig(cluster))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script} {cluster} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
