//! The execution state: the request at the top level, and each step's result
//! under the field its Task's `ResultPath` names (docs/workflows.md).

use crate::fleet::ClusterAccess;
use crate::request::Request;
use crate::StepError;
use chrono::{DateTime, Utc};
use lifeboat_kube::restore::Outcome;
use lifeboat_kube::{ReadinessReport, Scope};
use lifeboat_ops::cluster::ExportedState;
use lifeboat_repo::Id;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// `$.execution`, written by the definitions' first Pass state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecutionInfo {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    pub started: DateTime<Utc>,
}

/// `$.plan` (prepare): what to back up and how to reach it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub cluster: String,
    pub access: ClusterAccess,
    pub scope: Scope,
    /// Whether `scope` is the fleet's scope for the cluster (the request did
    /// not narrow it): recorded as the snapshot's `full`. Absent in plans of
    /// older builds: decided from the scope then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full: Option<bool>,
    pub tags: BTreeMap<String, String>,
    /// This region's repository (for the report).
    pub repository: String,
    /// The region the cluster runs in (its EBS snapshots are there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Lifeboat's VolumeSnapshots kept per claim after a commit (fleet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshots_kept: Option<u32>,
    /// The run named in this backup's pending marker (`pending/…`), which
    /// keeps prune from deleting data the backup may use until commit (or the
    /// failure report) removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<String>,
}

/// `$.volumes` (snapshot-volumes).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Volumes {
    pub count: u64,
    pub items: Vec<Value>,
    /// Volumes in scope whose data should have been copied but is not (the
    /// claim or its volume could not be read, its VolumeSnapshot or the
    /// planning of its copy failed), each with the reason: the backup is
    /// partial.
    #[serde(default)]
    pub not_copied: Vec<String>,
    /// Claims in scope the policy leaves out, each with the reason: not
    /// bound (no volume) or not a CSI volume. Listed; the backup is not
    /// partial for them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<String>,
    /// Each application group (claims labelled `lifeboat.dev/group`):
    /// `namespace/group: volumegroupsnapshot NAME (claims ...)`, or
    /// `namespace/group: snapshotted one by one: REASON`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// `$.commit`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Committed {
    pub snapshot: Id,
    pub time: DateTime<Utc>,
    pub objects: u64,
    pub bytes: u64,
    pub bytes_new: u64,
    pub bytes_stored: u64,
    /// The volumes whose data the snapshot holds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<lifeboat_repo::VolumeData>,
    /// Lifeboat's VolumeSnapshots of earlier runs, deleted now that a newer
    /// copy is committed (`namespace/name`), or why they could not be.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub released_snapshots: Vec<String>,
    /// Volumes left out of the snapshot because their copy failed
    /// (`namespace/claim: Error: message`): the backup is partial.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes_failed: Vec<String>,
}

/// `$.verify` and `$.replica_verify`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verified {
    pub snapshot: Id,
    pub repository: String,
    pub ok: bool,
    pub problems: u64,
    pub packs_read: u64,
    pub bytes_read: u64,
    pub objects_decoded: u64,
    pub objects_lock_checked: u64,
    /// The verification record, `reports/<id>`.
    pub record: Id,
}

/// `$.lock` (apply-lock).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Locked {
    pub locked: bool,
    pub objects: u64,
    pub extended: u64,
    #[serde(default)]
    pub until: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `$.replica` (replicate).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Replicated {
    pub repository: String,
    /// Whether this run created the replica (copied config and keys).
    pub initialized: bool,
    #[serde(flatten)]
    pub copied: lifeboat_ops::replicate::ReplicateReport,
}

/// `$.resolved` (resolve): the snapshot a restore uses and where it goes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Resolved {
    pub snapshot: Id,
    pub snapshot_time: DateTime<Utc>,
    pub source_cluster: String,
    pub target_cluster: String,
    pub access: ClusterAccess,
    pub repository: String,
    /// Whether the snapshot passed verification in this repository.
    pub verified: bool,
    /// Age of the snapshot when the restore started: the recovery point.
    pub rpo_secs: f64,
}

/// `$.foundation` and `$.workloads` (restore-state).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestoredState {
    pub stage: lifeboat_kube::restore::order::Stage,
    pub counts: BTreeMap<Outcome, u64>,
    pub failed: u64,
    pub report: Option<Id>,
    /// Namespaces that objects were restored into (for check-readiness).
    pub namespaces: Vec<String>,
    pub duration_secs: f64,
}

/// `$.failure`, written by a Catch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failure {
    #[serde(rename = "Error")]
    pub error: String,
    #[serde(rename = "Cause", default)]
    pub cause: String,
}

/// The whole state; every step's field is optional, and fields a step does
/// not know are ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct State {
    #[serde(flatten)]
    pub request: Request,
    pub execution: Option<ExecutionInfo>,
    pub plan: Option<Plan>,
    pub export: Option<ExportedState>,
    pub volumes: Option<Volumes>,
    pub copies: Option<Vec<Value>>,
    pub commit: Option<Committed>,
    pub verify: Option<Verified>,
    pub lock: Option<Locked>,
    pub replica: Option<Replicated>,
    pub replica_verify: Option<Verified>,
    pub resolved: Option<Resolved>,
    pub foundation: Option<RestoredState>,
    pub workloads: Option<RestoredState>,
    pub restored_volumes: Option<Value>,
    pub readiness: Option<ReadinessReport>,
    pub failure: Option<Failure>,
}

impl State {
    /// Parse a step's input, naming what is wrong.
    pub fn parse(input: Value) -> Result<State, StepError> {
        let request = input.clone();
        // The request part gets the message checks (fields named); the
        // rest is the steps' own output.
        if let Value::Object(map) = &request {
            let req: serde_json::Map<String, Value> = map
                .iter()
                .filter(|(k, _)| crate::request::FIELDS.iter().any(|(f, _, _)| f == k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            crate::request::Request::from_value(Value::Object(req))
                .map_err(|e| StepError::invalid(format!("execution input: {e}")))?;
        }
        serde_json::from_value(input)
            .map_err(|e| StepError::invalid(format!("execution state: {e}")))
    }

    /// A field a step needs, or an error naming it and the step that makes it.
    pub fn need<'a, T>(
        field: &'a Option<T>,
        name: &str,
        made_by: &str,
    ) -> Result<&'a T, StepError> {
        field.as_ref().ok_or_else(|| {
            StepError::invalid(format!(
                "execution state has no `{name}`: the {made_by} step must run first"
            ))
        })
    }

    /// When the execution started (now if the definition did not record it).
    pub fn started(&self) -> DateTime<Utc> {
        self.execution.as_ref().map_or_else(Utc::now, |e| e.started)
    }
}

/// Serialise a step's result.
pub fn to_value<T: Serialize>(t: &T) -> Result<Value, StepError> {
    serde_json::to_value(t).map_err(|e| StepError::failed(format!("result not serialisable: {e}")))
}

/// Deserialise a value a step was given.
pub fn from_value<T: DeserializeOwned>(v: Value, what: &str) -> Result<T, StepError> {
    serde_json::from_value(v).map_err(|e| StepError::invalid(format!("{what}: {e}")))
}
