//! Running a mover Job in Lifeboat's namespace: create it (and its Secret
//! and staging claim), wait for it, read its result, and clean up.

use super::manifest::MoverJob;
use super::settings::MoverSettings;
use crate::csi::owned::{check_ours, create_or_get, delete_if_ours};
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

fn namespaces() -> ResourceType {
    core("namespaces", "Namespace", false)
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

/// Make sure Lifeboat's namespace exists: create it when it is missing
/// (Pod Security "baseline" enforced, see [`MoverSettings::namespace_manifest`]).
/// An existing one is used as it is (an operator may create it beforehand,
/// with the mover's service account). If Lifeboat may not create it, the
/// error says that it must exist.
pub async fn ensure_namespace(
    cluster: &Cluster,
    settings: &MoverSettings,
) -> Result<(), VolumeError> {
    if let Some(problem) = settings.namespace_problem() {
        return Err(VolumeError::Invalid(problem));
    }
    let ns = &settings.namespace;
    if api::get(cluster, &namespaces(), None, ns).await?.is_some() {
        return Ok(());
    }
    match api::create(cluster, &namespaces(), &settings.namespace_manifest(), false).await {
        Ok(_) => {
            tracing::info!(namespace = %ns, "created Lifeboat's namespace for mover jobs");
            Ok(())
        }
        Err(KubeError::Api { code: 409, .. }) => Ok(()),
        Err(KubeError::Api { code: 403, message, .. }) => Err(VolumeError::Failed {
            what: format!("namespace {ns} (LIFEBOAT_MOVER_NAMESPACE)"),
            message: format!(
                "it does not exist and Lifeboat may not create it ({message}): create it, or let Lifeboat's cluster role create namespaces"
            ),
        }),
        Err(e) => Err(e.into()),
    }
}

/// Create the staging claim `claim`, the Job, and its Secret with `env`
/// (the repository's address and passphrase), all in Lifeboat's namespace
/// and stamped with the job's nonce. Idempotent: a retried step finds what
/// it made; an object of the same name that Lifeboat did not make for this
/// run is refused ([`VolumeError::NotOurs`]) and left alone.
/// Refuse a Job name taken by an object Lifeboat did not make (a retried
/// step finds its own Job and goes on). Called before anything is made for
/// the Job, so that a refusal leaves nothing behind: a staging claim
/// provisioned from a snapshot and then deleted can leave the
/// provisioner's source-protection finalizer on that snapshot.
pub async fn check_name(cluster: &Cluster, job: &MoverJob) -> Result<(), VolumeError> {
    let ns = Some(job.namespace.as_str());
    if let Some(existing) = api::get(cluster, &jobs(), ns, &job.name).await? {
        check_ours(
            &existing,
            &job.nonce,
            &api::describe(&jobs(), ns, &job.name),
        )?;
    }
    Ok(())
}

pub async fn start(
    cluster: &Cluster,
    job: &MoverJob,
    settings: &MoverSettings,
    claim: &Value,
    env: &BTreeMap<String, String>,
) -> Result<(), VolumeError> {
    check_name(cluster, job).await?;
    create_or_get(cluster, &claims(), claim, &job.nonce).await?;
    let created = create_or_get(cluster, &jobs(), &job.job(settings), &job.nonce).await?;
    let uid = str_at(&created, "/metadata/uid");
    // After the Job, so the Secret can name it as its owner; the pod waits
    // for the Secret meanwhile.
    create_or_get(cluster, &secrets(), &job.secret(uid, env), &job.nonce).await?;
    tracing::info!(
        namespace = %job.namespace,
        job = %job.name,
        claim = %format!("{}/{}", job.claim_namespace, job.claim),
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
        "mover job {}/{} ({} of claim {}/{})",
        job.namespace,
        job.name,
        job.args()[1],
        job.claim_namespace,
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

/// Delete the Job (its pods and Secret go with it), the Secret and the
/// staging claim, each only if it carries the job's nonce.
pub async fn remove(cluster: &Cluster, job: &MoverJob) -> Result<(), VolumeError> {
    let ns = Some(job.namespace.as_str());
    delete_if_ours(cluster, &jobs(), ns, &job.name, &job.nonce).await?;
    // Not left to the garbage collector: the passphrase goes now.
    delete_if_ours(cluster, &secrets(), ns, &job.name, &job.nonce).await?;
    delete_if_ours(cluster, &claims(), ns, &job.volume_claim, &job.nonce).await?;
    Ok(())
}
