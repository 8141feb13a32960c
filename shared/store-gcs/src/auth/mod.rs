//! Google credentials, found the standard ways (Application Default
//! Credentials) and turned into OAuth access tokens.
//!
//! The order is the one Google's client libraries follow: the file named by
//! `GOOGLE_APPLICATION_CREDENTIALS` (a service-account key, an
//! `authorized_user` refresh token or an `external_account` for workload
//! identity federation), then gcloud's `application_default_credentials.json`,
//! then the metadata server (GCE, GKE workload identity). The emulator
//! (`STORAGE_EMULATOR_HOST`) takes none: see [`crate::GcsOptions::from_env`].

mod file;
mod flows;
mod jwt;
mod source;
mod token;

#[cfg(test)]
mod tests;

pub use file::{AuthorizedUser, ExternalAccount, ServiceAccountKey, SubjectTokenSource};
pub(crate) use source::Auth;
pub(crate) use token::{AuthError, AuthErrorKind};

use std::path::{Path, PathBuf};

/// The OAuth scope every token is asked for.
pub const STORAGE_SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_write";

/// The metadata server's address when `GCE_METADATA_HOST` does not say.
pub const METADATA_HOST: &str = "metadata.google.internal";

/// Where access tokens come from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum GcsCredentials {
    /// No `Authorization` header at all (the emulator).
    Anonymous,
    /// A service-account key file: a JWT signed with its key is exchanged
    /// for a token at the file's `token_uri`.
    ServiceAccount(ServiceAccountKey),
    /// A user's refresh token (`gcloud auth application-default login`).
    AuthorizedUser(AuthorizedUser),
    /// Workload identity federation: a subject token from another identity
    /// provider exchanged at Google's STS, then optionally a service account
    /// impersonated.
    ExternalAccount(ExternalAccount),
    /// The metadata server of GCE or GKE workload identity, at `http://host`.
    MetadataServer { host: String },
}

impl GcsCredentials {
    /// Application Default Credentials from the process environment.
    pub fn from_env() -> Result<GcsCredentials, String> {
        GcsCredentials::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// [`GcsCredentials::from_env`] with the variables from `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<GcsCredentials, String> {
        if let Some(path) = get("GOOGLE_APPLICATION_CREDENTIALS") {
            return GcsCredentials::from_file(Path::new(&path))
                .map_err(|e| format!("GOOGLE_APPLICATION_CREDENTIALS: {e}"));
        }
        if let Some(path) = well_known_file(&get).filter(|p| p.is_file()) {
            return GcsCredentials::from_file(&path);
        }
        let host = get("GCE_METADATA_HOST").unwrap_or_else(|| METADATA_HOST.to_string());
        Ok(GcsCredentials::MetadataServer { host })
    }

    /// A credentials file of any supported `type`.
    pub fn from_file(path: &Path) -> Result<GcsCredentials, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read credentials file {}: {e}", path.display()))?;
        GcsCredentials::from_json(&text, path.parent())
            .map_err(|e| format!("credentials file {}: {e}", path.display()))
    }

    /// A credentials file's contents; `dir` resolves a relative subject-token path.
    pub fn from_json(text: &str, dir: Option<&Path>) -> Result<GcsCredentials, String> {
        file::parse(text, dir)
    }

    /// What kind of credentials these are, for logs (no secret in it).
    pub fn kind(&self) -> String {
        match self {
            GcsCredentials::Anonymous => "none (emulator)".into(),
            GcsCredentials::ServiceAccount(k) => format!("service account {}", k.client_email),
            GcsCredentials::AuthorizedUser(_) => "authorized user (refresh token)".into(),
            GcsCredentials::ExternalAccount(a) => {
                format!("external account (audience {})", a.audience)
            }
            GcsCredentials::MetadataServer { host } => format!("metadata server {host}"),
        }
    }
}

/// gcloud's Application Default Credentials file.
fn well_known_file(get: &impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let dir = match get("CLOUDSDK_CONFIG") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(get("HOME")?).join(".config").join("gcloud"),
    };
    Some(dir.join("application_default_credentials.json"))
}
