//! Where the store talks to and how: endpoint, credentials, retries, sizes.

use crate::api::GOOGLE_ENDPOINT;
use crate::auth::GcsCredentials;
use lifeboat_store_http::RetryPolicy;
use std::time::Duration;

/// The variable every Google client library reads to use an emulator
/// instead of Cloud Storage (plain HTTP, no authentication).
pub const EMULATOR_ENV: &str = "STORAGE_EMULATOR_HOST";

/// How a [`crate::GcsStore`] reaches its bucket.
#[derive(Debug, Clone)]
pub struct GcsOptions {
    /// Scheme and host of the JSON API: `https://storage.googleapis.com`, or
    /// an emulator such as `http://127.0.0.1:4443`.
    pub endpoint: String,
    pub credentials: GcsCredentials,
    pub retry: RetryPolicy,
    /// Longest wait for one request's whole answer.
    pub request_timeout: Duration,
    /// Objects larger than this go up in a resumable upload.
    pub resumable_threshold: usize,
    /// Chunk size of a resumable upload: a multiple of 256 KiB.
    pub resumable_chunk: usize,
    /// Objects per listing page (Cloud Storage's maximum is 1000).
    pub list_page_size: u32,
}

impl GcsOptions {
    /// Cloud Storage itself, with these credentials.
    pub fn google(credentials: GcsCredentials) -> GcsOptions {
        GcsOptions {
            endpoint: GOOGLE_ENDPOINT.to_string(),
            credentials,
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(300),
            resumable_threshold: 64 << 20,
            resumable_chunk: 16 << 20,
            list_page_size: 1000,
        }
    }

    /// An emulator at `host` (`http://127.0.0.1:4443` or `127.0.0.1:4443`),
    /// without authentication.
    pub fn emulator(host: &str) -> GcsOptions {
        GcsOptions {
            endpoint: emulator_endpoint(host),
            ..GcsOptions::google(GcsCredentials::Anonymous)
        }
    }

    /// `STORAGE_EMULATOR_HOST` when set, else Cloud Storage with Application
    /// Default Credentials ([`GcsCredentials::from_env`]).
    pub fn from_env() -> Result<GcsOptions, String> {
        GcsOptions::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// [`GcsOptions::from_env`] with the variables from `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<GcsOptions, String> {
        if let Some(host) = get(EMULATOR_ENV) {
            return Ok(GcsOptions::emulator(&host));
        }
        GcsCredentials::from_lookup(get).map(GcsOptions::google)
    }
}

fn emulator_endpoint(host: &str) -> String {
    let host = host.trim().trim_end_matches('/');
    if host.starts_with("http://") || host.starts_with("https://") {
        host.to_string()
    } else {
        format!("http://{host}")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_emulator_variable_wins_and_takes_no_credentials() {
        let opts =
            GcsOptions::from_lookup(|n| (n == EMULATOR_ENV).then(|| "127.0.0.1:4443".to_string()))
                .unwrap();
        assert_eq!(opts.endpoint, "http://127.0.0.1:4443");
        assert!(matches!(opts.credentials, GcsCredentials::Anonymous));
        assert_eq!(
            GcsOptions::emulator("http://localhost:9023/").endpoint,
            "http://localhost:9023"
        );
    }

    #[test]
    fn without_anything_configured_the_metadata_server_is_asked() {
        let opts = GcsOptions::from_lookup(|_| None).unwrap();
        assert_eq!(opts.endpoint, GOOGLE_ENDPOINT);
        assert!(
            matches!(&opts.credentials, GcsCredentials::MetadataServer { host } if host == "metadata.google.internal")
        );
        let opts = GcsOptions::from_lookup(|n| {
            (n == "GCE_METADATA_HOST").then(|| "127.0.0.1:8080".to_string())
        })
        .unwrap();
        assert!(
            matches!(&opts.credentials, GcsCredentials::MetadataServer { host } if host == "127.0.0.1:8080")
        );
    }

    #[test]
    fn a_missing_credentials_file_is_named() {
        let err = GcsOptions::from_lookup(|n| {
            (n == "GOOGLE_APPLICATION_CREDENTIALS").then(|| "/nonexistent/sa.json".to_string())
        })
        .unwrap_err();
        assert!(
            err.contains("GOOGLE_APPLICATION_CREDENTIALS") && err.contains("/nonexistent/sa.json"),
            "{err}"
        );
    }
}
