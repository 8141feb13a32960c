//! Azure credentials and the Blob endpoint, read from the environment the
//! standard Azure ways (connection string, account key, SAS, Entra ID service
//! principal, workload identity).
//!
//! Secrets never appear in `Debug` output, logs or errors.

use crate::redact::Secret;
use std::fmt;
use std::path::PathBuf;

/// Azurite's well-known development account (the same in every Azurite).
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known development key: documented, not a secret.
pub const DEV_ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// Where `UseDevelopmentStorage=true` points: Azurite's default blob port.
const DEV_ENDPOINT: &str = "http://127.0.0.1:10000/devstoreaccount1";

/// The Entra ID authority when `AZURE_AUTHORITY_HOST` does not name another.
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";

/// How requests to the Blob service are authorized.
#[derive(Clone)]
#[non_exhaustive]
pub enum AzureCredentials {
    /// Shared Key: the storage account's key, base64 as the portal shows it.
    SharedKey { account_key: Secret },
    /// A shared access signature, appended to every URL (without the leading `?`).
    Sas { token: Secret },
    /// Entra ID: an OAuth2 client-credentials token for
    /// `https://storage.azure.com/.default`.
    Entra(EntraCredentials),
}

/// An Entra ID application that may call the Blob service.
#[derive(Clone, Debug)]
pub struct EntraCredentials {
    pub tenant_id: String,
    pub client_id: String,
    pub proof: ClientProof,
    /// `https://login.microsoftonline.com` unless `AZURE_AUTHORITY_HOST` says otherwise.
    pub authority_host: String,
}

/// How the application proves who it is.
#[derive(Clone)]
#[non_exhaustive]
pub enum ClientProof {
    /// A service principal's client secret (`AZURE_CLIENT_SECRET`).
    Secret(Secret),
    /// Workload identity: a federated token file (`AZURE_FEDERATED_TOKEN_FILE`)
    /// sent as the client assertion, read afresh for every token since
    /// Kubernetes rotates it.
    FederatedTokenFile(PathBuf),
}

impl fmt::Debug for ClientProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientProof::Secret(_) => f.write_str("Secret(<redacted>)"),
            ClientProof::FederatedTokenFile(p) => {
                f.debug_tuple("FederatedTokenFile").field(p).finish()
            }
        }
    }
}

impl fmt::Debug for AzureCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AzureCredentials::SharedKey { .. } => f.write_str("SharedKey(<redacted>)"),
            AzureCredentials::Sas { .. } => f.write_str("Sas(<redacted>)"),
            AzureCredentials::Entra(e) => f.debug_tuple("Entra").field(e).finish(),
        }
    }
}

/// What the environment says about one storage account: how to authorize and
/// where its Blob endpoint is (`None`: the public cloud's).
#[derive(Debug, Clone)]
pub struct EnvConfig {
    pub credentials: AzureCredentials,
    pub endpoint: Option<String>,
}

/// The environment variables read, in order of precedence.
pub const CREDENTIAL_VARS: &str = "AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_ACCOUNT_KEY \
     (or AZURE_STORAGE_KEY), AZURE_STORAGE_SAS_TOKEN, AZURE_FEDERATED_TOKEN_FILE with \
     AZURE_CLIENT_ID and AZURE_TENANT_ID (workload identity), or AZURE_CLIENT_SECRET with \
     AZURE_CLIENT_ID and AZURE_TENANT_ID (service principal)";

impl AzureCredentials {
    /// Credentials and endpoint for `account` from the process environment.
    pub fn from_env(account: &str) -> Result<EnvConfig, String> {
        from_lookup(account, |name| {
            std::env::var(name).ok().filter(|v| !v.trim().is_empty())
        })
    }
}

/// [`AzureCredentials::from_env`] over any lookup (tests pass a map).
pub(crate) fn from_lookup(
    account: &str,
    var: impl Fn(&str) -> Option<String>,
) -> Result<EnvConfig, String> {
    let endpoint_override = var("AZURE_STORAGE_BLOB_ENDPOINT");
    if let Some(cs) = var("AZURE_STORAGE_CONNECTION_STRING") {
        let mut parsed = parse_connection_string(&cs)?;
        if parsed.account != account {
            return Err(format!(
                "AZURE_STORAGE_CONNECTION_STRING is for account {:?}, but the repository names account {account:?}",
                parsed.account
            ));
        }
        if endpoint_override.is_some() {
            parsed.config.endpoint = endpoint_override;
        }
        return Ok(parsed.config);
    }
    let with_endpoint = |credentials| EnvConfig {
        credentials,
        endpoint: endpoint_override.clone(),
    };
    if let Some(key) = var("AZURE_STORAGE_ACCOUNT_KEY").or_else(|| var("AZURE_STORAGE_KEY")) {
        return Ok(with_endpoint(AzureCredentials::SharedKey {
            account_key: Secret::new(key.trim()),
        }));
    }
    if let Some(sas) = var("AZURE_STORAGE_SAS_TOKEN") {
        return Ok(with_endpoint(AzureCredentials::Sas {
            token: Secret::new(sas.trim().trim_start_matches('?')),
        }));
    }
    let authority_host = var("AZURE_AUTHORITY_HOST")
        .unwrap_or_else(|| DEFAULT_AUTHORITY_HOST.to_string())
        .trim_end_matches('/')
        .to_string();
    let (tenant, client) = (var("AZURE_TENANT_ID"), var("AZURE_CLIENT_ID"));
    let proof = if let Some(file) = var("AZURE_FEDERATED_TOKEN_FILE") {
        Some(ClientProof::FederatedTokenFile(PathBuf::from(file)))
    } else {
        var("AZURE_CLIENT_SECRET").map(|s| ClientProof::Secret(Secret::new(&s)))
    };
    match (tenant, client, proof) {
        (Some(tenant_id), Some(client_id), Some(proof)) => {
            Ok(with_endpoint(AzureCredentials::Entra(EntraCredentials {
                tenant_id,
                client_id,
                proof,
                authority_host,
            })))
        }
        (_, _, Some(_)) => Err(
            "Entra ID credentials need AZURE_TENANT_ID and AZURE_CLIENT_ID beside \
             AZURE_CLIENT_SECRET or AZURE_FEDERATED_TOKEN_FILE"
                .into(),
        ),
        _ => Err(format!("no Azure credentials found: set {CREDENTIAL_VARS}")),
    }
}

struct ParsedConnectionString {
    account: String,
    config: EnvConfig,
}

/// `Key=Value;...` as the portal and Azurite give it. `UseDevelopmentStorage=true`
/// stands for Azurite's well-known account on 127.0.0.1:10000.
fn parse_connection_string(cs: &str) -> Result<ParsedConnectionString, String> {
    let mut fields = std::collections::HashMap::new();
    for part in cs.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        // Values (keys, SAS tokens) may themselves hold '='.
        let (k, v) = part.split_once('=').ok_or_else(|| {
            "AZURE_STORAGE_CONNECTION_STRING has a part without '=' (expected Key=Value;...)"
                .to_string()
        })?;
        fields.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let field = |k: &str| fields.get(k).filter(|v| !v.is_empty()).cloned();
    if field("usedevelopmentstorage").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(ParsedConnectionString {
            account: DEV_ACCOUNT.to_string(),
            config: EnvConfig {
                credentials: AzureCredentials::SharedKey {
                    account_key: Secret::new(DEV_ACCOUNT_KEY),
                },
                endpoint: Some(DEV_ENDPOINT.to_string()),
            },
        });
    }
    let account = field("accountname");
    let endpoint = match (field("blobendpoint"), &account) {
        (Some(e), _) => Some(e),
        (None, Some(a)) => {
            let protocol = field("defaultendpointsprotocol").unwrap_or_else(|| "https".into());
            let suffix = field("endpointsuffix").unwrap_or_else(|| "core.windows.net".into());
            Some(format!("{protocol}://{a}.blob.{suffix}"))
        }
        (None, None) => None,
    };
    let credentials = if let Some(key) = field("accountkey") {
        AzureCredentials::SharedKey {
            account_key: Secret::new(&key),
        }
    } else if let Some(sas) = field("sharedaccesssignature") {
        AzureCredentials::Sas {
            token: Secret::new(sas.trim_start_matches('?')),
        }
    } else {
        return Err(
            "AZURE_STORAGE_CONNECTION_STRING has neither AccountKey nor SharedAccessSignature"
                .into(),
        );
    };
    // A SAS connection string may name only the endpoint; take the account from it.
    let account = account
        .or_else(|| endpoint.as_deref().and_then(account_of_endpoint))
        .ok_or_else(|| {
            "AZURE_STORAGE_CONNECTION_STRING names no AccountName or BlobEndpoint".to_string()
        })?;
    Ok(ParsedConnectionString {
        account,
        config: EnvConfig {
            credentials,
            endpoint,
        },
    })
}

/// `https://acct.blob.core.windows.net` -> `acct`; `http://127.0.0.1:10000/acct` -> `acct`.
fn account_of_endpoint(endpoint: &str) -> Option<String> {
    let url = url::Url::parse(endpoint).ok()?;
    let first_segment = url
        .path_segments()
        .and_then(|mut s| s.next())
        .filter(|s| !s.is_empty());
    match first_segment {
        Some(seg) => Some(seg.to_string()),
        None => url.host_str()?.split_once('.').map(|(a, _)| a.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn key_of(c: &AzureCredentials) -> String {
        match c {
            AzureCredentials::SharedKey { account_key } => account_key.expose().to_string(),
            other => panic!("not a shared key: {other:?}"),
        }
    }

    #[test]
    fn development_storage_is_azurites_account() {
        let env = lookup(&[(
            "AZURE_STORAGE_CONNECTION_STRING",
            "UseDevelopmentStorage=true",
        )]);
        let c = from_lookup(DEV_ACCOUNT, env).unwrap();
        assert_eq!(key_of(&c.credentials), DEV_ACCOUNT_KEY);
        assert_eq!(c.endpoint.as_deref(), Some(DEV_ENDPOINT));
        // The connection string's account must be the repository's.
        let env = lookup(&[(
            "AZURE_STORAGE_CONNECTION_STRING",
            "UseDevelopmentStorage=true",
        )]);
        let err = from_lookup("prodacct", env).unwrap_err();
        assert!(
            err.contains("devstoreaccount1") && err.contains("prodacct"),
            "{err}"
        );
    }

    #[test]
    fn connection_strings_give_key_or_sas_and_endpoint() {
        let env = lookup(&[(
            "AZURE_STORAGE_CONNECTION_STRING",
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5==;EndpointSuffix=core.chinacloudapi.cn",
        )]);
        let c = from_lookup("acct", env).unwrap();
        assert_eq!(key_of(&c.credentials), "a2V5==");
        assert_eq!(
            c.endpoint.as_deref(),
            Some("https://acct.blob.core.chinacloudapi.cn")
        );
        let env = lookup(&[
            (
                "AZURE_STORAGE_CONNECTION_STRING",
                "BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature=sv=2022-11-02&sig=abc%3D",
            ),
            ("AZURE_STORAGE_BLOB_ENDPOINT", "http://127.0.0.1:9/acct"),
        ]);
        let c = from_lookup("acct", env).unwrap();
        match &c.credentials {
            AzureCredentials::Sas { token } => {
                assert_eq!(token.expose(), "sv=2022-11-02&sig=abc%3D")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:9/acct"));
        assert!(!format!("{c:?}").contains("sig=abc"), "{c:?}");
    }

    #[test]
    fn plain_variables_in_order_of_precedence() {
        let c = from_lookup(
            "a",
            lookup(&[
                ("AZURE_STORAGE_KEY", "k2"),
                ("AZURE_STORAGE_SAS_TOKEN", "?sv=1&sig=s"),
            ]),
        )
        .unwrap();
        assert_eq!(key_of(&c.credentials), "k2");
        assert!(c.endpoint.is_none());
        let c = from_lookup("a", lookup(&[("AZURE_STORAGE_SAS_TOKEN", "?sv=1&sig=s")])).unwrap();
        assert!(
            matches!(&c.credentials, AzureCredentials::Sas { token } if token.expose() == "sv=1&sig=s")
        );
        let c = from_lookup(
            "a",
            lookup(&[
                ("AZURE_TENANT_ID", "t"),
                ("AZURE_CLIENT_ID", "c"),
                ("AZURE_CLIENT_SECRET", "shh"),
                ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token"),
                ("AZURE_AUTHORITY_HOST", "https://login.example/"),
            ]),
        )
        .unwrap();
        match &c.credentials {
            AzureCredentials::Entra(e) => {
                assert_eq!((e.tenant_id.as_str(), e.client_id.as_str()), ("t", "c"));
                assert_eq!(e.authority_host, "https://login.example");
                assert!(
                    matches!(&e.proof, ClientProof::FederatedTokenFile(p) if p == &PathBuf::from("/var/run/token"))
                );
            }
            other => panic!("{other:?}"),
        }
        let c = from_lookup(
            "a",
            lookup(&[
                ("AZURE_TENANT_ID", "t"),
                ("AZURE_CLIENT_ID", "c"),
                ("AZURE_CLIENT_SECRET", "shh"),
            ]),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("shh"));
        match &c.credentials {
            AzureCredentials::Entra(e) => {
                assert_eq!(e.authority_host, DEFAULT_AUTHORITY_HOST);
                assert!(matches!(&e.proof, ClientProof::Secret(s) if s.expose() == "shh"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn missing_or_partial_credentials_say_what_to_set() {
        let err = from_lookup("a", lookup(&[])).unwrap_err();
        assert!(
            err.contains("AZURE_STORAGE_CONNECTION_STRING") && err.contains("AZURE_CLIENT_SECRET"),
            "{err}"
        );
        let err = from_lookup("a", lookup(&[("AZURE_CLIENT_SECRET", "x")])).unwrap_err();
        assert!(err.contains("AZURE_TENANT_ID"), "{err}");
        let err = from_lookup(
            "a",
            lookup(&[("AZURE_STORAGE_CONNECTION_STRING", "AccountName=a")]),
        )
        .unwrap_err();
        assert!(err.contains("AccountKey"), "{err}");
    }

    #[test]
    fn the_account_is_read_from_an_endpoint() {
        assert_eq!(
            account_of_endpoint("https://acct.blob.core.windows.net/").as_deref(),
            Some("acct")
        );
        assert_eq!(
            account_of_endpoint("http://127.0.0.1:10000/devstoreaccount1").as_deref(),
            Some("devstoreaccount1")
        );
    }
}
