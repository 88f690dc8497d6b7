//! Atomic file writes: a file is written under a temporary name in its own
//! folder and renamed over the final name only once it is complete and
//! synced, so a crash, a full disk or an error never leaves a half-written
//! file under the final name for a later run to trust.
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::disk;

/// Writes `path` atomically with the bytes that `fill` writes. On any error
/// the temporary file is removed and `path` is left as it was.
pub fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    write_through(path, &temp_path(path), fill)
}

/// Writes `path` atomically as [`write_atomically`] does, through the
/// temporary name that `write_atomically` gives `temp_for` in the same
/// folder: for files whose own temporary name a reader would take for a
/// whole file (TensorBoard reads every name with `tfevents` in it).
pub fn write_atomically_as(
    path: &Path,
    temp_for: &str,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    write_through(path, &temp_path(&path.with_file_name(temp_for)), fill)
}

fn write_through(
    path: &Path,
    tmp: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    let result = write_then_rename(path, tmp, fill);
    if result.is_err() {
        // Best effort: the temp file may not even exist if creating it failed.
        let _ = disk::remove_file(tmp);
    }
    result
}

fn write_then_rename(
    path: &Path,
    tmp: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    write_synced(tmp, fill)?;
    rename_into_place(tmp, path)
}

/// Writes `tmp` with the bytes that `fill` writes and syncs it.
fn write_synced(
    tmp: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    let file =
        disk::create_file(tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    fill(&mut out).with_context(|| format!("cannot write {}", tmp.display()))?;
    let file = disk::before_write(tmp)
        .and_then(|()| out.into_inner().map_err(|e| e.into_error()))
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    disk::sync_file(&file, tmp).with_context(|| format!("cannot write {}", tmp.display()))
}

fn rename_into_place(tmp: &Path, path: &Path) -> Result<()> {
    disk::rename(tmp, path)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
    sync_parent(path)
}

/// Writes files that must agree: every one whole under its temporary name
/// and synced first, then each renamed into place in the order given. An
/// error while writing leaves all of them as they were; only a crash
/// between two renames publishes the first ones alone (a caller that must
/// tell makes the later files name what the earlier ones hold, as
/// `gru-imdb export`'s model names its tokenizer's sha256).
pub fn write_together(files: &[(&Path, &[u8])]) -> Result<()> {
    let temps: Vec<PathBuf> = files.iter().map(|(path, _)| temp_path(path)).collect();
    let published = files
        .iter()
        .zip(&temps)
        .try_for_each(|((_, bytes), tmp)| write_synced(tmp, |out| out.write_all(bytes)))
        .and_then(|()| {
            files
                .iter()
                .zip(&temps)
                .try_for_each(|((path, _), tmp)| rename_into_place(tmp, path))
        });
    if published.is_err() {
        for tmp in &temps {
            // Best effort: those already renamed, or never made, are gone.
            let _ = disk::remove_file(tmp);
        }
    }
    published
}

/// `<stem>.tmp<pid>.<ext>` beside `path`: the same folder (so the rename
/// stays on one file system), a per-process name (so two runs never share
/// one), and the same extension (savers such as libtorch's pick the format
/// from it).
fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_stem().unwrap_or_default().to_os_string();
    name.push(format!(".tmp{}", std::process::id()));
    if let Some(ext) = path.extension() {
        name.push(".");
        name.push(ext);
    }
    path.with_file_name(name)
}

/// How [`write_json`] lays JSON out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonLayout {
    /// Indented, for files people read (`config.json`, `results.json`).
    Pretty,
    /// One line, for short lists and machine-read files.
    OneLine,
}

/// Writes `value` as JSON with a final newline, atomically.
pub fn write_json(path: &Path, value: &impl serde::Serialize, layout: JsonLayout) -> Result<()> {
    let json = match layout {
        JsonLayout::Pretty => serde_json::to_string_pretty(value),
        JsonLayout::OneLine => serde_json::to_string(value),
    }
    .with_context(|| format!("cannot serialise {}", path.display()))?;
    write_atomically(path, |out| writeln!(out, "{json}"))
}

/// Flushes a file (or a folder's entries) to the disk, so that a rename
/// published after it never points at data still in flight.
pub fn sync(path: &Path) -> Result<()> {
    disk::sync_path(path).with_context(|| format!("cannot sync {} to the disk", path.display()))
}

/// Makes a rename inside `path`'s folder durable.
pub fn sync_parent(path: &Path) -> Result<()> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => sync(dir),
        None => sync(Path::new(".")),
    }
}

/// Whether `name` is a temporary name that [`write_atomically`] gives
/// `final_name` (`<stem>.tmp<pid>[.<ext>]`), left behind only by a killed
/// process: exactly that pattern, so that a user's `notes.tmp2024.txt`
/// beside a run's files is never taken for one.
pub fn is_temp_name_of(name: &str, final_name: &str) -> bool {
    let final_path = Path::new(final_name);
    let stem = final_path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("");
    let Some(rest) = name.strip_prefix(stem).and_then(|r| r.strip_prefix(".tmp")) else {
        return false;
    };
    let digits = match final_path.extension().and_then(|e| e.to_str()) {
        Some(ext) => match rest.strip_suffix(ext).and_then(|r| r.strip_suffix('.')) {
            Some(digits) => digits,
            None => return false,
        },
        None => rest,
    };
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_files_own_temporary_names_are_taken_for_leftovers() {
        assert!(is_temp_name_of("config.tmp123.json", "config.json"));
        assert!(is_temp_name_of("vocab.tmp7.txt", "vocab.txt"));
        assert!(is_temp_name_of("LOG.tmp7", "LOG"));
        let temp = temp_path(Path::new("/x/results.json"));
        assert!(is_temp_name_of(
            temp.file_name().unwrap().to_str().unwrap(),
            "results.json"
        ));
        for other in [
            "notes.tmp2024.txt",
            "config.tmp2024.txt",
            "config.tmp.json",
            "config.tmpx1.json",
            "config.json",
            "myconfig.tmp1.json",
        ] {
            assert!(!is_temp_name_of(other, "config.json"), "{other}");
        }
    }
}
