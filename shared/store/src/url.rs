use crate::StoreError;
use std::path::PathBuf;

/// Where a repository lives, parsed from a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// A local directory: a plain path or `file:///path`.
    Local(PathBuf),
    /// `s3://bucket/prefix`.
    S3 { bucket: String, prefix: String },
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
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(invalid("no bucket name after s3://"));
            }
            return Ok(StoreUrl::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
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
                "unknown scheme {scheme:?}: use a path, file:///path or s3://bucket/prefix"
            )));
        }
        Ok(StoreUrl::Local(PathBuf::from(url)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
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
        for bad in ["", "s3://", "gs://x", "file://rel"] {
            assert!(StoreUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
