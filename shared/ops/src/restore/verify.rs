//! Read restored files back and compare them with the snapshot: each chunk
//! by its keyed hash, and the bytes no chunk covers (holes) must be zeros.

use crate::{OpsError, Progress};
use lifeboat_repo::{Index, Node, Repository};
use serde::Serialize;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

/// Mismatches named in a verification, at most.
const NAMED: usize = 20;
/// Bytes read at once when checking a hole.
const HOLE_READ: u64 = 1 << 20;

/// What a verification read back.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Verification {
    pub files: u64,
    pub bytes: u64,
    /// `path at offset: what` for the first differences.
    pub mismatches: Vec<String>,
    pub mismatch_count: u64,
}

impl Verification {
    pub fn matched(&self) -> bool {
        self.mismatch_count == 0
    }

    fn mismatch(&mut self, what: String) {
        self.mismatch_count += 1;
        if self.mismatches.len() < NAMED {
            self.mismatches.push(what);
        }
    }
}

/// Compare each restored `(path, node)` with the node's chunks.
pub(super) async fn verify_files(
    repo: &Repository,
    index: &Index,
    files: Vec<(PathBuf, Node)>,
    progress: Arc<Progress>,
) -> Result<Verification, OpsError> {
    let mut out = Verification::default();
    for (path, node) in files {
        // Each chunk's plaintext length, from the index.
        let mut chunks = Vec::with_capacity(node.content.len());
        for c in &node.content {
            let loc = index.get(&c.id).ok_or_else(|| {
                OpsError::InvalidInput(format!(
                    "{}: chunk {} is not in the repository's index",
                    path.display(),
                    c.id.short()
                ))
            })?;
            chunks.push((c.offset, u64::from(loc.raw_length), c.id));
        }
        let key = repo.key().clone();
        let size = node.size;
        let p = path.clone();
        let prog = progress.clone();
        let found = tokio::task::spawn_blocking(move || {
            let file = File::open(&p).map_err(|e| OpsError::io(&p, e))?;
            let mut bad = Vec::new();
            let mut at = 0u64;
            let check_zeros = |from: u64, to: u64, bad: &mut Vec<String>| -> Result<(), OpsError> {
                let mut pos = from;
                while pos < to {
                    let n = (to - pos).min(HOLE_READ);
                    let mut buf = vec![0u8; usize::try_from(n).unwrap_or(0)];
                    file.read_exact_at(&mut buf, pos)
                        .map_err(|e| OpsError::io(&p, e))?;
                    if buf.iter().any(|b| *b != 0) {
                        bad.push(format!(
                            "{} at {pos}: data where the backup has a hole",
                            p.display()
                        ));
                        return Ok(());
                    }
                    Progress::add(&prog.bytes_read, n);
                    pos += n;
                }
                Ok(())
            };
            for (offset, len, id) in &chunks {
                if *offset > at {
                    check_zeros(at, *offset, &mut bad)?;
                }
                let mut buf = vec![0u8; usize::try_from(*len).unwrap_or(0)];
                file.read_exact_at(&mut buf, *offset)
                    .map_err(|e| OpsError::io(&p, e))?;
                if key.blob_id(&buf) != *id {
                    bad.push(format!(
                        "{} at {offset}: {len} bytes differ from chunk {}",
                        p.display(),
                        id.short()
                    ));
                }
                Progress::add(&prog.bytes_read, *len);
                at = at.max(offset + len);
            }
            if at < size {
                check_zeros(at, size, &mut bad)?;
            }
            Ok::<_, OpsError>(bad)
        })
        .await
        .map_err(|e| OpsError::Pipeline(e.to_string()))??;
        out.files += 1;
        out.bytes += node.size;
        for b in found {
            out.mismatch(b);
        }
    }
    Ok(out)
}
