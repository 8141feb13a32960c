//! The JWT a service account signs to ask for a token (RFC 7523 bearer
//! grant, RS256 with aws-lc-rs).

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::json;
use std::sync::Arc;

/// How long a requested token may live (Google's maximum).
pub(crate) const JWT_LIFETIME_SECS: i64 = 3600;

/// An RSA private key from a service-account file.
#[derive(Clone)]
pub(crate) struct SigningKey(Arc<RsaKeyPair>);

impl SigningKey {
    /// The key of a `-----BEGIN PRIVATE KEY-----` (PKCS#8) PEM block.
    pub(crate) fn from_pem(pem: &str) -> Result<SigningKey, String> {
        let der = pem_body(pem, "PRIVATE KEY")?;
        SigningKey::from_pkcs8(&der)
    }

    pub(crate) fn from_pkcs8(der: &[u8]) -> Result<SigningKey, String> {
        RsaKeyPair::from_pkcs8(der)
            .map(|k| SigningKey(Arc::new(k)))
            .map_err(|e| format!("the private key is not a usable RSA PKCS#8 key: {e}"))
    }

    /// `header.claims.signature`, each base64url without padding.
    pub(crate) fn sign_jwt(
        &self,
        key_id: &str,
        claims: &serde_json::Value,
    ) -> Result<String, String> {
        let mut header = json!({"alg": "RS256", "typ": "JWT"});
        if !key_id.is_empty() {
            header["kid"] = json!(key_id);
        }
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0u8; self.0.public_modulus_len()];
        self.0
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| "signing the token request failed".to_string())?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }

    #[cfg(test)]
    pub(crate) fn public_key(&self) -> Vec<u8> {
        use aws_lc_rs::signature::KeyPair;
        self.0.public_key().as_ref().to_vec()
    }
}

/// The claims of a service account's token request.
pub(crate) fn service_account_claims(
    email: &str,
    scope: &str,
    audience: &str,
    now: DateTime<Utc>,
) -> serde_json::Value {
    let iat = now.timestamp();
    json!({
        "iss": email,
        "scope": scope,
        "aud": audience,
        "iat": iat,
        "exp": iat + JWT_LIFETIME_SECS,
    })
}

/// The DER bytes of the PEM block labelled `label`.
fn pem_body(pem: &str, label: &str) -> Result<Vec<u8>, String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem
        .find(&begin)
        .ok_or_else(|| format!("private_key holds no {begin} block"))?
        + begin.len();
    let stop = pem[start..]
        .find(&end)
        .ok_or_else(|| format!("private_key's PEM block has no {end} line"))?
        + start;
    let b64: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD
        .decode(b64)
        .map_err(|e| format!("private_key's PEM block is not base64: {e}"))
}

#[cfg(test)]
pub(crate) mod testing {
    //! A fresh RSA key for tests, as a service-account file would hold it.
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rsa::KeySize;

    #[allow(clippy::expect_used)]
    pub(crate) fn new_key_pem() -> String {
        let key = RsaKeyPair::generate(KeySize::Rsa2048).expect("an RSA key");
        let der = key.as_der().expect("PKCS#8 DER");
        let b64 = STANDARD.encode(der.as_ref());
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .filter_map(|c| std::str::from_utf8(c).ok())
            .collect();
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use aws_lc_rs::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};

    #[test]
    fn a_signed_jwt_verifies_with_the_public_half() {
        let key = SigningKey::from_pem(&testing::new_key_pem()).unwrap();
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let claims = service_account_claims("sa@p.iam", "scope-x", "http://t/token", now);
        let jwt = key.sign_jwt("kid-1", &claims).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(
            header,
            json!({"alg": "RS256", "typ": "JWT", "kid": "kid-1"})
        );
        let body: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(body["exp"], json!(1_800_003_600));
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let public = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key.public_key());
        let signed = format!("{}.{}", parts[0], parts[1]);
        public.verify(signed.as_bytes(), &sig).unwrap();
        // A changed claim no longer verifies.
        assert!(public.verify(b"x.y", &sig).is_err());
    }

    #[test]
    fn bad_keys_are_refused_with_the_reason() {
        let no_block = SigningKey::from_pem("nothing").err().unwrap();
        assert!(no_block.contains("BEGIN PRIVATE KEY"), "{no_block}");
        let not_rsa =
            SigningKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")
                .err()
                .unwrap();
        assert!(not_rsa.contains("RSA PKCS#8"), "{not_rsa}");
    }
}
