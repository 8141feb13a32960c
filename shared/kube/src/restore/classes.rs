//! The storage class map checked against the target cluster before a
//! restore writes anything: a claim mapped to a class the cluster does not
//! have would stay Pending forever, and the restore would look successful.

use std::collections::{BTreeMap, BTreeSet};

use crate::{api, Cluster, KubeError, ResourceType};

fn storage_classes() -> ResourceType {
    ResourceType {
        group: "storage.k8s.io".into(),
        version: "v1".into(),
        resource: "storageclasses".into(),
        kind: "StorageClass".into(),
        namespaced: false,
    }
}

/// Fails, naming every entry at fault and the classes the cluster has,
/// when `map` (backed-up class -> target class) sends a class to one that
/// `cluster` does not have.
pub async fn check_storage_class_map(
    cluster: &Cluster,
    map: &BTreeMap<String, String>,
) -> Result<(), KubeError> {
    if map.is_empty() {
        return Ok(());
    }
    let have: BTreeSet<String> = api::list(cluster, &storage_classes(), None)
        .await?
        .iter()
        .map(|o| api::ns_name(o).1)
        .collect();
    missing_classes(map, &have, &cluster.server)
}

fn missing_classes(
    map: &BTreeMap<String, String>,
    have: &BTreeSet<String>,
    server: &str,
) -> Result<(), KubeError> {
    let missing: Vec<String> = map
        .iter()
        .filter(|(_, to)| !have.contains(*to))
        .map(|(from, to)| format!("{from}={to}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let has = if have.is_empty() {
        "none".to_string()
    } else {
        have.iter().cloned().collect::<Vec<_>>().join(", ")
    };
    Err(KubeError::InvalidInput(format!(
        "storage class map {}: the target cluster ({server}) has no such storage class \
         (it has: {has}); nothing was restored",
        missing.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_class_the_target_lacks_is_named_with_what_it_has() {
        let map = BTreeMap::from([
            ("gp2".to_string(), "premium".to_string()),
            ("gp3".to_string(), "standard".to_string()),
        ]);
        let have = BTreeSet::from(["standard".to_string(), "hostpath".to_string()]);
        let err = missing_classes(&map, &have, "https://127.0.0.1:6443").unwrap_err();
        assert_eq!(
            err.to_string(),
            "storage class map gp2=premium: the target cluster (https://127.0.0.1:6443) has no \
             such storage class (it has: hostpath, standard); nothing was restored"
        );
        let fine = BTreeMap::from([("gp3".to_string(), "standard".to_string())]);
        assert!(missing_classes(&fine, &have, "x").is_ok());
    }
}
