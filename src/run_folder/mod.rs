//! The run folder: what a training run leaves for later commands, with its
//! file names and formats in this one module.
//!
//! - `config.json` ([`RunConfig`]): the settings the model was built and
//!   trained with; `vocab.txt`: the vocabulary of its inputs; for a run on
//!   a user's texts, `labels.json`: its class names, by class;
//! - `checkpoints/` ([`Checkpoints`]): where training stands, published
//!   whole after every epoch (and at an interrupt);
//! - `model.safetensors`, `history.csv`, `steps.csv` (the step-level
//!   history) and, when the best epoch is kept, `model.best.safetensors`:
//!   links to the latest checkpoint's files
//!   (the history may go elsewhere with `--history`, then as a file
//!   rewritten after each checkpoint);
//! - `results.json` ([`RunResults`]): how the run ended;
//! - `.lock`: held by the process that trains into the folder, so that two
//!   runs never share one.
//!
//! Every file is written atomically, and a run never writes over an earlier
//! run's folder or history.
mod checkpoint;
mod config;
mod csv_table;
mod history;
mod results;
mod steps;
mod weights;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use tch::nn;

use crate::atomic::{is_temp_name, write_json, JsonLayout};
use crate::data::texts::{load_class_names, save_class_names};
use crate::data::{sha256_file, Vocabulary};
use crate::lock::FileLock;
use crate::settings::RunOutputs;
use crate::train::EpochRecord;
pub use checkpoint::{read_optimizer, BestWeights, Checkpoint, CheckpointInfo, Checkpoints};
pub use config::{RunConfig, TextsSource};
pub use history::{write_history_file, HEADER as HISTORY_HEADER};
pub use results::{RunResults, RunStatus, TestResult};
pub use steps::{write_steps, HEADER as STEPS_HEADER};
pub use weights::load_weights;

pub const CONFIG_FILE: &str = "config.json";
pub const HISTORY_FILE: &str = "history.csv";
pub const STEPS_FILE: &str = checkpoint::STEPS;
pub const VOCAB_FILE: &str = "vocab.txt";
pub const LABELS_FILE: &str = "labels.json";
pub const WEIGHTS_FILE: &str = checkpoint::WEIGHTS;
pub const BEST_WEIGHTS_FILE: &str = checkpoint::BEST_WEIGHTS;
pub const RESULTS_FILE: &str = "results.json";
const LOCK_FILE: &str = ".lock";

/// Which weights of a run to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WeightsChoice {
    /// What the run ended with: the last epoch's, or the best epoch's when
    /// it restored them.
    Last,
    /// The best epoch's (runs trained with --save-best).
    Best,
}

/// A run folder: a new run's (claimed and locked), a resumed one's (locked)
/// or a finished one's to read.
#[derive(Debug)]
pub struct RunFolder {
    dir: PathBuf,
    /// `--history` outside the folder, if given.
    history_file: Option<PathBuf>,
    checkpoints: Checkpoints,
    _lock: Option<FileLock>,
}

impl RunFolder {
    /// Claims the folder of a new run (`runs/<start time>` unless given):
    /// locks it, refuses one that holds a run or is in use, and a history
    /// file that already exists. An output that cannot be written is found
    /// now, before any training, and the folder made for it is removed.
    pub fn create(outputs: &RunOutputs, keep_best: bool) -> Result<RunFolder> {
        let history_file = outputs.history.clone();
        if let Some(path) = &history_file {
            if path.exists() || path.is_symlink() {
                bail!(
                    "--history {} already exists; choose another file or remove it",
                    path.display()
                );
            }
        }
        let (dir, lock, made) = match &outputs.run_dir {
            Some(dir) => claim_given(dir)?,
            None => claim_default()?,
        };
        let folder = RunFolder {
            checkpoints: Checkpoints::new(&dir),
            dir,
            history_file,
            _lock: Some(lock),
        };
        if let Err(err) = folder.prepare_outputs(keep_best) {
            if made {
                let _ = fs::remove_dir_all(&folder.dir);
            }
            return Err(err);
        }
        Ok(folder)
    }

    /// Claims an earlier run's folder to go on training into it: locks it
    /// and removes what a killed process left half-written.
    pub fn resume(dir: &Path, history_file: Option<PathBuf>, keep_best: bool) -> Result<RunFolder> {
        RunFolder::open_run(dir)?;
        let lock = FileLock::try_acquire(&dir.join(LOCK_FILE))?.with_context(|| {
            format!(
                "--resume {}: another run is using this folder",
                dir.display()
            )
        })?;
        let folder = RunFolder {
            checkpoints: Checkpoints::new(dir),
            dir: dir.to_path_buf(),
            history_file,
            _lock: Some(lock),
        };
        if folder.is_from_before_checkpoints() {
            bail!(
                "--resume {}: this run was trained before checkpoints and cannot be resumed; \
                 start a new run",
                dir.display()
            );
        }
        folder.remove_stale()?;
        folder.link_outputs(keep_best)?;
        Ok(folder)
    }

    /// An earlier run's folder, refused if it holds no run.
    pub fn open_run(dir: &Path) -> Result<RunFolder> {
        if !dir.join(CONFIG_FILE).exists() {
            bail!("{}: no run there (no {CONFIG_FILE})", dir.display());
        }
        Ok(RunFolder::open(dir))
    }

    /// A run's folder, to read from (no lock: readers do not write).
    pub fn open(dir: &Path) -> RunFolder {
        RunFolder {
            checkpoints: Checkpoints::new(dir),
            dir: dir.to_path_buf(),
            history_file: None,
            _lock: None,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn checkpoints(&self) -> &Checkpoints {
        &self.checkpoints
    }

    /// Where the history is: `--history`, or the folder's link.
    pub fn history_path(&self) -> PathBuf {
        self.history_file
            .clone()
            .unwrap_or_else(|| self.dir.join(HISTORY_FILE))
    }

    pub fn weights_path(&self, which: WeightsChoice) -> PathBuf {
        match which {
            WeightsChoice::Last => self.dir.join(WEIGHTS_FILE),
            WeightsChoice::Best => self.dir.join(BEST_WEIGHTS_FILE),
        }
    }

    /// The links to the latest checkpoint's files, and a first `--history`
    /// (header only) to find out now whether it can be written.
    fn prepare_outputs(&self, keep_best: bool) -> Result<()> {
        if let Some(path) = &self.history_file {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent).with_context(|| {
                    format!("cannot create the folder of --history {}", path.display())
                })?;
            }
            history::write_history_file(path, &[])
                .with_context(|| format!("--history {} cannot be written", path.display()))?;
        }
        self.link_outputs(keep_best)
    }

    fn link_outputs(&self, keep_best: bool) -> Result<()> {
        let mut names = vec![WEIGHTS_FILE, STEPS_FILE];
        if self.history_file.is_none() {
            names.push(HISTORY_FILE);
        }
        if keep_best {
            names.push(BEST_WEIGHTS_FILE);
        }
        for name in names {
            let link = self.dir.join(name);
            if link.is_symlink() {
                continue;
            }
            let target = Path::new(checkpoint::CHECKPOINTS_DIR)
                .join(checkpoint::LATEST)
                .join(name);
            std::os::unix::fs::symlink(&target, &link)
                .with_context(|| format!("cannot create the link {}", link.display()))?;
        }
        Ok(())
    }

    /// Temporary files of a killed writer (we hold the lock: no one else
    /// writes here) and stale checkpoint folders.
    fn remove_stale(&self) -> Result<()> {
        for entry in fs::read_dir(&self.dir)
            .with_context(|| format!("cannot list {}", self.dir.display()))?
        {
            let entry = entry?;
            if entry.file_name().to_str().is_some_and(is_temp_name) {
                fs::remove_file(entry.path()).with_context(|| {
                    format!("cannot remove the stale {}", entry.path().display())
                })?;
            }
        }
        self.checkpoints.remove_stale()
    }

    pub fn save_config(&self, config: &RunConfig) -> Result<()> {
        write_json(&self.dir.join(CONFIG_FILE), config, JsonLayout::Pretty)
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

    pub fn save_labels(&self, class_names: &[String]) -> Result<()> {
        save_class_names(&self.dir.join(LABELS_FILE), class_names)
    }

    /// The class names of a run on a user's texts; `None` for IMDB runs,
    /// which have none.
    pub fn load_labels(&self) -> Result<Option<Vec<String>>> {
        let path = self.dir.join(LABELS_FILE);
        match path.exists() {
            true => load_class_names(&path).map(Some),
            false => Ok(None),
        }
    }

    /// sha256 of `config.json` and `vocab.txt`, as checkpoints record them.
    pub fn inputs_sha256(&self) -> Result<(String, String)> {
        Ok((
            sha256_file(&self.dir.join(CONFIG_FILE))?,
            sha256_file(&self.dir.join(VOCAB_FILE))?,
        ))
    }

    /// Refuses a folder whose `config.json` or `vocab.txt` changed since
    /// its weights were saved: they would silently give other predictions.
    pub fn check_inputs(&self, info: &CheckpointInfo) -> Result<()> {
        let (config, vocab) = self.inputs_sha256()?;
        for (name, now, then) in [
            (CONFIG_FILE, config, &info.config_sha256),
            (VOCAB_FILE, vocab, &info.vocab_sha256),
        ] {
            if &now != then {
                bail!(
                    "{} changed after the weights were saved (sha256 {now}, expected {then}); \
                     restore it or train again",
                    self.dir.join(name).display()
                );
            }
        }
        Ok(())
    }

    /// Fills `vs` with the run's weights, after checking that the folder's
    /// config and vocabulary are the ones they were trained with; returns
    /// which weights they are, in words.
    pub fn load_weights(&self, vs: &mut nn::VarStore, which: WeightsChoice) -> Result<String> {
        let Some((_, info)) = self.checkpoints.latest_info()? else {
            return self.load_weights_without_checkpoints(vs, which);
        };
        self.check_inputs(&info)?;
        let path = self.weights_path(which);
        if which == WeightsChoice::Best && !path.exists() {
            bail!(
                "{} has no best weights: train with --save-best to keep them",
                self.dir.display()
            );
        }
        load_weights(vs, &path)?;
        Ok(describe_weights(&info, which))
    }

    /// A folder with no checkpoint: one that has not finished an epoch
    /// yet, or a run from before checkpoints, whose `model.safetensors` is
    /// a file of its own (loaded, but with nothing to check its config and
    /// vocabulary against).
    fn load_weights_without_checkpoints(
        &self,
        vs: &mut nn::VarStore,
        which: WeightsChoice,
    ) -> Result<String> {
        let path = self.weights_path(WeightsChoice::Last);
        if !self.is_from_before_checkpoints() {
            bail!(
                "{} has no finished epoch yet: no weights to load",
                self.dir.display()
            );
        }
        if which == WeightsChoice::Best {
            bail!(
                "{} is a run from before --save-best: it has no best weights",
                self.dir.display()
            );
        }
        load_weights(vs, &path)?;
        Ok("the weights of a run from before checkpoints".to_owned())
    }

    /// Whether the folder holds a run trained before checkpoints: its
    /// weights are a file, not a link into `checkpoints/`.
    fn is_from_before_checkpoints(&self) -> bool {
        let weights = self.weights_path(WeightsChoice::Last);
        weights.is_file() && !weights.is_symlink()
    }

    /// Publishes a checkpoint, then rewrites a `--history` kept elsewhere.
    pub fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
        self.checkpoints.publish(checkpoint)?;
        self.write_history_file(&checkpoint.fit.history)
    }

    fn write_history_file(&self, rows: &[EpochRecord]) -> Result<()> {
        match &self.history_file {
            Some(path) => history::write_history_file(path, rows),
            None => Ok(()),
        }
    }

    pub fn save_results(&self, results: &RunResults) -> Result<()> {
        write_json(&self.dir.join(RESULTS_FILE), results, JsonLayout::Pretty)
    }
}

/// Which weights `which` are in a run whose latest checkpoint is `info`.
fn describe_weights(info: &CheckpointInfo, which: WeightsChoice) -> String {
    let fit = &info.fit;
    let best_epoch = fit.callbacks.best.map_or(0, |b| b.epoch + 1);
    match which {
        WeightsChoice::Best => format!("the best epoch's weights (epoch {best_epoch})"),
        WeightsChoice::Last if info.training_weights != WEIGHTS_FILE => {
            format!("the best epoch's weights (epoch {best_epoch}), which the run restored")
        }
        WeightsChoice::Last if fit.step > 0 => format!(
            "the weights at epoch {} step {}, where the run was interrupted",
            fit.epoch + 1,
            fit.step
        ),
        WeightsChoice::Last => format!("the weights after epoch {}", fit.epoch),
    }
}

/// Creates (or takes, if empty of any run) a folder the user named, locked.
fn claim_given(dir: &Path) -> Result<(PathBuf, FileLock, bool)> {
    let made = !dir.exists();
    fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the run folder --run-dir {}", dir.display()))?;
    let lock = FileLock::try_acquire(&dir.join(LOCK_FILE))?.with_context(|| {
        format!(
            "--run-dir {}: another run is using this folder",
            dir.display()
        )
    })?;
    if dir.join(CONFIG_FILE).exists() {
        bail!(
            "--run-dir {} already holds a run ({CONFIG_FILE}); choose another folder, \
             remove it, or continue it with --resume {0}",
            dir.display()
        );
    }
    Ok((dir.to_path_buf(), lock, made))
}

/// Makes a new folder `runs/<start time>`, or `runs/<start time>-N` when
/// another run started in the same second: creating a folder is atomic, so
/// two runs never get the same one.
fn claim_default() -> Result<(PathBuf, FileLock, bool)> {
    let runs = Path::new("runs");
    fs::create_dir_all(runs).context("cannot create the folder runs")?;
    let name = timestamp_name(SystemTime::now());
    for n in 1.. {
        let dir = match n {
            1 => runs.join(&name),
            _ => runs.join(format!("{name}-{n}")),
        };
        match fs::create_dir(&dir) {
            Ok(()) => {
                let lock = FileLock::try_acquire(&dir.join(LOCK_FILE))?
                    .context("a run folder made just now is locked by another run")?;
                return Ok((dir, lock, true));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot create the run folder {}", dir.display()))
            }
        }
    }
    unreachable!("some suffix is free")
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
