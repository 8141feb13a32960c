//! The Object Lock policy pinned outside the bucket. A repository's `config`
//! says which lock policy its writes get; whoever can replace `config` could
//! turn locking off or shorten it. So the deployment pins the policy it
//! expects (`LIFEBOAT_EXPECTED_LOCK=compliance:30`, or the fleet file's
//! `object_lock`), and apply-lock and verify fail, with an alert, when the
//! repository's `config` says less.

use crate::env::StepEnv;
use crate::StepError;
use lifeboat_repo::{LockPolicy, Repository};
use lifeboat_store::LockMode;

/// Parse `mode:days` (`compliance:30`, `GOVERNANCE:7`).
pub fn parse_expected(text: &str) -> Result<LockPolicy, StepError> {
    let bad = |why: &str| {
        StepError::invalid(format!(
            "LIFEBOAT_EXPECTED_LOCK {text:?}: {why} (expected mode:days, e.g. compliance:30)"
        ))
    };
    let (mode, days) = text.trim().split_once(':').ok_or_else(|| bad("no `:`"))?;
    let mode: LockMode = mode.parse().map_err(|e: String| bad(&e))?;
    let days: u32 = days
        .parse()
        .map_err(|_| bad("days is not a whole number"))?;
    if days == 0 {
        return Err(bad("days must be at least 1"));
    }
    Ok(LockPolicy { mode, days })
}

/// Why `actual` (the repository's config) is weaker than `expected`, if it is.
pub fn weaker(actual: Option<LockPolicy>, expected: LockPolicy) -> Option<String> {
    let Some(actual) = actual else {
        return Some(format!(
            "has no Object Lock policy, but {} for {} days is expected",
            expected.mode, expected.days
        ));
    };
    if expected.mode == LockMode::Compliance && actual.mode != LockMode::Compliance {
        return Some(format!(
            "locks in {} mode, but compliance is expected",
            actual.mode
        ));
    }
    if actual.days < expected.days {
        return Some(format!(
            "locks for {} days, but at least {} are expected",
            actual.days, expected.days
        ));
    }
    None
}

/// Fail (and alert) when `repo`'s lock policy is weaker than the pinned one.
/// Without a pinned policy (local runs without one) there is nothing to check.
pub async fn enforce(env: &dyn StepEnv, repo: &Repository) -> Result<(), StepError> {
    let Some(expected) = env.expected_lock().await? else {
        return Ok(());
    };
    let Some(why) = weaker(repo.config().object_lock, expected) else {
        return Ok(());
    };
    let message = format!(
        "repository {}: its config {why}; the config may have been replaced. \
         New backups are not protected as the deployment requires",
        repo.store().location()
    );
    if let Err(e) = env
        .alert(
            "Lifeboat: repository lock policy weaker than pinned",
            &message,
        )
        .await
    {
        tracing::warn!(error = %e, "could not send the lock-policy alert");
    }
    Err(StepError::failed(message))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const COMPLIANCE_30: LockPolicy = LockPolicy {
        mode: LockMode::Compliance,
        days: 30,
    };

    #[test]
    fn the_pinned_policy_parses_and_bad_ones_are_named() {
        assert_eq!(parse_expected("COMPLIANCE:30").unwrap(), COMPLIANCE_30);
        assert_eq!(
            parse_expected("governance:7").unwrap(),
            LockPolicy {
                mode: LockMode::Governance,
                days: 7
            }
        );
        for bad in [
            "compliance",
            "compliance:0",
            "strict:30",
            "compliance:-1",
            "",
        ] {
            let e = parse_expected(bad).unwrap_err();
            assert!(e.message.contains("LIFEBOAT_EXPECTED_LOCK"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_config_without_lock_shorter_days_or_governance_is_weaker() {
        assert!(weaker(None, COMPLIANCE_30)
            .unwrap()
            .contains("no Object Lock"));
        let short = LockPolicy {
            days: 1,
            ..COMPLIANCE_30
        };
        assert!(weaker(Some(short), COMPLIANCE_30)
            .unwrap()
            .contains("1 days"));
        let governance = LockPolicy {
            mode: LockMode::Governance,
            days: 30,
        };
        assert!(weaker(Some(governance), COMPLIANCE_30)
            .unwrap()
            .contains("governance"));
        // As strong or stronger passes.
        assert_eq!(weaker(Some(COMPLIANCE_30), COMPLIANCE_30), None);
        let longer = LockPolicy {
            days: 90,
            ..COMPLIANCE_30
        };
        assert_eq!(weaker(Some(longer), COMPLIANCE_30), None);
        assert_eq!(weaker(Some(COMPLIANCE_30), governance), None);
    }

    use crate::test_env::{env_with, MemoryEnv};

    fn state() -> crate::state::State {
        crate::state::State::parse(serde_json::json!(
            {"version": 1, "action": "backup", "cluster": "prod"}
        ))
        .unwrap()
    }

    #[tokio::test]
    async fn apply_lock_fails_with_an_alert_when_config_says_less_than_pinned() {
        // A config replaced by one without a lock: apply-lock used to succeed with locked: false.
        let env: MemoryEnv = env_with(None, Some(COMPLIANCE_30)).await;
        let err = crate::backup::apply_lock(&env, state()).await.unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Failed);
        assert!(err.message.contains("no Object Lock policy"), "{err}");
        assert_eq!(env.alerts.lock().unwrap().len(), 1);
        // Governance where compliance is pinned, and verify as well.
        let governance = LockPolicy {
            mode: LockMode::Governance,
            days: 30,
        };
        let env: MemoryEnv = env_with(Some(governance), Some(COMPLIANCE_30)).await;
        assert!(crate::backup::apply_lock(&env, state()).await.is_err());
        let verify_state = crate::state::State::parse(serde_json::json!({
            "version": 1, "action": "verify", "cluster": "prod",
            "resolved": {"snapshot": lifeboat_repo::Id::of_file(b"s"), "snapshot_time": "2026-12-01T00:00:00Z",
              "source_cluster": "prod", "target_cluster": "prod",
              "access": {"eks": {"name": "prod"}}, "repository": "memory",
              "verified": false, "rpo_secs": 0.0}
        }))
        .unwrap();
        let err = crate::backup::verify(&env, verify_state).await.unwrap_err();
        assert!(err.message.contains("governance"), "{err}");
        assert_eq!(env.alerts.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn apply_lock_runs_when_config_meets_the_pinned_policy() {
        let env: MemoryEnv = env_with(Some(COMPLIANCE_30), Some(COMPLIANCE_30)).await;
        let locked = crate::backup::apply_lock(&env, state()).await.unwrap();
        assert_eq!(locked["locked"], true);
        assert!(env.alerts.lock().unwrap().is_empty());
        // Nothing pinned: a repository without a lock is not an error (local runs).
        let env: MemoryEnv = env_with(None, None).await;
        let locked = crate::backup::apply_lock(&env, state()).await.unwrap();
        assert_eq!(locked["locked"], false);
    }
}
