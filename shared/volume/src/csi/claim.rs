//! A PersistentVolumeClaim and the CSI volume behind it.

use crate::VolumeError;
use lifeboat_kube::{api, Cluster, ResourceType};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub(crate) fn core(resource: &str, kind: &str, namespaced: bool) -> ResourceType {
    ResourceType {
        group: String::new(),
        version: "v1".into(),
        resource: resource.into(),
        kind: kind.into(),
        namespaced,
    }
}

/// A bound claim whose volume a CSI driver serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub namespace: String,
    pub name: String,
    /// The PersistentVolume it is bound to.
    pub volume: String,
    pub driver: String,
    /// The driver's id of the volume (`spec.csi.volumeHandle`).
    pub volume_handle: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// Capacity of the volume, in bytes.
    pub size: u64,
    /// `Filesystem` or `Block`.
    pub mode: String,
    /// The claim's `lifeboat.dev/group` label: claims of one namespace and
    /// driver with the same value are snapshotted together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl Claim {
    /// `namespace/name`, for messages and keys.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Look up the claim `namespace/name` and its volume.
pub async fn claim(cluster: &Cluster, namespace: &str, name: &str) -> Result<Claim, VolumeError> {
    let pvcs = core("persistentvolumeclaims", "PersistentVolumeClaim", true);
    let pvc = api::get(cluster, &pvcs, Some(namespace), name)
        .await?
        .ok_or_else(|| {
            VolumeError::Unsupported(format!(
                "persistentvolumeclaim {namespace}/{name} does not exist"
            ))
        })?;
    claim_of(cluster, &pvc).await
}

/// Every claim in `namespaces` (all namespaces if empty), each resolved to
/// its CSI volume or the reason it cannot be snapshotted.
pub async fn claims_in(
    cluster: &Cluster,
    namespaces: &[String],
) -> Result<Vec<Result<Claim, VolumeError>>, VolumeError> {
    let pvcs = core("persistentvolumeclaims", "PersistentVolumeClaim", true);
    let mut out = Vec::new();
    for pvc in api::list(cluster, &pvcs, None).await? {
        let ns = str_at(&pvc, "/metadata/namespace");
        if namespaces.is_empty() || namespaces.iter().any(|n| n == ns) {
            out.push(claim_of(cluster, &pvc).await);
        }
    }
    Ok(out)
}

async fn claim_of(cluster: &Cluster, pvc: &Value) -> Result<Claim, VolumeError> {
    let namespace = str_at(pvc, "/metadata/namespace").to_string();
    let name = str_at(pvc, "/metadata/name").to_string();
    let phase = str_at(pvc, "/status/phase");
    let volume = str_at(pvc, "/spec/volumeName");
    if phase != "Bound" || volume.is_empty() {
        return Err(VolumeError::NoData(format!(
            "persistentvolumeclaim {namespace}/{name} is not bound (phase {}): there is no volume to snapshot",
            if phase.is_empty() { "unknown" } else { phase }
        )));
    }
    let pvs = core("persistentvolumes", "PersistentVolume", false);
    let pv = api::get(cluster, &pvs, None, volume).await?.ok_or_else(|| {
        VolumeError::Unsupported(format!(
            "persistentvolumeclaim {namespace}/{name} is bound to persistentvolume {volume}, which does not exist"
        ))
    })?;
    let Some(csi) = pv.pointer("/spec/csi") else {
        let plugin = pv
            .get("spec")
            .and_then(Value::as_object)
            .and_then(|s| {
                s.keys()
                    .find(|k| !NON_SOURCE_FIELDS.contains(&k.as_str()))
                    .cloned()
            })
            .unwrap_or_else(|| "unknown".into());
        return Err(VolumeError::NoData(format!(
            "persistentvolumeclaim {namespace}/{name}: its volume {volume} is not a CSI volume ({plugin}); only CSI volumes can be snapshotted"
        )));
    };
    let capacity = str_at(&pv, "/spec/capacity/storage");
    let size = parse_quantity(capacity).ok_or_else(|| {
        VolumeError::Unsupported(format!(
            "persistentvolume {volume}: capacity {capacity:?} is not a quantity"
        ))
    })?;
    let mode = match str_at(&pv, "/spec/volumeMode") {
        "" => "Filesystem",
        m => m,
    };
    Ok(Claim {
        namespace,
        name,
        volume: volume.to_string(),
        driver: str_at(csi, "/driver").to_string(),
        volume_handle: str_at(csi, "/volumeHandle").to_string(),
        storage_class: Some(str_at(pvc, "/spec/storageClassName"))
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        size,
        mode: mode.to_string(),
        group: label(pvc, super::group::GROUP_LABEL)
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    })
}

/// PersistentVolume spec fields that are not a volume source.
const NON_SOURCE_FIELDS: &[&str] = &[
    "accessModes",
    "capacity",
    "claimRef",
    "mountOptions",
    "nodeAffinity",
    "persistentVolumeReclaimPolicy",
    "storageClassName",
    "volumeMode",
    "volumeAttributesClassName",
];

pub(crate) fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// Label `key` of object `obj`, if it has it.
pub(crate) fn label<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.get("metadata")?.get("labels")?.get(key)?.as_str()
}

/// Annotation `key` of object `obj`, if it has it.
pub(crate) fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.get("metadata")?.get("annotations")?.get(key)?.as_str()
}

/// The names of the classes among `classes` that annotation `key` marks as
/// their driver's default (`"true"`).
pub(crate) fn default_classes<'a>(classes: &[&'a Value], key: &str) -> Vec<&'a str> {
    classes
        .iter()
        .filter(|c| annotation(c, key) == Some("true"))
        .map(|c| str_at(c, "/metadata/name"))
        .collect()
}

/// `storage.k8s.io/v1` StorageClasses.
pub(crate) fn storage_classes() -> ResourceType {
    ResourceType {
        group: "storage.k8s.io".into(),
        ..core("storageclasses", "StorageClass", false)
    }
}

/// Parse a Kubernetes quantity (`10Gi`, `500M`, `1073741824`, `1.5Gi`) into
/// bytes, rounded up.
pub fn parse_quantity(q: &str) -> Option<u64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let mult: f64 = match suffix {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        _ => return None,
    };
    if let (Ok(n), true) = (num.parse::<u64>(), suffix.is_empty() || !num.contains('.')) {
        return n.checked_mul(mult as u64);
    }
    let n: f64 = num.parse().ok()?;
    let bytes = (n * mult).ceil();
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("10Gi"), Some(10 << 30));
        assert_eq!(parse_quantity("500M"), Some(500_000_000));
        assert_eq!(parse_quantity("1073741824"), Some(1 << 30));
        assert_eq!(parse_quantity("1.5Gi"), Some(3 << 29));
        assert_eq!(parse_quantity("64Mi"), Some(64 << 20));
        assert_eq!(parse_quantity("3x"), None);
        assert_eq!(parse_quantity(""), None);
    }
}
