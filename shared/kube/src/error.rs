//! Errors from talking to a cluster, each saying what went wrong and whether
//! a retry can help.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KubeError {
    /// The kubeconfig could not be read or has no usable context.
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig { path: PathBuf, message: String },
    /// The API server did not answer (down, wrong address, TLS failure).
    #[error("cannot reach the cluster at {server}: {message}")]
    Unreachable { server: String, message: String },
    /// The API server refused or failed a request.
    #[error("{what}: {message} (HTTP {code}{})", reason_suffix(.reason))]
    Api {
        what: String,
        code: u16,
        reason: String,
        message: String,
    },
    /// An object or response did not have the shape Kubernetes promises.
    #[error("{what}: {message}")]
    Malformed { what: String, message: String },
    /// The caller asked for something impossible (a bad glob, a bad selector).
    #[error("{0}")]
    InvalidInput(String),
    /// New credentials for the cluster could not be had (a token source
    /// failed: STS, the credential chain); may pass.
    #[error("cannot get credentials for cluster {cluster}: {message}")]
    Credentials { cluster: String, message: String },
    /// A wait ran out of time.
    #[error("timed out after {secs} s waiting for {what}")]
    Timeout { what: String, secs: u64 },
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(", {reason}")
    }
}

impl KubeError {
    /// Map a client error for the request described by `what`.
    pub fn from_client(what: impl Into<String>, server: &str, e: kube::Error) -> Self {
        let what = what.into();
        match e {
            kube::Error::Api(status) => KubeError::Api {
                what,
                code: status.code,
                reason: status.reason.clone(),
                message: status.message.clone(),
            },
            kube::Error::SerdeError(e) => KubeError::Malformed {
                what,
                message: e.to_string(),
            },
            kube::Error::Auth(e) => KubeError::Credentials {
                cluster: server.to_string(),
                message: auth_failure(&e),
            },
            // The client's middleware hands the auth layer's error up boxed.
            kube::Error::Service(boxed) => match boxed.downcast::<kube::client::AuthError>() {
                Ok(auth) => KubeError::Credentials {
                    cluster: server.to_string(),
                    message: auth_failure(&auth),
                },
                Err(boxed) => unreachable(server, &kube::Error::Service(boxed)),
            },
            other => unreachable(server, &other),
        }
    }

    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            KubeError::Unreachable { .. }
            | KubeError::Timeout { .. }
            | KubeError::Credentials { .. } => true,
            KubeError::Api { code, .. } => *code == 429 || *code >= 500,
            _ => false,
        }
    }

    /// HTTP status of an API refusal, if this is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            KubeError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The API server's reason (`AlreadyExists`, `NotFound`, `Invalid`...), if any.
    pub fn reason(&self) -> Option<&str> {
        match self {
            KubeError::Api { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

fn unreachable(server: &str, e: &kube::Error) -> KubeError {
    KubeError::Unreachable {
        server: server.to_string(),
        message: error_chain(e),
    }
}

/// What went wrong getting credentials from the kubeconfig, on one line.
/// For an exec plugin (kubelogin, gke-gcloud-auth-plugin, `aws eks
/// get-token`) that failed: the program, its exit status and the end of
/// what it printed on stderr (its reason, e.g. "run az login"); never its
/// stdout, which may hold a credential, nor the request it was given.
fn auth_failure(e: &kube::client::AuthError) -> String {
    match e {
        kube::client::AuthError::AuthExecRun { cmd, out } => {
            // `cmd` is `KUBERNETES_EXEC_INFO="{...}" "program" "arg"...`.
            let program = cmd
                .rsplit("}\" ")
                .next()
                .unwrap_or(cmd)
                .split('"')
                .find(|p| !p.trim().is_empty())
                .unwrap_or("?");
            let stderr = String::from_utf8_lossy(&out.stderr);
            let said: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
            let tail = said[said.len().saturating_sub(3)..].join(" / ");
            format!(
                "the kubeconfig's exec credential plugin {program} failed ({}){}",
                out.status,
                if tail.is_empty() {
                    String::new()
                } else {
                    format!(": {tail}")
                }
            )
        }
        other => error_chain(other),
    }
}

/// An error and its causes on one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}
