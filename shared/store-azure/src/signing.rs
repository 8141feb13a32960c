//! Shared Key authorization of Blob service requests, exactly as
//! "Authorize with Shared Key" documents it (the string-to-sign of version
//! 2015-02-21 and later: an empty `Content-Length` for a zero-length body).

use aws_lc_rs::hmac;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use http::{HeaderMap, Method};

/// The standard headers of the string-to-sign, in their order.
const SIGNED_HEADERS: [&str; 11] = [
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
];

/// The string a Shared Key signature covers.
///
/// `path` is the request's URI path as sent (percent-encoded, starting with
/// `/`; for the emulator's path-style endpoint it starts with the account
/// name); `query` holds the decoded query parameters.
pub(crate) fn string_to_sign(
    method: &Method,
    headers: &HeaderMap,
    account: &str,
    path: &str,
    query: &[(String, String)],
) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(method.as_str());
    out.push('\n');
    for name in SIGNED_HEADERS {
        let value = header(headers, name);
        // Since 2015-02-21 a zero Content-Length is signed as the empty string.
        if !(name == "content-length" && value == "0") {
            out.push_str(&value);
        }
        out.push('\n');
    }
    out.push_str(&canonicalized_headers(headers));
    out.push_str(&canonicalized_resource(account, path, query));
    out
}

/// Base64 of HMAC-SHA256 over `string_to_sign` with the decoded account key.
pub(crate) fn signature(account_key: &[u8], string_to_sign: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, account_key);
    BASE64.encode(hmac::sign(&key, string_to_sign.as_bytes()).as_ref())
}

/// The `Authorization` header value for a request.
pub(crate) fn authorization(account: &str, account_key: &[u8], string_to_sign: &str) -> String {
    format!(
        "SharedKey {account}:{}",
        signature(account_key, string_to_sign)
    )
}

/// Every value of header `name`, comma-joined (the service sees them so).
fn header(headers: &HeaderMap, name: &str) -> String {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    values.join(",")
}

/// `x-ms-*` headers, lower-cased, sorted by name, one `name:value\n` each,
/// values with their white space unfolded and trimmed.
fn canonicalized_headers(headers: &HeaderMap) -> String {
    let mut names: Vec<&str> = headers
        .keys()
        .map(|k| k.as_str())
        .filter(|k| k.starts_with("x-ms-"))
        .collect();
    names.sort_unstable();
    names.dedup();
    let mut out = String::new();
    for name in names {
        let value = header(headers, name);
        let unfolded = value.split_whitespace().collect::<Vec<_>>().join(" ");
        out.push_str(name);
        out.push(':');
        out.push_str(&unfolded);
        out.push('\n');
    }
    out
}

/// `/account/path`, then `\nname:value` per query parameter: names lower-cased
/// and sorted, the values of a repeated name sorted and comma-joined.
fn canonicalized_resource(account: &str, path: &str, query: &[(String, String)]) -> String {
    let mut out = format!("/{account}{path}");
    let mut params: Vec<(String, &str)> = query
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str()))
        .collect();
    params.sort();
    let mut i = 0;
    while i < params.len() {
        let name = params[i].0.clone();
        let mut values = Vec::new();
        while i < params.len() && params[i].0 == name {
            values.push(params[i].1);
            i += 1;
        }
        out.push('\n');
        out.push_str(&name);
        out.push(':');
        out.push_str(&values.join(","));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    /// The documented layout: verb, eleven standard headers (Content-Length
    /// empty when zero), canonicalized headers, then the resource with its
    /// sorted query parameters (the documentation's own list-blobs example).
    #[test]
    fn the_string_to_sign_follows_the_documentation() {
        let h = headers(&[
            ("x-ms-version", "2015-02-21"),
            ("x-ms-date", "Fri, 26 Jun 2015 23:39:12 GMT"),
            ("content-length", "0"),
            ("x-ms-meta-m1", "  v1   with  spaces "),
        ]);
        let query = [
            ("restype".to_string(), "container".to_string()),
            ("comp".to_string(), "metadata".to_string()),
        ];
        let s = string_to_sign(&Method::GET, &h, "myaccount", "/mycontainer", &query);
        assert_eq!(
            s,
            "GET\n\n\n\n\n\n\n\n\n\n\n\n\
             x-ms-date:Fri, 26 Jun 2015 23:39:12 GMT\n\
             x-ms-meta-m1:v1 with spaces\n\
             x-ms-version:2015-02-21\n\
             /myaccount/mycontainer\ncomp:metadata\nrestype:container"
        );
        // The documentation's example of a repeated parameter and of a path-style (emulator) URL.
        let query = [
            ("comp".to_string(), "list".to_string()),
            ("include".to_string(), "metadata".to_string()),
            ("include".to_string(), "snapshots".to_string()),
            ("include".to_string(), "uncommittedblobs".to_string()),
            ("restype".to_string(), "container".to_string()),
        ];
        assert_eq!(
            canonicalized_resource("devstoreaccount1", "/devstoreaccount1/mycontainer", &query),
            "/devstoreaccount1/devstoreaccount1/mycontainer\ncomp:list\n\
             include:metadata,snapshots,uncommittedblobs\nrestype:container"
        );
    }

    #[test]
    fn a_put_signs_its_length_and_condition() {
        let h = headers(&[
            ("content-length", "11"),
            ("content-type", "application/octet-stream"),
            ("if-none-match", "*"),
            ("x-ms-blob-type", "BlockBlob"),
            ("x-ms-date", "Tue, 01 Dec 2026 10:00:00 GMT"),
            ("x-ms-version", "2025-01-05"),
        ]);
        let s = string_to_sign(&Method::PUT, &h, "acct", "/c/p/data%20x", &[]);
        assert_eq!(
            s,
            "PUT\n\n\n11\n\napplication/octet-stream\n\n\n\n*\n\n\n\
             x-ms-blob-type:BlockBlob\n\
             x-ms-date:Tue, 01 Dec 2026 10:00:00 GMT\n\
             x-ms-version:2025-01-05\n\
             /acct/c/p/data%20x"
        );
    }

    /// A signature computed independently (Python: base64(hmac.new(key,
    /// msg, sha256).digest())) with Azurite's well-known development key.
    #[test]
    fn the_signature_matches_an_independent_hmac() {
        let key = BASE64
            .decode("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==")
            .unwrap();
        let s = "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Fri, 26 Jun 2015 23:39:12 GMT\nx-ms-version:2015-02-21\n/devstoreaccount1/devstoreaccount1/c\nrestype:container";
        assert_eq!(signature(&key, s), KNOWN_SIGNATURE);
        assert_eq!(
            authorization("devstoreaccount1", &key, s),
            format!("SharedKey devstoreaccount1:{KNOWN_SIGNATURE}")
        );
    }

    const KNOWN_SIGNATURE: &str = "8hSU2OXHg9ygQTAJtuSnRd380pNp4K26oo/X1ORn05k=";
}
