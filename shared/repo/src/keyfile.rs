use crate::crypto::{open_with, seal_with};
use crate::error::random_bytes;
use crate::kdf_memory::KdfMemory;
use crate::{Aad, Credential, Format, MasterKey, RepoError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Domain separation for the key-file derivation.
const KEYFILE_CONTEXT: &str = "lifeboat 2026-11 key-file wrapping key v1";
/// The Argon2id parameters of new passphrase key objects.
const DEFAULT_MEMORY_KIB: u32 = 64 * 1024;
const DEFAULT_ITERATIONS: u32 = 3;
const DEFAULT_PARALLELISM: u32 = 4;
/// Upper bounds on Argon2 parameters read from a key object: four times the
/// default memory, 8 passes, 16 lanes. A key object above them is refused
/// before any memory is taken, so a planted key cannot make opening the
/// repository cost gigabytes or minutes.
pub const MAX_KDF_MEMORY_KIB: u32 = 4 * DEFAULT_MEMORY_KIB;
pub const MAX_KDF_ITERATIONS: u32 = 8;
pub const MAX_KDF_PARALLELISM: u32 = 16;
/// A key file must hold at least this many bytes.
pub const MIN_KEYFILE_LEN: usize = 32;

/// How the wrapping key is derived from the credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "algorithm", rename_all = "lowercase")]
pub enum KdfParams {
    /// Argon2id (version 0x13) over the passphrase's UTF-8 bytes.
    Argon2id {
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
        #[serde(with = "hex::serde")]
        salt: Vec<u8>,
    },
    /// BLAKE3 `derive_key` over `salt || key file bytes`: the file is already high-entropy.
    Keyfile {
        #[serde(with = "hex::serde")]
        salt: Vec<u8>,
    },
}

impl KdfParams {
    /// Defaults for a credential. For passphrases, Argon2id with 64 MiB, 3
    /// passes and 4 lanes (RFC 9106's second recommended option); the lanes
    /// are filled on all cores at once, so opening a repository costs a
    /// fraction of the single-lane time on a multi-core machine.
    pub fn for_credential(cred: &Credential) -> Result<Self, RepoError> {
        let salt = random_bytes::<16>()?.to_vec();
        Ok(match cred {
            Credential::Passphrase(_) => KdfParams::Argon2id {
                memory_kib: DEFAULT_MEMORY_KIB,
                iterations: DEFAULT_ITERATIONS,
                parallelism: DEFAULT_PARALLELISM,
                salt,
            },
            Credential::KeyFile(_) => KdfParams::Keyfile { salt },
        })
    }

    /// Cheap parameters, for tests only.
    #[doc(hidden)]
    pub fn weak_for_tests(cred: &Credential) -> Result<Self, RepoError> {
        Ok(match Self::for_credential(cred)? {
            KdfParams::Argon2id { salt, .. } => KdfParams::Argon2id {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
                salt,
            },
            other => other,
        })
    }

    /// Whether the parameters are within the limits a reader accepts
    /// ([`MAX_KDF_MEMORY_KIB`], [`MAX_KDF_ITERATIONS`], [`MAX_KDF_PARALLELISM`]);
    /// the error says which value is out of range. Costs nothing.
    pub fn check_limits(&self) -> Result<(), String> {
        let KdfParams::Argon2id {
            memory_kib,
            iterations,
            parallelism,
            ..
        } = self
        else {
            return Ok(());
        };
        if *memory_kib > MAX_KDF_MEMORY_KIB
            || *iterations > MAX_KDF_ITERATIONS
            || *parallelism > MAX_KDF_PARALLELISM
        {
            return Err(format!(
                "Argon2id with {memory_kib} KiB, {iterations} passes and {parallelism} lanes exceeds the limits ({MAX_KDF_MEMORY_KIB} KiB, {MAX_KDF_ITERATIONS} passes, {MAX_KDF_PARALLELISM} lanes)"
            ));
        }
        Ok(())
    }

    /// Whether deriving costs no more than the defaults of new key objects
    /// (a key file's derivation is always cheap).
    pub fn is_default_cost(&self) -> bool {
        match self {
            KdfParams::Argon2id {
                memory_kib,
                iterations,
                parallelism,
                ..
            } => {
                *memory_kib <= DEFAULT_MEMORY_KIB
                    && *iterations <= DEFAULT_ITERATIONS
                    && *parallelism <= DEFAULT_PARALLELISM
            }
            KdfParams::Keyfile { .. } => true,
        }
    }

    /// Whether these parameters can ever open with `cred` (a passphrase
    /// opens only Argon2id keys, a key file only key-file keys).
    pub fn fits(&self, cred: &Credential) -> bool {
        matches!(
            (self, cred),
            (KdfParams::Argon2id { .. }, Credential::Passphrase(_))
                | (KdfParams::Keyfile { .. }, Credential::KeyFile(_))
        )
    }

    fn derive(&self, cred: &Credential) -> Result<Zeroizing<[u8; 32]>, RepoError> {
        let mut out = Zeroizing::new([0u8; 32]);
        match (self, cred) {
            (
                KdfParams::Argon2id {
                    memory_kib,
                    iterations,
                    parallelism,
                    salt,
                },
                Credential::Passphrase(p),
            ) => {
                // A tampered key object must not make opening cost unbounded memory or time.
                self.check_limits()
                    .map_err(|why| RepoError::malformed("key file KDF parameters", why))?;
                let params = argon2::Params::new(*memory_kib, *iterations, *parallelism, Some(32))
                    .map_err(|e| RepoError::malformed("key file KDF parameters", e))?;
                let argon = argon2::Argon2::new(
                    argon2::Algorithm::Argon2id,
                    argon2::Version::V0x13,
                    params,
                );
                let memory = KdfMemory::new(argon.params().block_count());
                argon
                    .hash_password_into_with_memory(p.as_bytes(), salt, out.as_mut(), memory)
                    .map_err(|e| RepoError::malformed("key file KDF parameters", e))?;
            }
            (KdfParams::Keyfile { salt }, Credential::KeyFile(bytes)) => {
                if bytes.len() < MIN_KEYFILE_LEN {
                    return Err(RepoError::InvalidOption(format!(
                        "key file holds {} bytes; at least {MIN_KEYFILE_LEN} random bytes are needed",
                        bytes.len()
                    )));
                }
                let mut h = blake3::Hasher::new_derive_key(KEYFILE_CONTEXT);
                h.update(salt);
                h.update(bytes);
                out.copy_from_slice(h.finalize().as_bytes());
            }
            // A passphrase cannot open a key-file key and vice versa.
            _ => return Err(RepoError::Decrypt { what: "key".into() }),
        }
        Ok(out)
    }
}

/// A stored key object (`keys/<id>`): the master key wrapped by a key derived
/// from one credential. A repository may hold several, one per credential.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyFile {
    /// The format version the master key is wrapped under (1 or 2; see
    /// [`Aad::wrapped_key`]), the same as the repository's.
    pub version: u32,
    pub created: DateTime<Utc>,
    pub hostname: String,
    pub kdf: KdfParams,
    /// `nonce || XChaCha20-Poly1305(JSON of the master key) || tag`, hex.
    #[serde(with = "hex::serde")]
    pub wrapped: Vec<u8>,
}

impl KeyFile {
    /// Wrap `master` for `cred` with the given KDF parameters, for a
    /// repository of `format`.
    pub fn wrap(
        master: &MasterKey,
        cred: &Credential,
        kdf: KdfParams,
        hostname: String,
        format: Format,
    ) -> Result<Self, RepoError> {
        let wrapping = kdf.derive(cred)?;
        let plain = Zeroizing::new(
            serde_json::to_vec(master).map_err(|e| RepoError::malformed("master key", e))?,
        );
        let aad = Aad::wrapped_key(format);
        Ok(KeyFile {
            version: format.version(),
            created: Utc::now(),
            hostname,
            kdf,
            wrapped: seal_with(&wrapping, &plain, aad.as_bytes())?,
        })
    }

    /// Parse a stored key object and check its KDF parameters against the
    /// limits, without deriving anything; the error says what is wrong (the
    /// caller names the object).
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let kf: KeyFile = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        kf.kdf.check_limits()?;
        Ok(kf)
    }

    /// Unwrap the master key; [`RepoError::Decrypt`] if the credential does not fit.
    pub fn unwrap_key(&self, cred: &Credential) -> Result<MasterKey, RepoError> {
        let aad = Aad::wrapped_key(Format::from_version(self.version, "key")?);
        let wrapping = self.kdf.derive(cred)?;
        let plain = Zeroizing::new(open_with(&wrapping, &self.wrapped, aad.as_bytes(), "key")?);
        serde_json::from_slice(&plain).map_err(|e| RepoError::malformed("master key", e))
    }
}

/// A key object's version is authenticated (it decides the associated data
/// of `wrapped`), the plaintext `config`'s is not: a key object that opened
/// must have the config's version, or the config was altered. A version-2
/// repository whose config says version 1 would otherwise be read, and
/// written, without the version-2 binding.
pub(crate) fn check_config_version(
    config: &crate::RepoConfig,
    key_version: u32,
    key_name: &str,
) -> Result<(), RepoError> {
    if key_version == config.version {
        return Ok(());
    }
    Err(RepoError::malformed(
        "repository config",
        format!(
            "it says format version {}, but key object {key_name} (authenticated) is version {key_version}: the config was altered",
            config.version
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passphrase_and_keyfile_wrapping() {
        let master = MasterKey::generate().unwrap();
        let pass = Credential::Passphrase("correct horse".into());
        let kf = KeyFile::wrap(
            &master,
            &pass,
            KdfParams::weak_for_tests(&pass).unwrap(),
            "h".into(),
            Format::V2,
        )
        .unwrap();
        let back = kf.unwrap_key(&pass).unwrap();
        assert_eq!(back.blob_id(b"a"), master.blob_id(b"a"));
        assert!(kf
            .unwrap_key(&Credential::Passphrase("wrong".into()))
            .is_err());
        assert!(kf.unwrap_key(&Credential::KeyFile(vec![7; 32])).is_err());

        let file = Credential::KeyFile(vec![42; 64]);
        let kf2 = KeyFile::wrap(
            &master,
            &file,
            KdfParams::for_credential(&file).unwrap(),
            "h".into(),
            Format::V2,
        )
        .unwrap();
        assert!(kf2.unwrap_key(&file).is_ok());
        assert!(kf2.unwrap_key(&Credential::KeyFile(vec![43; 64])).is_err());
        let short = Credential::KeyFile(vec![1; 8]);
        assert!(matches!(
            KeyFile::wrap(
                &master,
                &short,
                KdfParams::for_credential(&short).unwrap(),
                "h".into(),
                Format::V2,
            ),
            Err(RepoError::InvalidOption(_))
        ));
    }

    #[test]
    fn wrapped_key_does_not_contain_the_master_key() {
        let master = MasterKey::generate().unwrap();
        let pass = Credential::Passphrase("p".into());
        let kf = KeyFile::wrap(
            &master,
            &pass,
            KdfParams::weak_for_tests(&pass).unwrap(),
            "h".into(),
            Format::V2,
        )
        .unwrap();
        let json = serde_json::to_string(&kf).unwrap();
        let master_json = serde_json::to_string(&master).unwrap();
        assert!(!json.contains(&master_json[15..40]));
    }

    /// A version-2 key object binds its version: marked version 1, it no
    /// longer opens (and a version-1 one still does).
    #[test]
    fn key_object_opens_only_under_its_own_version() {
        let master = MasterKey::generate().unwrap();
        let cred = Credential::KeyFile(vec![9; 32]);
        let kdf = KdfParams::for_credential(&cred).unwrap();
        let mut kf = KeyFile::wrap(&master, &cred, kdf.clone(), "h".into(), Format::V2).unwrap();
        assert_eq!(kf.version, 2);
        kf.version = 1;
        assert!(matches!(
            kf.unwrap_key(&cred),
            Err(RepoError::Decrypt { .. })
        ));
        let old = KeyFile::wrap(&master, &cred, kdf, "h".into(), Format::V1).unwrap();
        assert_eq!(old.version, 1);
        assert_eq!(
            old.unwrap_key(&cred).unwrap().blob_id(b"a"),
            master.blob_id(b"a")
        );
    }
}
