//! Keeping secrets out of logs and errors: a wrapper whose `Debug` hides its
//! value, and a scrubber for text that may quote a URL with a SAS signature.

use std::fmt;

/// A secret string (account key, SAS token, client secret, bearer token).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: &str) -> Secret {
        Secret(value.to_string())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Secret bytes (a decoded account key).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    pub fn new(value: Vec<u8>) -> SecretBytes {
        SecretBytes(value)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Query parameters whose values are credentials.
const SECRET_PARAMS: [&str; 3] = ["sig=", "client_secret=", "client_assertion="];

/// `text` with the values of SAS signatures and OAuth secrets replaced, and
/// any bearer or shared-key authorization cut, so it can be logged or put in
/// an error.
pub fn scrub(text: &str) -> String {
    let mut out = text.to_string();
    for param in SECRET_PARAMS {
        out = replace_values(&out, param);
    }
    for scheme in ["Bearer ", "SharedKey "] {
        out = replace_values(&out, scheme);
    }
    out
}

fn replace_values(text: &str, marker: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let marker_lower = marker.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    while let Some(found) = lower[pos..].find(&marker_lower) {
        let start = pos + found + marker.len();
        out.push_str(&text[pos..start]);
        out.push_str("REDACTED");
        let rest = &text[start..];
        let end = rest
            .find(|c: char| c == '&' || c == '"' || c == '\'' || c.is_whitespace())
            .unwrap_or(rest.len());
        pos = start + end;
    }
    out.push_str(&text[pos..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_and_tokens_are_scrubbed() {
        let t = scrub("GET https://a.blob.core.windows.net/c/k?sv=2022&SIG=abc%2F= failed");
        assert_eq!(
            t,
            "GET https://a.blob.core.windows.net/c/k?sv=2022&SIG=REDACTED failed"
        );
        assert_eq!(
            scrub("client_secret=shh&scope=x"),
            "client_secret=REDACTED&scope=x"
        );
        assert_eq!(
            scrub("Authorization: Bearer eyJ0 next"),
            "Authorization: Bearer REDACTED next"
        );
        assert_eq!(scrub("nothing here"), "nothing here");
        assert_eq!(format!("{:?}", Secret::new("k")), "<redacted>");
    }
}
