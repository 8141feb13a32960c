use super::*;

fn claim(name: &str, handle: &str) -> Claim {
    Claim {
        namespace: "shop".into(),
        name: name.into(),
        volume: format!("pv-{name}"),
        driver: "hostpath.csi.k8s.io".into(),
        volume_handle: handle.into(),
        storage_class: Some("hostpath".into()),
        size: 1 << 20,
        mode: "Filesystem".into(),
        group: Some("app".into()),
    }
}

#[test]
fn members_are_matched_by_volume_handle_then_claim_name() {
    let claims = [claim("db", "h1"), claim("wal", "h2"), claim("logs", "h3")];
    let member = |vs: &str, pvc: &str, handle: &str| {
        (
            json!({"metadata": {"name": vs}, "spec": {"source": {"persistentVolumeClaimName": pvc}}}),
            json!({"metadata": {"name": format!("c-{vs}")}, "spec": {"source": {"volumeHandle": handle}}}),
        )
    };
    let snaps = [
        member("s-wal", "wal", "h2"),
        member("s-db", "", "h1"),
        member("s-logs", "logs", "unknown"),
    ];
    assert_eq!(match_members(&claims, &snaps), [Some(1), Some(0), Some(2)]);
    assert_eq!(match_members(&claims, &snaps[..1]), [None, Some(0), None]);
}

#[test]
fn the_group_holds_exactly_its_claims() {
    let claims = [claim("db", "h1"), claim("wal", "h2")];
    assert!(check_handles(&claims, &["h2".into(), "h1".into()]).is_ok());
    let e = check_handles(&claims, &["h1".into(), "h9".into()]).unwrap_err();
    assert!(e.contains("[h9]") && e.contains("[shop/wal]"), "{e}");
}

#[test]
fn group_names_are_stable_valid_and_distinct() {
    let a = group_snapshot_name("shop", "Shop.DB_main", "run-1");
    assert_eq!(a, group_snapshot_name("shop", "Shop.DB_main", "run-1"));
    assert!(a.starts_with("lifeboat-group-shop-db-main-"), "{a}");
    assert_ne!(a, group_snapshot_name("shop", "Shop.DB_main", "run-2"));
    assert_ne!(a, group_snapshot_name("other", "Shop.DB_main", "run-1"));
    let long = group_snapshot_name("shop", &"x".repeat(63), "r");
    assert!(long.len() <= 63, "{long}");
}

#[test]
fn a_group_member_reads_as_a_snapshot_of_its_group() {
    let vs = json!({"metadata": {"name": "snapshot-1", "namespace": "shop"},
        "spec": {"source": {"persistentVolumeClaimName": "db"}},
        "status": {"readyToUse": true, "boundVolumeSnapshotContentName": "snapcontent-1",
                   "restoreSize": "64Mi", "volumeGroupSnapshotName": "lifeboat-group-app-1"}});
    let content = json!({"metadata": {"name": "snapcontent-1"},
        "spec": {"driver": "hostpath.csi.k8s.io", "source": {"volumeHandle": "h1"}},
        "status": {"snapshotHandle": "s1", "restoreSize": 67108864}});
    let s = snapshot_from(&vs, &content).unwrap();
    assert_eq!(s.group.as_deref(), Some("lifeboat-group-app-1"));
    assert_eq!((s.handle.as_str(), s.size), ("s1", 64 << 20));
    assert_eq!(s.class, "");
}
