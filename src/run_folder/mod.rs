//! The run folder: what a training run leaves for later commands, with its
//! file names and formats in this one module.
//!
//! - `config.json` ([`RunConfig`]): the settings the model was built and
//!   trained with;
//! - `history.csv` ([`HistoryCsv`]): one row per finished epoch (it may be
//!   moved elsewhere with `--history`);
//! - `vocab.txt`: the vocabulary the inputs were encoded with;
//! - `model.safetensors`: the weights after the last finished epoch.
//!
//! Every file is written atomically, and a run never writes over an earlier
//! run's folder or history.
mod config;
mod history;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use tch::nn;

use crate::atomic::{replace_atomically, write_atomically};
use crate::data::Vocabulary;
use crate::settings::RunOutputs;
pub use config::RunConfig;
pub use history::HistoryCsv;

pub const CONFIG_FILE: &str = "config.json";
pub const HISTORY_FILE: &str = "history.csv";
pub const VOCAB_FILE: &str = "vocab.txt";
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// A run folder, new or finished.
#[derive(Debug, Clone)]
pub struct RunFolder {
    dir: PathBuf,
    history: PathBuf,
}

impl RunFolder {
    /// Makes the folder of a new run (`runs/<start time>` unless given),
    /// refusing one that already holds a run, or a history file that
    /// already exists: an earlier run's results are never written over.
    /// The history's folder is made now rather than after the first epoch.
    pub fn create(outputs: &RunOutputs) -> Result<RunFolder> {
        let dir = outputs
            .run_dir
            .clone()
            .unwrap_or_else(|| Path::new("runs").join(timestamp_name(SystemTime::now())));
        if dir.join(CONFIG_FILE).exists() {
            bail!(
                "--run-dir {} already holds a run ({CONFIG_FILE}); choose another folder or remove it",
                dir.display()
            );
        }
        let history = outputs
            .history
            .clone()
            .unwrap_or_else(|| dir.join(HISTORY_FILE));
        if history.exists() {
            bail!(
                "--history {} already exists; choose another file or remove it",
                history.display()
            );
        }
        fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the run folder {}", dir.display()))?;
        if let Some(parent) = history.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).with_context(|| {
                format!(
                    "cannot create the folder of --history {}",
                    history.display()
                )
            })?;
        }
        Ok(RunFolder { dir, history })
    }

    /// The folder of an earlier run, to load from.
    pub fn open(dir: &Path) -> RunFolder {
        RunFolder {
            dir: dir.to_path_buf(),
            history: dir.join(HISTORY_FILE),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn history_path(&self) -> &Path {
        &self.history
    }

    pub fn weights_path(&self) -> PathBuf {
        self.dir.join(WEIGHTS_FILE)
    }

    pub fn save_config(&self, config: &RunConfig) -> Result<()> {
        write_json(&self.dir.join(CONFIG_FILE), config)
    }

    /// The run's config, with its model checked as the flags would be.
    pub fn load_config(&self) -> Result<RunConfig> {
        let path = self.dir.join(CONFIG_FILE);
        let text = fs::read_to_string(&path)
            .with_context(|| format!("cannot read {} (is it a run folder?)", path.display()))?;
        let config: RunConfig = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a gru-imdb run config", path.display()))?;
        config
            .model
            .validate()
            .with_context(|| format!("in {}", path.display()))?;
        Ok(config)
    }

    pub fn save_vocabulary(&self, vocab: &Vocabulary) -> Result<()> {
        vocab.save(&self.dir.join(VOCAB_FILE))
    }

    pub fn load_vocabulary(&self) -> Result<Vocabulary> {
        Vocabulary::load(&self.dir.join(VOCAB_FILE))
    }

    /// Saves the weights as safetensors, atomically.
    pub fn save_weights(&self, vs: &nn::VarStore) -> Result<()> {
        replace_atomically(&self.weights_path(), |tmp| {
            vs.save(tmp)
                .with_context(|| format!("cannot save the weights to {}", tmp.display()))
        })
    }

    /// Fills the variables of `vs` (made by the model) from the saved weights.
    pub fn load_weights(&self, vs: &mut nn::VarStore) -> Result<()> {
        let path = self.weights_path();
        vs.load(&path)
            .with_context(|| format!("cannot load the weights from {}", path.display()))
    }
}

/// Writes `value` as pretty JSON, atomically.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let mut json = serde_json::to_string_pretty(value)
        .with_context(|| format!("cannot serialise {}", path.display()))?;
    json.push('\n');
    write_atomically(path, |out| std::io::Write::write_all(out, json.as_bytes()))
}

/// Seconds since the epoch as `YYYY-MM-DDTHH-MM-SS` (UTC), a folder name
/// that sorts by time.
fn timestamp_name(now: SystemTime) -> String {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}-{:02}-{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_folder_names_are_utc_timestamps() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_795_711_895);
        assert_eq!(timestamp_name(t), "2026-11-26T16-51-35");
        assert_eq!(timestamp_name(UNIX_EPOCH), "1970-01-01T00-00-00");
    }
}
