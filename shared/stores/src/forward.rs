//! What a process started elsewhere (a mover Job in a cluster) must be
//! given to reach the same store as this one.
//!
//! A store finds its endpoint and credentials in the environment, the
//! standard way of its cloud. A mover Job does not inherit Lifeboat's
//! environment, so the variables that say *where* the store is (an
//! S3-compatible endpoint, path-style addressing, an Azure Blob endpoint, a
//! GCS emulator) and the shared-key kinds of credential that cannot come
//! from the pod's own identity are handed over. Identities that belong to
//! a workload are not: AWS roles (IRSA, EKS Pod Identity), Azure workload
//! identity and GKE workload identity are bound to the mover's service
//! account (`LIFEBOAT_MOVER_SERVICE_ACCOUNT`) and give the Job its own,
//! narrower, credentials; a file path (`GOOGLE_APPLICATION_CREDENTIALS`,
//! `AZURE_FEDERATED_TOKEN_FILE`) means nothing in another container.

use lifeboat_store::{StoreError, StoreUrl};
use std::collections::BTreeMap;

/// Variables that locate the store: never secret.
fn locating(url: &StoreUrl) -> &'static [&'static str] {
    match url {
        StoreUrl::Local(_) => &[],
        StoreUrl::S3 { .. } => &[
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_S3",
            "LIFEBOAT_S3_PATH_STYLE",
        ],
        StoreUrl::Azure { .. } => &["AZURE_STORAGE_BLOB_ENDPOINT", "AZURE_AUTHORITY_HOST"],
        StoreUrl::Gcs { .. } => &["STORAGE_EMULATOR_HOST"],
    }
}

/// Credentials that are not a workload's identity and so can only be
/// handed over (into the Job's Secret, beside the passphrase).
fn shared_credentials(url: &StoreUrl) -> &'static [&'static str] {
    match url {
        StoreUrl::Local(_) | StoreUrl::Gcs { .. } => &[],
        // Static keys (on-premises S3-compatible stores have nothing else);
        // see `forwarded_env` for why session credentials never go.
        StoreUrl::S3 { .. } => &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
        StoreUrl::Azure { .. } => &[
            "AZURE_STORAGE_CONNECTION_STRING",
            "AZURE_STORAGE_KEY",
            "AZURE_STORAGE_ACCOUNT_KEY",
            "AZURE_STORAGE_SAS_TOKEN",
            "AZURE_TENANT_ID",
            "AZURE_CLIENT_ID",
            "AZURE_CLIENT_SECRET",
        ],
    }
}

/// The variables of `env` (this process's environment, or a test's) that
/// a mover Job needs to open the store `url` names. Values go into the
/// Job's Secret, never into its spec. A local directory needs none (and a
/// Job cannot reach it).
pub fn forwarded_env(
    url: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, StoreError> {
    let parsed = StoreUrl::parse(url)?;
    // With a session token the AWS keys are a role's temporary credentials
    // (a Lambda function's own role, an assumed role): handing them to a
    // Job would give it everything that role may do. Only long-lived
    // static keys (an S3-compatible store's) go.
    let role_session = env("AWS_SESSION_TOKEN").is_some_and(|v| !v.is_empty());
    let mut out = BTreeMap::new();
    let credentials = shared_credentials(&parsed)
        .iter()
        .filter(|n| !(role_session && n.starts_with("AWS_")));
    for name in locating(&parsed).iter().chain(credentials) {
        if let Some(v) = env(name).filter(|v| !v.is_empty()) {
            out.insert((*name).to_string(), v);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn from(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const EVERYTHING: &[(&str, &str)] = &[
        ("AWS_ENDPOINT_URL", "http://minio:9000"),
        ("LIFEBOAT_S3_PATH_STYLE", "true"),
        ("AWS_ACCESS_KEY_ID", "AKIA"),
        ("AWS_SECRET_ACCESS_KEY", "s3cret"),
        ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/token"),
        (
            "AZURE_STORAGE_CONNECTION_STRING",
            "UseDevelopmentStorage=true",
        ),
        ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/azure"),
        ("STORAGE_EMULATOR_HOST", "http://127.0.0.1:4443"),
        ("GOOGLE_APPLICATION_CREDENTIALS", "/home/me/sa.json"),
        ("LIFEBOAT_PASSWORD", "never forwarded from here"),
        ("HOME", "/root"),
    ];

    #[test]
    fn an_s3_compatible_store_hands_over_its_endpoint_and_static_keys_only() {
        let env = forwarded_env("s3://bucket/repo", from(EVERYTHING)).unwrap();
        let names: Vec<&str> = env.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "AWS_ACCESS_KEY_ID",
                "AWS_ENDPOINT_URL",
                "AWS_SECRET_ACCESS_KEY",
                "LIFEBOAT_S3_PATH_STYLE"
            ]
        );
        assert_eq!(env["AWS_ENDPOINT_URL"], "http://minio:9000");
    }

    #[test]
    fn a_roles_session_credentials_are_never_handed_over() {
        let mut vars = EVERYTHING.to_vec();
        vars.push(("AWS_SESSION_TOKEN", "IQoJb3JpZ2lu"));
        let env = forwarded_env("s3://bucket/repo", from(&vars)).unwrap();
        assert_eq!(
            env.keys().collect::<Vec<_>>(),
            ["AWS_ENDPOINT_URL", "LIFEBOAT_S3_PATH_STYLE"]
        );
    }

    #[test]
    fn azure_hands_over_its_connection_string_but_not_a_token_file() {
        let env = forwarded_env("azure://acct/c/p", from(EVERYTHING)).unwrap();
        assert_eq!(
            env.keys().collect::<Vec<_>>(),
            ["AZURE_STORAGE_CONNECTION_STRING"]
        );
    }

    #[test]
    fn gcs_hands_over_the_emulator_but_never_a_credentials_file_path() {
        let env = forwarded_env("gs://bucket/p", from(EVERYTHING)).unwrap();
        assert_eq!(env.keys().collect::<Vec<_>>(), ["STORAGE_EMULATOR_HOST"]);
    }

    #[test]
    fn a_local_directory_needs_nothing_and_empty_values_are_left_out() {
        assert!(forwarded_env("/srv/repo", from(EVERYTHING))
            .unwrap()
            .is_empty());
        let env = forwarded_env("s3://b/p", from(&[("AWS_ENDPOINT_URL", "")])).unwrap();
        assert!(env.is_empty());
        assert!(forwarded_env("ftp://x", from(&[])).is_err());
    }
}
