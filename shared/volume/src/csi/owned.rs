//! Objects Lifeboat makes under a name it can predict (a retried step must
//! find its own): each carries a nonce, a value only Lifeboat can compute,
//! in the annotation [`NONCE_ANNOTATION`]. An object of that name without
//! the nonce was made by someone else; Lifeboat refuses to use or delete it,
//! rather than adopt a Job, Secret or claim that a tenant planted there.

use super::claim::str_at;
use crate::VolumeError;
use lifeboat_kube::{api, Cluster, KubeError, ResourceType};
use serde_json::{json, Value};

/// The annotation holding the nonce of the run that made the object.
pub const NONCE_ANNOTATION: &str = "lifeboat.dev/nonce";

/// `obj` with the nonce annotation added.
pub fn stamped(obj: &Value, nonce: &str) -> Value {
    let mut obj = obj.clone();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
        if let Some(a) = annotations.as_object_mut() {
            a.insert(NONCE_ANNOTATION.into(), json!(nonce));
        }
    }
    obj
}

/// Whether `existing` (an object found under a name Lifeboat uses) was made
/// by Lifeboat for this run: it carries `nonce`. The error names the object
/// (`what`) and says why it is not used.
pub fn check_ours(existing: &Value, nonce: &str, what: &str) -> Result<(), VolumeError> {
    let found = existing
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(NONCE_ANNOTATION))
        .and_then(Value::as_str);
    match found {
        Some(n) if !nonce.is_empty() && n == nonce => Ok(()),
        Some(_) => Err(VolumeError::NotOurs {
            what: what.to_string(),
            reason: format!("its {NONCE_ANNOTATION} annotation is not this run's"),
        }),
        None => Err(VolumeError::NotOurs {
            what: what.to_string(),
            reason: format!("it has no {NONCE_ANNOTATION} annotation"),
        }),
    }
}

/// Create `obj` stamped with `nonce`. One that exists already is used only
/// if it carries the same nonce (a retried step finds what it made);
/// anything else of that name is refused with [`VolumeError::NotOurs`].
pub async fn create_or_get(
    cluster: &Cluster,
    r: &ResourceType,
    obj: &Value,
    nonce: &str,
) -> Result<Value, VolumeError> {
    let obj = stamped(obj, nonce);
    let (ns, name) = api::ns_name(&obj);
    let what = api::describe(r, ns.as_deref(), &name);
    match api::create(cluster, r, &obj, false).await {
        Ok(v) => Ok(v),
        Err(KubeError::Api { code: 409, .. }) => {
            let existing = api::get(cluster, r, ns.as_deref(), &name)
                .await?
                .ok_or_else(|| VolumeError::Failed {
                    what: what.clone(),
                    message: "it existed a moment ago and is gone".into(),
                })?;
            check_ours(&existing, nonce, &what)?;
            Ok(existing)
        }
        Err(e) => Err(e.into()),
    }
}

/// Delete `namespace/name` if it is there and carries `nonce`; an object of
/// that name that is not Lifeboat's is left alone (with a warning).
/// `true` if something was deleted.
pub async fn delete_if_ours(
    cluster: &Cluster,
    r: &ResourceType,
    namespace: Option<&str>,
    name: &str,
    nonce: &str,
) -> Result<bool, VolumeError> {
    let Some(existing) = api::get(cluster, r, namespace, name).await? else {
        return Ok(false);
    };
    let what = api::describe(r, namespace, name);
    if let Err(e) = check_ours(&existing, nonce, &what) {
        tracing::warn!(object = %what, error = %e, "not deleted: not Lifeboat's");
        return Ok(false);
    }
    let uid = str_at(&existing, "/metadata/uid");
    tracing::debug!(object = %what, uid, "deleting");
    Ok(api::delete_owned(cluster, r, namespace, name).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(annotations: Value) -> Value {
        json!({"metadata": {"name": "lifeboat-backup-0123", "namespace": "lifeboat-system",
            "annotations": annotations}})
    }

    #[test]
    fn an_object_without_this_runs_nonce_is_refused() {
        let what = "jobs.batch lifeboat-system/lifeboat-backup-0123";
        let planted = job(json!({}));
        let err = check_ours(&planted, "n1", what).unwrap_err().to_string();
        assert!(
            err.contains(what) && err.contains("no lifeboat.dev/nonce annotation"),
            "{err}"
        );
        let other_run = job(json!({NONCE_ANNOTATION: "n0"}));
        let err = check_ours(&other_run, "n1", what).unwrap_err().to_string();
        assert!(err.contains("not this run's"), "{err}");
        assert!(!err.contains("n0"), "the error does not echo nonces: {err}");
        let no_metadata = json!({});
        assert!(check_ours(&no_metadata, "n1", what).is_err());
        // An empty expected nonce never matches (not even an empty one).
        assert!(check_ours(&job(json!({NONCE_ANNOTATION: ""})), "", what).is_err());
        check_ours(&job(json!({NONCE_ANNOTATION: "n1"})), "n1", what).unwrap();
    }

    #[test]
    fn stamping_keeps_other_annotations() {
        let obj = json!({"metadata": {"name": "a", "annotations": {"k": "v"}}});
        let s = stamped(&obj, "n1");
        assert_eq!(s["metadata"]["annotations"]["k"], "v");
        assert_eq!(s["metadata"]["annotations"][NONCE_ANNOTATION], "n1");
        let bare = stamped(&json!({"metadata": {"name": "a"}}), "n2");
        assert_eq!(bare["metadata"]["annotations"][NONCE_ANNOTATION], "n2");
        check_ours(&bare, "n2", "a").unwrap();
    }
}
