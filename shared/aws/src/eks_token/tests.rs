#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The token's exact format, with a fixed time and static credentials. The
//! expected signatures were computed independently with botocore's
//! `SigV4QueryAuth` (the signer behind `aws eks get-token`) for the same
//! request, time and credentials.

use super::*;
use std::collections::BTreeMap;
use std::time::UNIX_EPOCH;

const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const SESSION: &str = "FQoGZXIvYXdzEBYaDk/session+token=";
/// 2024-01-02T03:04:05Z
const NOW_SECS: u64 = 1_704_164_645;
const SIGNATURE: &str = "0bc8f3cd7732102f49a45d3a7791b07c805cb243097ef77b93e97ec8a099db48";
const SIGNATURE_WITH_SESSION: &str =
    "680c187cf3e8bc24538d4cb2421620e4c682d5128b18c195ac931167b9a1b341";

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_SECS)
}

fn creds(session: Option<&str>) -> Credentials {
    Credentials::new(AKID, SECRET, session.map(str::to_string), None, "test")
}

fn token(session: Option<&str>) -> EksToken {
    presign(
        &creds(session),
        "eu-west-1",
        &regional_sts_endpoint("eu-west-1"),
        "shop-prod",
        now(),
    )
    .unwrap()
}

/// The URL inside a token.
fn decode(token: &str) -> String {
    let body = token
        .strip_prefix(TOKEN_PREFIX)
        .expect("the k8s-aws-v1. prefix");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body)
        .expect("unpadded base64url");
    String::from_utf8(bytes).unwrap()
}

fn percent_decode(s: &str) -> String {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// The URL before `?` and its decoded query parameters.
fn split(url: &str) -> (String, BTreeMap<String, String>) {
    let (base, query) = url.split_once('?').unwrap();
    let mut params = BTreeMap::new();
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap();
        assert!(
            params.insert(k.to_string(), percent_decode(v)).is_none(),
            "{k} twice"
        );
    }
    (base.to_string(), params)
}

#[test]
fn token_is_the_prefix_and_unpadded_base64url() {
    let t = token(None);
    let s = t.as_str();
    assert!(s.starts_with("k8s-aws-v1."), "{s}");
    let body = &s[TOKEN_PREFIX.len()..];
    assert!(!body.contains('='), "padding in {body}");
    assert!(
        body.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "not base64url: {body}"
    );
}

#[test]
fn url_is_a_presigned_get_caller_identity_for_the_cluster() {
    let url = decode(token(None).as_str());
    assert!(
        url.starts_with(
            "https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&"
        ),
        "{url}"
    );
    let (base, p) = split(&url);
    assert_eq!(base, "https://sts.eu-west-1.amazonaws.com/");
    assert_eq!(p["Action"], "GetCallerIdentity");
    assert_eq!(p["Version"], "2011-06-15");
    assert_eq!(p["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
    assert_eq!(
        p["X-Amz-Credential"],
        "AKIDEXAMPLE/20240102/eu-west-1/sts/aws4_request"
    );
    assert_eq!(p["X-Amz-Date"], "20240102T030405Z");
    assert_eq!(p["X-Amz-Expires"], "60");
    assert_eq!(p["X-Amz-SignedHeaders"], "host;x-k8s-aws-id");
    assert_eq!(p["X-Amz-Signature"], SIGNATURE);
    assert!(!p.contains_key("X-Amz-Security-Token"));
    // Nothing aws-iam-authenticator's verifier would refuse.
    let allowed = [
        "action",
        "version",
        "x-amz-algorithm",
        "x-amz-credential",
        "x-amz-date",
        "x-amz-expires",
        "x-amz-security-token",
        "x-amz-signature",
        "x-amz-signedheaders",
    ];
    for k in p.keys() {
        assert!(allowed.contains(&k.to_lowercase().as_str()), "{k}");
    }
}

#[test]
fn session_token_is_carried_and_signed() {
    let url = decode(token(Some(SESSION)).as_str());
    let (_, p) = split(&url);
    assert_eq!(p["X-Amz-Security-Token"], SESSION);
    assert_eq!(p["X-Amz-Signature"], SIGNATURE_WITH_SESSION);
    // Reserved characters of the session token are escaped in the URL.
    assert!(
        url.contains("X-Amz-Security-Token=FQoGZXIvYXdzEBYaDk%2Fsession%2Btoken%3D"),
        "{url}"
    );
}

#[test]
fn same_inputs_same_token_other_cluster_other_signature() {
    assert_eq!(token(None).as_str(), token(None).as_str());
    let other = presign(
        &creds(None),
        "eu-west-1",
        &regional_sts_endpoint("eu-west-1"),
        "shop-dr",
        now(),
    )
    .unwrap();
    let (_, a) = split(&decode(token(None).as_str()));
    let (_, b) = split(&decode(other.as_str()));
    assert_ne!(a["X-Amz-Signature"], b["X-Amz-Signature"]);
}

#[test]
fn expiry_is_fourteen_minutes_after_signing() {
    assert_eq!(
        token(None).expires_at(),
        now() + Duration::from_secs(14 * 60)
    );
}

#[test]
fn debug_does_not_show_the_token() {
    let t = token(Some(SESSION));
    let shown = format!("{t:?}");
    assert!(
        !shown.contains(&t.as_str()[TOKEN_PREFIX.len()..]),
        "{shown}"
    );
    assert!(shown.contains("redacted"), "{shown}");
}

#[test]
fn a_configured_endpoint_is_signed_as_given() {
    let t = presign(
        &creds(None),
        "us-east-1",
        "http://127.0.0.1:5000",
        "shop-prod",
        now(),
    )
    .unwrap();
    let (base, p) = split(&decode(t.as_str()));
    assert_eq!(base, "http://127.0.0.1:5000/");
    assert_eq!(
        p["X-Amz-Credential"],
        "AKIDEXAMPLE/20240102/us-east-1/sts/aws4_request"
    );
}

#[test]
fn regional_endpoints_follow_the_partition() {
    assert_eq!(
        regional_sts_endpoint("us-east-1"),
        "https://sts.us-east-1.amazonaws.com/"
    );
    assert_eq!(
        regional_sts_endpoint("cn-north-1"),
        "https://sts.cn-north-1.amazonaws.com.cn/"
    );
    assert_eq!(
        regional_sts_endpoint("us-iso-east-1"),
        "https://sts.us-iso-east-1.c2s.ic.gov/"
    );
}

#[test]
fn an_empty_cluster_name_is_refused() {
    let e = presign(&creds(None), "us-east-1", "https://x/", "", now()).unwrap_err();
    assert!(matches!(e, AwsError::InvalidInput(_)), "{e}");
}

#[test]
fn the_endpoint_comes_from_configuration() {
    let sdk = SdkConfig::builder()
        .endpoint_url("http://127.0.0.1:5000")
        .build();
    assert_eq!(sts_endpoint(&sdk, "us-east-1"), "http://127.0.0.1:5000");
    let sdk = SdkConfig::builder().build();
    assert_eq!(
        sts_endpoint(&sdk, "eu-west-1"),
        "https://sts.eu-west-1.amazonaws.com/"
    );
}
