//! Connecting to a cluster: from a kubeconfig, a token, or from inside a pod.

use crate::renew::{self, BearerLayer, Renewal, TokenSource};
use crate::KubeError;
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// Where a pod's ServiceAccount token, CA and namespace are mounted.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// A client for one cluster, with the names needed in messages and manifests.
#[derive(Clone)]
pub struct Cluster {
    pub client: kube::Client,
    /// The API server URL.
    pub server: String,
    /// The kubeconfig context used (or the current one).
    pub context: String,
    /// Renews the token of a client made by [`Cluster::with_renewed_token`];
    /// stops when the last clone is dropped.
    renewal: Option<Arc<Renewal>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("server", &self.server)
            .field("context", &self.context)
            .finish()
    }
}

impl Cluster {
    /// Load `path` (or `$KUBECONFIG`, then `~/.kube/config`) and connect with `context`.
    pub async fn connect(path: Option<&Path>, context: Option<&str>) -> Result<Self, KubeError> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None => default_kubeconfig()?,
        };
        let bad = |message: String| KubeError::Kubeconfig {
            path: path.clone(),
            message,
        };
        let kubeconfig =
            Kubeconfig::read_from(&path).map_err(|e| bad(crate::error::error_chain(&e)))?;
        Self::from_kubeconfig(kubeconfig, context, &bad).await
    }

    /// Connect with a kubeconfig held as text, such as one kept in a secret.
    ///
    /// `origin` names where the text came from (a secret's id) and stands in
    /// for the path in errors. A YAML error is reported by its position only:
    /// the text may hold credentials, so no part of it is ever quoted.
    /// Relative file references (`certificate-authority: ca.crt`) resolve
    /// against the working directory, so a kubeconfig kept as text should
    /// carry its certificates and credentials inline (`*-data`, `token`).
    pub async fn from_kubeconfig_yaml(
        yaml: &str,
        context: Option<&str>,
        origin: &str,
    ) -> Result<Self, KubeError> {
        let bad = |message: String| KubeError::Kubeconfig {
            path: PathBuf::from(origin),
            message,
        };
        let kubeconfig = Kubeconfig::from_yaml(yaml).map_err(|e| bad(yaml_error(&e)))?;
        Self::from_kubeconfig(kubeconfig, context, &bad).await
    }

    /// Connect to the API server at `server` with a bearer `token`, trusting
    /// the PEM certificates in `ca_pem` (or the system's roots when `None`).
    ///
    /// `name` becomes [`Cluster::context`] and names the cluster in errors.
    /// The token is held by the client only: it is never printed, and the
    /// [`Debug`](std::fmt::Debug) of a `Cluster` does not show the client. A
    /// token that expires is not renewed here: see
    /// [`Cluster::with_renewed_token`].
    pub async fn with_token(
        server: &str,
        ca_pem: Option<&[u8]>,
        token: String,
        name: &str,
    ) -> Result<Self, KubeError> {
        let (kubeconfig, bad) = token_kubeconfig(server, ca_pem, Some(token), name)?;
        Self::from_kubeconfig(kubeconfig, Some(name), &bad).await
    }

    /// Like [`Cluster::with_token`], with tokens from `source`, each renewed
    /// before it expires for as long as the `Cluster` (or a clone) lives, so
    /// that work longer than a token's life (an EKS token's 15 minutes)
    /// keeps working. The first token is fetched here; an error fetching it
    /// is this call's error.
    pub async fn with_renewed_token(
        server: &str,
        ca_pem: Option<&[u8]>,
        source: Arc<dyn TokenSource>,
        name: &str,
    ) -> Result<Self, KubeError> {
        let first = source.fetch().await?;
        let header = Arc::new(RwLock::new(renew::bearer(&first.token)?));
        let (kubeconfig, bad) = token_kubeconfig(server, ca_pem, None, name)?;
        let mut cluster = Self::connect_with(
            kubeconfig,
            Some(name),
            &bad,
            Some(BearerLayer(header.clone())),
        )
        .await?;
        cluster.renewal = Some(Arc::new(renew::start(
            header,
            first.expires_at,
            source,
            name.to_string(),
        )));
        Ok(cluster)
    }

    /// Connect from inside a pod, as its ServiceAccount: the API server of
    /// `KUBERNETES_SERVICE_HOST`/`_PORT` (set by the kubelet), trusting
    /// `dir/ca.crt`, with the token of `dir/token`, which is re-read as the
    /// kubelet rotates it (a projected token lasts an hour), so a run of any
    /// length keeps working. `dir` is normally
    /// [`SERVICE_ACCOUNT_DIR`]; it is a parameter so that a runtime that
    /// mounts it elsewhere works too.
    pub async fn in_cluster(dir: &Path) -> Result<Self, KubeError> {
        let bad = |message: String| KubeError::InvalidInput(format!("in-cluster: {message}"));
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    bad(format!(
                        "{name} is not set: not running in a pod (use --kubeconfig outside one)"
                    ))
                })
        };
        let host = var("KUBERNETES_SERVICE_HOST")?;
        let port = var("KUBERNETES_SERVICE_PORT")?;
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        let (ca, token) = (dir.join("ca.crt"), dir.join("token"));
        for f in [&ca, &token] {
            if !f.is_file() {
                return Err(bad(format!(
                    "{} is missing: is the pod's ServiceAccount token mounted \
                     (automountServiceAccountToken)?",
                    f.display()
                )));
            }
        }
        let name = "in-cluster";
        let kubeconfig = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{ "name": name, "cluster": {
                "server": format!("https://{host}:{port}"),
                "certificate-authority": ca.display().to_string(),
            }}],
            "users": [{ "name": name, "user": { "tokenFile": token.display().to_string() } }],
            "contexts": [{ "name": name, "context": { "cluster": name, "user": name } }],
            "current-context": name,
        });
        let kubeconfig: Kubeconfig = serde_json::from_value(kubeconfig)
            .map_err(|e| bad(format!("cannot make a kubeconfig of it: {e}")))?;
        Self::from_kubeconfig(kubeconfig, Some(name), &bad).await
    }

    /// Pick `context` (or the current one) from `kubeconfig` and connect.
    /// `bad` makes the error for a kubeconfig that cannot be used.
    async fn from_kubeconfig(
        kubeconfig: Kubeconfig,
        context: Option<&str>,
        bad: &(dyn Fn(String) -> KubeError + Sync),
    ) -> Result<Self, KubeError> {
        Self::connect_with(kubeconfig, context, bad, None).await
    }

    /// [`Cluster::from_kubeconfig`], with `bearer` putting a renewed token
    /// on every request when given.
    async fn connect_with(
        kubeconfig: Kubeconfig,
        context: Option<&str>,
        bad: &(dyn Fn(String) -> KubeError + Sync),
        bearer: Option<BearerLayer>,
    ) -> Result<Self, KubeError> {
        let context = match context {
            Some(c) => {
                if !kubeconfig.contexts.iter().any(|n| n.name == c) {
                    let known: Vec<&str> = kubeconfig
                        .contexts
                        .iter()
                        .map(|n| n.name.as_str())
                        .collect();
                    return Err(bad(format!(
                        "no context named {c:?} (it has: {})",
                        known.join(", ")
                    )));
                }
                c.to_string()
            }
            None => kubeconfig
                .current_context
                .clone()
                .ok_or_else(|| bad("no current-context; pass --context".into()))?,
        };
        let options = KubeConfigOptions {
            context: Some(context.clone()),
            ..Default::default()
        };
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| bad(crate::error::error_chain(&e)))?;
        let server = config.cluster_url.to_string();
        // An exec credential plugin runs here, for the first token: its
        // failure is a credentials error, never quoted whole (its stdout
        // may hold a credential).
        let builder = kube::client::ClientBuilder::try_from(config)
            .map_err(|e| KubeError::from_client("connect", &server, e))?;
        let client = match bearer {
            Some(layer) => builder.with_layer(&layer).build(),
            None => builder.build(),
        };
        Ok(Cluster {
            client,
            server,
            context,
            renewal: None,
        })
    }

    /// Map a client error for a request about `what` on this cluster.
    pub fn err(&self, what: impl Into<String>, e: kube::Error) -> KubeError {
        KubeError::from_client(what, &self.server, e)
    }
}

/// The error maker for a cluster reached by token.
type BadInput = Box<dyn Fn(String) -> KubeError + Send + Sync>;

/// A one-context kubeconfig for the API server at `server`, trusting
/// `ca_pem`, with `token` (none: a layer adds it), and the error maker that
/// names the cluster.
fn token_kubeconfig(
    server: &str,
    ca_pem: Option<&[u8]>,
    token: Option<String>,
    name: &str,
) -> Result<(Kubeconfig, BadInput), KubeError> {
    let (server_name, cluster_name) = (server.to_string(), name.to_string());
    let bad: BadInput = Box::new(move |message: String| {
        KubeError::InvalidInput(format!(
            "cluster {cluster_name:?} at {server_name}: {message}"
        ))
    });
    if name.is_empty() {
        return Err(KubeError::InvalidInput(format!(
            "the cluster at {server} needs a name"
        )));
    }
    let mut cluster = serde_json::json!({ "server": server });
    if let Some(pem) = ca_pem {
        // Without this check, text with no certificate would leave the
        // client trusting nothing, and every request would fail on TLS.
        const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
        if !pem.windows(BEGIN.len()).any(|w| w == BEGIN) {
            return Err(bad(
                "the certificate authority holds no PEM certificate".into()
            ));
        }
        // `certificate-authority-data` is base64 of the PEM text;
        // ByteString serialises as exactly that (standard alphabet, padded).
        let data = serde_json::to_value(k8s_openapi::ByteString(pem.to_vec()))
            .map_err(|e| bad(format!("certificate authority: {e}")))?;
        cluster["certificate-authority-data"] = data;
    }
    let user = match token {
        Some(token) => serde_json::json!({ "token": token }),
        None => serde_json::json!({}),
    };
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": name, "cluster": cluster }],
        "users": [{ "name": name, "user": user }],
        "contexts": [{ "name": name, "context": { "cluster": name, "user": name } }],
        "current-context": name,
    });
    // Deserialising keeps the token in kube's SecretString from here on.
    // The error is not shown: serde may quote a value, and one is the token.
    let kubeconfig: Kubeconfig = serde_json::from_value(kubeconfig)
        .map_err(|_| bad("cannot make a kubeconfig of it".into()))?;
    Ok((kubeconfig, bad))
}

/// A kubeconfig YAML error without any of the text: serde's messages quote
/// the offending value, which in a kubeconfig may be a token or a key.
fn yaml_error(e: &kube::config::KubeconfigError) -> String {
    match e {
        kube::config::KubeconfigError::Parse(parse) => match parse.location() {
            Some(at) => format!(
                "not a valid kubeconfig: YAML error at line {}, column {} \
                 (the text is not shown: it may hold credentials)",
                at.line(),
                at.column()
            ),
            None => "not a valid kubeconfig: YAML error \
                     (the text is not shown: it may hold credentials)"
                .to_string(),
        },
        other => crate::error::error_chain(other),
    }
}

fn default_kubeconfig() -> Result<PathBuf, KubeError> {
    if let Some(p) = std::env::var_os("KUBECONFIG").filter(|p| !p.is_empty()) {
        // Like kubectl, the first file of a list.
        if let Some(first) = std::env::split_paths(&p).next() {
            return Ok(first);
        }
    }
    match std::env::var_os("HOME") {
        Some(home) => Ok(PathBuf::from(home).join(".kube").join("config")),
        None => Err(KubeError::InvalidInput(
            "no kubeconfig: pass --kubeconfig or set KUBECONFIG".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use std::io::{Read, Write};

    /// A self-signed test CA (P-256), valid until 2126; its key is not kept.
    const TEST_CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBjjCCATOgAwIBAgIUEyW2rr6joZOrC5j46npY5Z/62DEwCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQbGlmZWJvYXQtdGVzdC1jYTAgFw0yNjExMjcwNzQxNTVaGA8y
MTI2MTEwMzA3NDE1NVowGzEZMBcGA1UEAwwQbGlmZWJvYXQtdGVzdC1jYTBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABC9iTxYYQPpsJGkJJg7i9Jw+YxQGeDLDT//m
/utORls4UIBRJglh49xn+fqqE6JSJLxM0XXcZFfK+V/NxbL+9e2jUzBRMB0GA1Ud
DgQWBBTp2tIPGCHQBoX22R8edpNrxwButTAfBgNVHSMEGDAWgBTp2tIPGCHQBoX2
2R8edpNrxwButTAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0kAMEYCIQDJ
yDtrnbzxoCkAxJmy9GXd/NTAIHfspBwZbR2fi6LrqAIhAKOf4m1Rqj6xTRTdSJvM
SDJrvCfNO6mDU0zgEuGyMeUm
-----END CERTIFICATE-----
";

    const TOKEN: &str = "k8s-aws-v1.c2VjcmV0LXRva2VuLW5ldmVyLXByaW50ZWQ";

    fn two_contexts_yaml(token: &str) -> String {
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: a
  cluster:
    server: https://10.0.0.1:6443
- name: b
  cluster:
    server: https://10.0.0.2:6443
users:
- name: u
  user:
    token: {token}
contexts:
- name: ctx-a
  context: {{cluster: a, user: u}}
- name: ctx-b
  context: {{cluster: b, user: u}}
current-context: ctx-a
"
        )
    }

    #[tokio::test]
    async fn with_token_trusts_the_ca_and_never_shows_the_token() {
        let c = Cluster::with_token(
            "https://127.0.0.1:6443",
            Some(TEST_CA_PEM.as_bytes()),
            TOKEN.to_string(),
            "shop-prod",
        )
        .await
        .unwrap();
        assert_eq!(c.server, "https://127.0.0.1:6443/");
        assert_eq!(c.context, "shop-prod");
        let shown = format!("{c:?}");
        assert!(!shown.contains(TOKEN), "{shown}");
        assert!(shown.contains("shop-prod"), "{shown}");
    }

    #[tokio::test]
    async fn with_token_without_a_ca_uses_the_system_roots() {
        let c = Cluster::with_token("https://10.1.2.3", None, TOKEN.into(), "dr")
            .await
            .unwrap();
        assert_eq!(c.server, "https://10.1.2.3/");
    }

    #[tokio::test]
    async fn with_token_refuses_a_certificate_that_is_not_pem_and_says_for_which_cluster() {
        let e = Cluster::with_token(
            "https://127.0.0.1:6443",
            Some(b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"),
            TOKEN.into(),
            "shop-prod",
        )
        .await
        .unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("shop-prod") && m.contains("127.0.0.1:6443"),
            "{m}"
        );
        assert!(!m.contains(TOKEN), "{m}");
    }

    #[tokio::test]
    async fn with_token_refuses_a_certificate_authority_without_a_certificate() {
        let e = Cluster::with_token(
            "https://10.1.2.3",
            Some(b"c29tZSBieXRlcw"),
            TOKEN.into(),
            "dr",
        )
        .await
        .unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("no PEM certificate") && m.contains("\"dr\""),
            "{m}"
        );
    }

    /// An HTTP server on loopback answering every request (one per
    /// connection) with an API server's version; returns its port and the
    /// `Authorization` header of each request, lower-cased.
    fn version_server() -> (u16, Arc<std::sync::Mutex<Vec<String>>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let record = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let mut conn = conn.unwrap();
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = conn.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    head.extend_from_slice(&buf[..n]);
                }
                let head = String::from_utf8_lossy(&head).to_lowercase();
                let auth = head
                    .lines()
                    .find_map(|l| l.strip_prefix("authorization: "))
                    .unwrap_or_default()
                    .to_string();
                record.lock().unwrap().push(auth);
                let body = r#"{"major":"1","minor":"36","gitVersion":"v1.36.0","gitCommit":"","gitTreeState":"","buildDate":"","goVersion":"","compiler":"","platform":""}"#;
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        (port, seen)
    }

    #[tokio::test]
    async fn with_token_sends_the_token_as_a_bearer_token() {
        let (port, seen) = version_server();
        let c = Cluster::with_token(&format!("http://127.0.0.1:{port}"), None, TOKEN.into(), "x")
            .await
            .unwrap();
        let version = c.client.apiserver_version().await.unwrap();
        assert_eq!(version.minor, "36");
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen, [format!("bearer {}", TOKEN.to_lowercase())]);
    }

    /// Hands out `token-1`, `token-2`, ... each expiring `life` after it is made.
    struct Counting {
        n: std::sync::atomic::AtomicU32,
        life: std::time::Duration,
    }

    #[async_trait::async_trait]
    impl TokenSource for Counting {
        async fn fetch(&self) -> Result<crate::ExpiringToken, KubeError> {
            let n = self.n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            Ok(crate::ExpiringToken {
                token: format!("token-{n}"),
                expires_at: std::time::SystemTime::now() + self.life,
            })
        }
    }

    #[tokio::test]
    async fn a_renewed_token_replaces_the_old_one_before_it_expires() {
        let (port, seen) = version_server();
        // 31 s of life: renewed 30 s ahead, i.e. after about a second.
        let source = Arc::new(Counting {
            n: Default::default(),
            life: std::time::Duration::from_secs(31),
        });
        let c = Cluster::with_renewed_token(
            &format!("http://127.0.0.1:{port}"),
            None,
            source.clone(),
            "eks-prod",
        )
        .await
        .unwrap();
        c.client.apiserver_version().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
        c.clone().client.apiserver_version().await.unwrap();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen, ["bearer token-1", "bearer token-2"]);
        // Dropping the last clone stops the renewals.
        drop(c);
        let fetched = source.n.load(std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        assert_eq!(source.n.load(std::sync::atomic::Ordering::SeqCst), fetched);
    }

    #[tokio::test]
    async fn kubeconfig_text_uses_the_current_or_the_named_context() {
        let yaml = two_contexts_yaml(TOKEN);
        let c = Cluster::from_kubeconfig_yaml(&yaml, None, "secret onprem-1")
            .await
            .unwrap();
        assert_eq!(
            (c.context.as_str(), c.server.as_str()),
            ("ctx-a", "https://10.0.0.1:6443/")
        );
        let c = Cluster::from_kubeconfig_yaml(&yaml, Some("ctx-b"), "secret onprem-1")
            .await
            .unwrap();
        assert_eq!(
            (c.context.as_str(), c.server.as_str()),
            ("ctx-b", "https://10.0.0.2:6443/")
        );
    }

    #[tokio::test]
    async fn kubeconfig_text_errors_name_the_origin() {
        let yaml = two_contexts_yaml(TOKEN);
        let e = Cluster::from_kubeconfig_yaml(&yaml, Some("nope"), "secret onprem-1")
            .await
            .unwrap_err();
        let m = e.to_string();
        assert!(m.contains("secret onprem-1"), "{m}");
        assert!(m.contains("ctx-a, ctx-b"), "{m}");
    }

    #[tokio::test]
    async fn kubeconfig_text_with_a_yaml_error_is_not_quoted() {
        // A token where a list belongs: serde would quote the value it got.
        let yaml = format!("apiVersion: v1\nkind: Config\nusers: {TOKEN}\n");
        let e = Cluster::from_kubeconfig_yaml(&yaml, None, "secret onprem-1")
            .await
            .unwrap_err();
        let m = e.to_string();
        assert!(!m.contains(TOKEN) && !m.contains("c2VjcmV0"), "{m}");
        assert!(m.contains("secret onprem-1") && m.contains("line 3"), "{m}");
        // A broken document, too.
        let yaml = format!("users:\n- name: u\n  user: {{token: {TOKEN}\n");
        let m = Cluster::from_kubeconfig_yaml(&yaml, None, "s")
            .await
            .unwrap_err()
            .to_string();
        assert!(!m.contains("c2VjcmV0"), "{m}");
    }
}

#[cfg(test)]
mod exec_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    /// A kubeconfig whose exec credential plugin fails the way kubelogin
    /// does when its refresh token has expired: the error names the plugin
    /// and its reason, and none of the request or the plugin's stdout.
    #[tokio::test]
    async fn a_failing_exec_plugin_is_named_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let plugin = dir.path().join("kubelogin");
        std::fs::write(
            &plugin,
            "#!/bin/sh\necho 'token: s3cr3t-never-shown'\necho 'AADSTS700082: the refresh token has expired; run az login' >&2\nexit 1\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let yaml = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"https://127.0.0.1:1\"}}\n\
             users:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      \
             command: {}\n      interactiveMode: Never\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\n\
             current-context: c\n",
            plugin.display()
        );
        let e = Cluster::from_kubeconfig_yaml(&yaml, None, "aks-prod")
            .await
            .unwrap_err();
        let m = e.to_string();
        assert!(matches!(e, KubeError::Credentials { .. }), "{e:?}");
        assert!(
            m.contains("exec credential plugin") && m.contains("kubelogin"),
            "{m}"
        );
        assert!(
            m.contains("run az login") && m.contains("exit status: 1"),
            "{m}"
        );
        assert!(
            !m.contains("s3cr3t") && !m.contains("KUBERNETES_EXEC_INFO"),
            "{m}"
        );
    }
}
