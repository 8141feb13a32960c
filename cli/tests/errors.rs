#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Bad input gets one clear line and a non-zero exit.

mod common;
use common::Env;

fn one_line(err: &str) -> &str {
    let lines: Vec<_> = err
        .lines()
        .filter(|l| l.starts_with("lifeboat: error:"))
        .collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {err}");
    lines[0]
}

#[test]
fn wrong_passphrase_missing_repo_and_missing_password() {
    let env = Env::new();
    let err = env.fails(&["snapshots"]);
    assert!(
        one_line(&err).contains("no Lifeboat repository at"),
        "{err}"
    );
    env.ok(&["repo", "init"]);
    let err = env.fails(&["repo", "init"]);
    assert!(one_line(&err).contains("already exists"), "{err}");
    let err = env
        .cmd(&["snapshots"])
        .env("LIFEBOAT_PASSWORD", "wrong")
        .output()
        .unwrap();
    assert!(!err.status.success());
    let text = String::from_utf8_lossy(&err.stderr);
    assert!(one_line(&text).contains("wrong passphrase"), "{text}");
    let out = env
        .cmd(&["snapshots"])
        .env_remove("LIFEBOAT_PASSWORD")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("LIFEBOAT_PASSWORD"));
    let out = env
        .cmd(&["snapshots"])
        .env_remove("LIFEBOAT_REPO")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("no repository given"));
}

#[test]
fn object_lock_on_local_disk_is_refused() {
    let env = Env::new();
    let err = env.fails(&[
        "repo",
        "init",
        "--lock-mode",
        "compliance",
        "--lock-days",
        "7",
    ]);
    assert!(one_line(&err).contains("Object Lock"), "{err}");
}

#[test]
fn newer_format_version_is_refused() {
    let env = Env::new();
    env.ok(&["repo", "init"]);
    let cfg = std::path::Path::new(&env.repo).join("config");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    v["version"] = 99.into();
    std::fs::write(&cfg, serde_json::to_vec(&v).unwrap()).unwrap();
    let err = env.fails(&["snapshots"]);
    assert!(one_line(&err).contains("version 99 is newer"), "{err}");
}

#[test]
fn key_file_and_added_passphrase_open_the_repository() {
    let env = Env::new();
    env.ok(&["repo", "init"]);
    let kf = env.path("key");
    std::fs::write(&kf, [7u8; 64]).unwrap();
    env.ok(&["repo", "add-key", "--new-key-file", kf.to_str().unwrap()]);
    let out = env
        .cmd(&["snapshots", "--key-file", kf.to_str().unwrap()])
        .env_remove("LIFEBOAT_PASSWORD")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pf = env.path("pw");
    std::fs::write(&pf, "new passphrase\n").unwrap();
    env.ok(&[
        "repo",
        "add-key",
        "--new-password-file",
        pf.to_str().unwrap(),
    ]);
    let out = env
        .cmd(&["snapshots", "--password-file", pf.to_str().unwrap()])
        .env_remove("LIFEBOAT_PASSWORD")
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn unreadable_source_path_is_named() {
    let env = Env::new();
    env.ok(&["repo", "init"]);
    let err = env.fails(&["volume", "backup", "/nonexistent/data"]);
    assert!(one_line(&err).contains("/nonexistent/data"), "{err}");
}

/// Resource modifiers that do not check are refused before the repository
/// or a cluster is opened: one line naming the file, the rule and the field.
#[test]
fn bad_modifiers_files_are_refused_before_anything_is_opened() {
    let env = Env::new();
    let restore_with = |rules: &str| {
        env.fails(&[
            "restore",
            "latest",
            "--kubeconfig",
            "/nonexistent/kubeconfig",
            "--modifiers",
            rules,
        ])
    };
    // No repository and no cluster: the rules are checked first.
    for (text, want) in [
        (
            "version: 1\nrules:\n  - name: hosts\n    json_patch: [{op: replace, path: spec, value: 1}]\n",
            "rules[0] (\"hosts\"): json_patch[0]",
        ),
        ("version: 1\nrules:\n  - name: a\n    mach: {kind: Pod}\n", "unknown field `mach`"),
        ("version: 3\n", "version 3 is not one this Lifeboat understands"),
        ("rules: [\n", "not a resource modifiers document"),
    ] {
        let path = env.path("rules.yaml");
        std::fs::write(&path, text).unwrap();
        let err = restore_with(path.to_str().unwrap());
        let line = one_line(&err);
        assert!(line.contains("--modifiers") && line.contains(want), "{err}");
    }
    let err = restore_with("/nonexistent/rules.yaml");
    assert!(one_line(&err).contains("cannot read it"), "{err}");
}
