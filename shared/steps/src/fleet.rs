//! The fleet file: every protected cluster, how to reach it, and its default
//! scope; and, for runbooks, each region's repository.

use crate::StepError;
use lifeboat_kube::Scope;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// How to reach a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterAccess {
    /// An EKS cluster: endpoint and CA from DescribeCluster, a token from STS.
    Eks {
        name: String,
        region: Option<String>,
    },
    /// A kubeconfig kept in Secrets Manager (AKS, GKE, on-premises).
    KubeconfigSecret {
        secret: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context: Option<String>,
    },
    /// A kubeconfig file on this machine (local runs).
    Kubeconfig {
        path: PathBuf,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context: Option<String>,
    },
}

/// One protected cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetCluster {
    pub access: ClusterAccess,
    #[serde(default)]
    pub scope: Scope,
    /// The region the cluster runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// How many of Lifeboat's VolumeSnapshots to keep per claim once a
    /// backup has copied its data (default 1: the newest, the base of the
    /// next EBS incremental; 0 keeps none, and EBS copies are then full).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshots_kept: Option<u32>,
    /// Who may restore into this cluster, and from which clusters'
    /// snapshots. Empty (the default): nobody; every restore request for
    /// this cluster is refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restore_from: Vec<RestoreGrant>,
}

/// One grant of a cluster's `restore_from`: these requesters may restore
/// snapshots of these source clusters into it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreGrant {
    /// Who is asking, as the trigger authenticates it: an SQS message's
    /// `SenderId` (an IAM user's unique id `AIDA…`; a role session's
    /// `AROA…:<session name>`; `AROA…:*` for any session of the role), or
    /// `invoke` for a direct invocation of the trigger function, which IAM
    /// (`lambda:InvokeFunction`) authorizes.
    pub requesters: Vec<String>,
    /// Clusters (names in this file) whose snapshots they may restore here.
    pub sources: Vec<String>,
}

/// The requester name of a direct invocation of the trigger function.
pub const INVOKE_REQUESTER: &str = "invoke";

/// Whether `pattern` from a grant names `requester`: equal, or `AROA…:*`
/// for any session of that role.
fn requester_matches(pattern: &str, requester: &str) -> bool {
    match pattern.strip_suffix(":*") {
        Some(role) if !role.is_empty() => requester
            .strip_prefix(role)
            .is_some_and(|rest| rest.starts_with(':') && rest.len() > 1),
        _ => pattern == requester,
    }
}

impl FleetCluster {
    /// Whether `requester` may restore snapshots of `source` into this cluster.
    pub fn may_restore(&self, requester: &str, source: &str) -> bool {
        self.restore_from.iter().any(|g| {
            g.sources.iter().any(|s| s == source)
                && g.requesters.iter().any(|p| requester_matches(p, requester))
        })
    }
}

/// One region's repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetRegion {
    pub repository: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fleet {
    pub version: u32,
    #[serde(default)]
    pub clusters: BTreeMap<String, FleetCluster>,
    #[serde(default)]
    pub regions: BTreeMap<String, FleetRegion>,
    /// The Object Lock policy every repository must have (its `config` must
    /// say at least this): pinned here, outside the bucket, so that a
    /// replaced `config` cannot turn locking off unnoticed.
    /// `LIFEBOAT_EXPECTED_LOCK` (`compliance:30`) takes precedence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<lifeboat_repo::LockPolicy>,
    /// The SQS queue URLs a request's `reply_to` may name. Empty: no
    /// request may ask for a reply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reply_queues: Vec<String>,
}

impl Fleet {
    /// A fleet file with nothing in it: no clusters, no grants, no reply queues.
    pub fn empty() -> Fleet {
        Fleet {
            version: 1,
            clusters: BTreeMap::new(),
            regions: BTreeMap::new(),
            object_lock: None,
            reply_queues: Vec::new(),
        }
    }

    /// Parse a fleet file; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Fleet, StepError> {
        let fleet: Fleet = serde_json::from_str(text)
            .map_err(|e| StepError::invalid(format!("fleet file {origin}: {e}")))?;
        if fleet.version != 1 {
            return Err(StepError::invalid(format!(
                "fleet file {origin}: version {} is not supported (1 is)",
                fleet.version
            )));
        }
        Ok(fleet)
    }

    /// The cluster named `name`, or an error listing the known ones.
    pub fn cluster(&self, name: &str) -> Result<&FleetCluster, StepError> {
        self.clusters.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.clusters.keys().map(String::as_str).collect();
            StepError::not_found(format!(
                "cluster {name:?} is not in the fleet file (it has: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ))
        })
    }

    /// The repository of `region`.
    pub fn region(&self, region: &str) -> Result<&FleetRegion, StepError> {
        self.regions.get(region).ok_or_else(|| {
            let known: Vec<&str> = self.regions.keys().map(String::as_str).collect();
            StepError::not_found(format!(
                "region {region:?} is not in the fleet file (it has: {})",
                known.join(", ")
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn restore_grants_name_requesters_and_source_clusters() {
        let f = Fleet::parse(
            r#"{"version":1,"clusters":{
                "dr":{"access":{"eks":{"name":"dr"}},"restore_from":[
                  {"requesters":["AROAEXAMPLEROLE:*","AIDAEXAMPLEUSER"],"sources":["prod"]},
                  {"requesters":["invoke"],"sources":["prod","dr"]}]},
                "prod":{"access":{"eks":{"name":"prod"}}}}}"#,
            "test",
        )
        .unwrap();
        let dr = f.cluster("dr").unwrap();
        assert!(dr.may_restore("AROAEXAMPLEROLE:runbook-7", "prod"));
        assert!(dr.may_restore("AIDAEXAMPLEUSER", "prod"));
        assert!(dr.may_restore("invoke", "dr"));
        // The right requester, the wrong source.
        assert!(!dr.may_restore("AIDAEXAMPLEUSER", "dr"));
        // Another role, a role id without a session, a prefix of the role id.
        assert!(!dr.may_restore("AROAOTHERROLE:runbook", "prod"));
        assert!(!dr.may_restore("AROAEXAMPLEROLE", "prod"));
        assert!(!dr.may_restore("AROAEXAMPLEROLE:", "prod"));
        assert!(!dr.may_restore("AROAEXAMPLE:x", "prod"));
        // No grants: nobody.
        assert!(!f.cluster("prod").unwrap().may_restore("invoke", "prod"));
    }

    #[test]
    fn every_kind_of_access_parses_and_unknown_names_are_listed() {
        let f = Fleet::parse(
            r#"{"version":1,"clusters":{
                "prod":{"access":{"eks":{"name":"prod","region":"us-east-1"}},"scope":{"include_namespaces":["shop"]}},
                "aks":{"access":{"kubeconfig_secret":{"secret":"arn:aws:secretsmanager:us-east-1:1:secret:aks"}}},
                "local":{"access":{"kubeconfig":{"path":"/k","context":"primary"}}}},
              "regions":{"us-west-2":{"repository":"s3://dr/repo"}}}"#,
            "test",
        )
        .unwrap();
        assert!(matches!(
            f.cluster("prod").unwrap().access,
            ClusterAccess::Eks { .. }
        ));
        assert_eq!(f.region("us-west-2").unwrap().repository, "s3://dr/repo");
        let e = f.cluster("nope").unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::NotFound);
        assert!(e.message.contains("aks, local, prod"), "{}", e.message);
        let bad =
            Fleet::parse(r#"{"version":1,"clusters":{"x":{"acess":{}}}}"#, "f.json").unwrap_err();
        assert!(
            bad.message.starts_with("fleet file f.json:"),
            "{}",
            bad.message
        );
    }
}
