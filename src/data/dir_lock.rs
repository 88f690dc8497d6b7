//! One run at a time in a data folder: runs that download, read or cache
//! into one `--data-dir` take turns instead of writing one `.part` file
//! together. The lock is an advisory `flock` on `<data-dir>/.lock`; the
//! kernel drops it when the run ends, however it ends, so a killed run
//! never leaves the folder locked. The file is removed on release, so a
//! finished run leaves nothing behind.
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::file_lock::{lock, try_lock};

const LOCK_NAME: &str = ".lock";

/// Held while a run uses the data folder; released when dropped.
#[derive(Debug)]
pub(crate) struct DataDirLock {
    /// Kept open while the lock is held: closing it releases the lock.
    _locked: File,
    path: PathBuf,
    waited: bool,
}

impl DataDirLock {
    /// Locks `data_dir`, waiting (and saying so, once) while another run
    /// holds it.
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock> {
        let path = data_dir.join(LOCK_NAME);
        let mut waited = false;
        loop {
            let file = crate::disk::open_or_create(&path)
                .with_context(|| format!("cannot create the lock file {}", path.display()))?;
            if !try_lock(&file).with_context(|| format!("cannot lock {}", path.display()))? {
                if !waited {
                    eprintln!(
                        "waiting for another run that is using the data folder {}",
                        data_dir.display()
                    );
                    waited = true;
                }
                lock(&file).with_context(|| format!("cannot lock {}", path.display()))?;
            }
            // A run that held it may have removed the file as it finished,
            // after we opened it: our lock is then on a file that nobody
            // else will open, so start over.
            if is_at(&file, &path)? {
                return Ok(DataDirLock {
                    _locked: file,
                    path,
                    waited,
                });
            }
        }
    }

    /// Whether another run held the folder first: it may have left what
    /// this one came for.
    pub fn waited(&self) -> bool {
        self.waited
    }
}

impl Drop for DataDirLock {
    fn drop(&mut self) {
        // Removed while still locked (the file is closed, and the lock
        // released, only after this), so no run can lock this file after
        // us and believe it has the folder. Best effort: a file left
        // behind is only taken over by the next run.
        let _ = crate::disk::remove_file(&self.path);
    }
}

/// Whether `path` still names the file that `file` has open.
fn is_at(file: &File, path: &Path) -> Result<bool> {
    let open = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?;
    match fs::metadata(path) {
        Ok(named) => Ok((named.dev(), named.ino()) == (open.dev(), open.ino())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::thread;
    use std::time::Duration;

    #[test]
    fn a_second_holder_waits_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        assert!(!first.waited());
        let (tx, rx) = mpsc::channel();
        let path = dir.path().to_owned();
        let second = thread::spawn(move || {
            let lock = DataDirLock::acquire(&path).unwrap();
            tx.send(()).unwrap();
            lock
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "the second lock was taken while the first was held"
        );
        drop(first);
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the second lock once the first was released");
        assert!(second.join().unwrap().waited());
        assert!(
            !dir.path().join(LOCK_NAME).exists(),
            "the lock file is removed on release"
        );
    }

    #[test]
    fn a_lock_file_left_by_a_killed_run_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(LOCK_NAME), b"").unwrap();
        let lock = DataDirLock::acquire(dir.path()).unwrap();
        drop(lock);
        assert!(!dir.path().join(LOCK_NAME).exists());
    }
}
