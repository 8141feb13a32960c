//! Running a mover Job: create it (and its Secret), wait for it, read its
//! result, and clean up.

use super::manifest::{MoverJob, MoverSettings};
use crate::csi::{core, str_at, Wait};
use crate::VolumeError;
use lifeboat_kube::{api, Cluster, KubeError, ResourceType};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Instant;

fn jobs() -> ResourceType {
    ResourceType {
        group: "batch".into(),
        version: "v1".into(),
        resource: "jobs".into(),
        kind: "Job".into(),
        namespaced: true,
    }
}

fn secrets() -> ResourceType {
    core("secrets", "Secret", true)
}

fn pods() -> ResourceType {
    core("pods", "Pod", true)
}

fn claims() -> ResourceType {
    core("persistentvolumeclaims", "PersistentVolumeClaim", true)
}

fn events() -> ResourceType {
    core("events", "Event", true)
}

/// The newest FailedCreate event of the Job: why its controller could not
/// make a pod (Pod Security admission, a quota, a missing service account).
async fn failed_create(cluster: &Cluster, job: &MoverJob) -> Option<String> {
    let fields = format!(
        "involvedObject.kind=Job,involvedObject.name={},reason=FailedCreate",
        job.name
    );
    let mut found = api::list_in(cluster, &events(), &job.namespace, Some(&fields), None)
        .await
        .ok()?;
    found.sort_by(|a, b| str_at(a, "/lastTimestamp").cmp(str_at(b, "/lastTimestamp")));
    found
        .last()
        .map(|e| str_at(e, "/message").to_string())
        .filter(|m| !m.is_empty())
}

/// Create `obj`; one that exists already (a retried step) is fetched.
async fn create_or_get(
    cluster: &Cluster,
    r: &ResourceType,
    obj: &Value,
) -> Result<Value, VolumeError> {
    match api::create(cluster, r, obj, false).await {
        Ok(v) => Ok(v),
        Err(KubeError::Api { code: 409, .. }) => {
            let (ns, name) = api::ns_name(obj);
            api::get(cluster, r, ns.as_deref(), &name)
                .await?
                .ok_or_else(|| VolumeError::Failed {
                    what: api::describe(r, ns.as_deref(), &name),
                    message: "it existed a moment ago and is gone".into(),
                })
        }
        Err(e) => Err(e.into()),
    }
}

/// Create the staging claim `claim`, the Job, and its Secret with `env`
/// (the repository's address and passphrase). Idempotent: a retried step
/// finds what it made.
pub async fn start(
    cluster: &Cluster,
    job: &MoverJob,
    settings: &MoverSettings,
    claim: &Value,
    env: &BTreeMap<String, String>,
) -> Result<(), VolumeError> {
    create_or_get(cluster, &claims(), claim).await?;
    let created = create_or_get(cluster, &jobs(), &job.job(settings)).await?;
    let uid = str_at(&created, "/metadata/uid");
    // After the Job, so the Secret can name it as its owner; the pod waits
    // for the Secret meanwhile.
    create_or_get(cluster, &secrets(), &job.secret(uid, env)).await?;
    tracing::info!(
        namespace = %job.namespace,
        job = %job.name,
        claim = %job.claim,
        "mover job started"
    );
    Ok(())
}

/// A finished mover Job: the command's JSON result.
#[derive(Debug, Clone)]
pub struct JobResult {
    pub pod: String,
    pub result: Value,
}

/// The pods of Job `name`, newest first.
async fn job_pods(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
) -> Result<Vec<Value>, VolumeError> {
    let selector = format!("job-name={name}");
    let mut out = api::list_in(cluster, &pods(), namespace, None, Some(&selector)).await?;
    out.sort_by(|a, b| {
        str_at(b, "/metadata/creationTimestamp").cmp(str_at(a, "/metadata/creationTimestamp"))
    });
    Ok(out)
}

fn terminated_message(pod: &Value) -> String {
    pod.pointer("/status/containerStatuses/0/state/terminated/message")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim()
        .to_string()
}

/// Why the newest pod is not done yet, for a timeout's message.
async fn waiting_reason(cluster: &Cluster, job: &MoverJob, pods: &[Value]) -> String {
    let Some(pod) = pods.first() else {
        return match failed_create(cluster, job).await {
            Some(m) => format!("no pod: the Job controller cannot create it: {m}"),
            None => "no pod yet: is the Job controller (kube-controller-manager) running?".into(),
        };
    };
    let phase = str_at(pod, "/status/phase");
    let waiting = pod
        .pointer("/status/containerStatuses/0/state/waiting")
        .map(|w| format!(" ({}: {})", str_at(w, "/reason"), str_at(w, "/message")))
        .unwrap_or_default();
    let mut out = format!(
        "pod {} is {}{waiting}",
        str_at(pod, "/metadata/name"),
        if phase.is_empty() { "Pending" } else { phase }
    );
    if phase == "Pending" || phase.is_empty() {
        if let Ok(Some(pvc)) =
            api::get(cluster, &claims(), Some(&job.namespace), &job.volume_claim).await
        {
            let claim_phase = str_at(&pvc, "/status/phase");
            if claim_phase != "Bound" {
                out.push_str(&format!(
                    "; claim {} is {} (can the storage class's provisioner make a volume{}?)",
                    job.volume_claim,
                    if claim_phase.is_empty() {
                        "Pending"
                    } else {
                        claim_phase
                    },
                    if pvc.pointer("/spec/dataSource").is_some() {
                        " from the snapshot"
                    } else {
                        ""
                    }
                ));
            }
        }
        if str_at(pod, "/spec/nodeName").is_empty() {
            out.push_str("; not scheduled to a node");
        }
    }
    out
}

/// Wait until the Job is done: its result when it succeeded; the failed
/// pod's message (the command's error, or its log's end) when it failed;
/// a retryable timeout that says what the pod waits for otherwise.
pub async fn wait_for(
    cluster: &Cluster,
    job: &MoverJob,
    wait: Wait,
) -> Result<JobResult, VolumeError> {
    let started = Instant::now();
    let what = format!(
        "mover job {}/{} ({} of claim {})",
        job.namespace,
        job.name,
        job.args()[1],
        job.claim
    );
    loop {
        let current = api::get(cluster, &jobs(), Some(&job.namespace), &job.name)
            .await?
            .ok_or_else(|| VolumeError::Failed {
                what: what.clone(),
                message: "the Job was deleted while Lifeboat waited for it".into(),
            })?;
        let conditions = current
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let is = |kind: &str| {
            conditions
                .iter()
                .any(|c| str_at(c, "/type") == kind && str_at(c, "/status") == "True")
        };
        if is("Complete") {
            let pods = job_pods(cluster, &job.namespace, &job.name).await?;
            let pod = pods
                .iter()
                .find(|p| str_at(p, "/status/phase") == "Succeeded")
                .ok_or_else(|| VolumeError::Failed {
                    what: what.clone(),
                    message: "complete, but its succeeded pod is gone (its result with it)".into(),
                })?;
            let message = terminated_message(pod);
            let result = serde_json::from_str(&message).map_err(|e| VolumeError::Failed {
                what: what.clone(),
                message: format!(
                    "its result is not the JSON `lifeboat --json` writes ({e}): {message:.200}"
                ),
            })?;
            return Ok(JobResult {
                pod: str_at(pod, "/metadata/name").to_string(),
                result,
            });
        }
        if is("Failed") {
            let pods = job_pods(cluster, &job.namespace, &job.name).await?;
            let reason = conditions
                .iter()
                .find(|c| str_at(c, "/type") == "Failed")
                .map(|c| format!("{}: {}", str_at(c, "/reason"), str_at(c, "/message")))
                .unwrap_or_default();
            let message = pods
                .iter()
                .map(terminated_message)
                .find(|m| !m.is_empty())
                .unwrap_or_else(|| "no pod left a message".into());
            return Err(VolumeError::Failed {
                what,
                message: format!("{reason}; last pod: {message}"),
            });
        }
        let pods = job_pods(cluster, &job.namespace, &job.name).await?;
        if pods.is_empty() {
            // An admission refusal does not go away by waiting.
            if let Some(message) = failed_create(cluster, job).await {
                if message.contains("forbidden") {
                    return Err(VolumeError::Failed {
                        what,
                        message: format!(
                            "the Job controller may not create its pod in namespace {}: {message}",
                            job.namespace
                        ),
                    });
                }
            }
        }
        if started.elapsed() >= wait.timeout {
            return Err(VolumeError::Timeout {
                what: format!(
                    "{what} to finish: {}",
                    waiting_reason(cluster, job, &pods).await
                ),
                secs: wait.timeout.as_secs(),
            });
        }
        tokio::time::sleep(wait.poll).await;
    }
}

/// Delete the Job (its pods and Secret go with it) and the staging claim.
pub async fn remove(cluster: &Cluster, job: &MoverJob) -> Result<(), VolumeError> {
    api::delete_owned(cluster, &jobs(), Some(&job.namespace), &job.name).await?;
    // Not left to the garbage collector: the passphrase goes now.
    api::delete(cluster, &secrets(), Some(&job.namespace), &job.name).await?;
    api::delete(cluster, &claims(), Some(&job.namespace), &job.volume_claim).await?;
    Ok(())
}
