//! Between the SDK's types and the store's.

use aws_sdk_s3::types::{ObjectLockMode, ObjectLockRetentionMode};
use chrono::{DateTime, Utc};
use lifeboat_store::{LockMode, Retention};
use tracing::warn;

pub(super) fn to_aws_time(t: DateTime<Utc>) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_secs_and_nanos(t.timestamp(), t.timestamp_subsec_nanos())
}

pub(super) fn from_aws_time(t: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

/// The mode as PutObject and HeadObject spell it.
pub(super) fn object_lock_mode(mode: LockMode) -> ObjectLockMode {
    match mode {
        LockMode::Compliance => ObjectLockMode::Compliance,
        LockMode::Governance => ObjectLockMode::Governance,
    }
}

/// The mode as PutObjectRetention spells it.
pub(super) fn retention_mode(mode: LockMode) -> ObjectLockRetentionMode {
    match mode {
        LockMode::Compliance => ObjectLockRetentionMode::Compliance,
        LockMode::Governance => ObjectLockRetentionMode::Governance,
    }
}

/// The retention HeadObject reports, if it reports a complete one.
pub(super) fn retention_of(
    mode: Option<&ObjectLockMode>,
    until: Option<&aws_smithy_types::DateTime>,
) -> Option<Retention> {
    let mode = match mode? {
        ObjectLockMode::Compliance => LockMode::Compliance,
        ObjectLockMode::Governance => LockMode::Governance,
        other => {
            warn!(mode = other.as_str(), "unknown Object Lock mode ignored");
            return None;
        }
    };
    Some(Retention {
        mode,
        until: from_aws_time(until?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_roundtrips_through_aws_time() -> Result<(), chrono::ParseError> {
        let until = DateTime::parse_from_rfc3339("2031-05-06T07:08:09.123Z")?.with_timezone(&Utc);
        let aws = to_aws_time(until);
        assert_eq!(aws.secs(), 1_935_817_689);
        assert_eq!(from_aws_time(&aws), Some(until));
        for mode in [LockMode::Compliance, LockMode::Governance] {
            let lock = object_lock_mode(mode);
            assert_eq!(
                retention_of(Some(&lock), Some(&aws)),
                Some(Retention { mode, until })
            );
            assert_eq!(lock.as_str(), retention_mode(mode).as_str());
        }
        assert_eq!(retention_of(None, Some(&aws)), None);
        assert_eq!(retention_of(Some(&ObjectLockMode::Compliance), None), None);
        Ok(())
    }
}
