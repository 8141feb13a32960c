//! The objects a mover Job needs: the Job, the Secret its container reads
//! the repository's address and passphrase from, and the staging claim. All
//! of them are in Lifeboat's own namespace ([`MoverSettings::namespace`]),
//! never in the application's, and carry the run's nonce.

use super::settings::MoverSettings;
use crate::csi::{label_value, MANAGED_LABEL, NONCE_ANNOTATION, RUN_LABEL};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Where a Filesystem volume is mounted in the mover's container.
pub const VOLUME_MOUNT: &str = "/lifeboat/volume";
/// Where a Block volume appears in the mover's container.
pub const VOLUME_DEVICE: &str = "/dev/lifeboat-volume";
/// The container's termination message: the command's JSON result.
pub const TERMINATION_LOG: &str = "/dev/termination-log";
/// `backup` or `restore`, on the Job, its pods, Secret and staging claim.
pub const MOVER_LABEL: &str = "lifeboat.dev/mover";
/// The claim (`namespace/name`) a mover works for.
pub const CLAIM_ANNOTATION: &str = "lifeboat.dev/claim";

/// What the Job does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Direction {
    /// `volume backup` of the staging claim, tagged, recorded under `host`
    /// (so the parent is the previous backup of the same volume).
    Backup {
        tags: BTreeMap<String, String>,
        host: String,
        /// The previous backup of the volume (a repository snapshot id):
        /// its unchanged files are not read again.
        parent: Option<String>,
    },
    /// `volume restore SNAPSHOT --path PATH --verify` into the staging claim.
    Restore { snapshot: String, path: String },
}

impl Direction {
    fn label(&self) -> &'static str {
        match self {
            Direction::Backup { .. } => "backup",
            Direction::Restore { .. } => "restore",
        }
    }
}

/// One mover Job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoverJob {
    /// Lifeboat's namespace: the Job, its Secret and the staging claim are
    /// here ([`MoverSettings::namespace`]).
    pub namespace: String,
    /// The Job's name; its Secret has the same name.
    pub name: String,
    /// The backup or restore run (the execution's name).
    pub run: String,
    /// The application's claim the work is for: its namespace and name.
    pub claim_namespace: String,
    pub claim: String,
    /// The claim the Job mounts (a staging claim, in [`Self::namespace`]).
    pub volume_claim: String,
    /// Stamped on everything made for this Job ([`NONCE_ANNOTATION`]): a
    /// retried step uses only objects that carry it.
    pub nonce: String,
    /// A Block volume (attached as a device) rather than a Filesystem one.
    pub block: bool,
    pub direction: Direction,
}

impl MoverJob {
    fn labels(&self) -> Value {
        json!({
            MANAGED_LABEL: "lifeboat",
            RUN_LABEL: label_value(&self.run),
            MOVER_LABEL: self.direction.label(),
        })
    }

    fn metadata(&self, name: &str) -> Value {
        json!({
            "name": name,
            "namespace": self.namespace,
            "labels": self.labels(),
            "annotations": {
                CLAIM_ANNOTATION: format!("{}/{}", self.claim_namespace, self.claim),
                NONCE_ANNOTATION: self.nonce,
            },
        })
    }

    /// Where the volume is in the container.
    pub fn volume_path(&self) -> &'static str {
        if self.block {
            VOLUME_DEVICE
        } else {
            VOLUME_MOUNT
        }
    }

    /// The `lifeboat` command line.
    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = vec!["volume".into()];
        match &self.direction {
            Direction::Backup { tags, host, parent } => {
                args.extend(["backup".into(), self.volume_path().into()]);
                for (k, v) in tags {
                    args.extend(["--tag".into(), format!("{k}={v}")]);
                }
                args.extend(["--host".into(), host.clone()]);
                match parent {
                    Some(p) => args.extend(["--parent".into(), p.clone()]),
                    None => args.push("--no-parent".into()),
                }
                // The staging claim is a fresh copy: inodes and ctimes are new.
                args.push("--ignore-inode".into());
            }
            Direction::Restore { snapshot, path } => {
                args.extend([
                    "restore".into(),
                    snapshot.clone(),
                    self.volume_path().into(),
                    "--path".into(),
                    path.clone(),
                    "--verify".into(),
                ]);
            }
        }
        args.extend([
            "--json".into(),
            "--result-file".into(),
            TERMINATION_LOG.into(),
        ]);
        args
    }

    /// The Job: one pod, never restarted in place (the Job retries twice
    /// with a new pod), root with only the capabilities a copy needs (read
    /// every file; restore owners and modes), a read-only root filesystem.
    pub fn job(&self, settings: &MoverSettings) -> Value {
        let read_only = matches!(self.direction, Direction::Backup { .. });
        let mut container = json!({
            "name": "mover",
            "image": settings.image,
            "command": ["/usr/local/bin/lifeboat"],
            "args": self.args(),
            "envFrom": [{ "secretRef": { "name": self.name } }],
            "env": [{ "name": "HOME", "value": "/tmp" }],
            "resources": {
                "requests": { "cpu": "500m", "memory": settings.memory },
                "limits": { "memory": settings.memory },
            },
            "securityContext": {
                "runAsUser": 0,
                "runAsGroup": 0,
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "capabilities": {
                    "drop": ["ALL"],
                    // Only what Pod Security "baseline" allows: DAC_OVERRIDE
                    // reads every file (DAC_READ_SEARCH would be refused).
                    "add": ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "MKNOD"],
                },
            },
            "terminationMessagePath": TERMINATION_LOG,
            "terminationMessagePolicy": "FallbackToLogsOnError",
        });
        let tmp = json!({ "name": "tmp", "mountPath": "/tmp" });
        if self.block {
            container["volumeDevices"] = json!([{ "name": "volume", "devicePath": VOLUME_DEVICE }]);
            container["volumeMounts"] = json!([tmp]);
        } else {
            container["volumeMounts"] = json!([
                { "name": "volume", "mountPath": VOLUME_MOUNT, "readOnly": read_only },
                tmp,
            ]);
        }
        let mut pod = json!({
            "restartPolicy": "Never",
            "automountServiceAccountToken": false,
            "containers": [container],
            "volumes": [
                {
                    "name": "volume",
                    "persistentVolumeClaim": { "claimName": self.volume_claim, "readOnly": read_only },
                },
                { "name": "tmp", "emptyDir": {} },
            ],
        });
        if let Some(sa) = &settings.service_account {
            pod["serviceAccountName"] = json!(sa);
            // The IAM role's web identity token is projected by the
            // service account's admission; it needs the token mounted.
            pod["automountServiceAccountToken"] = json!(true);
        }
        json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": self.metadata(&self.name),
            "spec": {
                "backoffLimit": 2,
                "activeDeadlineSeconds": settings.deadline_secs,
                // Cleaned up by the step; this catches a run that died.
                "ttlSecondsAfterFinished": 86400,
                "template": {
                    "metadata": { "labels": self.labels() },
                    "spec": pod,
                },
            },
        })
    }

    /// The Secret with the container's environment (the repository's
    /// address and passphrase), owned by the Job `uid`, so it goes with the
    /// Job even if the step that made it does not come back.
    pub fn secret(&self, job_uid: &str, env: &BTreeMap<String, String>) -> Value {
        let mut meta = self.metadata(&self.name);
        meta["ownerReferences"] = json!([{
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": self.name,
            "uid": job_uid,
        }]);
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": meta,
            "type": "Opaque",
            "stringData": env,
        })
    }

    /// The staging claim: from VolumeSnapshot `snapshot`, which must be in
    /// the same namespace (backup: the application's snapshot imported
    /// there), or empty (restore).
    pub fn staging_claim(
        &self,
        storage_class: Option<&str>,
        size: u64,
        snapshot: Option<&str>,
    ) -> Value {
        let mut spec = json!({
            "accessModes": ["ReadWriteOnce"],
            "volumeMode": if self.block { "Block" } else { "Filesystem" },
            "resources": { "requests": { "storage": size.to_string() } },
        });
        if let Some(class) = storage_class {
            spec["storageClassName"] = json!(class);
        }
        if let Some(s) = snapshot {
            let source = json!({
                "apiGroup": "snapshot.storage.k8s.io",
                "kind": "VolumeSnapshot",
                "name": s,
            });
            spec["dataSource"] = source.clone();
            spec["dataSourceRef"] = source;
        }
        json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": self.metadata(&self.volume_claim),
            "spec": spec,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup(block: bool) -> MoverJob {
        MoverJob {
            namespace: "lifeboat-system".into(),
            name: "lifeboat-backup-0123456789ab".into(),
            run: "nightly:2026-11-27T01:00".into(),
            claim_namespace: "shop".into(),
            claim: "orders-db".into(),
            nonce: "n1".into(),
            volume_claim: "lifeboat-backup-0123456789ab".into(),
            block,
            direction: Direction::Backup {
                tags: BTreeMap::from([("lifeboat.dev/claim".into(), "shop/orders-db".into())]),
                host: "primary/shop/orders-db".into(),
                parent: Some("cafe".into()),
            },
        }
    }

    #[test]
    fn backup_job_mounts_the_staging_claim_read_only_and_runs_volume_backup() {
        let job = backup(false).job(&MoverSettings::default());
        let c = &job["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["command"], json!(["/usr/local/bin/lifeboat"]));
        assert_eq!(
            c["args"],
            json!([
                "volume",
                "backup",
                "/lifeboat/volume",
                "--tag",
                "lifeboat.dev/claim=shop/orders-db",
                "--host",
                "primary/shop/orders-db",
                "--parent",
                "cafe",
                "--ignore-inode",
                "--json",
                "--result-file",
                "/dev/termination-log"
            ])
        );
        assert_eq!(c["volumeMounts"][0]["mountPath"], "/lifeboat/volume");
        assert_eq!(c["volumeMounts"][0]["readOnly"], true);
        assert_eq!(c["terminationMessagePolicy"], "FallbackToLogsOnError");
        assert_eq!(
            c["envFrom"][0]["secretRef"]["name"],
            "lifeboat-backup-0123456789ab"
        );
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        // Pod Security "baseline" admits these and no others.
        let baseline = [
            "AUDIT_WRITE",
            "CHOWN",
            "DAC_OVERRIDE",
            "FOWNER",
            "FSETID",
            "KILL",
            "MKNOD",
            "NET_BIND_SERVICE",
            "SETFCAP",
            "SETGID",
            "SETPCAP",
            "SETUID",
            "SYS_CHROOT",
        ];
        for cap in c["securityContext"]["capabilities"]["add"]
            .as_array()
            .unwrap()
        {
            assert!(baseline.contains(&cap.as_str().unwrap()), "{cap}");
        }
        let pod = &job["spec"]["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never");
        assert_eq!(pod["automountServiceAccountToken"], false);
        assert_eq!(
            pod["volumes"][0]["persistentVolumeClaim"]["claimName"],
            "lifeboat-backup-0123456789ab"
        );
        assert_eq!(
            job["metadata"]["labels"][RUN_LABEL],
            "nightly-2026-11-27T01-00"
        );
        assert_eq!(job["metadata"]["labels"][MOVER_LABEL], "backup");
        assert_eq!(
            job["metadata"]["annotations"]["lifeboat.dev/claim"],
            "shop/orders-db"
        );
        assert!(job["spec"]["activeDeadlineSeconds"].as_u64().unwrap() > 0);
    }

    #[test]
    fn a_block_volume_is_attached_as_a_device() {
        let job = backup(true).job(&MoverSettings::default());
        let c = &job["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["volumeDevices"][0]["devicePath"], "/dev/lifeboat-volume");
        assert_eq!(c["args"][2], "/dev/lifeboat-volume");
        assert!(c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["name"] != "volume"));
    }

    #[test]
    fn restore_job_writes_the_volume_and_verifies_it() {
        let mut m = backup(false);
        m.direction = Direction::Restore {
            snapshot: "ab12".into(),
            path: "volumes/shop/orders-db".into(),
        };
        let job = m.job(&MoverSettings {
            service_account: Some("lifeboat-mover".into()),
            ..MoverSettings::default()
        });
        let pod = &job["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        assert_eq!(
            c["args"],
            json!([
                "volume",
                "restore",
                "ab12",
                "/lifeboat/volume",
                "--path",
                "volumes/shop/orders-db",
                "--verify",
                "--json",
                "--result-file",
                "/dev/termination-log"
            ])
        );
        assert_eq!(c["volumeMounts"][0]["readOnly"], false);
        assert_eq!(
            pod["volumes"][0]["persistentVolumeClaim"]["readOnly"],
            false
        );
        assert_eq!(pod["serviceAccountName"], "lifeboat-mover");
        assert_eq!(job["metadata"]["labels"][MOVER_LABEL], "restore");
    }

    #[test]
    fn the_secret_is_owned_by_the_job() {
        let env = BTreeMap::from([("LIFEBOAT_REPO".to_string(), "s3://b/p".to_string())]);
        let s = backup(false).secret("uid-1", &env);
        assert_eq!(s["metadata"]["ownerReferences"][0]["uid"], "uid-1");
        assert_eq!(s["metadata"]["ownerReferences"][0]["kind"], "Job");
        assert_eq!(s["stringData"]["LIFEBOAT_REPO"], "s3://b/p");
    }

    #[test]
    fn every_object_is_in_lifeboats_namespace_with_the_nonce() {
        let m = backup(false);
        let env = BTreeMap::from([("LIFEBOAT_PASSWORD".to_string(), "p".to_string())]);
        for obj in [
            m.job(&MoverSettings::default()),
            m.secret("uid-1", &env),
            m.staging_claim(None, 5, Some("lifeboat-backup-0123456789ab")),
        ] {
            assert_eq!(obj["metadata"]["namespace"], "lifeboat-system", "{obj}");
            assert_eq!(obj["metadata"]["annotations"][NONCE_ANNOTATION], "n1");
            // The application's claim is named, not its namespace used.
            assert_eq!(
                obj["metadata"]["annotations"]["lifeboat.dev/claim"],
                "shop/orders-db"
            );
        }
    }

    #[test]
    fn the_staging_claim_comes_from_the_snapshot() {
        let pvc = backup(true).staging_claim(Some("fast"), 1 << 30, Some("lifeboat-orders-db-1"));
        assert_eq!(pvc["spec"]["dataSource"]["kind"], "VolumeSnapshot");
        assert_eq!(pvc["spec"]["dataSourceRef"]["name"], "lifeboat-orders-db-1");
        assert_eq!(pvc["spec"]["volumeMode"], "Block");
        assert_eq!(pvc["spec"]["storageClassName"], "fast");
        assert_eq!(
            pvc["spec"]["resources"]["requests"]["storage"],
            "1073741824"
        );
        let empty = backup(false).staging_claim(None, 5, None);
        assert!(empty["spec"].get("dataSource").is_none());
        assert!(empty["spec"].get("storageClassName").is_none());
    }
}
