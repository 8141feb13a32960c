//! Application groups: the claims of one namespace labelled
//! `lifeboat.dev/group=<name>`, on one CSI driver, are snapshotted together
//! as one VolumeGroupSnapshot (crash-consistent across the volumes).

use lifeboat_volume::csi::{Claim, GROUP_LABEL};
use std::collections::BTreeMap;

/// The claims in scope of one namespace, group label value and driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Group {
    pub namespace: String,
    /// The `lifeboat.dev/group` value.
    pub name: String,
    pub driver: String,
    pub claims: Vec<Claim>,
}

impl Group {
    /// `namespace/group`, for messages.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Split `claims` into groups (same namespace, `lifeboat.dev/group` value
/// and driver; in the order their first claim comes) and the claims
/// without the label, which are snapshotted one by one.
pub(super) fn plan_groups(claims: Vec<Claim>) -> (Vec<Group>, Vec<Claim>) {
    let mut groups: Vec<Group> = Vec::new();
    let mut singles = Vec::new();
    for claim in claims {
        let Some(name) = claim.group.clone() else {
            singles.push(claim);
            continue;
        };
        match groups
            .iter_mut()
            .find(|g| g.namespace == claim.namespace && g.name == name && g.driver == claim.driver)
        {
            Some(g) => g.claims.push(claim),
            None => groups.push(Group {
                namespace: claim.namespace.clone(),
                name,
                driver: claim.driver.clone(),
                claims: vec![claim],
            }),
        }
    }
    (groups, singles)
}

/// Why each claim in scope (`namespace/name`) is not in `group` although it
/// may carry the label: on another driver, or not snapshottable.
pub(super) fn reasons_outside(
    groups: &[Group],
    unresolved: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out = unresolved
        .iter()
        .map(|(k, why)| (k.clone(), format!("cannot be snapshotted: {why}")))
        .collect::<BTreeMap<_, _>>();
    for g in groups {
        for c in &g.claims {
            out.insert(
                c.key(),
                format!(
                    "on driver {}: a group snapshot is taken by one driver",
                    c.driver
                ),
            );
        }
    }
    out
}

/// The guard: the group snapshot's selector takes every claim of the
/// namespace with the label (`labelled`, names), so they must be exactly
/// `group`'s claims. `outside` says why a claim in scope is not in this
/// group (see [`reasons_outside`]); any other is out of the backup's scope.
pub(super) fn check_group(
    group: &Group,
    labelled: &[String],
    outside: &BTreeMap<String, String>,
) -> Result<(), String> {
    let member = |n: &str| group.claims.iter().any(|c| c.name == n);
    let extra: Vec<String> = labelled
        .iter()
        .filter(|n| !member(n))
        .map(|n| {
            let key = format!("{}/{n}", group.namespace);
            let why = outside
                .get(&key)
                .map(String::as_str)
                .unwrap_or("not in this backup's scope");
            format!("{key} ({why})")
        })
        .collect();
    let unlabelled: Vec<String> = group
        .claims
        .iter()
        .filter(|c| !labelled.contains(&c.name))
        .map(Claim::key)
        .collect();
    if extra.is_empty() && unlabelled.is_empty() {
        return Ok(());
    }
    let mut why = Vec::new();
    if !extra.is_empty() {
        why.push(format!(
            "its selector {GROUP_LABEL}={} also takes {}",
            group.name,
            extra.join(", ")
        ));
    }
    if !unlabelled.is_empty() {
        why.push(format!(
            "{} no longer carry the label",
            unlabelled.join(", ")
        ));
    }
    Err(format!(
        "group {} ({} on {}) not snapshotted: {}; a group snapshot must hold exactly the group's claims in scope",
        group.key(),
        group
            .claims
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        group.driver,
        why.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(ns: &str, name: &str, driver: &str, group: Option<&str>) -> Claim {
        Claim {
            namespace: ns.into(),
            name: name.into(),
            volume: format!("pv-{name}"),
            driver: driver.into(),
            volume_handle: format!("h-{name}"),
            storage_class: None,
            size: 1 << 20,
            mode: "Filesystem".into(),
            group: group.map(str::to_string),
        }
    }

    const HP: &str = "hostpath.csi.k8s.io";
    const EBS: &str = "ebs.csi.aws.com";

    #[test]
    fn claims_are_grouped_by_namespace_label_and_driver() {
        let claims = vec![
            claim("shop", "db", HP, Some("app")),
            claim("shop", "cache", HP, None),
            claim("shop", "wal", HP, Some("app")),
            claim("shop", "media", EBS, Some("app")),
            claim("blog", "db", HP, Some("app")),
            claim("shop", "search", HP, Some("index")),
        ];
        let (groups, singles) = plan_groups(claims);
        let keys: Vec<(String, &str, Vec<&str>)> = groups
            .iter()
            .map(|g| {
                (
                    g.key(),
                    g.driver.as_str(),
                    g.claims.iter().map(|c| c.name.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                ("shop/app".to_string(), HP, vec!["db", "wal"]),
                ("shop/app".to_string(), EBS, vec!["media"]),
                ("blog/app".to_string(), HP, vec!["db"]),
                ("shop/index".to_string(), HP, vec!["search"]),
            ]
        );
        assert_eq!(singles.len(), 1);
        assert_eq!(singles[0].name, "cache");
    }

    #[test]
    fn the_group_must_be_exactly_the_labelled_claims_in_scope() {
        let claims = vec![
            claim("shop", "db", HP, Some("app")),
            claim("shop", "wal", HP, Some("app")),
            claim("shop", "media", EBS, Some("app")),
        ];
        let (groups, _) = plan_groups(claims);
        let mut unresolved = BTreeMap::new();
        unresolved.insert("shop/old".to_string(), "not bound".to_string());
        let outside = reasons_outside(&groups, &unresolved);
        let hp = &groups[0];
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_group(hp, &names(&["db", "wal"]), &outside).is_ok());
        let e = check_group(
            hp,
            &names(&["db", "media", "old", "private", "wal"]),
            &outside,
        )
        .unwrap_err();
        assert!(
            e.starts_with("group shop/app (db, wal on hostpath.csi.k8s.io)"),
            "{e}"
        );
        assert!(
            e.contains("shop/private (not in this backup's scope)"),
            "{e}"
        );
        assert!(
            e.contains(
                "shop/media (on driver ebs.csi.aws.com: a group snapshot is taken by one driver)"
            ),
            "{e}"
        );
        assert!(
            e.contains("shop/old (cannot be snapshotted: not bound)"),
            "{e}"
        );
        let e = check_group(hp, &names(&["db"]), &outside).unwrap_err();
        assert!(e.contains("shop/wal no longer carry the label"), "{e}");
    }
}
