//! Atomic file writes: a file is written under a temporary name in its own
//! folder and renamed over the final name only once it is complete and
//! synced, so a crash, a full disk or an error never leaves a half-written
//! file under the final name for a later run to trust.
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Writes `path` atomically with the bytes that `fill` writes. On any error
/// the temporary file is removed and `path` is left as it was.
pub fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    let tmp = temp_path(path);
    let result = write_then_rename(path, &tmp, fill);
    if result.is_err() {
        // Best effort: the temp file may not even exist if creating it failed.
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_then_rename(
    path: &Path,
    tmp: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    let file = File::create(tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    fill(&mut out).with_context(|| format!("cannot write {}", tmp.display()))?;
    let file = out
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.sync_all()
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(tmp, path)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
    sync_parent(path)
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

/// Like [`write_atomically`] for writers that want a path rather than a
/// stream (e.g. libtorch's savers): `write` fills the temporary path, which
/// is then renamed over `path`.
pub fn replace_atomically(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = temp_path(path);
    let result = write(&tmp).and_then(|()| sync(&tmp)).and_then(|()| {
        fs::rename(&tmp, path)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
        sync_parent(path)
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
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
    File::open(path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot sync {} to the disk", path.display()))
}

/// Makes a rename inside `path`'s folder durable.
pub fn sync_parent(path: &Path) -> Result<()> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => sync(dir),
        None => sync(Path::new(".")),
    }
}

/// Whether `name` is one of [`write_atomically`]'s temporary names
/// (`<stem>.tmp<pid>[.<ext>]`): left behind only by a killed process.
pub fn is_temp_name(name: &str) -> bool {
    name.split_once(".tmp").is_some_and(|(_, rest)| {
        let digits = rest.split('.').next().unwrap_or("");
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    })
}
