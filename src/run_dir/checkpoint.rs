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
//! `model.best.safetensors` are links through `latest`, for people and
//! other tools. (The same scheme as Kubernetes' atomic writer.)
//!
//! The program itself does not trust the link: a numbered folder only ever
//! appears whole, by the rename, so the current checkpoint is the
//! highest-numbered one, checked against its manifest ([`super::manifest`]).
//! A `latest` that is broken, points out of the folder or at another run's
//! checkpoint is thus ignored (and set right by the next writer), and never
//! costs a checkpoint. A killed writer leaves only a temporary folder
//! (`.tmp-NNNNNN`) or link (`.tmp-latest`), which the next writer removes;
//! nothing else in `checkpoints/` is ever removed but the numbered folders
//! older than the current one.
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

use super::history::write_history;
use super::manifest::{verified_manifest, write_manifest, RunInputs};
use super::records::FitState;
use super::steps::write_steps;
use super::weights::{read_tensors, write_tensors, write_weights};
use crate::atomic::{sync, sync_parent};
use crate::disk;
use crate::model::Parameters;
use crate::optim::AdamState;

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

impl CheckpointInfo {
    /// Refuses a state no run of `steps_per_epoch` steps could have saved
    /// (which would otherwise fail deep in libtorch).
    pub fn check(&self, steps_per_epoch: usize) -> Result<()> {
        let fit = &self.fit;
        ensure!(
            fit.step < steps_per_epoch.max(1),
            "it stands at step {} of an epoch of {steps_per_epoch} steps",
            fit.step
        );
        ensure!(
            fit.history.len() == fit.epoch,
            "it has {} epochs of history for {} epochs finished",
            fit.history.len(),
            fit.epoch
        );
        ensure!(
            self.learning_rate > 0.0 && self.learning_rate.is_finite(),
            "its learning rate is {}",
            self.learning_rate
        );
        Ok(())
    }
}

/// One checkpoint to publish.
pub struct Checkpoint<'a> {
    pub weights: &'a nn::VarStore,
    pub optimizer: AdamState,
    pub fit: &'a FitState,
    pub best: BestWeights,
    pub inputs: &'a RunInputs,
}

/// The checkpoints of one run folder.
#[derive(Debug, Clone)]
pub struct Checkpoints {
    dir: PathBuf,
}

fn generation_name(number: u64) -> String {
    format!("{number:06}")
}

/// The number of a checkpoint folder's name, if it is one.
fn generation_number(name: &str) -> Option<u64> {
    (!name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()))
        .then(|| name.parse().ok())
        .flatten()
}

/// Whether `name` is a temporary entry of [`Checkpoints::publish_with`].
fn is_temp_entry(name: &str) -> bool {
    name.strip_prefix(TEMP_PREFIX)
        .is_some_and(|rest| rest == LATEST || generation_number(rest).is_some())
}

/// A checkpoint read back and checked.
#[derive(Debug, Clone)]
pub struct Current {
    pub dir: PathBuf,
    pub info: CheckpointInfo,
    /// `None` for a checkpoint from before manifests.
    pub inputs: Option<RunInputs>,
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

    /// The checkpoint folders, newest first. A `checkpoints` that is a
    /// link is refused: it would lead writes and removals out of the run.
    fn generations(&self) -> Result<Vec<(u64, PathBuf)>> {
        match fs::symlink_metadata(&self.dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", self.dir.display())),
            Ok(meta) if !meta.is_dir() => bail!(
                "{} is not a folder of the run's own (a link or a file); move it away",
                self.dir.display()
            ),
            Ok(_) => {}
        }
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.dir)
            .with_context(|| format!("cannot list {}", self.dir.display()))?
        {
            let entry = entry?;
            let name = entry.file_name();
            let Some(number) = name.to_str().and_then(generation_number) else {
                continue;
            };
            if entry.file_type()?.is_dir() {
                found.push((number, entry.path()));
            }
        }
        found.sort_by_key(|(number, _)| std::cmp::Reverse(*number));
        Ok(found)
    }

    /// The newest checkpoint's folder, unchecked: for the writer, which
    /// checked it when it started and made every later one itself.
    fn newest(&self) -> Result<Option<PathBuf>> {
        Ok(self.generations()?.into_iter().next().map(|(_, dir)| dir))
    }

    /// Whether any checkpoint was published (checked or not: a damaged one
    /// still means the folder holds a run).
    pub fn exist(&self) -> Result<bool> {
        Ok(self.newest()?.is_some())
    }

    /// The current checkpoint, read and checked against its manifest; a
    /// damaged one is refused, naming the file, rather than passed over.
    pub fn current(&self) -> Result<Option<Current>> {
        let Some(dir) = self.newest()? else {
            return Ok(None);
        };
        let manifest = verified_manifest(&dir)?;
        let info = read_info(&dir)?;
        Ok(Some(Current {
            dir,
            info,
            inputs: manifest.map(|m| m.inputs),
        }))
    }

    /// Sets `latest` right if it does not name the current checkpoint
    /// (broken, pointing elsewhere, or left behind by a kill).
    pub fn repair_latest(&self) -> Result<()> {
        let Some(current) = self.newest()? else {
            return Ok(());
        };
        let name = current.file_name().unwrap_or_default().to_owned();
        let link = self.latest_link();
        match fs::symlink_metadata(&link) {
            Ok(meta) if !meta.file_type().is_symlink() => bail!(
                "{} is not a link; move it away so that it can point at the current checkpoint",
                link.display()
            ),
            Ok(_) if fs::read_link(&link)?.as_os_str() == name => Ok(()),
            _ => self.point_latest_at(&name.to_string_lossy()),
        }
    }

    /// Removes what a killed writer left (its exact temporary names) and
    /// the checkpoints older than the newest; nothing else.
    pub fn remove_stale(&self) -> Result<()> {
        let generations = self.generations()?;
        let Some((newest, _)) = generations.first() else {
            return self.remove_temporaries();
        };
        for (number, dir) in &generations {
            if number < newest {
                disk::remove_dir_all(dir)
                    .with_context(|| format!("cannot remove the old {}", dir.display()))?;
            }
        }
        self.remove_temporaries()
    }

    /// Removes only what a killed writer left (its exact temporary names).
    pub fn remove_temporaries(&self) -> Result<()> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Ok(());
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot list {}", self.dir.display()))?;
            if !entry.file_name().to_str().is_some_and(is_temp_entry) {
                continue;
            }
            let path = entry.path();
            let removed = match entry.file_type()?.is_dir() {
                true => disk::remove_dir_all(&path),
                false => disk::remove_file(&path),
            };
            removed.with_context(|| format!("cannot remove the stale {}", path.display()))?;
        }
        Ok(())
    }

    /// Writes `checkpoint` and makes it the latest.
    pub fn publish(&self, checkpoint: &Checkpoint) -> Result<()> {
        let previous = self.newest()?;
        let training_weights = WEIGHTS.to_owned();
        let inputs = checkpoint.inputs;
        let run_file = |name: &str| inputs.run_files.get(name).cloned().unwrap_or_default();
        self.publish_with(inputs, |dir| {
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
                    config_sha256: run_file(super::CONFIG_FILE),
                    vocab_sha256: run_file(super::VOCAB_FILE),
                    training_weights,
                },
            )
        })
    }

    /// Makes the latest checkpoint's best weights the run's final ones: a
    /// new checkpoint whose `model.safetensors` is the best epoch's, with
    /// the last epoch's kept for a later `--resume`.
    pub fn publish_best_as_final(&self) -> Result<()> {
        let Some(Current {
            dir: previous,
            mut info,
            inputs: Some(inputs),
        }) = self.current()?
        else {
            bail!("there is no checkpoint to take the best weights from");
        };
        self.publish_with(&inputs, |dir| {
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

    /// Fills a temporary folder with `fill` and its manifest, syncs it,
    /// and publishes it as the next checkpoint.
    fn publish_with(
        &self,
        inputs: &RunInputs,
        fill: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<()> {
        if !self.dir.exists() {
            disk::create_dir(&self.dir)
                .with_context(|| format!("cannot create {}", self.dir.display()))?;
        }
        let newest = self.generations()?.first().map_or(0, |(number, _)| *number);
        let name = generation_name(newest + 1);
        let tmp = self.dir.join(format!("{TEMP_PREFIX}{name}"));
        let result = (|| {
            disk::create_dir(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
            fill(&tmp)?;
            write_manifest(&tmp, inputs)?;
            for entry in fs::read_dir(&tmp)? {
                sync(&entry?.path())?;
            }
            sync(&tmp)?;
            let done = self.dir.join(&name);
            disk::rename(&tmp, &done).with_context(|| {
                format!("cannot rename {} to {}", tmp.display(), done.display())
            })?;
            self.point_latest_at(&name)
        })();
        if result.is_err() {
            let _ = disk::remove_dir_all(&tmp);
        }
        result?;
        self.remove_stale()
    }

    /// Replaces the `latest` link in one rename.
    fn point_latest_at(&self, name: &str) -> Result<()> {
        let tmp_link = self.dir.join(format!("{TEMP_PREFIX}{LATEST}"));
        if tmp_link.is_symlink() {
            disk::remove_file(&tmp_link)
                .with_context(|| format!("cannot remove {}", tmp_link.display()))?;
        }
        disk::symlink(Path::new(name), &tmp_link)
            .with_context(|| format!("cannot create the link {}", tmp_link.display()))?;
        disk::rename(&tmp_link, &self.latest_link())
            .with_context(|| format!("cannot update {}", self.latest_link().display()))?;
        sync_parent(&self.latest_link())
    }
}

/// A hard link (no copy) where the file system allows one.
fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if disk::hard_link(from, to).is_ok() {
        return Ok(());
    }
    disk::copy(from, to)
        .map(|_| ())
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))
}

fn write_info(path: &Path, info: &CheckpointInfo) -> Result<()> {
    let json = serde_json::to_string_pretty(info).context("cannot serialise the checkpoint")?;
    disk::write_new(path, format!("{json}\n").as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
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
