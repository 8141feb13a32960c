//! Lifeboat's retention in Cloud Storage terms: Object Retention Lock
//! (<https://cloud.google.com/storage/docs/object-lock>).
//!
//! GCS has two retention modes per object. `Unlocked` lets a principal with
//! `storage.objects.overrideUnlockedRetention` shorten or remove it, which is
//! S3's GOVERNANCE; `Locked` can only be extended, by anyone, which is S3's
//! COMPLIANCE. A bucket-wide retention policy (Bucket Lock) shows on each
//! object as `retentionExpirationTime`.

use chrono::{DateTime, SecondsFormat, Utc};
use lifeboat_store::{LockMode, Retention};
use serde_json::{json, Value};

/// The GCS mode of a Lifeboat lock mode.
pub(crate) fn gcs_mode(mode: LockMode) -> &'static str {
    match mode {
        LockMode::Governance => "Unlocked",
        LockMode::Compliance => "Locked",
    }
}

/// The Lifeboat lock mode of a GCS mode; `None` for a mode this code does
/// not know (reported as no retention rather than guessed).
pub(crate) fn lock_mode(gcs: &str) -> Option<LockMode> {
    match gcs {
        "Unlocked" => Some(LockMode::Governance),
        "Locked" => Some(LockMode::Compliance),
        _ => None,
    }
}

/// The `retention` member of an object resource, as written.
pub(crate) fn to_json(r: Retention) -> Value {
    json!({
        "mode": gcs_mode(r.mode),
        "retainUntilTime": r.until.to_rfc3339_opts(SecondsFormat::AutoSi, true),
    })
}

/// The retention that protects an object, from its resource: the object's
/// own retention or the bucket policy's expiration, whichever lasts longer.
/// A bucket policy is reported as governance: the object resource does not
/// say whether the policy is locked.
pub(crate) fn of_object(resource: &Value) -> Option<Retention> {
    let own = resource.get("retention").and_then(|r| {
        Some(Retention {
            mode: lock_mode(r.get("mode")?.as_str()?)?,
            until: time(r.get("retainUntilTime")?)?,
        })
    });
    let policy = resource
        .get("retentionExpirationTime")
        .and_then(time)
        .map(|until| Retention {
            mode: LockMode::Governance,
            until,
        });
    match (own, policy) {
        (Some(o), Some(p)) if p.until > o.until => Some(p),
        (Some(o), _) => Some(o),
        (None, p) => p,
    }
}

/// Whether a bucket resource has Object Retention Lock enabled.
pub(crate) fn bucket_has_object_retention(bucket: &Value) -> bool {
    bucket
        .get("objectRetention")
        .and_then(|r| r.get("mode"))
        .and_then(Value::as_str)
        == Some("Enabled")
}

/// What to ask for when `wanted` is requested and `current` is in force: a
/// lock is never weakened, so a `Locked` retention stays `Locked`.
pub(crate) fn merged_mode(current: Option<Retention>, wanted: Retention) -> Retention {
    match current {
        Some(cur) if cur.mode == LockMode::Compliance => Retention {
            mode: LockMode::Compliance,
            ..wanted
        },
        _ => wanted,
    }
}

pub(crate) fn time(v: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn governance_is_unlocked_and_compliance_is_locked() {
        for mode in [LockMode::Governance, LockMode::Compliance] {
            assert_eq!(lock_mode(gcs_mode(mode)), Some(mode));
        }
        assert_eq!(gcs_mode(LockMode::Governance), "Unlocked");
        assert_eq!(gcs_mode(LockMode::Compliance), "Locked");
        assert_eq!(lock_mode("Enabled"), None);
        let r = Retention {
            mode: LockMode::Compliance,
            until: at("2027-01-02T03:04:05Z"),
        };
        assert_eq!(
            to_json(r),
            json!({"mode": "Locked", "retainUntilTime": "2027-01-02T03:04:05Z"})
        );
    }

    #[test]
    fn the_longer_of_object_and_bucket_retention_is_reported() {
        let own =
            json!({"retention": {"mode": "Locked", "retainUntilTime": "2027-01-01T00:00:00.000Z"}});
        assert_eq!(
            of_object(&own),
            Some(Retention {
                mode: LockMode::Compliance,
                until: at("2027-01-01T00:00:00Z")
            })
        );
        let both = json!({"retention": {"mode": "Unlocked", "retainUntilTime": "2027-01-01T00:00:00Z"},
                          "retentionExpirationTime": "2028-01-01T00:00:00Z"});
        assert_eq!(of_object(&both).unwrap().until, at("2028-01-01T00:00:00Z"));
        let policy_only = json!({"retentionExpirationTime": "2028-01-01T00:00:00Z"});
        assert_eq!(of_object(&policy_only).unwrap().mode, LockMode::Governance);
        assert_eq!(of_object(&json!({"name": "x"})), None);
        assert_eq!(of_object(&json!({"retention": {"mode": "Odd"}})), None);
    }

    #[test]
    fn lock_support_is_object_retention_enabled() {
        assert!(bucket_has_object_retention(
            &json!({"objectRetention": {"mode": "Enabled"}})
        ));
        assert!(!bucket_has_object_retention(&json!({"name": "b"})));
        assert!(!bucket_has_object_retention(
            &json!({"retentionPolicy": {"isLocked": true, "retentionPeriod": "86400"}})
        ));
    }

    #[test]
    fn a_locked_retention_is_never_made_unlocked() {
        let wanted = Retention {
            mode: LockMode::Governance,
            until: at("2027-06-01T00:00:00Z"),
        };
        let locked = Retention {
            mode: LockMode::Compliance,
            until: at("2027-01-01T00:00:00Z"),
        };
        assert_eq!(merged_mode(Some(locked), wanted).mode, LockMode::Compliance);
        assert_eq!(merged_mode(None, wanted), wanted);
    }
}
