//! What a restore does with the claims whose data it does not restore:
//! provision them anew, empty (the default), or, on request, re-create
//! their old PersistentVolume pointing at the source's storage. Only claims
//! the backup's policy left out (not CSI, not bound) may be re-attached;
//! a claim the backup was asked to copy never is.

use crate::env::StepEnv;
use crate::state::State;
use crate::StepError;
use lifeboat_kube::restore::actions::Transform;
use lifeboat_ops::Progress;
use lifeboat_repo::{FileKind, Id, Snapshot};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Arc;

/// The restore's transform: the request's maps and modifiers, and the
/// volume part: claims provisioned from restored snapshots
/// (restore-volumes), whether to re-attach the rest (the request's
/// `reattach_volumes`), and the claims never re-attached.
pub fn volume_transform(state: &State, snapshot: &Snapshot) -> Result<Transform, StepError> {
    let request = &state.request;
    let mut transform = Transform {
        namespace_map: request.namespace_map.clone(),
        storage_class_map: request.storage_class_map.clone(),
        modifiers: request
            .modifiers()
            .map_err(|e| StepError::invalid(e.to_string()))?,
        reattach_volumes: request.reattach_volumes,
        never_reattach: never_reattach(snapshot),
        ..Default::default()
    };
    if let Some(v) = &state.restored_volumes {
        let restored: super::RestoredVolumes =
            crate::state::from_value(v.clone(), "restored_volumes")?;
        transform.volume_sources = restored.sources();
    }
    Ok(transform)
}

/// The claims whose volume is never re-attached, even when the request
/// asks: those the backup was asked to copy, whether it holds their data
/// (restored from it, or not restored: then provisioned empty) or failed to
/// copy it (`volumes_missing`).
fn never_reattach(snapshot: &Snapshot) -> BTreeSet<String> {
    let Some(c) = &snapshot.cluster else {
        return BTreeSet::new();
    };
    let copied = c.volumes.iter().map(|v| (&v.namespace, &v.claim));
    let missing = c.volumes_missing.iter().map(|v| (&v.namespace, &v.claim));
    copied
        .chain(missing)
        .map(|(ns, claim)| format!("{ns}/{claim}"))
        .collect()
}

/// Claims check-readiness does not require to bind, as
/// `PersistentVolumeClaim/namespace/name`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ExemptClaims {
    /// Not Bound when the snapshot was taken (their status is in it).
    pub pending_in_source: BTreeSet<String>,
    /// Bound in the source, but provisioned anew, empty, here.
    pub provisioned_empty: BTreeSet<String>,
}

/// The claims of the restored snapshot that check-readiness does not
/// require to bind.
pub async fn claims_to_exempt(
    env: &dyn StepEnv,
    state: &State,
    snapshot: Id,
) -> Result<ExemptClaims, StepError> {
    let repo = env.repository().await?;
    let snap: Snapshot = repo.load_file(FileKind::Snapshot, &snapshot).await?;
    let Some(source) = &snap.cluster else {
        return Ok(ExemptClaims::default());
    };
    let items = lifeboat_ops::cluster::load_objects(
        &repo,
        source,
        snap.tree,
        &Arc::new(Progress::default()),
    )
    .await?;
    let transform = volume_transform(state, &snap)?;
    let claims = items
        .iter()
        .filter(|i| i.resource.group.is_empty() && i.resource.resource == "persistentvolumeclaims")
        .map(|i| {
            let (ns, name) = lifeboat_kube::api::ns_name(&i.object);
            let phase = i
                .status
                .as_ref()
                .and_then(|s| s.pointer("/phase"))
                .and_then(Value::as_str);
            (
                format!("{}/{name}", ns.unwrap_or_default()),
                phase == Some("Bound"),
            )
        });
    Ok(exempt(claims, &transform))
}

/// [`claims_to_exempt`] of claims (`namespace/name`, bound in the source).
fn exempt(claims: impl Iterator<Item = (String, bool)>, transform: &Transform) -> ExemptClaims {
    let mut out = ExemptClaims::default();
    for (key, bound) in claims {
        // Checked where the claim is restored: its namespace mapped.
        let target = match key.split_once('/') {
            Some((ns, name)) => match transform.namespace_map.get(ns) {
                Some(to) => format!("{to}/{name}"),
                None => key.clone(),
            },
            None => key.clone(),
        };
        let check = format!("PersistentVolumeClaim/{target}");
        if !bound {
            out.pending_in_source.insert(check);
        } else if !transform.volume_sources.contains_key(&key) && !transform.reattaches(Some(&key))
        {
            out.provisioned_empty.insert(check);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn only_claims_without_data_or_old_volume_are_exempt() {
        let claims = || {
            [
                ("shop/orders-db", true),
                ("shop/shared-assets", true),
                ("payments/ledger", true),
                ("analytics/scratch", false),
            ]
            .into_iter()
            .map(|(k, b)| (k.to_string(), b))
        };
        let mut transform = Transform {
            volume_sources: BTreeMap::from([(
                "shop/orders-db".into(),
                "lifeboat-restore-1".into(),
            )]),
            never_reattach: BTreeSet::from(["payments/ledger".to_string()]),
            ..Default::default()
        };
        let key = |k: &str| format!("PersistentVolumeClaim/{k}");
        let e = exempt(claims(), &transform);
        assert_eq!(
            e.pending_in_source,
            BTreeSet::from([key("analytics/scratch")])
        );
        assert_eq!(
            e.provisioned_empty,
            BTreeSet::from([key("payments/ledger"), key("shop/shared-assets")])
        );
        // Re-attached on request: the NFS claim must bind to its old volume;
        // the ledger, whose snapshot failed, is still provisioned empty.
        transform.reattach_volumes = true;
        let e = exempt(claims(), &transform);
        assert_eq!(
            e.provisioned_empty,
            BTreeSet::from([key("payments/ledger")])
        );
        // Under a namespace map, named where they are restored.
        transform.namespace_map = BTreeMap::from([("payments".into(), "payments-dr".into())]);
        let e = exempt(claims(), &transform);
        assert_eq!(
            e.provisioned_empty,
            BTreeSet::from([key("payments-dr/ledger")])
        );
    }

    #[test]
    fn claims_the_backup_copied_or_failed_to_copy_are_never_reattached() {
        let text = include_str!("../../../repo/tests/golden-manifests/cluster-with-volumes.json");
        let mut snap: Snapshot = serde_json::from_str(text).unwrap();
        if let Some(c) = snap.cluster.as_mut() {
            c.volumes_missing = crate::volumes::missing_volumes(&[
                "payments/ledger: volumesnapshot failed: NotFound".to_string(),
            ]);
        }
        let never = never_reattach(&snap);
        assert!(never.contains("shop/data"), "{never:?}");
        assert!(never.contains("payments/ledger"), "{never:?}");
    }
}
