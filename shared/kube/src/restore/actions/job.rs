//! Jobs: the selector the Job controller generated in the source cluster.
//!
//! Unless `spec.manualSelector` is set, the API server generates the
//! selector and the matching pod-template label from the Job's uid, and
//! rejects a new Job that brings its own: the restored Job gets a new uid,
//! so the old values must go and the API server makes new ones.

use serde_json::Value;

use super::json::{self, FieldError};

const UID_LABELS: [&str; 2] = ["controller-uid", "batch.kubernetes.io/controller-uid"];

pub(super) fn apply(obj: &mut Value) -> Result<(), FieldError> {
    // With a manual selector the user chose selector and labels: keep them.
    if json::flag(obj, "/spec/manualSelector")? {
        return Ok(());
    }
    json::remove(obj, "/spec/selector");
    // The Job's own labels default to its template's, so they carry the
    // old uid too; harmless there but misleading.
    for labels in ["/spec/template/metadata/labels", "/metadata/labels"] {
        if let Some(labels) = json::object_mut(obj, labels)? {
            for key in UID_LABELS {
                labels.remove(key);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const UID: &str = "8c2d5e7a-1234-4cde-9f00-1a2b3c4d5e6f";

    fn generated_job() -> Value {
        let labels = json!({
            "batch.kubernetes.io/controller-uid": UID,
            "batch.kubernetes.io/job-name": "migrate",
            "controller-uid": UID,
            "job-name": "migrate"
        });
        json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "migrate", "namespace": "shop", "labels": labels.clone()},
            "spec": {
                "backoffLimit": 3,
                "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": UID}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "migrate:1"}]}
                }
            }
        })
    }

    #[test]
    fn generated_selector_and_uid_labels_are_dropped() {
        let mut job = generated_job();
        apply(&mut job).unwrap();
        let names = json!({"batch.kubernetes.io/job-name": "migrate", "job-name": "migrate"});
        assert!(job["spec"].get("selector").is_none());
        assert_eq!(job["spec"]["template"]["metadata"]["labels"], names);
        assert_eq!(job["metadata"]["labels"], names);
        assert_eq!(job["spec"]["backoffLimit"], 3);
    }

    #[test]
    fn manual_selector_is_kept() {
        let mut job = generated_job();
        job["spec"]["manualSelector"] = json!(true);
        let before = job.clone();
        apply(&mut job).unwrap();
        assert_eq!(job, before);
    }

    #[test]
    fn malformed_labels_name_the_field() {
        let mut job = generated_job();
        job["spec"]["template"]["metadata"]["labels"] = json!("job-name=migrate");
        let err = apply(&mut job).unwrap_err();
        assert_eq!(err.field, "spec.template.metadata.labels");
    }
}
