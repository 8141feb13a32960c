use crate::{Format, Id, RepoError};
use chrono::{DateTime, Utc};
use lifeboat_store::LockMode;
use serde::{Deserialize, Serialize};

/// The newest repository format this build reads and writes; new
/// repositories get it. Version 1 repositories stay readable and writable as
/// version 1 (see [`Format`]).
pub const FORMAT_VERSION: u32 = 2;
/// The value of the `format` field that marks a Lifeboat repository.
const FORMAT_NAME: &str = "lifeboat-repository";

/// How data is cut into chunks. Fixed for the life of a repository, since
/// deduplication only finds equal chunks cut the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkingParams {
    /// Content-defined chunking for files: smallest, average and largest chunk, in bytes.
    pub cdc_min: u32,
    pub cdc_avg: u32,
    pub cdc_max: u32,
    /// Fixed, aligned chunks for block devices and disk images, in bytes.
    pub fixed_size: u32,
}

impl Default for ChunkingParams {
    fn default() -> Self {
        ChunkingParams {
            cdc_min: 256 * 1024,
            cdc_avg: 1024 * 1024,
            cdc_max: 4 * 1024 * 1024,
            fixed_size: 64 * 1024,
        }
    }
}

impl ChunkingParams {
    pub fn validate(&self) -> Result<(), RepoError> {
        let pow2 = |v: u32| v.is_power_of_two();
        let ordered = self.cdc_min < self.cdc_avg && self.cdc_avg < self.cdc_max;
        if !(ordered && pow2(self.cdc_avg)) {
            return Err(RepoError::InvalidOption(format!(
                "chunk sizes need min < avg < max with avg a power of two (got {}/{}/{})",
                self.cdc_min, self.cdc_avg, self.cdc_max
            )));
        }
        if !pow2(self.fixed_size) || !(4096..=8 * 1024 * 1024).contains(&self.fixed_size) {
            return Err(RepoError::InvalidOption(format!(
                "fixed chunk size must be a power of two between 4 KiB and 8 MiB (got {})",
                self.fixed_size
            )));
        }
        Ok(())
    }
}

/// The Object Lock policy of a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockPolicy {
    pub mode: LockMode,
    /// Every object stays locked for at least this many days after it is written
    /// or after its lock was last extended.
    pub days: u32,
}

/// The `config` object: plaintext JSON, so that the version can be checked
/// before any key is at hand. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoConfig {
    pub format: String,
    pub version: u32,
    pub id: Id,
    pub created: DateTime<Utc>,
    pub chunking: ChunkingParams,
    /// zstd level for blobs (1-19).
    pub compression_level: i32,
    /// Target pack size in bytes; a pack is closed once it reaches this size.
    pub pack_size: u32,
    /// Object Lock policy, or `null` for a repository without locks.
    pub object_lock: Option<LockPolicy>,
}

/// The limits on the settings that `new` accepts and `parse` enforces.
fn validate_settings(
    chunking: &ChunkingParams,
    compression_level: i32,
    pack_size: u32,
    object_lock: Option<LockPolicy>,
) -> Result<(), RepoError> {
    chunking.validate()?;
    if !(1..=19).contains(&compression_level) {
        return Err(RepoError::InvalidOption(format!(
            "compression level must be 1 to 19 (got {compression_level})"
        )));
    }
    if !(1024 * 1024..=256 * 1024 * 1024).contains(&pack_size) {
        return Err(RepoError::InvalidOption(format!(
            "pack size must be between 1 MiB and 256 MiB (got {pack_size} bytes)"
        )));
    }
    if let Some(p) = object_lock {
        if p.days == 0 || p.days > MAX_LOCK_DAYS {
            return Err(RepoError::InvalidOption(format!(
                "lock days must be 1 to {MAX_LOCK_DAYS} (got {})",
                p.days
            )));
        }
    }
    Ok(())
}

/// About a hundred years.
pub const MAX_LOCK_DAYS: u32 = 36500;

#[derive(Deserialize)]
struct VersionProbe {
    format: Option<String>,
    version: Option<u32>,
}

impl RepoConfig {
    pub fn new(
        chunking: ChunkingParams,
        compression_level: i32,
        pack_size: u32,
        object_lock: Option<LockPolicy>,
    ) -> Result<Self, RepoError> {
        validate_settings(&chunking, compression_level, pack_size, object_lock)?;
        Ok(RepoConfig {
            format: FORMAT_NAME.into(),
            version: FORMAT_VERSION,
            id: Id(crate::error::random_bytes()?),
            created: Utc::now(),
            chunking,
            compression_level,
            pack_size,
            object_lock,
        })
    }

    /// Parse a stored config, refusing other formats and newer versions
    /// before looking at any other field.
    pub fn parse(bytes: &[u8]) -> Result<Self, RepoError> {
        let probe: VersionProbe = serde_json::from_slice(bytes)
            .map_err(|e| RepoError::malformed("repository config", e))?;
        if probe.format.as_deref() != Some(FORMAT_NAME) {
            return Err(RepoError::malformed(
                "repository config",
                format!("format is {:?}, not {FORMAT_NAME:?}", probe.format),
            ));
        }
        match probe.version {
            Some(v) if v > FORMAT_VERSION => {
                return Err(RepoError::UnsupportedVersion {
                    found: v,
                    supported: FORMAT_VERSION,
                })
            }
            Some(v) => {
                Format::from_version(v, "repository config")?;
            }
            None => return Err(RepoError::malformed("repository config", "no version")),
        }
        let config: RepoConfig = serde_json::from_slice(bytes)
            .map_err(|e| RepoError::malformed("repository config", e))?;
        // The config is plaintext: a tampered one must be refused here, not
        // trusted by every write that follows.
        validate_settings(
            &config.chunking,
            config.compression_level,
            config.pack_size,
            config.object_lock,
        )
        .map_err(|e| RepoError::malformed("repository config", e))?;
        Ok(config)
    }

    /// How this repository's objects are sealed. [`RepoConfig::parse`] and
    /// [`RepoConfig::new`] only make versions 1 and 2.
    pub fn format(&self) -> Format {
        match self.version {
            1 => Format::V1,
            _ => Format::V2,
        }
    }

    pub fn to_json(&self) -> Result<Vec<u8>, RepoError> {
        serde_json::to_vec_pretty(self).map_err(|e| RepoError::malformed("repository config", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_version_is_refused_with_a_clear_message() {
        let c = RepoConfig::new(ChunkingParams::default(), 3, 16 << 20, None).unwrap();
        let mut v: serde_json::Value = serde_json::from_slice(&c.to_json().unwrap()).unwrap();
        v["version"] = 3.into();
        v["something_new"] = "x".into();
        let err = RepoConfig::parse(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(matches!(
            err,
            RepoError::UnsupportedVersion {
                found: 3,
                supported: 2
            }
        ));
        assert!(err.to_string().contains("upgrade Lifeboat"));
    }

    #[test]
    fn new_configs_are_version_2_and_version_1_still_parses() {
        let c = RepoConfig::new(ChunkingParams::default(), 3, 16 << 20, None).unwrap();
        assert_eq!((c.version, c.format()), (2, Format::V2));
        let mut v: serde_json::Value = serde_json::from_slice(&c.to_json().unwrap()).unwrap();
        v["version"] = 1.into();
        let old = RepoConfig::parse(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert_eq!((old.version, old.format()), (1, Format::V1));
        v["version"] = 0.into();
        assert!(matches!(
            RepoConfig::parse(&serde_json::to_vec(&v).unwrap()),
            Err(RepoError::Malformed { .. })
        ));
    }

    #[test]
    fn roundtrip_and_validation() {
        let c = RepoConfig::new(ChunkingParams::default(), 3, 16 << 20, None).unwrap();
        assert_eq!(RepoConfig::parse(&c.to_json().unwrap()).unwrap(), c);
        assert!(RepoConfig::new(ChunkingParams::default(), 0, 16 << 20, None).is_err());
        assert!(RepoConfig::new(ChunkingParams::default(), 3, 1, None).is_err());
        assert!(RepoConfig::parse(b"{\"format\":\"restic\",\"version\":1}").is_err());
        assert!(RepoConfig::parse(b"not json").is_err());
        // Tampered numbers are refused, not trusted by later writes.
        let mut v: serde_json::Value = serde_json::from_slice(&c.to_json().unwrap()).unwrap();
        v["object_lock"] = serde_json::json!({"mode": "compliance", "days": 4294967295u32});
        assert!(RepoConfig::parse(&serde_json::to_vec(&v).unwrap()).is_err());
        v["object_lock"] = serde_json::Value::Null;
        v["pack_size"] = 0.into();
        assert!(RepoConfig::parse(&serde_json::to_vec(&v).unwrap()).is_err());
    }
}
