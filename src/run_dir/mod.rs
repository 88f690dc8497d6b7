//! The run folder: what a training run leaves for later commands, with its
//! file names and formats in this one module.
//!
//! - `.gru-imdb-run`: the marker. A folder is a run only with it: it is
//!   made (empty, `O_EXCL`) when a new or empty folder is claimed, and a
//!   folder that is not empty and has none is refused before anything is
//!   written into it;
//! - `config.json` ([`RunConfig`]): the settings the model was built and
//!   trained with; `vocab.txt`: the vocabulary of its inputs; for a run on
//!   a user's texts, `labels.json`: its class names, by class;
//! - `checkpoints/` ([`Checkpoints`]): where training stands, published
//!   whole after every epoch (and at an interrupt), each with a manifest
//!   that ties it to the three files above and to the data;
//! - `model.safetensors`, `history.csv`, `steps.csv` (the step-level
//!   history) and, when the best epoch is kept, `model.best.safetensors`:
//!   links to the latest checkpoint's files
//!   (the history may go elsewhere with `--history`, then as a file
//!   rewritten after each checkpoint);
//! - `history.svg`: the learning curves, redrawn after each checkpoint;
//! - `logs/` (unless `--no-tensorboard`): TensorBoard's event files, as
//!   Keras's `TensorBoard` callback lays them out: in `logs/train` and
//!   `logs/validation` one file per finished epoch,
//!   `events.out.tfevents.<run start>.gru-imdb.<epoch, 5 digits>`, written
//!   after its checkpoint is published (and on resume, any the folder
//!   lacks), never rewritten; in `logs/` the settings as the hparams
//!   plugin's, `events.out.tfevents.<run start>.gru-imdb.hparams`. They
//!   are written under the temporary name `events-being-written.tmp<pid>`,
//!   which holds no `tfevents`, so TensorBoard never reads one half-made
//!   ([`event_files`]);
//! - `results.json` ([`RunResults`]): how the run ended;
//! - `.lock`: held by the process that trains into the folder, so that two
//!   runs never share one.
//!
//! Every file is written atomically, and a run never writes over an earlier
//! run's folder or history. A run owns only the names it made: cleaning up
//! removes exactly those names and the exact temporary names of its own
//! writes, inside the folder, never through a link; anything else there is
//! left alone. A run that never finished an epoch (killed while it
//! started) holds nothing worth keeping: the same `--run-dir` claims it
//! again.
mod checkpoint;
mod csv_table;
mod event_files;
mod history;
mod manifest;
mod records;
mod results;
mod steps;
mod weights;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use tch::nn;

use crate::atomic::{is_temp_name_of, sync_parent, write_json, JsonLayout};
use crate::data::texts::{load_class_names, save_class_names};
use crate::data::{sha256_file, Vocabulary};
use crate::disk;
use crate::file_lock::FileLock;
use crate::utc::UtcTime;
pub use checkpoint::{
    read_optimizer, BestWeights, Checkpoint, CheckpointInfo, Checkpoints, Current,
};
pub use history::{write_history_file, HEADER as HISTORY_HEADER};
pub use manifest::RunInputs;
pub use records::{BestEpoch, CallbackState, EpochRecord, FitState, RunningTotals, StepRecord};
pub use results::{RunResults, RunStatus, TestResult};
pub use steps::{write_steps, HEADER as STEPS_HEADER};
pub use weights::load_weights;

pub const MARKER_FILE: &str = ".gru-imdb-run";
pub const CONFIG_FILE: &str = "config.json";
pub const HISTORY_FILE: &str = "history.csv";
pub const STEPS_FILE: &str = checkpoint::STEPS;
pub const VOCAB_FILE: &str = "vocab.txt";
pub const LABELS_FILE: &str = "labels.json";
pub const WEIGHTS_FILE: &str = checkpoint::WEIGHTS;
pub const BEST_WEIGHTS_FILE: &str = checkpoint::BEST_WEIGHTS;
pub const RESULTS_FILE: &str = "results.json";
/// The learning curves, redrawn after every checkpoint (`reports::live`).
pub const HISTORY_PLOT_FILE: &str = "history.svg";
const LOCK_FILE: &str = ".lock";
/// The files a run writes atomically into its folder (whose temporary
/// names a killed run may leave).
const WRITTEN_FILES: [&str; 5] = [
    CONFIG_FILE,
    VOCAB_FILE,
    LABELS_FILE,
    RESULTS_FILE,
    HISTORY_PLOT_FILE,
];
/// The links a run makes into its checkpoints.
const LINKS: [&str; 4] = [WEIGHTS_FILE, BEST_WEIGHTS_FILE, HISTORY_FILE, STEPS_FILE];

/// Which weights of a run to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WeightsChoice {
    /// What the run ended with: the last epoch's, or the best epoch's when
    /// it restored them.
    Last,
    /// The best epoch's (runs trained with --save-best).
    Best,
}

/// Where a run writes; defaults are resolved by the run folder.
#[derive(Debug, Clone, Default)]
pub struct RunOutputs {
    /// Run folder; default `runs/<start time>`.
    pub run_dir: Option<PathBuf>,
    /// History CSV; default `<run folder>/history.csv`.
    pub history: Option<PathBuf>,
    /// An earlier run's folder to go on training into.
    pub resume: Option<PathBuf>,
    /// `--no-tensorboard`: no event files in `logs/`.
    pub no_tensorboard: bool,
}

impl WeightsChoice {
    /// The weights' file name, in the run folder (a link) and in a
    /// checkpoint alike.
    fn file_name(self) -> &'static str {
        match self {
            WeightsChoice::Last => WEIGHTS_FILE,
            WeightsChoice::Best => BEST_WEIGHTS_FILE,
        }
    }
}

/// A run folder: a new run's (claimed and locked), a resumed one's (locked)
/// or a finished one's to read.
#[derive(Debug)]
pub struct RunDir {
    dir: PathBuf,
    /// `--history` outside the folder, if given.
    history_file: Option<PathBuf>,
    checkpoints: Checkpoints,
    _lock: Option<FileLock>,
}

/// The files that describe a new run, written when its folder is claimed.
pub struct RunFiles<'a, Config: serde::Serialize> {
    /// What becomes `config.json`.
    pub config: &'a Config,
    pub vocab: &'a Vocabulary,
    /// A user's texts' class names; `None` for IMDB.
    pub labels: Option<&'a [String]>,
}

impl RunDir {
    /// Claims the folder of a new run (`runs/<start time>` unless given)
    /// and writes `files` into it. Refused, with nothing written: a folder
    /// that holds a run or something else, one in use, a history file that
    /// already exists or that would land in a run folder. An output that
    /// cannot be written is found now, before any training, and what the
    /// claim made is removed again.
    pub fn create(
        outputs: &RunOutputs,
        keep_best: bool,
        files: &RunFiles<impl serde::Serialize>,
    ) -> Result<RunDir> {
        let history_file = outputs.history.clone();
        if let Some(path) = &history_file {
            if path.exists() || path.is_symlink() {
                bail!(
                    "--history {} already exists; choose another file or remove it",
                    path.display()
                );
            }
        }
        let claim = match &outputs.run_dir {
            Some(dir) => claim_given(dir)?,
            None => claim_default()?,
        };
        let folder = RunDir {
            checkpoints: Checkpoints::new(&claim.dir),
            dir: claim.dir.clone(),
            history_file,
            _lock: Some(claim.lock),
        };
        let prepared = check_history_outside(folder.history_file.as_deref(), &folder.dir)
            .and_then(|()| folder.write_files(files))
            .and_then(|()| folder.prepare_outputs(keep_best));
        if let Err(err) = prepared {
            claim.undo.run(&folder.dir);
            return Err(err);
        }
        Ok(folder)
    }

    /// Claims an earlier run's folder to go on training into it: locks it,
    /// checks its current checkpoint and removes what a killed process left
    /// half-written.
    pub fn resume(dir: &Path, history_file: Option<PathBuf>, keep_best: bool) -> Result<RunDir> {
        RunDir::open_to_resume(dir)?;
        let lock = FileLock::try_acquire(&dir.join(LOCK_FILE))?.with_context(|| {
            format!(
                "--resume {}: another run is using this folder",
                dir.display()
            )
        })?;
        let folder = RunDir {
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
        if let Some(path) = &folder.history_file {
            check_history_outside(Some(path), dir)?;
        }
        if !dir.join(MARKER_FILE).exists() {
            // A run from before markers, now known to be one.
            mark(dir)?;
        }
        folder.remove_stale()?;
        folder.checkpoints.repair_latest()?;
        folder.link_outputs(keep_best)?;
        Ok(folder)
    }

    /// An earlier run's folder to go on training, refused if it holds no
    /// run or one that never finished an epoch (whose `config.json` may
    /// not even be whole).
    pub fn open_to_resume(dir: &Path) -> Result<RunDir> {
        let folder = RunDir::open(dir);
        let marked = dir.join(MARKER_FILE).exists();
        // Only whether there is one: training checks it when it loads it.
        let started = folder.checkpoints.exist()?;
        if marked && !started && !folder.is_from_before_checkpoints() {
            bail!(
                "--resume {0}: the run has not finished an epoch yet, so there is nothing to \
                 resume; start it again with --run-dir {0} (what the folder holds is replaced)",
                dir.display()
            );
        }
        RunDir::open_run(dir)
            .with_context(|| format!("--resume {}: nothing to resume", dir.display()))
    }

    /// An earlier run's folder, refused if it holds no run.
    pub fn open_run(dir: &Path) -> Result<RunDir> {
        if !dir.join(CONFIG_FILE).exists() {
            bail!("{}: no run there (no {CONFIG_FILE})", dir.display());
        }
        Ok(RunDir::open(dir))
    }

    /// A finished or stopped run's folder, to read all of it at once: held
    /// (shared with other readers) against a training that would start
    /// meanwhile, and refused while one trains into it. A run from before
    /// locks has no lock file, and none is made.
    pub fn open_idle(dir: &Path) -> Result<RunDir> {
        let mut folder = RunDir::open_run(dir)?;
        let lock_file = dir.join(LOCK_FILE);
        if lock_file.exists() {
            let lock = FileLock::try_acquire_shared(&lock_file)?.with_context(|| {
                format!(
                    "{} is being trained (another process holds {}); wait until it ends",
                    dir.display(),
                    lock_file.display()
                )
            })?;
            folder._lock = Some(lock);
        }
        Ok(folder)
    }

    /// A run's folder, to read from (no lock: readers do not write).
    pub fn open(dir: &Path) -> RunDir {
        RunDir {
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

    pub fn weights_path(&self, which: WeightsChoice) -> PathBuf {
        self.dir.join(which.file_name())
    }

    /// `config.json`, `vocab.txt` and `labels.json`, in that order; a kill
    /// between them leaves a run with no checkpoint, which nothing trusts
    /// and the same `--run-dir` claims again.
    fn write_files(&self, files: &RunFiles<impl serde::Serialize>) -> Result<()> {
        write_json(
            &self.dir.join(CONFIG_FILE),
            files.config,
            JsonLayout::Pretty,
        )?;
        files.vocab.save(&self.dir.join(VOCAB_FILE))?;
        match files.labels {
            Some(names) => save_class_names(&self.dir.join(LABELS_FILE), names),
            None => Ok(()),
        }
    }

    /// The links to the latest checkpoint's files, and a first `--history`
    /// (header only) to find out now whether it can be written.
    fn prepare_outputs(&self, keep_best: bool) -> Result<()> {
        if let Some(path) = &self.history_file {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                disk::create_dir_all(parent).with_context(|| {
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
            disk::symlink(&target, &link)
                .with_context(|| format!("cannot create the link {}", link.display()))?;
        }
        Ok(())
    }

    /// The exact temporary names of a killed writer of the run's files
    /// (beside `--history` too: we hold the lock, no one else writes them)
    /// and of checkpoints. A checkpoint older than the newest (a kill
    /// before its removal) stays until the next one is published: the
    /// newest is only checked when training loads it.
    fn remove_stale(&self) -> Result<()> {
        remove_temporaries(&self.dir, &WRITTEN_FILES)?;
        if let Some(history) = &self.history_file {
            let (Some(parent), Some(name)) = (history.parent(), history.file_name()) else {
                bail!("--history {} is not a file path", history.display());
            };
            let name = name.to_string_lossy();
            remove_temporaries(parent, &[name.as_ref()])?;
        }
        for dir in event_files::own_log_dirs(&self.dir) {
            remove_temporaries(&dir, &[event_files::TEMP_STEM])?;
        }
        self.checkpoints.remove_temporaries()
    }

    pub fn load_vocabulary(&self) -> Result<Vocabulary> {
        Vocabulary::load(&self.dir.join(VOCAB_FILE))
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

    /// What the weights depend on outside their checkpoint, as they are
    /// now: the run's files and `data_sha256`.
    pub fn inputs(&self, data_sha256: &str) -> Result<RunInputs> {
        let mut names = vec![CONFIG_FILE, VOCAB_FILE];
        if self.dir.join(LABELS_FILE).exists() {
            names.push(LABELS_FILE);
        }
        RunInputs::of(&self.dir, &names, data_sha256)
    }

    /// The current checkpoint, checked against its manifest, with the run's
    /// files checked against what it was saved with.
    pub fn current_checkpoint(&self) -> Result<Option<Current>> {
        let Some(current) = self.checkpoints.current()? else {
            return Ok(None);
        };
        match &current.inputs {
            Some(inputs) => inputs.check_run_files(&self.dir)?,
            None => self.check_inputs_before_manifests(&current.info)?,
        }
        Ok(Some(current))
    }

    /// A checkpoint from before manifests recorded only the sha256 of
    /// `config.json` and `vocab.txt`.
    fn check_inputs_before_manifests(&self, info: &CheckpointInfo) -> Result<()> {
        for (name, then) in [
            (CONFIG_FILE, &info.config_sha256),
            (VOCAB_FILE, &info.vocab_sha256),
        ] {
            let now = sha256_file(&self.dir.join(name))?;
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

    /// Fills `vs` with the run's weights, after checking their checkpoint
    /// and that the folder's config, vocabulary and labels are the ones
    /// they were trained with; returns which weights they are, in words.
    pub fn load_weights(&self, vs: &mut nn::VarStore, which: WeightsChoice) -> Result<String> {
        let Some(current) = self.current_checkpoint()? else {
            return self.load_weights_without_checkpoints(vs, which);
        };
        let path = current.dir.join(which.file_name());
        if which == WeightsChoice::Best && !path.exists() {
            bail!(
                "{} has no best weights: train with --save-best to keep them",
                self.dir.display()
            );
        }
        load_weights(vs, &path)?;
        Ok(describe_weights(&current.info, which))
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

    /// Writes the TensorBoard event files that the checkpoint's `history`
    /// and `steps` have and `logs/` lacks, with `hparams` (the settings by
    /// dotted name) as the run's session; call it only once a checkpoint
    /// holding them is published.
    pub fn write_event_files(
        &self,
        hparams: &BTreeMap<String, serde_json::Value>,
        history: &[EpochRecord],
        steps: &[StepRecord],
    ) -> Result<()> {
        event_files::write_missing(&self.dir, hparams, history, steps)
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

/// A claimed folder: locked, marked, and how to give it back.
struct Claim {
    dir: PathBuf,
    lock: FileLock,
    undo: Undo,
}

/// What giving a claimed folder back removes.
enum Undo {
    /// The folder (from this topmost one down) was made by the claim.
    Made(PathBuf),
    /// The folder was empty: the claim added the marker and the lock.
    Marked,
    /// The folder was a run that never finished an epoch: it stays one.
    Keep,
}

impl Undo {
    /// Best effort: the error that made us give the folder back matters
    /// more than one more here.
    fn run(&self, dir: &Path) {
        match self {
            Undo::Made(top) => {
                let _ = disk::remove_dir_all(top);
            }
            Undo::Marked => {
                let _ = remove_own_files(dir);
                for name in [MARKER_FILE, LOCK_FILE] {
                    let _ = disk::remove_file(&dir.join(name));
                }
            }
            Undo::Keep => {}
        }
    }
}

/// Claims a folder the user named: a new one, an empty one, or a run of
/// ours that never finished an epoch. Anything else is refused before a
/// byte is written.
fn claim_given(dir: &Path) -> Result<Claim> {
    if !dir.exists() {
        if dir.is_symlink() {
            bail!("--run-dir {} is a broken link", dir.display());
        }
        let made = disk::create_dir_all(dir)
            .with_context(|| format!("cannot create the run folder --run-dir {}", dir.display()))?;
        let undo = made.map_or(Undo::Marked, Undo::Made);
        return mark_and_lock(dir, undo);
    }
    if !dir.is_dir() {
        bail!("--run-dir {} is not a folder", dir.display());
    }
    if dir.join(MARKER_FILE).exists() {
        return reclaim(dir);
    }
    if dir.join(CONFIG_FILE).exists() {
        bail!(
            "--run-dir {} already holds a run ({CONFIG_FILE}); choose another folder, \
             remove it, or continue it with --resume {0}",
            dir.display()
        );
    }
    let mut entries =
        fs::read_dir(dir).with_context(|| format!("cannot list --run-dir {}", dir.display()))?;
    if let Some(entry) = entries.next() {
        bail!(
            "--run-dir {} is not empty (it holds {}) and is not a gru-imdb run folder; \
             choose a new or empty folder",
            dir.display(),
            entry?.file_name().to_string_lossy()
        );
    }
    mark_and_lock(dir, Undo::Marked)
}

/// Marks a new or empty folder as a run (the marker made with `O_EXCL`, so
/// two runs never both take it) and locks it.
fn mark_and_lock(dir: &Path, undo: Undo) -> Result<Claim> {
    match disk::create_new_file(&dir.join(MARKER_FILE)) {
        Ok(_) => {}
        // Another run made the marker first: the folder is its, untouched.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            bail!("{}: another run is using this folder", dir.display())
        }
        Err(e) => {
            undo.run(dir);
            return Err(e).with_context(|| format!("cannot claim {}", dir.display()));
        }
    }
    if let Err(err) = sync_parent(&dir.join(MARKER_FILE)) {
        undo.run(dir);
        return Err(err);
    }
    let lock = match FileLock::try_acquire(&dir.join(LOCK_FILE)) {
        Ok(Some(lock)) => lock,
        Ok(None) => bail!("{}: another run is using this folder", dir.display()),
        Err(err) => {
            undo.run(dir);
            return Err(err);
        }
    };
    Ok(Claim {
        dir: dir.to_path_buf(),
        lock,
        undo,
    })
}

/// Marks a run from before markers, found by its `config.json`.
fn mark(dir: &Path) -> Result<()> {
    let marker = dir.join(MARKER_FILE);
    disk::create_new_file(&marker)
        .with_context(|| format!("cannot create {}", marker.display()))?;
    sync_parent(&marker)
}

/// Takes back a run folder that never finished an epoch: its own files
/// are removed, so that nothing of the first try mixes with the second.
fn reclaim(dir: &Path) -> Result<Claim> {
    let lock = FileLock::try_acquire(&dir.join(LOCK_FILE))?.with_context(|| {
        format!(
            "--run-dir {}: another run is using this folder",
            dir.display()
        )
    })?;
    let checkpoints = Checkpoints::new(dir);
    if checkpoints.exist()? {
        bail!(
            "--run-dir {} already holds a run; choose another folder, remove it, or continue \
             it with --resume {0}",
            dir.display()
        );
    }
    checkpoints.remove_temporaries()?;
    remove_own_files(dir)?;
    Ok(Claim {
        dir: dir.to_path_buf(),
        lock,
        undo: Undo::Keep,
    })
}

/// Removes the files a run writes into its folder, and their temporary
/// names: files and links only, never a folder but the event files' own
/// when they are left empty.
fn remove_own_files(dir: &Path) -> Result<()> {
    remove_temporaries(dir, &WRITTEN_FILES)?;
    remove_event_files(dir)?;
    for name in WRITTEN_FILES.iter().chain(&LINKS) {
        let path = dir.join(name);
        if fs::symlink_metadata(&path).is_ok_and(|m| !m.is_dir()) {
            disk::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    Ok(())
}

/// Removes the event files of `logs/` and their temporary names, then the
/// folders of `logs/` that this leaves empty (a user's file keeps its
/// folder).
fn remove_event_files(dir: &Path) -> Result<()> {
    for logs in event_files::own_log_dirs(dir) {
        remove_temporaries(&logs, &[event_files::TEMP_STEM])?;
        for path in event_files::own_files(&logs) {
            disk::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
        let empty = fs::read_dir(&logs).is_ok_and(|mut entries| entries.next().is_none());
        if empty {
            disk::remove_dir(&logs).with_context(|| format!("cannot remove {}", logs.display()))?;
        }
    }
    Ok(())
}

/// Removes, in `dir`, the exact temporary names that writing each of
/// `names` atomically uses (only files: never a folder, never through a
/// link).
fn remove_temporaries(dir: &Path, names: &[&str]) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if entry.file_type()?.is_dir() || !names.iter().any(|own| is_temp_name_of(name, own)) {
            continue;
        }
        disk::remove_file(&entry.path())
            .with_context(|| format!("cannot remove the stale {}", entry.path().display()))?;
    }
    Ok(())
}

/// `--history` may not be one of a run folder's files: the history would
/// overwrite them (its vocabulary, say) or be overwritten by them.
fn check_history_outside(history: Option<&Path>, run_dir: &Path) -> Result<()> {
    let Some(history) = history else {
        return Ok(());
    };
    let folder = match history.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => parent.to_path_buf(),
        None => PathBuf::from("."),
    };
    let run = fs::canonicalize(run_dir)
        .with_context(|| format!("cannot resolve {}", run_dir.display()))?;
    // The nearest folder that exists: the rest would be made inside it.
    let existing = folder.ancestors().find(|a| a.exists()).unwrap_or(&folder);
    let folder = fs::canonicalize(existing).unwrap_or_else(|_| existing.to_path_buf());
    let before_markers =
        |a: &Path| a.join(CONFIG_FILE).exists() && a.join(checkpoint::CHECKPOINTS_DIR).exists();
    let in_a_run = before_markers(&folder)
        || folder
            .ancestors()
            .any(|a| a == run || a.join(MARKER_FILE).exists());
    if in_a_run {
        bail!(
            "--history {} is inside a run folder, whose files the run writes itself; \
             choose a file outside it (or leave --history out: the run keeps history.csv)",
            history.display()
        );
    }
    Ok(())
}

/// Refuses an output path (`--output`, `--json`, `--export`) that is one
/// of a run folder's own files: writing it would change what the run's
/// checkpoints were saved with, or be overwritten by the run.
pub fn refuse_run_file(path: &Path, flag: &str) -> Result<()> {
    let folder = match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => parent,
        None => Path::new("."),
    };
    let is_run = folder.join(MARKER_FILE).exists() || folder.join(CONFIG_FILE).exists();
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    // `history.svg` is only drawn from the history: a plot may redraw it.
    let own = [
        MARKER_FILE,
        LOCK_FILE,
        checkpoint::CHECKPOINTS_DIR,
        event_files::LOGS_DIR,
    ]
    .iter()
    .chain(&WRITTEN_FILES)
    .chain(&LINKS)
    .any(|own| *own == name && *own != HISTORY_PLOT_FILE);
    if is_run && own {
        bail!(
            "{flag} {} is one of the run folder's own files; choose another name",
            path.display()
        );
    }
    Ok(())
}

/// Makes a new folder `runs/<start time>`, or `runs/<start time>-N` when
/// another run started in the same second: creating a folder is atomic, so
/// two runs never get the same one.
fn claim_default() -> Result<Claim> {
    let runs = Path::new("runs");
    disk::create_dir_all(runs).context("cannot create the folder runs")?;
    let name = timestamp_name(SystemTime::now());
    for n in 1.. {
        let dir = match n {
            1 => runs.join(&name),
            _ => runs.join(format!("{name}-{n}")),
        };
        match disk::create_dir(&dir) {
            Ok(()) => return mark_and_lock(&dir, Undo::Made(dir.clone())),
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
    let t = UtcTime::of(now);
    format!(
        "{:04}-{:02}-{:02}T{:02}-{:02}-{:02}",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn run_folder_names_are_utc_timestamps() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_795_711_895);
        assert_eq!(timestamp_name(t), "2026-11-26T16-51-35");
        assert_eq!(timestamp_name(UNIX_EPOCH), "1970-01-01T00-00-00");
    }
}
