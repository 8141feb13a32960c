use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// S3 Object Lock retention mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    /// Nobody, not even the account root, can delete or shorten the lock.
    Compliance,
    /// Users with `s3:BypassGovernanceRetention` can remove the lock.
    Governance,
}

impl fmt::Display for LockMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LockMode::Compliance => "compliance",
            LockMode::Governance => "governance",
        })
    }
}

impl FromStr for LockMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "compliance" => Ok(LockMode::Compliance),
            "governance" => Ok(LockMode::Governance),
            other => Err(format!(
                "unknown lock mode {other:?}: expected compliance or governance"
            )),
        }
    }
}

/// The retention of one object: its mode and the instant until which it cannot be deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    pub mode: LockMode,
    pub until: DateTime<Utc>,
}

impl Retention {
    /// Whether the object is still protected at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.until > now
    }
}
