//! `manifest.json`, the last file of every checkpoint: the sha256 of each of
//! its other files, of the run folder's files the weights are only
//! meaningful with (`config.json`, `vocab.txt`, `labels.json`), and of the
//! data trained on (the archive, or the user's texts and how they were
//! read), even when no `--data-sha256` pinned it.
//!
//! Every command that reads a checkpoint checks it first: a file edited,
//! damaged, missing or brought in from another run is refused, naming it,
//! instead of being trusted. Checkpoints from before manifests have none;
//! for them only `config.json` and `vocab.txt` are checked, as then.
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::data::sha256_file;

pub const MANIFEST: &str = "manifest.json";

/// What a checkpoint's weights depend on outside the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInputs {
    /// sha256 of each run-folder file, by name.
    pub run_files: BTreeMap<String, String>,
    /// sha256 of the data trained on.
    pub data_sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// sha256 of each file of the checkpoint but the manifest, by name.
    pub files: BTreeMap<String, String>,
    #[serde(flatten)]
    pub inputs: RunInputs,
}

impl RunInputs {
    /// The sha256 of `names` in `run_dir` (each must exist) and of the data.
    pub fn of(run_dir: &Path, names: &[&str], data_sha256: &str) -> Result<RunInputs> {
        let run_files = names
            .iter()
            .map(|name| Ok((name.to_string(), sha256_file(&run_dir.join(name))?)))
            .collect::<Result<_>>()?;
        Ok(RunInputs {
            run_files,
            data_sha256: data_sha256.to_owned(),
        })
    }

    /// Refuses a run folder whose files differ from what the weights were
    /// trained with: they would silently give other predictions.
    pub fn check_run_files(&self, run_dir: &Path) -> Result<()> {
        for (name, then) in &self.run_files {
            let path = run_dir.join(name);
            if !path.exists() {
                bail!(
                    "{} is missing, but the weights were saved with it; restore it or train again",
                    path.display()
                );
            }
            let now = sha256_file(&path)?;
            if &now != then {
                bail!(
                    "{} changed after the weights were saved (sha256 {now}, expected {then}); \
                     restore it or train again",
                    path.display()
                );
            }
        }
        Ok(())
    }
}

/// Hashes every file of the checkpoint folder `dir` and writes its
/// manifest there (the caller syncs and publishes the folder).
pub fn write_manifest(dir: &Path, inputs: &RunInputs) -> Result<()> {
    let mut files = BTreeMap::new();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name != MANIFEST {
            files.insert(name.into_owned(), sha256_file(&path)?);
        }
    }
    let manifest = Manifest {
        files,
        inputs: inputs.clone(),
    };
    let json = serde_json::to_string_pretty(&manifest).context("cannot serialise a manifest")?;
    let path = dir.join(MANIFEST);
    crate::disk::write_new(&path, format!("{json}\n").as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The manifest of checkpoint `dir`, checked against its files: `None` for
/// a checkpoint from before manifests.
pub fn verified_manifest(dir: &Path) -> Result<Option<Manifest>> {
    let path = dir.join(MANIFEST);
    if !path.exists() {
        return Ok(None);
    }
    let text =
        fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let manifest: Manifest = serde_json::from_str(&text)
        .with_context(|| format!("{} is damaged; restore it or train again", path.display()))?;
    for (name, then) in &manifest.files {
        let file = dir.join(name);
        let now = match file.exists() {
            true => sha256_file(&file)?,
            false => bail!(
                "{} is missing from its checkpoint; restore it or train again",
                file.display()
            ),
        };
        if &now != then {
            bail!(
                "{} does not match its checkpoint's manifest (edited or damaged: sha256 {now}, \
                 expected {then}); restore it or train again",
                file.display()
            );
        }
    }
    Ok(Some(manifest))
}
