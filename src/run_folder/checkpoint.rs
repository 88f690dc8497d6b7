//! Checkpoints: every file that describes where training stands, published
//! together so that they always agree.
//!
//! A checkpoint is a folder `checkpoints/NNNNNN/` holding the weights
//! (`model.safetensors`, and `model.best.safetensors` when the best epoch is
//! kept), Adam's moments (`optimizer.safetensors`), the history
//! (`history.csv`), the step-level history (`steps.csv`) and the fit's
//! state (`checkpoint.json`). It is written under a temporary name, synced,
//! renamed, and then made current by replacing the symbolic link
//! `checkpoints/latest` (one atomic rename);
//! the run folder's `model.safetensors`, `history.csv`, `steps.csv` and
//! `model.best.safetensors` are links through `latest`. A reader thus sees
//! one whole checkpoint or the one before, never a mix; a killed writer
//! leaves only a temporary folder, which the next claim of the run folder
//! removes. (The same scheme as Kubernetes' atomic writer.)
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

use super::history::write_history;
use super::steps::write_steps;
use super::weights::{read_tensors, write_tensors, write_weights};
use crate::atomic::{sync, sync_parent};
use crate::model::Parameters;
use crate::optim::AdamState;
use crate::train::FitState;

pub const CHECKPOINTS_DIR: &str = "checkpoints";
pub const LATEST: &str = "latest";
pub const WEIGHTS: &str = "model.safetensors";
pub const BEST_WEIGHTS: &str = "model.best.safetensors";
/// The last epoch's weights, when `model.safetensors` holds the best ones.
const LAST_WEIGHTS: &str = "last.safetensors";
const OPTIMIZER: &str = "optimizer.safetensors";
const STATE: &str = "checkpoint.json";
pub const HISTORY: &str = "history.csv";
pub const STEPS: &str = "steps.csv";
const TEMP_PREFIX: &str = ".tmp-";

/// `checkpoint.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointInfo {
    pub fit: FitState,
    pub adam_iterations: u64,
    pub learning_rate: f64,
    /// sha256 of the run's `config.json` and `vocab.txt`: the weights are
    /// only meaningful with exactly those.
    pub config_sha256: String,
    pub vocab_sha256: String,
    /// Which file of the checkpoint training goes on from.
    pub training_weights: String,
}

/// What the best-weights file of a new checkpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BestWeights {
    /// None is kept.
    NotKept,
    /// The weights being saved are the best so far.
    These,
    /// The previous checkpoint's stay the best.
    Previous,
}

/// One checkpoint to publish.
pub struct Checkpoint<'a> {
    pub weights: &'a nn::VarStore,
    pub optimizer: AdamState,
    pub fit: &'a FitState,
    pub best: BestWeights,
    pub config_sha256: String,
    pub vocab_sha256: String,
}

/// The checkpoints of one run folder.
#[derive(Debug, Clone)]
pub struct Checkpoints {
    dir: PathBuf,
}

fn generation_name(number: u64) -> String {
    format!("{number:06}")
}

impl Checkpoints {
    pub fn new(run_dir: &Path) -> Checkpoints {
        Checkpoints {
            dir: run_dir.join(CHECKPOINTS_DIR),
        }
    }

    fn latest_link(&self) -> PathBuf {
        self.dir.join(LATEST)
    }

    /// The current checkpoint's folder, if there is one.
    pub fn latest(&self) -> Option<PathBuf> {
        let target = fs::read_link(self.latest_link()).ok()?;
        Some(self.dir.join(target))
    }

    fn latest_number(&self) -> u64 {
        fs::read_link(self.latest_link())
            .ok()
            .and_then(|t| t.to_str().and_then(|s| s.parse().ok()))
            .unwrap_or(0)
    }

    /// Removes what a killed writer left: temporary folders and links, and
    /// checkpoints that never became, or are no longer, the latest.
    pub fn remove_stale(&self) -> Result<()> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Ok(());
        };
        let latest = self.latest();
        for entry in entries {
            let path = entry
                .with_context(|| format!("cannot list {}", self.dir.display()))?
                .path();
            if path == self.latest_link() || Some(&path) == latest.as_ref() {
                continue;
            }
            let removed = if path.is_dir() && !path.is_symlink() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            removed.with_context(|| format!("cannot remove the stale {}", path.display()))?;
        }
        Ok(())
    }

    /// Writes `checkpoint` and makes it the latest.
    pub fn publish(&self, checkpoint: &Checkpoint) -> Result<()> {
        let previous = self.latest();
        let training_weights = WEIGHTS.to_owned();
        self.publish_with(|dir| {
            write_weights(checkpoint.weights, &dir.join(WEIGHTS))?;
            match (checkpoint.best, &previous) {
                (BestWeights::These, _) => {
                    link_or_copy(&dir.join(WEIGHTS), &dir.join(BEST_WEIGHTS))?
                }
                (BestWeights::Previous, Some(prev)) => {
                    link_or_copy(&prev.join(BEST_WEIGHTS), &dir.join(BEST_WEIGHTS))?
                }
                (BestWeights::Previous, None) | (BestWeights::NotKept, _) => {}
            }
            write_optimizer(&checkpoint.optimizer, &dir.join(OPTIMIZER))?;
            write_history(&dir.join(HISTORY), &checkpoint.fit.history)?;
            write_steps(&dir.join(STEPS), &checkpoint.fit.steps)?;
            write_info(
                &dir.join(STATE),
                &CheckpointInfo {
                    fit: checkpoint.fit.clone(),
                    adam_iterations: checkpoint.optimizer.iterations,
                    learning_rate: checkpoint.optimizer.learning_rate,
                    config_sha256: checkpoint.config_sha256.clone(),
                    vocab_sha256: checkpoint.vocab_sha256.clone(),
                    training_weights,
                },
            )
        })
    }

    /// Makes the latest checkpoint's best weights the run's final ones: a
    /// new checkpoint whose `model.safetensors` is the best epoch's, with
    /// the last epoch's kept for a later `--resume`.
    pub fn publish_best_as_final(&self) -> Result<()> {
        let Some(previous) = self.latest() else {
            bail!("there is no checkpoint to take the best weights from");
        };
        let mut info = read_info(&previous)?;
        self.publish_with(|dir| {
            for name in [OPTIMIZER, HISTORY, BEST_WEIGHTS] {
                link_or_copy(&previous.join(name), &dir.join(name))?;
            }
            link_or_copy(
                &previous.join(&info.training_weights),
                &dir.join(LAST_WEIGHTS),
            )?;
            link_or_copy(&previous.join(BEST_WEIGHTS), &dir.join(WEIGHTS))?;
            // Written from the state, not linked: a checkpoint from before
            // step histories has no steps.csv to link.
            write_steps(&dir.join(STEPS), &info.fit.steps)?;
            info.training_weights = LAST_WEIGHTS.to_owned();
            write_info(&dir.join(STATE), &info)
        })
    }

    /// Fills a temporary folder with `fill`, syncs it, and publishes it as
    /// the next checkpoint.
    fn publish_with(&self, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let name = generation_name(self.latest_number() + 1);
        let tmp = self.dir.join(format!("{TEMP_PREFIX}{name}"));
        let result = (|| {
            fs::create_dir(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
            fill(&tmp)?;
            for entry in fs::read_dir(&tmp)? {
                sync(&entry?.path())?;
            }
            let done = self.dir.join(&name);
            fs::rename(&tmp, &done).with_context(|| {
                format!("cannot rename {} to {}", tmp.display(), done.display())
            })?;
            self.point_latest_at(&name)
        })();
        if result.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        result?;
        self.remove_stale()
    }

    /// Replaces the `latest` link in one rename.
    fn point_latest_at(&self, name: &str) -> Result<()> {
        let tmp_link = self.dir.join(format!("{TEMP_PREFIX}{LATEST}"));
        let _ = fs::remove_file(&tmp_link);
        std::os::unix::fs::symlink(name, &tmp_link)
            .with_context(|| format!("cannot create the link {}", tmp_link.display()))?;
        fs::rename(&tmp_link, self.latest_link())
            .with_context(|| format!("cannot update {}", self.latest_link().display()))?;
        sync_parent(&self.latest_link())
    }

    /// The latest checkpoint's state, if there is one.
    pub fn latest_info(&self) -> Result<Option<(PathBuf, CheckpointInfo)>> {
        match self.latest() {
            None => Ok(None),
            Some(dir) => {
                let info = read_info(&dir)?;
                Ok(Some((dir, info)))
            }
        }
    }
}

/// A hard link (no copy) where the file system allows one.
fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    fs::copy(from, to)
        .map(|_| ())
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))
}

fn write_info(path: &Path, info: &CheckpointInfo) -> Result<()> {
    let json = serde_json::to_string_pretty(info).context("cannot serialise the checkpoint")?;
    fs::write(path, json + "\n").with_context(|| format!("cannot write {}", path.display()))
}

fn read_info(dir: &Path) -> Result<CheckpointInfo> {
    let path = dir.join(STATE);
    let text =
        fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a checkpoint", path.display()))
}

fn moment_name(moment: &str, parameter: &str) -> String {
    format!("{moment}.{parameter}")
}

fn write_optimizer(state: &AdamState, path: &Path) -> Result<()> {
    let names = Parameters::<Tensor>::NAMES;
    let tensors: Vec<(String, Tensor)> = [("m", &state.m), ("v", &state.v)]
        .into_iter()
        .flat_map(|(moment, values)| {
            names
                .iter()
                .zip(values.iter())
                .map(move |(name, t)| (moment_name(moment, name), t.shallow_clone()))
        })
        .collect();
    write_tensors(&tensors, path)
}

/// Adam's state from a checkpoint folder.
pub fn read_optimizer(dir: &Path, info: &CheckpointInfo) -> Result<AdamState> {
    let path = dir.join(OPTIMIZER);
    let mut tensors = read_tensors(&path)?;
    let mut moment = |moment: &str| -> Result<Parameters<Tensor>> {
        let values = Parameters::<Tensor>::NAMES
            .iter()
            .map(|name| {
                tensors
                    .remove(&moment_name(moment, name))
                    .with_context(|| format!("{} has no {moment} of {name}", path.display()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Parameters::from_ordered(values))
    };
    Ok(AdamState {
        iterations: info.adam_iterations,
        learning_rate: info.learning_rate,
        m: moment("m")?,
        v: moment("v")?,
    })
}
