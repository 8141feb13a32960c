//! The protections of `infra/template.yaml` that no emulator evaluates (moto
//! ignores policy conditions), checked statically: the bucket policy, the
//! writers' scopes, the KMS key policy and the pinned lock policy. Each test
//! names the statement it needs and fails when it is gone or loosened.
//!
//! `cargo test -p lifeboat-tests --test infra_policy`; needs no service.

use anyhow::{bail, ensure, Context, Result};
use serde_yaml::Value as Yaml;
use std::collections::BTreeSet;
use std::fs;

fn template() -> Result<Yaml> {
    let path = lifeboat_tests::repo_root().join("infra/template.yaml");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// A value as text, intrinsic functions spelled as `${...}`: `!Ref X` is
/// `${X}`, `!GetAtt X.Arn` is `${X.Arn}`, `!Sub "s"` and `!Sub ["s", {...}]`
/// are `s`. Lists are joined with `|`.
fn text(v: &Yaml) -> String {
    match v {
        Yaml::String(s) => s.clone(),
        Yaml::Number(n) => n.to_string(),
        Yaml::Bool(b) => b.to_string(),
        Yaml::Sequence(items) => items.iter().map(text).collect::<Vec<_>>().join("|"),
        Yaml::Tagged(t) => {
            let tag = t.tag.to_string();
            match (tag.trim_start_matches('!'), &t.value) {
                ("Ref", inner) | ("GetAtt", inner) => format!("${{{}}}", text(inner)),
                ("Sub", Yaml::Sequence(parts)) => parts.first().map(text).unwrap_or_default(),
                ("Sub", inner) => text(inner),
                (other, inner) => format!("!{other} {}", text(inner)),
            }
        }
        Yaml::Mapping(_) | Yaml::Null => String::new(),
    }
}

/// A statement field as a list of strings (a single value or a list).
fn list(v: Option<&Yaml>) -> Vec<String> {
    match v {
        Some(Yaml::Sequence(items)) => items.iter().map(text).collect(),
        Some(other) => vec![text(other)],
        None => Vec::new(),
    }
}

fn resource<'a>(t: &'a Yaml, id: &str) -> Result<&'a Yaml> {
    t.get("Resources")
        .and_then(|r| r.get(id))
        .with_context(|| format!("no resource {id}"))
}

fn statements<'a>(policy_document: &'a Yaml, at: &str) -> Result<&'a Vec<Yaml>> {
    policy_document
        .get("Statement")
        .and_then(Yaml::as_sequence)
        .with_context(|| format!("{at}: no Statement list"))
}

fn bucket_policy(t: &Yaml) -> Result<&Vec<Yaml>> {
    let p = resource(t, "RepositoryBucketPolicy")?;
    let props = p
        .get("Properties")
        .context("RepositoryBucketPolicy: no Properties")?;
    ensure!(
        props.get("Bucket").map(text).as_deref() == Some("${RepositoryBucket}"),
        "the bucket policy is not attached to RepositoryBucket"
    );
    statements(
        props.get("PolicyDocument").context("no PolicyDocument")?,
        "RepositoryBucketPolicy",
    )
}

fn by_sid<'a>(statements: &'a [Yaml], sid: &str) -> Result<&'a Yaml> {
    statements
        .iter()
        .find(|s| s.get("Sid").and_then(Yaml::as_str) == Some(sid))
        .with_context(|| format!("no statement {sid}"))
}

/// A deny for everyone, with these actions exactly.
fn check_deny(s: &Yaml, sid: &str, actions: &[&str]) -> Result<()> {
    ensure!(
        s.get("Effect").and_then(Yaml::as_str) == Some("Deny"),
        "{sid} is not a Deny"
    );
    let principal = s.get("Principal").context("no Principal")?;
    let everyone =
        principal.as_str() == Some("*") || principal.get("AWS").and_then(Yaml::as_str) == Some("*");
    ensure!(everyone, "{sid} does not apply to every principal");
    let got: BTreeSet<String> = list(s.get("Action")).into_iter().collect();
    let want: BTreeSet<String> = actions.iter().map(|a| a.to_string()).collect();
    ensure!(got == want, "{sid}: actions {got:?}, expected {want:?}");
    Ok(())
}

fn condition(s: &Yaml, operator: &str, key: &str) -> Vec<String> {
    list(
        s.get("Condition")
            .and_then(|c| c.get(operator))
            .and_then(|o| o.get(key)),
    )
}

const DEPLOYMENT_ROLE: &str =
    "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${DeploymentRoleName}";
const BREAK_GLASS_ROLE: &str =
    "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${BreakGlassRoleName}";

#[test]
fn bucket_policy_denies_overwriting_every_key_but_lock_records() -> Result<()> {
    let t = template()?;
    let s = by_sid(bucket_policy(&t)?, "DenyOverwritingObjects")?;
    check_deny(s, "DenyOverwritingObjects", &["s3:PutObject"])?;
    ensure!(
        s.get("Resource").is_none(),
        "it must cover every key (NotResource)"
    );
    let exempt = list(s.get("NotResource"));
    ensure!(
        exempt
            == [
                "${RepositoryBucket.Arn}/${RepositoryPrefix}/locks/*",
                "${RepositoryBucket.Arn}/${FleetObjectKey}"
            ],
        "only locks/ and the fleet file may be replaced: {exempt:?}"
    );
    ensure!(condition(s, "Null", "s3:if-none-match") == ["true"]);
    // Multipart parts cannot carry If-None-Match; their completion must.
    ensure!(condition(s, "Bool", "s3:ObjectCreationOperation") == ["true"]);
    Ok(())
}

#[test]
fn bucket_policy_caps_retention_and_pins_the_lock_mode() -> Result<()> {
    let t = template()?;
    let policy = bucket_policy(&t)?;
    let cap = by_sid(policy, "DenyExcessiveRetention")?;
    check_deny(
        cap,
        "DenyExcessiveRetention",
        &["s3:PutObject", "s3:PutObjectRetention"],
    )?;
    ensure!(list(cap.get("Resource")) == ["${RepositoryBucket.Arn}/*"]);
    ensure!(
        condition(
            cap,
            "NumericGreaterThan",
            "s3:object-lock-remaining-retention-days"
        ) == ["${MaxRetentionDays}"]
    );
    let default = |name: &str| -> Result<i64> {
        t.get("Parameters")
            .and_then(|p| p.get(name))
            .and_then(|p| p.get("Default"))
            .and_then(Yaml::as_i64)
            .with_context(|| format!("parameter {name} has no numeric default"))
    };
    let (days, max) = (default("RetentionDays")?, default("MaxRetentionDays")?);
    ensure!(
        max > days && max <= days + 14,
        "MaxRetentionDays {max} must leave a little slack over RetentionDays {days}"
    );
    let mode = by_sid(policy, "DenyOtherLockMode")?;
    check_deny(
        mode,
        "DenyOtherLockMode",
        &["s3:PutObject", "s3:PutObjectRetention"],
    )?;
    ensure!(condition(mode, "Null", "s3:object-lock-mode") == ["false"]);
    ensure!(condition(mode, "StringNotEquals", "s3:object-lock-mode") == ["${LockMode}"]);
    let locks = by_sid(policy, "DenyRetentionOnLockRecords")?;
    ensure!(list(locks.get("Resource")) == ["${RepositoryBucket.Arn}/${RepositoryPrefix}/locks/*"]);
    Ok(())
}

#[test]
fn nobody_bypasses_governance_or_turns_the_bucket_protection_off() -> Result<()> {
    let t = template()?;
    let policy = bucket_policy(&t)?;
    let bypass = by_sid(policy, "DenyGovernanceBypass")?;
    check_deny(
        bypass,
        "DenyGovernanceBypass",
        &["s3:BypassGovernanceRetention"],
    )?;
    ensure!(
        bypass.get("Condition").is_none(),
        "the bypass is denied to everyone"
    );
    let changes = by_sid(policy, "DenyBucketProtectionChanges")?;
    check_deny(
        changes,
        "DenyBucketProtectionChanges",
        &[
            "s3:PutBucketObjectLockConfiguration",
            "s3:PutBucketVersioning",
            "s3:PutBucketPolicy",
            "s3:DeleteBucketPolicy",
        ],
    )?;
    ensure!(list(changes.get("Resource")) == ["${RepositoryBucket.Arn}"]);
    ensure!(
        condition(changes, "ArnNotLike", "aws:PrincipalArn") == [DEPLOYMENT_ROLE, BREAK_GLASS_ROLE]
    );
    Ok(())
}

#[test]
fn config_and_keys_are_written_only_by_the_admin_path() -> Result<()> {
    let t = template()?;
    let s = by_sid(bucket_policy(&t)?, "DenyConfigAndKeyWrites")?;
    check_deny(s, "DenyConfigAndKeyWrites", &["s3:PutObject"])?;
    let covered = list(s.get("Resource"));
    for key in ["config", "keys/*"] {
        let arn = format!("${{RepositoryBucket.Arn}}/${{RepositoryPrefix}}/{key}");
        ensure!(
            covered.contains(&arn),
            "{arn} is not protected: {covered:?}"
        );
    }
    ensure!(condition(s, "ArnNotLike", "aws:PrincipalArn") == [DEPLOYMENT_ROLE, BREAK_GLASS_ROLE]);
    ensure!(
        condition(
            s,
            "StringNotEquals",
            "aws:PrincipalTag/lifeboat-key-replicator"
        ) == ["true"]
    );
    Ok(())
}

/// Every resource an Allow of `s3:PutObject` names in this region's bucket,
/// per policy resource.
fn put_object_grants(t: &Yaml, policy_id: &str) -> Result<Vec<String>> {
    let doc = resource(t, policy_id)?
        .get("Properties")
        .and_then(|p| p.get("PolicyDocument"))
        .with_context(|| format!("{policy_id}: no PolicyDocument"))?;
    let mut out = Vec::new();
    for s in statements(doc, policy_id)? {
        if list(s.get("Action")).iter().any(|a| a == "s3:PutObject") {
            out.extend(list(s.get("Resource")));
        }
    }
    Ok(out)
}

fn function_policies(t: &Yaml, function: &str) -> Result<Vec<String>> {
    let f = resource(t, function)?;
    Ok(f.get("Properties")
        .and_then(|p| p.get("Policies"))
        .and_then(Yaml::as_sequence)
        .with_context(|| format!("{function}: no Policies"))?
        .iter()
        .filter(|p| matches!(p, Yaml::Tagged(_)))
        .map(text)
        .collect())
}

#[test]
fn writers_are_scoped_per_kind_and_per_function() -> Result<()> {
    let t = template()?;
    let prefix = "${RepositoryBucket.Arn}/${RepositoryPrefix}/";
    ensure!(
        put_object_grants(&t, "RepositoryDataWritePolicy")?
            == [
                format!("{prefix}data/*"),
                format!("{prefix}index/*"),
                format!("{prefix}snapshots/*")
            ]
    );
    ensure!(
        put_object_grants(&t, "RepositoryReportWritePolicy")? == [format!("{prefix}reports/*")]
    );
    // Every step: its lock records, and a backup run's pending marker
    // (prepare writes it, commit and the failure report remove it).
    ensure!(
        put_object_grants(&t, "RepositoryAccessPolicy")?
            == [format!("{prefix}locks/*"), format!("{prefix}pending/*")]
    );
    let functions = t
        .get("Resources")
        .and_then(Yaml::as_mapping)
        .context("no Resources")?
        .iter()
        .filter(|(_, r)| r.get("Type").and_then(Yaml::as_str) == Some("AWS::Serverless::Function"))
        .filter_map(|(id, _)| id.as_str());
    let mut seen = 0;
    for function in functions {
        let policies = function_policies(&t, function)?;
        let writes: Vec<&str> = policies
            .iter()
            .map(String::as_str)
            .filter(|p| p.starts_with("${Repository") && p.contains("Write"))
            .collect();
        let expected: &[&str] = match function {
            "ExportStateFunction" | "CopyVolumeFunction" | "CommitFunction" => {
                &["${RepositoryDataWritePolicy}"]
            }
            "VerifyFunction" | "ReportFunction" | "RestoreStateFunction" => {
                &["${RepositoryReportWritePolicy}"]
            }
            _ => &[],
        };
        ensure!(
            writes == expected,
            "{function} writes with {writes:?}, expected {expected:?}"
        );
        seen += 1;
    }
    ensure!(seen >= 15, "only {seen} functions found");
    // No managed policy grants PutObject on the whole repository.
    for (id, r) in t
        .get("Resources")
        .and_then(Yaml::as_mapping)
        .context("no Resources")?
    {
        let Some(id) = id.as_str() else { continue };
        if r.get("Type").and_then(Yaml::as_str) != Some("AWS::IAM::ManagedPolicy") {
            continue;
        }
        for arn in put_object_grants(&t, id)? {
            let config = arn.ends_with("/config") && !id.starts_with("Replica");
            if arn.ends_with("/${RepositoryPrefix}/*") || config {
                bail!("{id} lets its functions write {arn}");
            }
        }
    }
    Ok(())
}

#[test]
fn compliance_is_the_default_and_the_expected_lock_is_pinned_outside_the_bucket() -> Result<()> {
    let t = template()?;
    let mode = t
        .get("Parameters")
        .and_then(|p| p.get("LockMode"))
        .and_then(|p| p.get("Default"))
        .and_then(Yaml::as_str);
    ensure!(mode == Some("COMPLIANCE"), "LockMode defaults to {mode:?}");
    let expected = t
        .get("Globals")
        .and_then(|g| g.get("Function"))
        .and_then(|f| f.get("Environment"))
        .and_then(|e| e.get("Variables"))
        .and_then(|v| v.get("LIFEBOAT_EXPECTED_LOCK"))
        .map(text);
    ensure!(
        expected.as_deref() == Some("${LockMode}:${RetentionDays}"),
        "every function gets the pinned policy: {expected:?}"
    );
    Ok(())
}

#[test]
fn repository_bucket_uses_sse_s3_and_only_break_glass_can_shred_the_key() -> Result<()> {
    let t = template()?;
    let enc = resource(&t, "RepositoryBucket")?
        .get("Properties")
        .and_then(|p| p.get("BucketEncryption"))
        .and_then(|e| e.get("ServerSideEncryptionConfiguration"))
        .and_then(Yaml::as_sequence)
        .and_then(|rules| rules.first())
        .and_then(|r| r.get("ServerSideEncryptionByDefault"))
        .context("RepositoryBucket: no default encryption")?;
    ensure!(enc.get("SSEAlgorithm").and_then(Yaml::as_str) == Some("AES256"));
    ensure!(
        enc.get("KMSMasterKeyID").is_none(),
        "the bucket must not use a KMS key"
    );
    let key_policy = resource(&t, "RepositoryKey")?
        .get("Properties")
        .and_then(|p| p.get("KeyPolicy"))
        .context("RepositoryKey: no KeyPolicy")?;
    let statements = statements(key_policy, "RepositoryKey")?;
    let guard = by_sid(statements, "OnlyBreakGlassDisablesOrDeletesTheKey")?;
    check_deny(
        guard,
        "OnlyBreakGlassDisablesOrDeletesTheKey",
        &[
            "kms:DisableKey",
            "kms:ScheduleKeyDeletion",
            "kms:PutKeyPolicy",
        ],
    )?;
    ensure!(condition(guard, "ArnNotLike", "aws:PrincipalArn") == [BREAK_GLASS_ROLE]);
    let cw = by_sid(statements, "CloudWatchAlarmsPublishToTheEncryptedTopic")?;
    ensure!(condition(cw, "StringEquals", "aws:SourceAccount") == ["${AWS::AccountId}"]);
    let source = condition(cw, "ArnLike", "aws:SourceArn");
    ensure!(
        source == ["arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:*"],
        "the CloudWatch grant must be bound to this account's alarms: {source:?}"
    );
    Ok(())
}

#[test]
fn the_trigger_reads_the_grants_and_sets_refused_requests_aside() -> Result<()> {
    let t = template()?;
    ensure!(function_policies(&t, "TriggerFunction")?.contains(&"${FleetReadPolicy}".to_string()));
    let vars = resource(&t, "TriggerFunction")?
        .get("Properties")
        .and_then(|p| p.get("Environment"))
        .and_then(|e| e.get("Variables"))
        .context("TriggerFunction: no Environment")?;
    ensure!(
        vars.get("LIFEBOAT_DEAD_LETTER_QUEUE").map(text).as_deref() == Some("${DeadLetterQueue}")
    );
    ensure!(vars.get("LIFEBOAT_ALERT_TOPIC").map(text).as_deref() == Some("${AlarmTopic}"));
    Ok(())
}

/// The bucket policy's statements that exist only with a DR account of its
/// own: `!If [HasPeerAccount, <statement>, !Ref AWS::NoValue]`.
fn peer_statements(t: &Yaml) -> Result<Vec<&Yaml>> {
    let mut out = Vec::new();
    for s in bucket_policy(t)? {
        let Yaml::Tagged(tagged) = s else { continue };
        ensure!(
            tagged.tag == "If",
            "a bucket policy statement under {}",
            tagged.tag
        );
        let parts = tagged.value.as_sequence().context("!If without a list")?;
        ensure!(
            parts.len() == 3 && parts[0].as_str() == Some("HasPeerAccount"),
            "a conditional statement not under HasPeerAccount: {parts:?}"
        );
        ensure!(text(&parts[2]) == "${AWS::NoValue}", "{parts:?}");
        out.push(&parts[1]);
    }
    Ok(out)
}

/// The keys under the repository prefix that a statement's resources name.
fn prefixed_keys(resources: Vec<String>) -> BTreeSet<String> {
    resources
        .iter()
        .filter_map(|r| {
            r.split_once("/${RepositoryPrefix}/")
                .map(|(_, k)| k.to_string())
        })
        .collect()
}

#[test]
fn a_dr_account_of_its_own_admits_the_peers_replica_roles_for_exactly_their_work() -> Result<()> {
    let t = template()?;
    let param = t
        .get("Parameters")
        .and_then(|p| p.get("PeerAccountId"))
        .context("no PeerAccountId parameter")?;
    ensure!(param.get("Default").and_then(Yaml::as_str) == Some(""));
    let peer = peer_statements(&t)?;
    let sids: BTreeSet<&str> = peer
        .iter()
        .filter_map(|s| s.get("Sid").and_then(Yaml::as_str))
        .collect();
    let want: BTreeSet<&str> = [
        "PeerReplicaReads",
        "PeerReplicaLocks",
        "PeerReplicaWrites",
        "PeerReplicaMirror",
    ]
    .into();
    ensure!(sids == want, "peer statements {sids:?}, expected {want:?}");
    for s in &peer {
        let sid = s.get("Sid").and_then(Yaml::as_str).unwrap_or("?");
        ensure!(
            s.get("Effect").and_then(Yaml::as_str) == Some("Allow"),
            "{sid}"
        );
        let principal = s.get("Principal").and_then(|p| p.get("AWS")).map(text);
        ensure!(
            principal.as_deref() == Some("arn:${AWS::Partition}:iam::${PeerAccountId}:root"),
            "{sid}: principal {principal:?}"
        );
        let tags = condition(
            s,
            "StringEquals",
            "aws:PrincipalTag/lifeboat-replica-access",
        );
        ensure!(!tags.is_empty(), "{sid} is not limited to the tagged roles");
        ensure!(
            !list(s.get("Action")).iter().any(|a| a.contains('*')),
            "{sid} grants a wildcard action"
        );
        // Writing and deleting is the replicate role's alone.
        let writes = list(s.get("Action"))
            .iter()
            .any(|a| a.starts_with("s3:Put") || a.starts_with("s3:Delete"));
        let locks_only = prefixed_keys(list(s.get("Resource"))) == ["locks/*".to_string()].into();
        if writes && !locks_only {
            ensure!(tags == ["write"], "{sid}: writes for {tags:?}");
        }
    }
    // The same keys as the same-account policies, no more.
    let by_sid = |sid: &str| {
        peer.iter()
            .find(|s| s.get("Sid").and_then(Yaml::as_str) == Some(sid))
            .map(|s| prefixed_keys(list(s.get("Resource"))))
            .with_context(|| format!("no statement {sid}"))
    };
    let writes = by_sid("PeerReplicaWrites")?;
    let same_account = prefixed_keys(put_object_grants(&t, "ReplicaWritePolicy")?);
    ensure!(
        writes == same_account,
        "peer writes {writes:?}, same-account writes {same_account:?}"
    );
    ensure!(
        writes.contains("revoked/*"),
        "replicate mirrors revoked/ markers"
    );
    let deletes = by_sid("PeerReplicaMirror")?;
    ensure!(
        !deletes
            .iter()
            .any(|k| k.starts_with("data/") || k.starts_with("index/")),
        "the peer may delete data or indexes: {deletes:?}"
    );
    // The roles carry the tags the peer's bucket looks for.
    for (function, access) in [
        ("ReplicateFunction", "write"),
        ("VerifyReplicaFunction", "read"),
    ] {
        let tag = resource(&t, function)?
            .get("Properties")
            .and_then(|p| p.get("Tags"))
            .and_then(|tags| tags.get("lifeboat-replica-access"))
            .map(text);
        ensure!(tag.as_deref() == Some(access), "{function}: tag {tag:?}");
    }
    // Every reference to the replica's bucket follows the peer account.
    let raw = fs::read_to_string(lifeboat_tests::repo_root().join("infra/template.yaml"))?;
    if raw.contains("${AWS::AccountId}-${ReplicaRegion}") {
        bail!("a replica bucket name still assumes this account");
    }
    Ok(())
}
