//! Advisory locks on a file (`flock`), held by an open file: exclusive for
//! a writer, shared among readers that must not overlap one:
//! the kernel releases them when the process ends, however it ends, so a
//! killed run never leaves a folder locked.
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::{Context, Result};

/// A held lock; dropping it releases it.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

fn open(path: &Path) -> Result<File> {
    crate::disk::open_or_create(path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))
}

/// `flock(2)` on `file`, retried when a signal interrupts it.
fn flock(file: &File, operation: libc::c_int) -> io::Result<()> {
    loop {
        // SAFETY: flock on a file descriptor this process owns.
        if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Takes the lock on an open file if it is free: `Ok(false)` if another
/// process holds it.
pub fn try_lock(file: &File) -> io::Result<bool> {
    match flock(file, libc::LOCK_EX | libc::LOCK_NB) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
        Err(e) => Err(e),
    }
}

/// Waits for the lock on an open file.
pub fn lock(file: &File) -> io::Result<()> {
    flock(file, libc::LOCK_EX)
}

impl FileLock {
    /// The lock on `path` (created if missing) if no one else holds it.
    pub fn try_acquire(path: &Path) -> Result<Option<FileLock>> {
        let file = open(path)?;
        match try_lock(&file).with_context(|| format!("cannot lock {}", path.display()))? {
            true => Ok(Some(FileLock { _file: file })),
            false => Ok(None),
        }
    }

    /// A shared lock on `path` (created if missing) if no one holds it
    /// exclusively; other shared holders are welcome.
    pub fn try_acquire_shared(path: &Path) -> Result<Option<FileLock>> {
        let file = open(path)?;
        match flock(&file, libc::LOCK_SH | libc::LOCK_NB) {
            Ok(()) => Ok(Some(FileLock { _file: file })),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot lock {}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_refused_until_it_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        let held = FileLock::try_acquire(&path).unwrap().expect("free");
        assert!(FileLock::try_acquire(&path).unwrap().is_none());
        drop(held);
        assert!(FileLock::try_acquire(&path).unwrap().is_some());
    }
}
