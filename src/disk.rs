//! Every change this program makes to the file system: creating, writing,
//! syncing, renaming, linking and removing files and folders, each through
//! one function here.
//!
//! One place, so that tests can make any single change fail, as SQLite tests
//! its I/O. Built with the `fault-injection` feature (`make test` builds it;
//! release builds do not), the environment steers it:
//!
//! - `GRU_IMDB_FAULT=N:fail` makes the Nth change of the process fail with
//!   `ENOSPC`, as a full disk would, and every later one work again;
//! - `GRU_IMDB_FAULT=N:abort` aborts the process just before the Nth change,
//!   as a kill would;
//! - `GRU_IMDB_FAULT_TRACE=1` prints each change to stderr as
//!   `fault point N: <what> <path>`, so a test can count them and then walk
//!   N over every one (`tests/fault_injection.rs`).
//!
//! Without the feature, [`point`] is empty and every function is the
//! `std::fs` call it wraps.
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

/// The kinds of change, as the trace names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Create,
    Write,
    Sync,
    Rename,
    Link,
    Remove,
    MakeDir,
}

#[cfg(feature = "fault-injection")]
mod injection {
    use std::io;
    use std::path::Path;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    use super::Change;

    enum Fault {
        Fail,
        Abort,
    }

    struct Plan {
        at: Option<(u64, Fault)>,
        trace: bool,
    }

    fn plan() -> &'static Plan {
        static PLAN: OnceLock<Plan> = OnceLock::new();
        PLAN.get_or_init(|| {
            let at = std::env::var("GRU_IMDB_FAULT").ok().and_then(|spec| {
                let (n, fault) = spec.split_once(':')?;
                let fault = match fault {
                    "fail" => Fault::Fail,
                    "abort" => Fault::Abort,
                    _ => return None,
                };
                Some((n.parse().ok()?, fault))
            });
            let trace = std::env::var_os("GRU_IMDB_FAULT_TRACE").is_some_and(|v| v == "1");
            Plan { at, trace }
        })
    }

    pub fn point(change: Change, path: &Path) -> io::Result<()> {
        static COUNT: AtomicU64 = AtomicU64::new(0);
        let n = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
        let plan = plan();
        if plan.trace {
            eprintln!("fault point {n}: {change:?} {}", path.display());
        }
        match &plan.at {
            Some((at, Fault::Abort)) if *at == n => std::process::abort(),
            Some((at, Fault::Fail)) if *at == n => Err(io::Error::from_raw_os_error(libc::ENOSPC)),
            _ => Ok(()),
        }
    }
}

/// Marks one change about to be made to `path`: where a fault may be
/// injected.
#[inline]
pub fn point(change: Change, path: &Path) -> io::Result<()> {
    #[cfg(feature = "fault-injection")]
    return injection::point(change, path);
    #[cfg(not(feature = "fault-injection"))]
    {
        let _ = (change, path);
        Ok(())
    }
}

/// A new or truncated file to write.
pub fn create_file(path: &Path) -> io::Result<File> {
    point(Change::Create, path)?;
    File::create(path)
}

/// A file that must not exist yet (`O_EXCL`): creating it claims the name.
pub fn create_new_file(path: &Path) -> io::Result<File> {
    point(Change::Create, path)?;
    OpenOptions::new().write(true).create_new(true).open(path)
}

/// A file opened for writing at its end, created if missing.
pub fn open_append(path: &Path) -> io::Result<File> {
    point(Change::Write, path)?;
    OpenOptions::new().append(true).create(true).open(path)
}

/// A file opened for writing without truncating it, created if missing (a
/// lock file).
pub fn open_or_create(path: &Path) -> io::Result<File> {
    point(Change::Create, path)?;
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
}

/// A new file holding `bytes`, unsynced: for a file inside a folder that
/// is synced and published as a whole (a checkpoint).
pub fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = create_file(path)?;
    point(Change::Write, path)?;
    std::io::Write::write_all(&mut file, bytes)
}

/// Marks the moment written bytes leave a buffer for `path`.
pub fn before_write(path: &Path) -> io::Result<()> {
    point(Change::Write, path)
}

/// Flushes an open file's data to the disk.
pub fn sync_file(file: &File, path: &Path) -> io::Result<()> {
    point(Change::Sync, path)?;
    file.sync_all()
}

/// Flushes a file, or a folder's entries, to the disk.
pub fn sync_path(path: &Path) -> io::Result<()> {
    point(Change::Sync, path)?;
    File::open(path)?.sync_all()
}

pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    point(Change::Rename, to)?;
    fs::rename(from, to)
}

pub fn hard_link(from: &Path, to: &Path) -> io::Result<()> {
    point(Change::Link, to)?;
    fs::hard_link(from, to)
}

pub fn copy(from: &Path, to: &Path) -> io::Result<u64> {
    point(Change::Write, to)?;
    fs::copy(from, to)
}

pub fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    point(Change::Link, link)?;
    std::os::unix::fs::symlink(target, link)
}

pub fn remove_file(path: &Path) -> io::Result<()> {
    point(Change::Remove, path)?;
    fs::remove_file(path)
}

/// Removes a folder and what it holds (never following a link inside it).
pub fn remove_dir_all(path: &Path) -> io::Result<()> {
    point(Change::Remove, path)?;
    fs::remove_dir_all(path)
}

/// Removes an empty folder.
pub fn remove_dir(path: &Path) -> io::Result<()> {
    point(Change::Remove, path)?;
    fs::remove_dir(path)
}

pub fn create_dir(path: &Path) -> io::Result<()> {
    point(Change::MakeDir, path)?;
    fs::create_dir(path)
}

/// Makes a folder and its missing parents; returns the topmost folder it
/// made, if any, so that a failure can remove exactly what was made.
pub fn create_dir_all(path: &Path) -> io::Result<Option<std::path::PathBuf>> {
    let mut missing = None;
    for ancestor in path.ancestors() {
        if ancestor.as_os_str().is_empty() || ancestor.exists() {
            break;
        }
        missing = Some(ancestor.to_path_buf());
    }
    if missing.is_some() {
        point(Change::MakeDir, path)?;
    }
    // Also when nothing is missing: a file in the way is an error.
    fs::create_dir_all(path)?;
    Ok(missing)
}
