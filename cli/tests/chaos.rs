#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Backup, prune and replicate running at once while processes are killed
//! (SIGKILL) or suspended (SIGSTOP, then SIGCONT) at random points: after
//! every round both repositories check clean with `--read-data` and every
//! snapshot either of them lists restores byte for byte to the data it was
//! taken from.
//!
//! The schedule is seeded: `CHAOS_SEED` (default 2026) and `CHAOS_ROUNDS`
//! (default 50) reproduce a failing run exactly, up to the machine's timing.

mod common;
use common::{assert_identical, Env};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lifeboat_ops::sample_data::Rng;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What happens to one process of a round.
#[derive(Debug, Clone, Copy)]
enum Fate {
    /// Runs to its end.
    Finish,
    /// SIGKILL after the delay.
    Kill(Duration),
    /// SIGSTOP after the delay, SIGCONT after the pause, then runs to its end.
    Suspend(Duration, Duration),
}

impl Fate {
    fn draw(rng: &mut Rng, span_ms: u64) -> Fate {
        let at = Duration::from_millis(rng.below(span_ms.max(1)));
        match rng.below(3) {
            0 => Fate::Finish,
            1 => Fate::Kill(at),
            _ => Fate::Suspend(at, Duration::from_millis(50 + rng.below(450))),
        }
    }
}

fn signal(child: &Child, sig: &str) {
    // A process that has already exited is not an error here.
    let _ = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Run the round's processes with their fates; returns whether any was killed.
fn run_round(procs: Vec<(Child, Fate)>) -> bool {
    let started = Instant::now();
    let mut killed = false;
    let mut events: Vec<(Duration, usize, &str)> = Vec::new();
    for (i, (_, fate)) in procs.iter().enumerate() {
        match *fate {
            Fate::Finish => {}
            Fate::Kill(at) => events.push((at, i, "-KILL")),
            Fate::Suspend(at, pause) => {
                events.push((at, i, "-STOP"));
                events.push((at + pause, i, "-CONT"));
            }
        }
    }
    events.sort();
    for (at, i, sig) in events {
        if let Some(wait) = at.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
        signal(&procs[i].0, sig);
        killed |= sig == "-KILL";
    }
    for (mut child, _) in procs {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "a process of the round did not end within 5 min (hung?)"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    killed
}

fn check_clean(env: &Env, repo: &str, round: u64, seed: u64) {
    let out = env
        .cmd(&["repo", "check", "--read-data", "--json"])
        .env("LIFEBOAT_REPO", repo)
        .output()
        .unwrap();
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    assert!(
        out.status.success(),
        "seed {seed} round {round}: check of {repo} failed: {report} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for p in report["problems"].as_array().unwrap() {
        assert_eq!(
            p["severity"], "warning",
            "seed {seed} round {round}: {repo}: {p}"
        );
    }
}

/// Restore every snapshot of `repo` not restored before and compare it with
/// the copy of the data its round backed up.
fn restore_new_snapshots(
    env: &Env,
    repo: &str,
    copies: &BTreeMap<u64, PathBuf>,
    done: &mut BTreeSet<String>,
    round: u64,
    seed: u64,
) {
    let out = env
        .cmd(&["snapshots", "--json"])
        .env("LIFEBOAT_REPO", repo)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "seed {seed} round {round}: snapshots of {repo}"
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for s in list.as_array().unwrap() {
        let id = s["id"].as_str().unwrap().to_string();
        if done.contains(&id) {
            continue;
        }
        let tagged = s["snapshot"]["tags"]["round"]
            .as_str()
            .and_then(|r| r.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("snapshot {id} has no round tag: {s}"));
        let target = env.path(&format!("restore-{}", &id[..12]));
        let out = env
            .cmd(&["volume", "restore", &id, target.to_str().unwrap()])
            .env("LIFEBOAT_REPO", repo)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "seed {seed} round {round}: restore of {id} (round {tagged}) from {repo}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_identical(&copies[&tagged], &target.join("data"));
        std::fs::remove_dir_all(&target).unwrap();
        done.insert(id);
    }
}

/// Copy `from` into the new directory `to` (as `to/<name of from>`).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn backup_prune_and_replicate_survive_kills_and_suspensions() {
    let seed = env_u64("CHAOS_SEED", 2026);
    let rounds = env_u64("CHAOS_ROUNDS", 50);
    let mut env = Env::new();
    // A killed prune leaves its exclusive lock: backups give up at once
    // instead of waiting the default ten minutes for it.
    env.extra_env
        .push(("LIFEBOAT_LOCK_WAIT".into(), "0".into()));
    env.ok(&["repo", "init", "--pack-size-mib", "1"]);
    let replica = env.path("replica").display().to_string();
    std::fs::create_dir_all(&replica).unwrap();
    let data = env.path("data");
    lifeboat_ops::sample_data::generate(&data, 6 << 20, seed).unwrap();

    // Signal times spread over what one backup of this data takes here.
    let timing = Instant::now();
    env.ok(&[
        "volume",
        "backup",
        data.to_str().unwrap(),
        "--tag",
        "round=0",
    ]);
    let span_ms = u64::try_from(timing.elapsed().as_millis()).unwrap_or(1000) + 200;
    let mut copies = BTreeMap::new();
    let copy0 = env.path("round-0");
    copy_tree(&data, &copy0);
    copies.insert(0, copy0.join("data"));

    let mut rng = Rng::new(seed);
    let mut restored_primary = BTreeSet::new();
    let mut restored_replica = BTreeSet::new();
    let (mut kills, mut stops) = (0, 0);
    for round in 1..=rounds {
        lifeboat_ops::sample_data::mutate(&data, 0.05, seed + round).unwrap();
        let copy = env.path(&format!("round-{round}"));
        copy_tree(&data, &copy);
        copies.insert(round, copy.join("data"));
        let tag = format!("round={round}");
        let commands: [Vec<&str>; 3] = [
            vec!["volume", "backup", data.to_str().unwrap(), "--tag", &tag],
            vec!["repo", "prune", "--keep-last", "3", "--grace", "0"],
            vec!["repo", "replicate", "--to", &replica],
        ];
        let mut procs = Vec::new();
        for args in commands {
            let fate = Fate::draw(&mut rng, span_ms);
            match fate {
                Fate::Kill(_) => kills += 1,
                Fate::Suspend(..) => stops += 1,
                Fate::Finish => {}
            }
            let child = env
                .cmd(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            procs.push((child, fate));
        }
        if run_round(procs) {
            // Every process of the round has ended: the locks left are the
            // killed ones'.
            env.ok(&["repo", "unlock", "--all"]);
            if Path::new(&replica).join("config").exists() {
                let out = env
                    .cmd(&["repo", "unlock", "--all"])
                    .env("LIFEBOAT_REPO", &replica)
                    .output()
                    .unwrap();
                assert!(out.status.success());
            }
        }
        check_clean(&env, &env.repo, round, seed);
        restore_new_snapshots(
            &env,
            &env.repo.clone(),
            &copies,
            &mut restored_primary,
            round,
            seed,
        );
        if Path::new(&replica).join("config").exists() {
            check_clean(&env, &replica, round, seed);
            restore_new_snapshots(&env, &replica, &copies, &mut restored_replica, round, seed);
        }
    }
    eprintln!(
        "seed {seed}: {rounds} rounds, {kills} kills, {stops} suspensions, {} snapshots restored from the primary, {} from the replica",
        restored_primary.len(),
        restored_replica.len()
    );
    assert!(
        kills >= rounds / 2 && stops >= rounds / 2,
        "the schedule hardly killed or suspended anything"
    );
}
