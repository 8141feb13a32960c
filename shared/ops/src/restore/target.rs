//! The restore target, reached only through directory descriptors.
//!
//! A target may already hold entries, put there by someone who can write
//! into it (a live directory, a shared volume, an earlier restore of a
//! snapshot that holds a symlink). Nothing here follows them: every
//! directory is opened from its parent's descriptor with `O_NOFOLLOW`, a
//! symlink (or any non-directory) where the snapshot has a directory is
//! removed and the directory created in its place (as tar does), files are
//! written into new `O_EXCL` temporaries and renamed over whatever is in
//! the way only once complete, and owners, modes and times are set on the
//! open descriptors. Only the target path itself, which the operator names,
//! is resolved as given.

use rustix::fs::{
    fchmod, fchown, futimens, mkdirat, openat, renameat, symlinkat, unlinkat, utimensat, AtFlags,
    Mode, OFlags, Timespec, Timestamps,
};
use rustix::io::Errno;
use rustix::process::{Gid, Uid};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Temporaries are named `.lifeboat-restore-<pid>-<n>`: recognisable, and
/// short, so a name of 255 bytes still has room beside them.
const TEMP_PREFIX: &str = ".lifeboat-restore-";

/// What the snapshot says about an entry's owner, mode and times.
#[derive(Debug, Clone, Copy)]
pub(super) struct Attrs {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime_ns: i64,
}

impl Attrs {
    fn times(&self) -> Timestamps {
        let t = Timespec {
            tv_sec: self.mtime_ns.div_euclid(1_000_000_000),
            tv_nsec: self.mtime_ns.rem_euclid(1_000_000_000),
        };
        Timestamps {
            last_access: t,
            last_modification: t,
        }
    }
}

/// What one restore shares with every directory it holds open: whether it
/// runs as root (owners are restored only then), the warnings, and whether
/// it failed (then directories keep the modes they were created with).
#[derive(Debug, Default)]
pub(super) struct Shared {
    pub root: bool,
    warnings: Mutex<Vec<String>>,
    failed: AtomicBool,
}

impl Shared {
    pub(super) fn new(root: bool) -> Arc<Shared> {
        Arc::new(Shared {
            root,
            ..Shared::default()
        })
    }

    pub(super) fn warn(&self, path: &Path, what: impl std::fmt::Display) {
        tracing::warn!(path = %path.display(), "{what}");
        let mut w = self.warnings.lock().unwrap_or_else(|e| e.into_inner());
        w.push(format!("{}: {what}", path.display()));
    }

    pub(super) fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub(super) fn fail(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }
}

/// A directory of the target, open. Its metadata (if the snapshot gives it)
/// is set when the last handle goes, that is once every entry below it is
/// written: a child holds its parent, a file being written its directory.
#[derive(Debug)]
pub(super) struct Dir {
    fd: OwnedFd,
    path: PathBuf,
    attrs: Option<Attrs>,
    shared: Arc<Shared>,
    _parent: Option<Arc<Dir>>,
}

impl Drop for Dir {
    fn drop(&mut self) {
        if let Some(a) = self
            .attrs
            .filter(|_| !self.shared.failed.load(Ordering::Relaxed))
        {
            set_attrs(self.fd.as_fd(), &self.path, &a, &self.shared);
        }
    }
}

/// Owner (when root), mode and times of the open `fd`; failures are warnings.
pub(super) fn set_attrs(fd: BorrowedFd<'_>, path: &Path, a: &Attrs, shared: &Shared) {
    if shared.root {
        let owner = (Uid::from_raw(a.uid), Gid::from_raw(a.gid));
        if let Err(e) = fchown(fd, Some(owner.0), Some(owner.1)) {
            shared.warn(path, format_args!("chown: {}", io::Error::from(e)));
        }
    }
    // After the chown, which clears set-id bits.
    if let Err(e) = fchmod(fd, Mode::from_raw_mode(a.mode & 0o7777)) {
        shared.warn(path, format_args!("chmod: {}", io::Error::from(e)));
    }
    if let Err(e) = futimens(fd, &a.times()) {
        shared.warn(path, format_args!("set times: {}", io::Error::from(e)));
    }
}

/// `e` saying what failed (the caller names the path).
fn named(e: Errno, what: &str) -> io::Error {
    let e = io::Error::from(e);
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

impl Dir {
    /// The target directory itself, created (with its parents) if missing.
    pub(super) fn open_target(
        path: &Path,
        attrs: Option<Attrs>,
        shared: &Arc<Shared>,
    ) -> io::Result<Arc<Dir>> {
        std::fs::create_dir_all(path)?;
        let fd = openat(
            rustix::fs::CWD,
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Arc::new(Dir {
            fd,
            path: path.to_path_buf(),
            attrs,
            shared: shared.clone(),
            _parent: None,
        }))
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The directory `name` in this one, created if missing (mode 0700
    /// until its own mode is set, if `attrs` give it one). A symlink or
    /// other non-directory in its place is removed first.
    pub(super) fn child_dir(
        self: &Arc<Self>,
        name: &OsStr,
        attrs: Option<Attrs>,
    ) -> io::Result<Arc<Dir>> {
        let path = self.path.join(name);
        let mode = Mode::from_raw_mode(if attrs.is_some() { 0o700 } else { 0o777 });
        let mut replaced = false;
        let fd = loop {
            match mkdirat(&self.fd, name, mode) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(named(e, "mkdir")),
            }
            match openat(&self.fd, name, DIR_FLAGS, Mode::empty()) {
                Ok(fd) => break fd,
                // Not a directory (a symlink gives ELOOP): the snapshot's
                // directory takes its place, once; a second time means
                // someone is racing us, so stop.
                Err(Errno::LOOP | Errno::NOTDIR) if !replaced => {
                    unlinkat(&self.fd, name, AtFlags::empty())
                        .map_err(|e| named(e, "remove what is in a directory's place"))?;
                    replaced = true;
                }
                Err(e) => return Err(named(e, "open directory")),
            }
        };
        Ok(Arc::new(Dir {
            fd,
            path,
            attrs,
            shared: self.shared.clone(),
            _parent: Some(self.clone()),
        }))
    }

    /// Remove whatever non-directory is at `name` (nothing there is fine).
    fn clear(&self, name: &OsStr) -> io::Result<()> {
        match unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(named(e, "remove what is in the way")),
        }
    }

    /// The symlink `name` -> `target`, with its owner (when root) and times.
    pub(super) fn symlink(&self, name: &OsStr, target: &OsStr, a: &Attrs) -> io::Result<()> {
        let path = self.path.join(name);
        self.clear(name)?;
        symlinkat(target, &self.fd, name).map_err(|e| named(e, "symlink"))?;
        if self.shared.root {
            let r = rustix::fs::chownat(
                &self.fd,
                name,
                Some(Uid::from_raw(a.uid)),
                Some(Gid::from_raw(a.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            );
            if let Err(e) = r {
                self.shared
                    .warn(&path, format_args!("chown: {}", io::Error::from(e)));
            }
        }
        if let Err(e) = utimensat(&self.fd, name, &a.times(), AtFlags::SYMLINK_NOFOLLOW) {
            self.shared
                .warn(&path, format_args!("set times: {}", io::Error::from(e)));
        }
        Ok(())
    }

    /// The FIFO or device node `name`, with its metadata. The node is
    /// reopened with `O_PATH|O_NOFOLLOW` (which opens no device) to set its
    /// owner and mode, so a node swapped for a symlink is not followed.
    pub(super) fn special(
        &self,
        name: &OsStr,
        kind: rustix::fs::FileType,
        rdev: u64,
        a: &Attrs,
    ) -> io::Result<()> {
        let path = self.path.join(name);
        self.clear(name)?;
        rustix::fs::mknodat(&self.fd, name, kind, Mode::from_raw_mode(0o600), rdev)
            .map_err(|e| named(e, "mknod"))?;
        let node = openat(
            &self.fd,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| named(e, "reopen"))?;
        let st = rustix::fs::fstat(&node).map_err(|e| named(e, "stat"))?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != kind {
            return Err(io::Error::other(
                "replaced by something else while it was restored",
            ));
        }
        if self.shared.root {
            let r = rustix::fs::chownat(
                &node,
                "",
                Some(Uid::from_raw(a.uid)),
                Some(Gid::from_raw(a.gid)),
                AtFlags::EMPTY_PATH,
            );
            if let Err(e) = r {
                self.shared
                    .warn(&path, format_args!("chown: {}", io::Error::from(e)));
            }
        }
        // fchmod refuses an O_PATH descriptor; its /proc link names this
        // very inode, whatever happens to the name meanwhile.
        let proc = format!("/proc/self/fd/{}", node.as_raw_fd());
        let mode = Mode::from_raw_mode(a.mode & 0o7777);
        if let Err(e) = rustix::fs::chmodat(rustix::fs::CWD, proc.as_str(), mode, AtFlags::empty())
        {
            self.shared
                .warn(&path, format_args!("chmod: {}", io::Error::from(e)));
        }
        if let Err(e) = utimensat(&self.fd, name, &a.times(), AtFlags::SYMLINK_NOFOLLOW) {
            self.shared
                .warn(&path, format_args!("set times: {}", io::Error::from(e)));
        }
        Ok(())
    }

    /// A new, empty temporary file in this directory, to be renamed over
    /// `name` once written ([`Temp::commit`]); removed if dropped before.
    pub(super) fn temp_for(self: &Arc<Self>, name: &OsStr) -> io::Result<Temp> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = self.path.join(name);
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let temp = OsString::from(format!("{TEMP_PREFIX}{}-{n}", std::process::id()));
            let flags =
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            match openat(
                &self.fd,
                temp.as_os_str(),
                flags,
                Mode::from_raw_mode(0o600),
            ) {
                Ok(fd) => {
                    return Ok(Temp {
                        dir: self.clone(),
                        temp,
                        name: name.to_os_string(),
                        path,
                        file: Arc::new(File::from(fd)),
                        armed: true,
                    })
                }
                // Left by an earlier process with our pid: take the next name.
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(named(e, "create temporary file")),
            }
        }
    }
}

/// A file being restored, under a temporary name until [`Temp::commit`].
#[derive(Debug)]
pub(super) struct Temp {
    dir: Arc<Dir>,
    temp: OsString,
    name: OsString,
    /// The path the file will have (named in errors).
    pub path: PathBuf,
    pub file: Arc<File>,
    armed: bool,
}

impl Temp {
    /// Set the file's metadata (`attrs`, or none for a file that keeps its
    /// own) and rename it over `name`.
    pub(super) fn commit(mut self, attrs: Option<&Attrs>) -> io::Result<()> {
        if let Some(a) = attrs {
            set_attrs(self.file.as_fd(), &self.path, a, &self.dir.shared);
        }
        renameat(
            &self.dir.fd,
            self.temp.as_os_str(),
            &self.dir.fd,
            self.name.as_os_str(),
        )
        .map_err(|e| match e {
            Errno::ISDIR | Errno::NOTEMPTY | Errno::EXIST => {
                io::Error::new(io::ErrorKind::AlreadyExists, "a directory is in the way")
            }
            e => named(e, "rename into place"),
        })?;
        self.armed = false;
        Ok(())
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = unlinkat(&self.dir.fd, self.temp.as_os_str(), AtFlags::empty()) {
                let temp = self.dir.path.join(&self.temp);
                self.dir.shared.warn(
                    &temp,
                    format_args!("cannot remove temporary file: {}", io::Error::from(e)),
                );
            }
        }
    }
}
