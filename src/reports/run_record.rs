//! What a finished (or running) run folder says about itself: its config
//! and its histories, read without loading the model.
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};

use crate::run_config::RunConfig;
use crate::run_dir::{EpochRecord, StepRecord};
use crate::run_dir::{RunDir, HISTORY_FILE, STEPS_FILE};

use super::history_reader::{read_epoch_history, read_step_history};

/// A run folder's config and histories.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub dir: PathBuf,
    pub config: RunConfig,
    pub epochs: Vec<EpochRecord>,
    /// Empty for runs from before step histories.
    pub steps: Vec<StepRecord>,
}

impl RunRecord {
    /// Reads `dir`; a folder without `config.json` is "not a run folder",
    /// one without a finished epoch is refused too (nothing to show).
    pub fn load(dir: &Path) -> Result<RunRecord> {
        ensure!(dir.is_dir(), "{} is not a folder", dir.display());
        let folder = RunDir::open_run(dir)
            .with_context(|| format!("{} is not a run folder", dir.display()))?;
        let config = RunConfig::load(&folder)?;
        // A run trained with --history keeps its history there.
        let history = config
            .history
            .clone()
            .unwrap_or_else(|| dir.join(HISTORY_FILE));
        ensure!(
            history.exists(),
            "{} has no {}: the run has not finished an epoch",
            dir.display(),
            history.display()
        );
        Ok(RunRecord {
            dir: dir.to_path_buf(),
            config,
            epochs: read_epoch_history(&history)?,
            steps: read_step_history(&dir.join(STEPS_FILE))?,
        })
    }

    /// The config as JSON, for listing the settings that differ.
    pub fn config_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).expect("a run config serialises")
    }

    /// The folder's own name, e.g. `2026-11-26T16-51-35`.
    pub fn name(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.dir.display().to_string())
    }
}
