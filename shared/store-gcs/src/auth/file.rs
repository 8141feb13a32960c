//! The credentials files Google's tools write, by their `type`.

use super::jwt::SigningKey;
use super::GcsCredentials;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// A service-account key (`"type": "service_account"`).
#[derive(Clone)]
pub struct ServiceAccountKey {
    pub client_email: String,
    pub private_key_id: String,
    pub token_uri: String,
    pub(crate) key: SigningKey,
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .field("token_uri", &self.token_uri)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// A user's refresh token (`"type": "authorized_user"`).
#[derive(Clone)]
pub struct AuthorizedUser {
    pub client_id: String,
    pub(crate) client_secret: String,
    pub(crate) refresh_token: String,
    pub token_uri: String,
}

impl fmt::Debug for AuthorizedUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizedUser")
            .field("client_id", &self.client_id)
            .field("token_uri", &self.token_uri)
            .field("client_secret", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .finish()
    }
}

/// Workload identity federation (`"type": "external_account"`).
#[derive(Debug, Clone)]
pub struct ExternalAccount {
    pub audience: String,
    pub subject_token_type: String,
    pub token_url: String,
    pub service_account_impersonation_url: Option<String>,
    pub source: SubjectTokenSource,
}

/// Where the subject token of an external account is read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubjectTokenSource {
    /// A file (a projected Kubernetes service-account token, for example),
    /// either the token itself or JSON holding it in `json_field`.
    File {
        path: PathBuf,
        json_field: Option<String>,
    },
    /// A URL answering the token, with these request headers.
    Url {
        url: String,
        headers: BTreeMap<String, String>,
        json_field: Option<String>,
    },
}

#[derive(Deserialize)]
struct Typed {
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct RawServiceAccount {
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: String,
    token_uri: Option<String>,
}

#[derive(Deserialize)]
struct RawAuthorizedUser {
    client_id: String,
    client_secret: String,
    refresh_token: String,
    token_uri: Option<String>,
}

#[derive(Deserialize)]
struct RawExternal {
    audience: String,
    subject_token_type: String,
    token_url: String,
    service_account_impersonation_url: Option<String>,
    credential_source: RawSource,
}

#[derive(Deserialize)]
struct RawSource {
    file: Option<String>,
    url: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    format: Option<RawFormat>,
    environment_id: Option<String>,
    executable: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawFormat {
    #[serde(rename = "type")]
    kind: String,
    subject_token_field_name: Option<String>,
}

pub(super) fn parse(text: &str, dir: Option<&Path>) -> Result<GcsCredentials, String> {
    let bad = |e: serde_json::Error| format!("not a valid credentials file: {e}");
    let kind = serde_json::from_str::<Typed>(text).map_err(bad)?.kind;
    match kind.as_deref() {
        Some("service_account") => {
            let raw: RawServiceAccount = serde_json::from_str(text).map_err(bad)?;
            Ok(GcsCredentials::ServiceAccount(ServiceAccountKey {
                key: SigningKey::from_pem(&raw.private_key)
                    .map_err(|e| format!("service account {}: {e}", raw.client_email))?,
                client_email: raw.client_email,
                private_key_id: raw.private_key_id,
                token_uri: raw.token_uri.unwrap_or_else(|| DEFAULT_TOKEN_URI.into()),
            }))
        }
        Some("authorized_user") => {
            let raw: RawAuthorizedUser = serde_json::from_str(text).map_err(bad)?;
            Ok(GcsCredentials::AuthorizedUser(AuthorizedUser {
                client_id: raw.client_id,
                client_secret: raw.client_secret,
                refresh_token: raw.refresh_token,
                token_uri: raw.token_uri.unwrap_or_else(|| DEFAULT_TOKEN_URI.into()),
            }))
        }
        Some("external_account") => {
            let raw: RawExternal = serde_json::from_str(text).map_err(bad)?;
            Ok(GcsCredentials::ExternalAccount(ExternalAccount {
                source: source(raw.credential_source, dir)?,
                audience: raw.audience,
                subject_token_type: raw.subject_token_type,
                token_url: raw.token_url,
                service_account_impersonation_url: raw.service_account_impersonation_url,
            }))
        }
        Some(other) => Err(format!(
            "credentials of type {other:?} are not supported \
             (service_account, authorized_user and external_account are)"
        )),
        None => Err("no \"type\" member: not a Google credentials file".into()),
    }
}

fn source(raw: RawSource, dir: Option<&Path>) -> Result<SubjectTokenSource, String> {
    let json_field = match raw.format {
        None => None,
        Some(f) if f.kind == "text" => None,
        Some(f) if f.kind == "json" => Some(
            f.subject_token_field_name
                .ok_or("credential_source.format of type json names no subject_token_field_name")?,
        ),
        Some(f) => {
            return Err(format!(
                "credential_source.format type {:?} is not supported (text, json are)",
                f.kind
            ))
        }
    };
    if let Some(file) = raw.file {
        let path = PathBuf::from(&file);
        let path = match dir {
            Some(d) if path.is_relative() => d.join(path),
            _ => path,
        };
        return Ok(SubjectTokenSource::File { path, json_field });
    }
    if let Some(url) = raw.url {
        return Ok(SubjectTokenSource::Url {
            url,
            headers: raw.headers,
            json_field,
        });
    }
    if raw.environment_id.is_some() {
        return Err(
            "AWS-sourced external accounts (credential_source.environment_id) are not supported; \
                    use a file- or URL-sourced credential"
                .into(),
        );
    }
    if raw.executable.is_some() {
        return Err("executable-sourced external accounts are not supported; \
                    use a file- or URL-sourced credential"
            .into());
    }
    Err("credential_source has neither file nor url".into())
}
