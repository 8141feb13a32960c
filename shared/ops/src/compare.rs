//! Compare two directory trees: content, permissions, modification times and
//! symlink targets. Used to prove that a restore is byte-identical.

use crate::OpsError;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

fn file_hash(path: &Path) -> Result<blake3::Hash, OpsError> {
    let mut f = fs::File::open(path).map_err(|e| OpsError::io(path, e))?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| OpsError::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize())
}

/// Differences between `a` and `b` (empty when identical), as readable lines.
pub fn compare_trees(a: &Path, b: &Path) -> Result<Vec<String>, OpsError> {
    let mut diffs = Vec::new();
    walk(a, b, Path::new(""), &mut diffs)?;
    Ok(diffs)
}

fn walk(a: &Path, b: &Path, rel: &Path, diffs: &mut Vec<String>) -> Result<(), OpsError> {
    let pa = a.join(rel);
    let pb = b.join(rel);
    let ma = fs::symlink_metadata(&pa).map_err(|e| OpsError::io(&pa, e))?;
    let mb = match fs::symlink_metadata(&pb) {
        Ok(m) => m,
        Err(_) => {
            diffs.push(format!("{}: missing", rel.display()));
            return Ok(());
        }
    };
    let shown = if rel.as_os_str().is_empty() {
        ".".into()
    } else {
        rel.display().to_string()
    };
    if ma.file_type() != mb.file_type() {
        diffs.push(format!("{shown}: type differs"));
        return Ok(());
    }
    if !ma.file_type().is_symlink() {
        if ma.mode() & 0o7777 != mb.mode() & 0o7777 {
            diffs.push(format!(
                "{shown}: mode {:o} vs {:o}",
                ma.mode() & 0o7777,
                mb.mode() & 0o7777
            ));
        }
        if (ma.mtime(), ma.mtime_nsec()) != (mb.mtime(), mb.mtime_nsec()) {
            diffs.push(format!("{shown}: mtime differs"));
        }
    }
    if ma.file_type().is_symlink() {
        let ta = fs::read_link(&pa).map_err(|e| OpsError::io(&pa, e))?;
        let tb = fs::read_link(&pb).map_err(|e| OpsError::io(&pb, e))?;
        if ta != tb {
            diffs.push(format!("{shown}: link target differs"));
        }
    } else if ma.is_file() {
        if ma.len() != mb.len() || file_hash(&pa)? != file_hash(&pb)? {
            diffs.push(format!("{shown}: content differs"));
        }
    } else if ma.is_dir() {
        let mut names: Vec<_> = fs::read_dir(&pa)
            .map_err(|e| OpsError::io(&pa, e))?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        let others: Vec<_> = fs::read_dir(&pb)
            .map_err(|e| OpsError::io(&pb, e))?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        for extra in others.iter().filter(|n| !names.contains(n)) {
            diffs.push(format!("{}: unexpected", rel.join(extra).display()));
        }
        names.sort();
        for n in names {
            walk(a, b, &rel.join(n), diffs)?;
        }
    }
    Ok(())
}
