//! Keys under a store's prefix, the same for every bucket-shaped store.

use crate::StoreError;

/// The backend's name for `key` under `prefix` (already trimmed of
/// slashes; empty for the bucket or container root).
pub fn join_key(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}/{key}")
    }
}

/// Refuse a key that is empty or absolute, naming it and the store.
pub fn check_key(location: &str, key: &str) -> Result<(), StoreError> {
    if key.is_empty() || key.starts_with('/') {
        return Err(StoreError::Backend {
            location: location.to_string(),
            key: key.to_string(),
            detail: "invalid object key".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_join_under_a_prefix_and_bad_keys_are_named() {
        assert_eq!(join_key("", "config"), "config");
        assert_eq!(join_key("a/b", "config"), "a/b/config");
        assert_eq!(join_key("a/b", ""), "a/b/");
        assert!(check_key("s3://b", "data/x").is_ok());
        for bad in ["", "/abs"] {
            let e = check_key("s3://b", bad).unwrap_err();
            assert!(e.to_string().contains("s3://b"), "{e}");
        }
    }
}
