//! Opening what the walk found without trusting the path a second time.
//!
//! The walk `lstat`s an entry, decides from that what it is, and only then
//! opens it: someone who can write in a directory being backed up could swap
//! the entry in between (`renameat2(RENAME_EXCHANGE)` in a loop), for a FIFO
//! (an `open` that never returns) or a symlink to a file they cannot read
//! (its contents stored as theirs). So entries are opened relative to their
//! directory's descriptor, never following a symlink and never blocking,
//! and the descriptor's own `fstat` must show the inode the `lstat` saw;
//! what is stored comes from that descriptor and its `fstat`.

use super::source::Meta;
use rustix::fs::{openat, FileType, Mode, OFlags};
use rustix::io::Errno;
use std::fs::File;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

/// A file (or block device) to read: `O_NONBLOCK` so a FIFO cannot hang the
/// open, `O_NOCTTY` so a terminal does not become ours.
const FILE_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY)
    .union(OFlags::CLOEXEC);
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// The entry is no longer what its `lstat` showed: it is skipped.
#[derive(Debug, thiserror::Error)]
#[error("changed while it was being backed up (a {was} became {now}); skipped")]
pub(super) struct Changed {
    was: &'static str,
    now: &'static str,
}

/// Whether `e` says the entry changed under the walk (rather than could not be read).
pub(super) fn is_changed(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Changed>())
}

fn kind(ft: FileType) -> &'static str {
    match ft {
        FileType::RegularFile => "file",
        FileType::Directory => "directory",
        FileType::Symlink => "symlink",
        FileType::Fifo => "FIFO",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        _ => "unknown file type",
    }
}

fn changed(seen: &Meta, now: &'static str) -> io::Error {
    io::Error::other(Changed {
        was: kind(seen.file_type),
        now,
    })
}

/// Open `name` in `dir` as `flags` say and check it is the inode `seen`
/// describes; `refused` are the errors that mean it is now something else.
fn open_checked(
    dir: BorrowedFd<'_>,
    name: &Path,
    seen: &Meta,
    flags: OFlags,
    refused: &[Errno],
) -> io::Result<(OwnedFd, Meta)> {
    let fd = openat(dir, name, flags, Mode::empty()).map_err(|e| {
        if e == Errno::LOOP {
            changed(seen, "a symlink")
        } else if refused.contains(&e) {
            changed(seen, "something else")
        } else {
            io::Error::from(e)
        }
    })?;
    let now = Meta::of(&fd)?;
    if !seen.same_entry(&now) {
        let what = if now.file_type == seen.file_type {
            "another one"
        } else {
            kind(now.file_type)
        };
        return Err(changed(seen, what));
    }
    Ok((fd, now))
}

/// Open the file or block device `name` of `dir` that `seen` (its `lstat`)
/// describes, for reading; returns it with its `fstat`.
pub(super) fn open_file(dir: BorrowedFd<'_>, name: &Path, seen: &Meta) -> io::Result<(File, Meta)> {
    let (fd, now) = open_checked(dir, name, seen, FILE_FLAGS, &[])?;
    Ok((File::from(fd), now))
}

/// Open the directory `name` of `dir` that `seen` describes, to list and
/// to open its entries from; returns it with its `fstat`.
pub(super) fn open_dir(
    dir: BorrowedFd<'_>,
    name: &Path,
    seen: &Meta,
) -> io::Result<(OwnedFd, Meta)> {
    open_checked(dir, name, seen, DIR_FLAGS, &[Errno::NOTDIR])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rustix::fs::{mknodat, CWD};
    use std::os::fd::AsFd;

    /// `dir/name` lstat-ed as a regular file, then replaced by `replace`.
    fn swapped(replace: impl FnOnce(&Path)) -> (tempfile::TempDir, File, Meta) {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("name");
        std::fs::write(&p, b"harmless").unwrap();
        let dir = File::open(tmp.path()).unwrap();
        let seen = Meta::lstat_at(dir.as_fd(), Path::new("name")).unwrap();
        // Moved aside, not removed: a new file could reuse a freed inode number.
        std::fs::rename(&p, tmp.path().join("aside")).unwrap();
        replace(&p);
        (tmp, dir, seen)
    }

    #[test]
    fn a_file_swapped_for_a_fifo_is_refused_without_blocking() {
        let (_tmp, dir, seen) = swapped(|p| {
            mknodat(CWD, p, FileType::Fifo, Mode::from_raw_mode(0o644), 0).unwrap();
        });
        // A plain open(O_RDONLY) would wait here for a writer, for ever.
        let err = open_file(dir.as_fd(), Path::new("name"), &seen).unwrap_err();
        assert!(is_changed(&err), "{err}");
        assert!(err.to_string().contains("a file became FIFO"), "{err}");
    }

    #[test]
    fn a_file_swapped_for_a_symlink_is_not_followed() {
        let secret = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(secret.path(), b"root only").unwrap();
        let target = secret.path().to_path_buf();
        let (_tmp, dir, seen) = swapped(|p| std::os::unix::fs::symlink(&target, p).unwrap());
        let err = open_file(dir.as_fd(), Path::new("name"), &seen).unwrap_err();
        assert!(is_changed(&err), "{err}");
        assert!(err.to_string().contains("became a symlink"), "{err}");
    }

    #[test]
    fn a_file_swapped_for_another_file_is_refused() {
        let (_tmp, dir, seen) = swapped(|p| std::fs::write(p, b"other inode").unwrap());
        let err = open_file(dir.as_fd(), Path::new("name"), &seen).unwrap_err();
        assert!(is_changed(&err), "{err}");
    }

    #[test]
    fn a_directory_swapped_for_a_symlink_to_one_is_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let d = tmp.path().join("d");
        std::fs::create_dir(&d).unwrap();
        let dir = File::open(tmp.path()).unwrap();
        let seen = Meta::lstat_at(dir.as_fd(), Path::new("d")).unwrap();
        std::fs::remove_dir(&d).unwrap();
        std::os::unix::fs::symlink(outside.path(), &d).unwrap();
        let err = open_dir(dir.as_fd(), Path::new("d"), &seen).unwrap_err();
        assert!(is_changed(&err), "{err}");
    }

    #[test]
    fn an_unchanged_file_opens_with_its_fstat() {
        let (tmp, dir, _) = swapped(|p| std::fs::write(p, b"v2").unwrap());
        let seen = Meta::lstat_at(dir.as_fd(), Path::new("name")).unwrap();
        let (_file, now) = open_file(dir.as_fd(), Path::new("name"), &seen).unwrap();
        assert!(seen.same_entry(&now));
        assert_eq!(now.len, 2);
        drop(tmp);
    }
}
