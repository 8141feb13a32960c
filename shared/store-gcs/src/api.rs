//! URLs of the Cloud Storage JSON API
//! (<https://cloud.google.com/storage/docs/json_api>).

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// The production endpoint.
pub const GOOGLE_ENDPOINT: &str = "https://storage.googleapis.com";

/// Everything but RFC 3986's unreserved characters is escaped: object names
/// hold `/`, which must be `%2F` inside the path segment.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub(crate) fn encode(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

/// The URLs of one bucket at one endpoint.
#[derive(Debug, Clone)]
pub(crate) struct Api {
    /// Scheme and host, without a trailing slash.
    endpoint: String,
    bucket: String,
}

impl Api {
    pub(crate) fn new(endpoint: &str, bucket: &str) -> Api {
        Api {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            bucket: bucket.to_string(),
        }
    }

    pub(crate) fn bucket(&self) -> String {
        format!("{}/storage/v1/b/{}", self.endpoint, encode(&self.bucket))
    }

    /// An object's metadata (GET, PATCH, DELETE).
    pub(crate) fn object(&self, name: &str) -> String {
        format!("{}/o/{}", self.bucket(), encode(name))
    }

    /// An object's bytes.
    pub(crate) fn media(&self, name: &str) -> String {
        format!("{}?alt=media", self.object(name))
    }

    /// A page of at most `page_size` objects under `prefix`.
    pub(crate) fn list(&self, prefix: &str, page_size: u32, page_token: Option<&str>) -> String {
        let mut url = format!(
            "{}/o?prefix={}&maxResults={page_size}&fields=items(name,size,updated),nextPageToken",
            self.bucket(),
            encode(prefix)
        );
        if let Some(token) = page_token {
            url.push_str("&pageToken=");
            url.push_str(&encode(token));
        }
        url
    }

    /// An upload: `kind` is `multipart` or `resumable`; `create_only` adds
    /// `ifGenerationMatch=0` (fail with 412 when the object exists).
    pub(crate) fn upload(&self, kind: &str, create_only: bool) -> String {
        let mut url = format!(
            "{}/upload/storage/v1/b/{}/o?uploadType={kind}",
            self.endpoint,
            encode(&self.bucket)
        );
        if create_only {
            url.push_str("&ifGenerationMatch=0");
        }
        url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_one_escaped_path_segment() {
        let api = Api::new("https://storage.googleapis.com/", "my-bkt");
        assert_eq!(
            api.object("repo/data/ab/ab12 x+y"),
            "https://storage.googleapis.com/storage/v1/b/my-bkt/o/repo%2Fdata%2Fab%2Fab12%20x%2By"
        );
        assert_eq!(
            api.media("a~b_c.d-e"),
            "https://storage.googleapis.com/storage/v1/b/my-bkt/o/a~b_c.d-e?alt=media"
        );
    }

    #[test]
    fn uploads_and_listings_carry_their_parameters() {
        let api = Api::new("http://127.0.0.1:4443", "b");
        assert_eq!(
            api.upload("multipart", true),
            "http://127.0.0.1:4443/upload/storage/v1/b/b/o?uploadType=multipart&ifGenerationMatch=0"
        );
        assert_eq!(
            api.upload("resumable", false),
            "http://127.0.0.1:4443/upload/storage/v1/b/b/o?uploadType=resumable"
        );
        assert_eq!(
            api.list("p/keys/", 1000, Some("tok/=")),
            "http://127.0.0.1:4443/storage/v1/b/b/o?prefix=p%2Fkeys%2F&maxResults=1000&fields=items(name,size,updated),nextPageToken&pageToken=tok%2F%3D"
        );
    }
}
