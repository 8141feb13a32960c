//! VolumeSnapshots: choosing the class, taking one and waiting for it
//! (bringing an existing snapshot handle into a cluster is in
//! [`super::import`]).

use super::claim::{annotation, default_classes, storage_classes, str_at, Claim};
use crate::VolumeError;
use lifeboat_kube::{api, Cluster, KubeError, ResourceType};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Label on every VolumeSnapshot Lifeboat makes.
pub const MANAGED_LABEL: &str = "app.kubernetes.io/managed-by";
/// The backup run a snapshot belongs to.
pub const RUN_LABEL: &str = "lifeboat.dev/run";
/// On a StorageClass: the VolumeSnapshotClass to use for its volumes.
pub const CLASS_ANNOTATION: &str = "lifeboat.dev/snapshot-class";
const DEFAULT_CLASS_ANNOTATION: &str = "snapshot.storage.kubernetes.io/is-default-class";

pub(crate) fn snapshot_api(resource: &str, kind: &str, namespaced: bool) -> ResourceType {
    ResourceType {
        group: "snapshot.storage.k8s.io".into(),
        version: "v1".into(),
        resource: resource.into(),
        kind: kind.into(),
        namespaced,
    }
}

pub(crate) fn snapshots() -> ResourceType {
    snapshot_api("volumesnapshots", "VolumeSnapshot", true)
}
pub(crate) fn contents() -> ResourceType {
    snapshot_api("volumesnapshotcontents", "VolumeSnapshotContent", false)
}
fn classes() -> ResourceType {
    snapshot_api("volumesnapshotclasses", "VolumeSnapshotClass", false)
}

/// A ready CSI snapshot of one volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsiSnapshot {
    /// The VolumeSnapshot.
    pub namespace: String,
    pub name: String,
    pub class: String,
    /// The VolumeSnapshotContent bound to it.
    pub content: String,
    pub driver: String,
    /// The driver's id of the snapshot (an EBS snapshot id, a path...).
    pub handle: String,
    /// Size of the volume it restores to, in bytes.
    pub size: u64,
    /// When the driver cut it (RFC 3339), if it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The VolumeGroupSnapshot it was taken with; `None` when taken alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// How long to wait, and how often to look.
#[derive(Debug, Clone, Copy)]
pub struct Wait {
    pub timeout: Duration,
    pub poll: Duration,
}

impl Default for Wait {
    fn default() -> Self {
        Wait {
            timeout: Duration::from_secs(600),
            poll: Duration::from_millis(500),
        }
    }
}

/// The VolumeSnapshotClass for `claim`: `requested` if given, else the one
/// its StorageClass names in the `lifeboat.dev/snapshot-class` annotation,
/// else the class for its driver marked default.
pub async fn snapshot_class(
    cluster: &Cluster,
    claim: &Claim,
    requested: Option<&str>,
) -> Result<String, VolumeError> {
    let all = api::list(cluster, &classes(), None).await?;
    let for_driver: Vec<&Value> = all
        .iter()
        .filter(|c| str_at(c, "/driver") == claim.driver)
        .collect();
    let named = |name: &str, why: &str| -> Result<String, VolumeError> {
        match all.iter().find(|c| str_at(c, "/metadata/name") == name) {
            Some(c) if str_at(c, "/driver") == claim.driver => Ok(name.to_string()),
            Some(c) => Err(VolumeError::Unsupported(format!(
                "volumesnapshotclass {name} ({why}) is for driver {}, but {} is on {}",
                str_at(c, "/driver"),
                claim.key(),
                claim.driver
            ))),
            None => Err(VolumeError::Unsupported(format!(
                "volumesnapshotclass {name} ({why}) does not exist"
            ))),
        }
    };
    if let Some(name) = requested {
        return named(name, "asked for");
    }
    if let Some(sc) = &claim.storage_class {
        if let Some(obj) = api::get(cluster, &storage_classes(), None, sc).await? {
            if let Some(name) = annotation(&obj, CLASS_ANNOTATION) {
                return named(name, &format!("named by storageclass {sc}"));
            }
        }
    }
    let defaults = default_classes(&for_driver, DEFAULT_CLASS_ANNOTATION);
    match defaults.as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err(VolumeError::Unsupported(format!(
            "no default volumesnapshotclass for driver {} (needed by {}){}; mark one with the annotation {DEFAULT_CLASS_ANNOTATION}: \"true\" or name one on the storageclass with {CLASS_ANNOTATION}",
            claim.driver,
            claim.key(),
            if for_driver.is_empty() {
                " and no class for it at all".to_string()
            } else {
                format!(
                    " (classes for it: {})",
                    for_driver
                        .iter()
                        .map(|c| str_at(c, "/metadata/name"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        ))),
        many => Err(VolumeError::Unsupported(format!(
            "several default volumesnapshotclasses for driver {}: {}; keep one default or name one on the storageclass with {CLASS_ANNOTATION}",
            claim.driver,
            many.join(", ")
        ))),
    }
}

/// The name of the VolumeSnapshot for `claim` in backup run `run`: stable,
/// so a retried step finds the snapshot it already asked for.
pub fn snapshot_name(claim: &Claim, run: &str) -> String {
    let digest = blake3::hash(format!("{}/{}/{run}", claim.namespace, claim.name).as_bytes());
    let mut base: String = claim
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    base = base.trim_matches('-').to_string();
    // A staging claim of a mover is named lifeboat-... already.
    let base = base.strip_prefix("lifeboat-").unwrap_or(&base);
    format!("lifeboat-{base}-{}", &digest.to_hex()[..10])
}

/// Snapshot `claim` with `class` and wait until it is ready to use.
pub async fn take_snapshot(
    cluster: &Cluster,
    claim: &Claim,
    class: &str,
    run: &str,
    wait: Wait,
) -> Result<CsiSnapshot, VolumeError> {
    let obj = snapshot_request(claim, class, run);
    match api::create(cluster, &snapshots(), &obj, false).await {
        Ok(_) => {}
        // A retried step: the snapshot is already asked for.
        Err(KubeError::Api { code: 409, .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let name = snapshot_name(claim, run);
    tracing::info!(claim = %claim.key(), snapshot = %name, class, "volume snapshot requested");
    wait_ready(cluster, &claim.namespace, &name, wait).await
}

/// A VolumeSnapshot `claim.namespace/name` of `claim`, stamped with
/// `nonce` (and labelled like [`take_snapshot`]'s), waited for until ready.
/// A VolumeSnapshot of that name without the nonce is refused
/// ([`super::owned`]), not waited for.
pub async fn take_owned_snapshot(
    cluster: &Cluster,
    claim: &Claim,
    class: &str,
    name: &str,
    run: &str,
    nonce: &str,
    wait: Wait,
) -> Result<CsiSnapshot, VolumeError> {
    let mut obj = snapshot_request(claim, class, run);
    obj["metadata"]["name"] = json!(name);
    super::owned::create_or_get(cluster, &snapshots(), &obj, nonce).await?;
    tracing::info!(claim = %claim.key(), snapshot = %name, class, "volume snapshot requested");
    wait_ready(cluster, &claim.namespace, name, wait).await
}

/// The VolumeSnapshot [`take_snapshot`] asks for.
fn snapshot_request(claim: &Claim, class: &str, run: &str) -> Value {
    let name = snapshot_name(claim, run);
    json!({
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": {
            "name": name,
            "namespace": claim.namespace,
            "labels": { MANAGED_LABEL: "lifeboat", RUN_LABEL: label_value(run) },
            "annotations": { "lifeboat.dev/claim": claim.name },
        },
        "spec": {
            "volumeSnapshotClassName": class,
            "source": { "persistentVolumeClaimName": claim.name },
        },
    })
}

/// The snapshot controller's error on a snapshot or group snapshot, if it
/// is one to give up on. The controller keeps retrying after it records an
/// error and clears it on success (the VolumeSnapshot API says so); a
/// write conflict with the API server ("the object has been modified") is
/// the controller's own race and always retried, so Lifeboat waits through
/// it instead of failing the volume (seen in CI on a group snapshot).
pub(crate) fn lasting_error(obj: &Value) -> Option<&str> {
    let msg = obj
        .pointer("/status/error/message")
        .and_then(Value::as_str)?;
    let conflict = msg.contains("the object has been modified")
        || msg.contains("Operation cannot be fulfilled");
    if conflict {
        tracing::debug!(
            error = msg,
            "snapshot controller lost a write race; it retries"
        );
        return None;
    }
    Some(msg)
}

/// Wait until VolumeSnapshot `namespace/name` is ready to use, then read its
/// content.
pub async fn wait_ready(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    wait: Wait,
) -> Result<CsiSnapshot, VolumeError> {
    let started = Instant::now();
    let what = format!("volumesnapshot {namespace}/{name}");
    loop {
        let vs = api::get(cluster, &snapshots(), Some(namespace), name)
            .await?
            .ok_or_else(|| VolumeError::Failed {
                what: what.clone(),
                message: "it was deleted while Lifeboat waited for it".into(),
            })?;
        if let Some(msg) = lasting_error(&vs) {
            return Err(VolumeError::Failed {
                what,
                message: msg.to_string(),
            });
        }
        if vs.pointer("/status/readyToUse").and_then(Value::as_bool) == Some(true) {
            return read_snapshot(cluster, &vs).await;
        }
        if started.elapsed() >= wait.timeout {
            let content = str_at(&vs, "/status/boundVolumeSnapshotContentName");
            return Err(VolumeError::Timeout {
                what: format!(
                    "{what} to become ready to use ({})",
                    if content.is_empty() {
                        "no content bound yet: is the snapshot controller running?".to_string()
                    } else {
                        format!("content {content} not ready: is the CSI snapshotter running?")
                    }
                ),
                secs: wait.timeout.as_secs(),
            });
        }
        tokio::time::sleep(wait.poll).await;
    }
}

pub(crate) async fn read_snapshot(
    cluster: &Cluster,
    vs: &Value,
) -> Result<CsiSnapshot, VolumeError> {
    let content_name = str_at(vs, "/status/boundVolumeSnapshotContentName");
    let content = api::get(cluster, &contents(), None, content_name)
        .await?
        .ok_or_else(|| VolumeError::Failed {
            what: format!(
                "volumesnapshot {}/{}",
                str_at(vs, "/metadata/namespace"),
                str_at(vs, "/metadata/name")
            ),
            message: format!("its content {content_name:?} does not exist"),
        })?;
    snapshot_from(vs, &content)
}

/// A ready VolumeSnapshot and its bound VolumeSnapshotContent as a
/// [`CsiSnapshot`].
pub(crate) fn snapshot_from(vs: &Value, content: &Value) -> Result<CsiSnapshot, VolumeError> {
    let content_name = str_at(content, "/metadata/name").to_string();
    let handle = str_at(content, "/status/snapshotHandle").to_string();
    if handle.is_empty() {
        return Err(VolumeError::Failed {
            what: format!("volumesnapshotcontent {content_name}"),
            message: "ready, but it has no snapshotHandle".into(),
        });
    }
    let size = content
        .pointer("/status/restoreSize")
        .and_then(Value::as_u64)
        .or_else(|| {
            vs.pointer("/status/restoreSize")
                .and_then(Value::as_str)
                .and_then(super::claim::parse_quantity)
        })
        .unwrap_or(0);
    Ok(CsiSnapshot {
        namespace: str_at(vs, "/metadata/namespace").to_string(),
        name: str_at(vs, "/metadata/name").to_string(),
        class: str_at(vs, "/spec/volumeSnapshotClassName").to_string(),
        content: content_name,
        driver: str_at(content, "/spec/driver").to_string(),
        handle,
        size,
        created: Some(str_at(vs, "/status/creationTime").to_string()).filter(|s| !s.is_empty()),
        group: Some(str_at(vs, "/status/volumeGroupSnapshotName").to_string())
            .filter(|s| !s.is_empty()),
    })
}

/// A label value: at most 63 characters of `[A-Za-z0-9._-]`, alphanumeric at
/// both ends.
pub(crate) fn label_value(s: &str) -> String {
    let v: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    v.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_conflicts_are_waited_through_other_errors_are_not() {
        let conflict = json!({"status": {"error": {"message":
            "Failed to create group snapshot: error updating status for volume group snapshot content g: snapshot controller failed to update g on API server: Operation cannot be fulfilled on volumegroupsnapshotcontents.groupsnapshot.storage.k8s.io \"g\": the object has been modified; please apply your changes to the latest version and try again"}}});
        assert_eq!(lasting_error(&conflict), None);
        let lasting =
            json!({"status": {"error": {"message": "volumesnapshotclass \"x\" not found"}}});
        assert_eq!(
            lasting_error(&lasting),
            Some("volumesnapshotclass \"x\" not found")
        );
        assert_eq!(lasting_error(&json!({"status": {}})), None);
    }

    fn claim(name: &str) -> Claim {
        Claim {
            namespace: "shop".into(),
            name: name.into(),
            volume: "pv-1".into(),
            driver: "hostpath.csi.k8s.io".into(),
            volume_handle: "v1".into(),
            storage_class: None,
            size: 1 << 30,
            mode: "Filesystem".into(),
            group: None,
        }
    }

    #[test]
    fn names_are_stable_valid_and_distinct() {
        let a = snapshot_name(&claim("Data_Vol"), "run-1");
        assert_eq!(a, snapshot_name(&claim("Data_Vol"), "run-1"));
        assert!(a.starts_with("lifeboat-data-vol-"), "{a}");
        assert_ne!(a, snapshot_name(&claim("Data_Vol"), "run-2"));
        let long = snapshot_name(&claim(&"x".repeat(200)), "r");
        assert!(long.len() <= 63, "{long}");
        assert_eq!(
            label_value("arn:aws:states:us-east-1:1:execution:x/y"),
            "arn-aws-states-us-east-1-1-execution-x-y"
        );
        assert_eq!(label_value("--a--"), "a");
    }
}
