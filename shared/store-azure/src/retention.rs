//! Lifeboat's retention on Azure's version-level immutability policies.
//!
//! Azure has no Governance/Compliance pair; its time-based policy on a blob
//! version is `Unlocked` (can be shortened or removed by whoever may manage
//! the policy) or `Locked` (can only be extended, by nobody removed). So
//! Governance maps to `Unlocked` and Compliance to `Locked`.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use lifeboat_store::{LockMode, Retention};

/// The `x-ms-immutability-policy-mode` for a lock mode.
pub(crate) fn policy_mode(mode: LockMode) -> &'static str {
    match mode {
        LockMode::Governance => "Unlocked",
        LockMode::Compliance => "Locked",
    }
}

/// The lock mode of a policy mode as Azure reports it (any case).
pub(crate) fn lock_mode(policy_mode: &str) -> Option<LockMode> {
    match policy_mode.trim().to_ascii_lowercase().as_str() {
        "unlocked" => Some(LockMode::Governance),
        "locked" => Some(LockMode::Compliance),
        _ => None,
    }
}

/// An RFC 1123 date for `x-ms-immutability-policy-until-date`. Azure keeps
/// whole seconds: a fraction is rounded up, so a lock is never shorter than asked.
pub(crate) fn until_header(until: DateTime<Utc>) -> String {
    let whole = until.trunc_subsecs(0);
    let rounded = if whole < until {
        whole + Duration::seconds(1)
    } else {
        whole
    };
    rounded.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// The retention a blob's properties report, if it has a policy.
pub(crate) fn from_headers(until: Option<&str>, mode: Option<&str>) -> Option<Retention> {
    let until = crate::xml::parse_http_date(until?).or_else(|| {
        DateTime::parse_from_rfc3339(until?.trim())
            .ok()
            .map(|t| t.with_timezone(&Utc))
    })?;
    Some(Retention {
        // A date without a mode is reported as the weaker mode.
        mode: mode.and_then(lock_mode).unwrap_or(LockMode::Governance),
        until,
    })
}

/// What `set_retention` must do, given the blob's current policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// The current lock already lasts as long: nothing to send.
    Keep,
    /// Send this policy (longer, or the first one).
    Set(Retention),
    /// Refused: the request would shorten the lock; never sent.
    Refuse { current: Retention },
}

/// Extend, never shorten, never weaken: a Locked (Compliance) policy stays
/// Locked even when Governance is asked for, since Azure cannot unlock it.
pub(crate) fn plan(current: Option<Retention>, wanted: Retention, now: DateTime<Utc>) -> Plan {
    let Some(cur) = current.filter(|c| c.is_active(now)) else {
        return Plan::Set(wanted);
    };
    if wanted.until < cur.until {
        return Plan::Refuse { current: cur };
    }
    let mode = if cur.mode == LockMode::Compliance {
        LockMode::Compliance
    } else {
        wanted.mode
    };
    if wanted.until == cur.until && mode == cur.mode {
        return Plan::Keep;
    }
    Plan::Set(Retention {
        mode,
        until: wanted.until,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    fn r(mode: LockMode, s: i64) -> Retention {
        Retention { mode, until: at(s) }
    }

    #[test]
    fn governance_is_unlocked_and_compliance_locked() {
        assert_eq!(policy_mode(LockMode::Governance), "Unlocked");
        assert_eq!(policy_mode(LockMode::Compliance), "Locked");
        assert_eq!(lock_mode("unlocked"), Some(LockMode::Governance));
        assert_eq!(lock_mode("Locked"), Some(LockMode::Compliance));
        assert_eq!(lock_mode("Mutable"), None);
    }

    #[test]
    fn dates_are_rfc1123_rounded_up_and_read_back() {
        let t = at(0) + Duration::milliseconds(1);
        assert_eq!(until_header(at(0)), "Fri, 15 Jan 2027 08:00:00 GMT");
        assert_eq!(until_header(t), "Fri, 15 Jan 2027 08:00:01 GMT");
        assert_eq!(
            from_headers(Some("Fri, 15 Jan 2027 08:00:00 GMT"), Some("locked")),
            Some(r(LockMode::Compliance, 0))
        );
        assert_eq!(
            from_headers(Some("2027-01-15T08:00:00Z"), None),
            Some(r(LockMode::Governance, 0))
        );
        assert_eq!(from_headers(None, Some("locked")), None);
    }

    #[test]
    fn retention_is_extended_never_shortened_nor_weakened() {
        let now = at(-100);
        let gov = |s| r(LockMode::Governance, s);
        let comp = |s| r(LockMode::Compliance, s);
        assert_eq!(plan(None, gov(10), now), Plan::Set(gov(10)));
        // An expired lock is no lock.
        assert_eq!(plan(Some(gov(-200)), gov(10), now), Plan::Set(gov(10)));
        assert_eq!(plan(Some(gov(10)), gov(20), now), Plan::Set(gov(20)));
        assert_eq!(plan(Some(gov(10)), gov(10), now), Plan::Keep);
        assert_eq!(
            plan(Some(gov(10)), gov(5), now),
            Plan::Refuse { current: gov(10) }
        );
        assert_eq!(
            plan(Some(comp(10)), comp(5), now),
            Plan::Refuse { current: comp(10) }
        );
        assert_eq!(plan(Some(comp(10)), gov(20), now), Plan::Set(comp(20)));
        assert_eq!(plan(Some(comp(10)), gov(10), now), Plan::Keep);
        assert_eq!(plan(Some(gov(10)), comp(10), now), Plan::Set(comp(10)));
    }
}
