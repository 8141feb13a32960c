use crate::StoreError;
use std::path::PathBuf;

/// Where a repository lives, parsed from a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// A local directory: a plain path or `file:///path`.
    Local(PathBuf),
    /// `s3://bucket/prefix`: AWS S3 or any S3-compatible store (endpoint
    /// and path-style from the AWS configuration).
    S3 { bucket: String, prefix: String },
    /// `azure://account/container/prefix`: Azure Blob Storage.
    Azure {
        account: String,
        container: String,
        prefix: String,
    },
    /// `gs://bucket/prefix`: Google Cloud Storage.
    Gcs { bucket: String, prefix: String },
}

impl StoreUrl {
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let invalid = |reason: &str| StoreError::InvalidUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        if url.is_empty() {
            return Err(invalid("empty"));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = bucket_and_prefix(rest);
            if bucket.is_empty() {
                return Err(invalid("no bucket name after s3://"));
            }
            return Ok(StoreUrl::S3 { bucket, prefix });
        }
        if let Some(rest) = url.strip_prefix("gs://") {
            let (bucket, prefix) = bucket_and_prefix(rest);
            if bucket.is_empty() {
                return Err(invalid("no bucket name after gs://"));
            }
            return Ok(StoreUrl::Gcs { bucket, prefix });
        }
        if let Some(rest) = url.strip_prefix("azure://") {
            let (account, rest) = rest.split_once('/').unwrap_or((rest, ""));
            let (container, prefix) = bucket_and_prefix(rest);
            if account.is_empty() || container.is_empty() {
                return Err(invalid(
                    "azure:// URLs name the storage account and the container: azure://account/container/prefix",
                ));
            }
            return Ok(StoreUrl::Azure {
                account: account.to_string(),
                container,
                prefix,
            });
        }
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(invalid(
                    "file:// URLs need an absolute path (file:///srv/repo)",
                ));
            }
            return Ok(StoreUrl::Local(PathBuf::from(path)));
        }
        if let Some((scheme, _)) = url.split_once("://") {
            return Err(invalid(&format!(
                "unknown scheme {scheme:?}: use a path, file:///path, s3://bucket/prefix, azure://account/container/prefix or gs://bucket/prefix"
            )));
        }
        Ok(StoreUrl::Local(PathBuf::from(url)))
    }
}

fn bucket_and_prefix(rest: &str) -> (String, String) {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    (bucket.to_string(), prefix.trim_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!(
            StoreUrl::parse("/srv/repo").unwrap(),
            StoreUrl::Local("/srv/repo".into())
        );
        assert_eq!(
            StoreUrl::parse("file:///srv/repo").unwrap(),
            StoreUrl::Local("/srv/repo".into())
        );
        assert_eq!(
            StoreUrl::parse("s3://bkt/a/b/").unwrap(),
            StoreUrl::S3 {
                bucket: "bkt".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(
            StoreUrl::parse("s3://bkt").unwrap(),
            StoreUrl::S3 {
                bucket: "bkt".into(),
                prefix: "".into()
            }
        );
        assert_eq!(
            StoreUrl::parse("azure://acct/backups/team/a/").unwrap(),
            StoreUrl::Azure {
                account: "acct".into(),
                container: "backups".into(),
                prefix: "team/a".into()
            }
        );
        assert_eq!(
            StoreUrl::parse("gs://bkt/p").unwrap(),
            StoreUrl::Gcs {
                bucket: "bkt".into(),
                prefix: "p".into()
            }
        );
        for bad in [
            "",
            "s3://",
            "gs://",
            "gs:///p",
            "azure://acct",
            "azure://acct/",
            "azure:///c",
            "ftp://x",
            "file://rel",
        ] {
            assert!(StoreUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
