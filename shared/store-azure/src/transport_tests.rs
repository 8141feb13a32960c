//! The wire requests the transport builds: URL, SAS, headers, authorization.
//! The retry decisions are `lifeboat-store-http`'s, tested there.

#![allow(clippy::unwrap_used)]
use super::*;
use lifeboat_store_http::http_client;

fn transport(auth: Auth) -> Transport {
    Transport {
        client: http_client().unwrap(),
        origin: "http://127.0.0.1:9".into(),
        base_path: "/acct".into(),
        account: "acct".into(),
        auth,
        retry: RetryPolicy::default(),
        timeout: Duration::from_secs(300),
    }
}

fn list_request() -> BlobRequest {
    BlobRequest::new(Method::GET, "/c".into())
        .query("restype", "container")
        .query("prefix", "p/a b&c")
}

#[tokio::test]
async fn a_sas_goes_on_every_url_and_nothing_else_authorizes() {
    let t = transport(Auth::Sas {
        token: Secret::new("sv=2022-11-02&sp=racwdl&sig=c2ln%3D"),
    });
    let req = t.build(&list_request()).await.unwrap();
    assert_eq!(
        req.uri().to_string(),
        "http://127.0.0.1:9/acct/c?restype=container&prefix=p%2Fa%20b%26c&sv=2022-11-02&sp=racwdl&sig=c2ln%3D"
    );
    assert!(req.headers().get(AUTHORIZATION).is_none());
    assert_eq!(req.headers()["x-ms-version"], API_VERSION);
    assert!(req.headers().contains_key("x-ms-date"));
}

#[tokio::test]
async fn shared_key_signs_the_path_with_the_account() {
    let key = Arc::new(SecretBytes::new(b"k".to_vec()));
    let t = transport(Auth::SharedKey { key });
    let req = t.build(&list_request()).await.unwrap();
    let auth = req.headers()[AUTHORIZATION].to_str().unwrap().to_string();
    let s = signing::string_to_sign(
        &Method::GET,
        req.headers(),
        "acct",
        "/acct/c",
        &list_request().query,
    );
    assert_eq!(auth, signing::authorization("acct", b"k", &s));
    assert!(
        s.ends_with("/acct/acct/c\nprefix:p/a b&c\nrestype:container"),
        "{s}"
    );
    assert!(req.headers()[AUTHORIZATION].is_sensitive());
}

#[tokio::test]
async fn an_entra_token_is_sent_as_bearer() {
    use crate::credentials::{ClientProof, EntraCredentials};
    let (url, _) = crate::entra::tests::token_server(vec![(
        200,
        r#"{"expires_in":3600,"access_token":"tok-x"}"#.into(),
    )])
    .await;
    let source = TokenSource::new(
        EntraCredentials {
            tenant_id: "t".into(),
            client_id: "c".into(),
            proof: ClientProof::Secret(Secret::new("s")),
            authority_host: url,
        },
        http_client().unwrap(),
    );
    let t = transport(Auth::Bearer(Arc::new(source)));
    let req = t.build(&list_request()).await.unwrap();
    assert_eq!(req.headers()[AUTHORIZATION], "Bearer tok-x");
    assert!(!req.uri().to_string().contains("sig="));
}

#[test]
fn paths_keep_slashes_and_encode_the_rest() {
    assert_eq!(
        encode_path("/c/p/data/ab cd+é"),
        "/c/p/data/ab%20cd%2B%C3%A9"
    );
}
