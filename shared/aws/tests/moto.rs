//! lifeboat-aws against moto in server mode on 127.0.0.1: EKS (DescribeCluster
//! and the token's presigned STS URL), Secrets Manager, Step Functions, SQS
//! and SNS.
//!
//! Start moto first: `tests/substrate/aws up && cargo test -p lifeboat-aws`.
//! Like every test that needs moto, these fail (with how to start it) when it
//! is not running. Every test makes its own resources with unique names, so
//! reruns against the same server do not collide.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use base64::Engine;
use lifeboat_aws::{eks_token, AwsError};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU32, Ordering};

fn env_value(env: &[(String, String)], key: &str) -> String {
    env.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("{key} is not in target/substrate/aws.env"))
}

/// The environment `tests/substrate/aws up` wrote for moto.
///
/// `lifeboat_tests::aws_env()` finds the workspace as the parent of the
/// package under test, which holds for `cli/` and `tests/` but not for this
/// package two levels down (`shared/aws/`); so the file is found here by
/// walking up to the directory that has `tests/substrate/aws`, and read the
/// same way. Like `aws_env()`, this fails with how to start moto.
fn moto_env() -> Vec<(String, String)> {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let root = manifest_dir
        .ancestors()
        .find(|d| d.join("tests").join("substrate").join("aws").is_file())
        .unwrap_or_else(|| panic!("no workspace above {}", manifest_dir.display()))
        .to_path_buf();
    let path = root.join("target").join("substrate").join("aws.env");
    match std::fs::read_to_string(&path) {
        Ok(text) => lifeboat_tests::parse_env(&text),
        Err(e) => panic!(
            "moto is not running: start it with tests/substrate/aws up [{}: {e}]",
            path.display()
        ),
    }
}

/// An SdkConfig pointed at moto, with a session token so that presigning
/// carries one, as it does in Lambda.
async fn sdk() -> SdkConfig {
    let env = moto_env();
    let credentials = Credentials::new(
        env_value(&env, "AWS_ACCESS_KEY_ID"),
        env_value(&env, "AWS_SECRET_ACCESS_KEY"),
        Some("moto-session-token/+=".to_string()),
        None,
        "lifeboat-aws-tests",
    );
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(env_value(&env, "AWS_REGION")))
        .endpoint_url(env_value(&env, "AWS_ENDPOINT_URL"))
        .credentials_provider(credentials)
        .load()
        .await
}

/// A name no earlier run on the same server has used.
fn unique(tag: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("lb-{tag}-{}-{n}-{nanos}", std::process::id())
}

/// The decoded query parameters of `url`.
fn query(url: &str) -> BTreeMap<String, String> {
    let (_, q) = url.split_once('?').unwrap();
    q.split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap();
            (k.to_string(), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap(), 16).unwrap(),
            );
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// A plain HTTP/1.1 GET of `url` (http only), with extra headers; returns the
/// status code and the body. No HTTP client crate is in the tree, and moto
/// needs nothing more than this.
fn http_get(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap());
    let mut conn = std::net::TcpStream::connect(authority).unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    conn.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

async fn create_eks_cluster(sdk: &SdkConfig, name: &str) {
    aws_sdk_eks::Client::new(sdk)
        .create_cluster()
        .name(name)
        .role_arn("arn:aws:iam::123456789012:role/lifeboat-eks")
        .resources_vpc_config(aws_sdk_eks::types::VpcConfigRequest::builder().build())
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn eks_cluster_is_described_and_its_token_is_a_working_presigned_sts_url() {
    let sdk = sdk().await;
    let name = unique("eks");
    create_eks_cluster(&sdk, &name).await;

    let ep = lifeboat_aws::describe_cluster(&sdk, &name).await.unwrap();
    assert!(ep.endpoint.starts_with("https://"), "{ep:?}");
    assert!(!ep.ca_pem.is_empty(), "{ep:?}");
    assert!(ep.arn.ends_with(&format!(":cluster/{name}")), "{ep:?}");

    let token = eks_token::get_token(&sdk, &name).await.unwrap();
    let body = token.as_str().strip_prefix("k8s-aws-v1.").unwrap();
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body)
        .unwrap();
    let url = String::from_utf8(url).unwrap();
    // The endpoint from configuration (moto), not sts.us-east-1.amazonaws.com.
    let endpoint = env_value(&moto_env(), "AWS_ENDPOINT_URL");
    assert!(
        url.starts_with(&format!(
            "{endpoint}/?Action=GetCallerIdentity&Version=2011-06-15&"
        )),
        "{url}"
    );
    let q = query(&url);
    assert_eq!(q["X-Amz-SignedHeaders"], "host;x-k8s-aws-id");
    assert_eq!(q["X-Amz-Expires"], "60");
    assert_eq!(q["X-Amz-Security-Token"], "moto-session-token/+=");
    assert!(
        q["X-Amz-Credential"].ends_with("/us-east-1/sts/aws4_request"),
        "{q:?}"
    );

    // What the cluster's authenticator does: GET the URL with the cluster
    // header. moto (server mode) routes a request to a service by the
    // credential scope of its Authorization header, and a presigned URL has
    // none (its scope is in X-Amz-Credential), so moto would take it for S3.
    // The test adds an Authorization header with the URL's own scope to route
    // it; moto checks no signature either way. The URL itself is sent as is.
    let routing = format!(
        "AWS4-HMAC-SHA256 Credential={}, SignedHeaders=host;x-k8s-aws-id, Signature={}",
        q["X-Amz-Credential"], q["X-Amz-Signature"]
    );
    let (status, body) = http_get(
        &url,
        &[("x-k8s-aws-id", &name), ("Authorization", &routing)],
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<GetCallerIdentityResult>"), "{body}");
    assert!(body.contains("<Arn>arn:aws:"), "{body}");
}

#[tokio::test]
async fn a_missing_eks_cluster_is_not_found_and_named() {
    let sdk = sdk().await;
    let name = unique("absent");
    let e = lifeboat_aws::describe_cluster(&sdk, &name)
        .await
        .unwrap_err();
    assert!(matches!(e, AwsError::NotFound { .. }), "{e:?}");
    assert!(!e.is_retryable());
    let m = e.to_string();
    assert!(m.contains(&name) && m.contains("us-east-1"), "{m}");
    let e = lifeboat_aws::connect_eks(&sdk, &name).await.unwrap_err();
    assert!(matches!(e, AwsError::NotFound { .. }), "{e:?}");
}

#[tokio::test]
async fn connect_eks_hands_the_endpoint_and_ca_to_the_kube_client() {
    // moto's certificateAuthority.data is random base64, not a certificate,
    // so the connection stops at the CA check, naming the cluster: that shows
    // describe + token + Cluster::with_token are joined. (The token and CA
    // handling are tested against a real certificate in lifeboat-kube.)
    let sdk = sdk().await;
    let name = unique("connect");
    create_eks_cluster(&sdk, &name).await;
    let e = lifeboat_aws::connect_eks(&sdk, &name).await.unwrap_err();
    let m = e.to_string();
    assert!(matches!(e, AwsError::Cluster { .. }), "{e:?}");
    assert!(m.contains(&name) && m.contains("no PEM certificate"), "{m}");
}

#[tokio::test]
async fn secrets_round_trip() {
    let sdk = sdk().await;
    let admin = aws_sdk_secretsmanager::Client::new(&sdk);
    let name = unique("secret");
    let value = "apiVersion: v1\nkind: Config\n# passphrase: correct horse\n";
    admin
        .create_secret()
        .name(&name)
        .secret_string(value)
        .send()
        .await
        .unwrap();
    assert_eq!(
        lifeboat_aws::get_secret_string(&sdk, &name).await.unwrap(),
        value
    );

    let binary = unique("binary");
    admin
        .create_secret()
        .name(&binary)
        .secret_binary(aws_sdk_secretsmanager::primitives::Blob::new("in binary"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        lifeboat_aws::get_secret_string(&sdk, &binary)
            .await
            .unwrap(),
        "in binary"
    );

    let missing = unique("missing");
    let e = lifeboat_aws::get_secret_string(&sdk, &missing)
        .await
        .unwrap_err();
    assert!(matches!(e, AwsError::NotFound { .. }), "{e:?}");
    assert!(e.to_string().contains(&missing), "{e}");
}

async fn create_state_machine(sdk: &SdkConfig) -> String {
    let definition = r#"{"StartAt":"Done","States":{"Done":{"Type":"Pass","End":true}}}"#;
    aws_sdk_sfn::Client::new(sdk)
        .create_state_machine()
        .name(unique("sm"))
        .definition(definition)
        .role_arn("arn:aws:iam::123456789012:role/lifeboat-sfn")
        .send()
        .await
        .unwrap()
        .state_machine_arn()
        .to_string()
}

#[tokio::test]
async fn an_execution_name_starts_one_execution() {
    let sdk = sdk().await;
    let sm = create_state_machine(&sdk).await;
    let name = lifeboat_aws::execution_name(&format!("deploy 4711 {}", unique("key")));
    let input = r#"{"version":1,"action":"backup","cluster":"shop-prod"}"#;

    let first = lifeboat_aws::start_execution(&sdk, &sm, &name, input)
        .await
        .unwrap();
    assert!(!first.already_started);
    assert_eq!(
        first.execution_arn,
        lifeboat_aws::sfn::execution_arn(&sm, &name).unwrap()
    );

    // Same name, other input: Step Functions refuses (ExecutionAlreadyExists),
    // and so does the starter: the key was reused for a different request.
    let other_input =
        r#"{"version":1,"action":"backup","cluster":"shop-prod","tags":{"retry":"1"}}"#;
    let reused = lifeboat_aws::start_execution(&sdk, &sm, &name, other_input)
        .await
        .unwrap_err();
    assert!(
        matches!(reused, lifeboat_aws::AwsError::InvalidInput(_)),
        "{reused:?}"
    );
    assert!(
        reused.to_string().contains("different request") && reused.to_string().contains(&name),
        "{reused}"
    );

    // Same name and input while it runs: Step Functions (and moto) answer as
    // though they started it, with the same ARN; already_started cannot tell.
    let same = lifeboat_aws::start_execution(&sdk, &sm, &name, input)
        .await
        .unwrap();
    assert_eq!(same.execution_arn, first.execution_arn);
    assert_eq!(same.start_date, first.start_date);

    // Once it has stopped, the same request is refused and found too.
    aws_sdk_sfn::Client::new(&sdk)
        .stop_execution()
        .execution_arn(&first.execution_arn)
        .send()
        .await
        .unwrap();
    let after = lifeboat_aws::start_execution(&sdk, &sm, &name, input)
        .await
        .unwrap();
    assert!(after.already_started);
    assert_eq!(after.execution_arn, first.execution_arn);
    assert_eq!(after.start_date, first.start_date);
    // The same request, formatted differently, is still the same request.
    let reformatted = r#"{ "cluster": "shop-prod", "action": "backup", "version": 1 }"#;
    let found = lifeboat_aws::start_execution(&sdk, &sm, &name, reformatted)
        .await
        .unwrap();
    assert!(found.already_started);
}

#[tokio::test]
async fn a_missing_state_machine_is_not_found() {
    let sdk = sdk().await;
    let sm = format!(
        "arn:aws:states:us-east-1:123456789012:stateMachine:{}",
        unique("none")
    );
    let e = lifeboat_aws::start_execution(&sdk, &sm, "n", "{}")
        .await
        .unwrap_err();
    assert!(matches!(e, AwsError::NotFound { .. }), "{e:?}");
    assert!(e.to_string().contains(&sm), "{e}");
}

/// A new queue named after `tag`; its URL.
async fn create_queue(sqs: &aws_sdk_sqs::Client, tag: &str) -> String {
    sqs.create_queue()
        .queue_name(unique(tag))
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn sqs_send_delivers_the_body() {
    let sdk = sdk().await;
    let admin = aws_sdk_sqs::Client::new(&sdk);
    let queue_url = create_queue(&admin, "replies").await;
    let body = r#"{"execution":"arn:...","status":"SUCCEEDED"}"#;
    let id = lifeboat_aws::send_message(&sdk, &queue_url, body)
        .await
        .unwrap();
    assert!(!id.is_empty());
    let got = admin
        .receive_message()
        .queue_url(&queue_url)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    let message = &got.messages()[0];
    assert_eq!(message.message_id(), Some(id.as_str()));
    assert_eq!(message.body(), Some(body));

    let gone = queue_url.replace("lb-replies", "lb-gone");
    let e = lifeboat_aws::send_message(&sdk, &gone, body)
        .await
        .unwrap_err();
    assert!(matches!(e, AwsError::NotFound { .. }), "{e:?}");
}

#[tokio::test]
async fn sns_alerts_reach_a_subscribed_queue() {
    let sdk = sdk().await;
    let sns = aws_sdk_sns::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let topic = sns
        .create_topic()
        .name(unique("alerts"))
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_string();
    let queue_url = create_queue(&sqs, "alert-inbox").await;
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .send()
        .await
        .unwrap();

    let message = r#"{"kind":"workflow-failed","cluster":"prod"}"#;
    let id = lifeboat_aws::publish(
        &sdk,
        &topic,
        "Lifeboat: backup of cluster prod failed\nsecond line",
        message,
    )
    .await
    .unwrap();
    assert!(!id.is_empty());
    let got = sqs
        .receive_message()
        .queue_url(&queue_url)
        .wait_time_seconds(2)
        .send()
        .await
        .unwrap();
    // SNS wraps the message in its JSON envelope for an SQS subscriber.
    let envelope: serde_json::Value =
        serde_json::from_str(got.messages()[0].body().unwrap()).unwrap();
    assert_eq!(envelope["TopicArn"], topic.as_str());
    assert_eq!(envelope["MessageId"], id.as_str());
    assert_eq!(
        envelope["Subject"],
        "Lifeboat: backup of cluster prod failed second line"
    );
    assert_eq!(envelope["Message"], message);

    let gone = format!("{topic}-gone");
    let e = lifeboat_aws::publish(&sdk, &gone, "s", "m")
        .await
        .unwrap_err();
    assert!(matches!(e, AwsError::NotFound { .. }), "{e:?}");
    assert!(e.to_string().contains(&gone), "{e}");
    let e = lifeboat_aws::publish(&sdk, "alerts", "s", "m")
        .await
        .unwrap_err();
    assert!(matches!(e, AwsError::InvalidInput(_)), "{e:?}");
}
