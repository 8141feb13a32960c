//! Claims a backup was asked to protect but whose data it does not hold.

use lifeboat_repo::MissingVolume;

/// The claims of `lines` (`namespace/claim: reason`, as snapshot-volumes and
/// commit list them), for the snapshot's `volumes_missing`. A line that
/// does not name a claim that way is kept whole as the reason, with the
/// claim left empty, and a warning: never dropped.
pub fn missing_volumes<'a>(lines: impl IntoIterator<Item = &'a String>) -> Vec<MissingVolume> {
    lines
        .into_iter()
        .map(|line| {
            let parsed = line.split_once(": ").and_then(|(key, reason)| {
                let (ns, claim) = key.split_once('/')?;
                Some(MissingVolume {
                    namespace: ns.to_string(),
                    claim: claim.to_string(),
                    reason: reason.to_string(),
                })
            });
            parsed.unwrap_or_else(|| {
                tracing::warn!(line = %line, "a volume not copied names no namespace/claim");
                MissingVolume {
                    namespace: String::new(),
                    claim: String::new(),
                    reason: line.clone(),
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_claims_with_their_reason() {
        let lines = vec![
            "payments/ledger: volumesnapshot payments/lifeboat-ledger-1a failed: NotFound: volume 7f3c not found".to_string(),
            "shop/data-0: Lifeboat.Failed: the mover Job failed".to_string(),
            "odd".to_string(),
        ];
        let m = missing_volumes(&lines);
        assert_eq!(m[0].namespace, "payments");
        assert_eq!(m[0].claim, "ledger");
        assert!(m[0]
            .reason
            .starts_with("volumesnapshot payments/lifeboat-ledger-1a failed"));
        assert_eq!(
            (m[1].namespace.as_str(), m[1].claim.as_str()),
            ("shop", "data-0")
        );
        assert_eq!(m[2].reason, "odd");
        assert!(m[2].claim.is_empty());
    }
}
