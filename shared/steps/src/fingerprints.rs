//! Watching the repository's `config` and key set. Every snapshot and every
//! verification records their hashes ([`RepoFingerprint`]); when a new one
//! differs from the one before it in the same repository, the `config` or the
//! keys were changed in between, which only `repo init`, the key commands or
//! an attacker do, so an alert names what changed. A legitimate key rotation
//! raises it once.

use crate::env::StepEnv;
use chrono::{DateTime, Utc};
use lifeboat_ops::verify::{verifications, Verification};
use lifeboat_repo::{Id, RepoFingerprint, Repository, Snapshot};

/// The alert text when `now` differs from `before`, else `None`.
pub fn describe_change(
    what: &str,
    now: &RepoFingerprint,
    before: Option<(&str, &RepoFingerprint)>,
    location: &str,
) -> Option<String> {
    let (earlier, before) = before?;
    let changed = now.changes_since(before);
    if changed.is_empty() {
        return None;
    }
    Some(format!(
        "repository {location}: {} changed between {earlier} and {what} \
         (config {} -> {}, keys {} -> {}); if nobody ran repo init or a key command, \
         the repository may have been tampered with",
        changed.join(" and "),
        before.config.short(),
        now.config.short(),
        before.keys.short(),
        now.keys.short()
    ))
}

/// The newest fingerprint recorded before `time`, other than `skip`'s.
fn newest_before<'a, I>(items: I, time: DateTime<Utc>) -> Option<(String, &'a RepoFingerprint)>
where
    I: Iterator<Item = (String, DateTime<Utc>, &'a RepoFingerprint)>,
{
    items
        .filter(|(_, t, _)| *t <= time)
        .max_by_key(|(_, t, _)| *t)
        .map(|(name, _, fp)| (name, fp))
}

async fn raise(env: &dyn StepEnv, message: String) {
    tracing::warn!(%message, "repository config or keys changed");
    if let Err(e) = env
        .alert("Lifeboat: repository config or keys changed", &message)
        .await
    {
        tracing::warn!(error = %e, "could not send the fingerprint alert");
    }
}

/// After a snapshot was committed: compare with the snapshot before it.
pub async fn after_snapshot(env: &dyn StepEnv, repo: &Repository, id: Id, snapshot: &Snapshot) {
    let Some(now) = &snapshot.repository else {
        return;
    };
    let all = match repo.snapshots().await {
        Ok(all) => all,
        Err(e) => {
            tracing::warn!(error = %e, "snapshots not listed; fingerprint not compared");
            return;
        }
    };
    let earlier = all
        .iter()
        .filter(|(other, _)| *other != id)
        .filter_map(|(other, s)| {
            Some((
                format!("snapshot {}", other.short()),
                s.time,
                s.repository.as_ref()?,
            ))
        });
    let before = newest_before(earlier, snapshot.time);
    let what = format!("snapshot {}", id.short());
    let location = repo.store().location();
    if let Some(m) = describe_change(
        &what,
        now,
        before.as_ref().map(|(n, f)| (n.as_str(), *f)),
        &location,
    ) {
        raise(env, m).await;
    }
}

/// After a verification was recorded: compare with the verification before it.
pub async fn after_verification(env: &dyn StepEnv, repo: &Repository, v: &Verification) {
    let Some(now) = &v.fingerprint else {
        return;
    };
    let all = match verifications(repo).await {
        Ok(all) => all,
        Err(e) => {
            tracing::warn!(error = %e, "verifications not listed; fingerprint not compared");
            return;
        }
    };
    let earlier = all.iter().filter(|o| o.time < v.time).filter_map(|o| {
        Some((
            format!(
                "the verification of {} at {}",
                o.snapshot.short(),
                o.time.to_rfc3339()
            ),
            o.time,
            o.fingerprint.as_ref()?,
        ))
    });
    let before = newest_before(earlier, v.time);
    let what = format!("the verification of {}", v.snapshot.short());
    if let Some(m) = describe_change(
        &what,
        now,
        before.as_ref().map(|(n, f)| (n.as_str(), *f)),
        &v.repository,
    ) {
        raise(env, m).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn fp(config: &[u8], keys: &[u8]) -> RepoFingerprint {
        RepoFingerprint {
            config: Id::of_file(config),
            keys: Id::of_file(keys),
        }
    }

    #[test]
    fn a_changed_config_between_consecutive_records_is_described() {
        let before = fp(b"c1", b"k1");
        assert_eq!(
            describe_change("s2", &before, Some(("s1", &before)), "r"),
            None
        );
        assert_eq!(describe_change("s2", &before, None, "r"), None);
        let m =
            describe_change("s2", &fp(b"c2", b"k1"), Some(("s1", &before)), "s3://b/r").unwrap();
        assert!(m.contains("config changed between s1 and s2"), "{m}");
        assert!(m.contains("s3://b/r"), "{m}");
        let m = describe_change("s2", &fp(b"c2", b"k2"), Some(("s1", &before)), "r").unwrap();
        assert!(m.contains("config and keys changed"), "{m}");
    }

    #[test]
    fn the_newest_earlier_record_is_the_one_compared() {
        let (a, b, c) = (fp(b"a", b"k"), fp(b"b", b"k"), fp(b"c", b"k"));
        let t = |h: u32| DateTime::from_timestamp(i64::from(h) * 3600, 0).unwrap();
        let items = vec![
            ("one".to_string(), t(1), &a),
            ("three".to_string(), t(3), &c),
            ("two".to_string(), t(2), &b),
        ];
        let (name, found) = newest_before(items.clone().into_iter(), t(2)).unwrap();
        assert_eq!((name.as_str(), found), ("two", &b));
        assert!(newest_before(items.into_iter(), t(0)).is_none());
    }

    fn verification(repo_fp: RepoFingerprint, hours: i64) -> Verification {
        serde_json::from_value(serde_json::json!({
            "kind": "verification", "snapshot": Id::of_file(b"snap"), "source": "prod",
            "time": DateTime::from_timestamp(1_800_000_000 + hours * 3600, 0).unwrap(),
            "repository": "memory", "ok": true, "problem_count": 0, "problems": [],
            "packs_read": 0, "bytes_read": 0, "objects_lock_checked": 0,
            "objects_decoded": 0, "duration_secs": 0.0, "fingerprint": repo_fp
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn a_config_replaced_between_two_verifications_raises_an_alert() {
        let env = crate::test_env::env_with(None, None).await;
        let first = verification(env.repo.fingerprint().await.unwrap(), 0);
        env.repo
            .save_file(lifeboat_repo::FileKind::Report, &first)
            .await
            .unwrap();
        // Unchanged: no alert.
        let same = verification(env.repo.fingerprint().await.unwrap(), 1);
        after_verification(&env, &env.repo, &same).await;
        assert!(env.alerts.lock().unwrap().is_empty());
        // The config object replaced behind the repository's back.
        env.store.force_retention("config", None);
        env.store.tamper(
            "config",
            bytes::Bytes::from_static(b"{\"object_lock\":null}"),
        );
        let after = verification(env.repo.fingerprint().await.unwrap(), 2);
        after_verification(&env, &env.repo, &after).await;
        let alerts = env.alerts.lock().unwrap().clone();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert!(alerts[0].contains("config changed"), "{alerts:?}");
    }
}
