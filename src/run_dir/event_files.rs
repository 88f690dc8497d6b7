//! `logs/`: the run's TensorBoard event files, laid out as Keras's
//! `TensorBoard` callback lays them out (`logs/train`, `logs/validation`),
//! with the settings as the hparams plugin's session in `logs/` itself.
//!
//! They are derived from the checkpoint, like `history.svg`, and written
//! only after one is published: one file per finished epoch in each of
//! `train/` and `validation/`, named so that TensorBoard (which reads the
//! names holding `tfevents` in sorted order) reads them in epoch order,
//! each written whole under a temporary name without `tfevents` and
//! renamed. A file that exists is never written again, and every file the
//! history has and the folder lacks is written at each publication and on
//! resume: a kill anywhere leaves each epoch's points once, whole.
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde_json::Value;

use super::records::{EpochRecord, StepRecord};
use crate::atomic::{sync_parent, write_atomically_as};
use crate::disk;
use crate::tensorboard::EventFile;

pub const LOGS_DIR: &str = "logs";
pub const TRAIN_LOGS: &str = "train";
pub const VALIDATION_LOGS: &str = "validation";
const PREFIX: &str = "events.out.tfevents.";
const WRITER: &str = "gru-imdb";
const HPARAMS_SLOT: &str = "hparams";
/// Whose temporary name (`events-being-written.tmp<pid>`) the files are
/// written under: no `tfevents` in it, so TensorBoard never reads one
/// half-written.
pub const TEMP_STEM: &str = "events-being-written";

/// `events.out.tfevents.<run start, 10 digits>.gru-imdb.<slot>`; the slot
/// is the epoch (from 0, as in `history.csv`, 5 digits) or `hparams`.
fn file_name(start_secs: u64, slot: &str) -> String {
    format!("{PREFIX}{start_secs:010}.{WRITER}.{slot}")
}

/// The run start in `name` if it is one of our event files' names.
fn start_of(name: &str) -> Option<u64> {
    let rest = name.strip_prefix(PREFIX)?;
    let (secs, rest) = rest.split_at_checked(10)?;
    let slot = rest
        .strip_prefix('.')?
        .strip_prefix(WRITER)?
        .strip_prefix('.')?;
    let epoch = slot.len() == 5 && slot.bytes().all(|b| b.is_ascii_digit());
    let digits = secs.bytes().all(|b| b.is_ascii_digit());
    (digits && (epoch || slot == HPARAMS_SLOT)).then(|| secs.parse().ok())?
}

/// `logs/`, `logs/train` and `logs/validation` of the run in `run_dir`.
pub fn log_dirs(run_dir: &Path) -> [PathBuf; 3] {
    let logs = run_dir.join(LOGS_DIR);
    [logs.join(TRAIN_LOGS), logs.join(VALIDATION_LOGS), logs]
}

/// The folders of [`log_dirs`] that are folders of the run's own, not
/// links (none when `logs` is one): those cleaning up may look into.
pub fn own_log_dirs(run_dir: &Path) -> Vec<PathBuf> {
    if run_dir.join(LOGS_DIR).is_symlink() {
        return Vec::new();
    }
    let real = |dir: &PathBuf| dir.is_dir() && !dir.is_symlink();
    log_dirs(run_dir).into_iter().filter(real).collect()
}

/// Our event files' names in `dir` (none if it does not exist).
pub fn own_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| e.file_name().to_str().and_then(start_of).is_some())
        .map(|e| e.path())
        .collect()
}

/// The run's start as its event files know it: the one in their names, or
/// for the first of them now less the seconds of the epochs done.
fn run_start(run_dir: &Path, history: &[EpochRecord]) -> u64 {
    let named = log_dirs(run_dir)
        .iter()
        .flat_map(|dir| own_files(dir))
        .filter_map(|path| start_of(&path.file_name()?.to_string_lossy()))
        .min();
    named.unwrap_or_else(|| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let trained: f64 = history.iter().map(|r| r.seconds).sum();
        now.as_secs().saturating_sub(trained as u64)
    })
}

/// Writes every event file that `history` and `steps` (a checkpoint's)
/// have and the folder lacks, and the settings' file if it is missing.
pub fn write_missing(
    run_dir: &Path,
    hparams: &BTreeMap<String, Value>,
    history: &[EpochRecord],
    steps: &[StepRecord],
) -> Result<()> {
    let start = run_start(run_dir, history);
    let [train, validation, logs] = log_dirs(run_dir);
    make_dir(&logs)?;
    let settings = logs.join(file_name(start, HPARAMS_SLOT));
    if !exists(&settings) {
        let mut file = EventFile::new(start as f64);
        file.hparams(start as f64, start as f64, hparams);
        write_file(&settings, &file)?;
    }
    let mut ended = start as f64;
    for record in history {
        let began = ended;
        ended += record.seconds;
        let name = file_name(start, &format!("{:05}", record.epoch));
        let (train_file, validation_file) = (train.join(&name), validation.join(&name));
        if !exists(&train_file) {
            make_dir(&train)?;
            let epoch_steps = steps.iter().filter(|s| s.epoch == record.epoch);
            let file = train_events(record, epoch_steps, began, ended);
            write_file(&train_file, &file)?;
        }
        if !exists(&validation_file) {
            make_dir(&validation)?;
            write_file(&validation_file, &validation_events(record, ended))?;
        }
    }
    Ok(())
}

/// An epoch's training points: the running loss and accuracy at the steps
/// of `steps.csv` (at a global step, so that the curve goes on across
/// epochs), then the epoch's loss, accuracy and learning rate at the
/// epoch's index. Times are spread over the epoch's recorded seconds.
fn train_events<'a>(
    record: &EpochRecord,
    steps: impl Iterator<Item = &'a StepRecord>,
    began: f64,
    ended: f64,
) -> EventFile {
    let mut file = EventFile::new(began);
    for point in steps {
        let per_epoch = point.steps_per_epoch.max(1);
        let step = (point.epoch * per_epoch + point.step) as i64;
        let at = began + (ended - began) * point.step as f64 / per_epoch as f64;
        file.scalar("batch_loss", step, at, point.loss as f32);
        file.scalar("batch_accuracy", step, at, point.accuracy as f32);
    }
    let epoch = record.epoch as i64;
    file.scalar("epoch_loss", epoch, ended, record.loss as f32);
    file.scalar("epoch_accuracy", epoch, ended, record.accuracy as f32);
    if let Some(rate) = record.learning_rate {
        file.scalar("epoch_learning_rate", epoch, ended, rate as f32);
    }
    file
}

fn validation_events(record: &EpochRecord, ended: f64) -> EventFile {
    let mut file = EventFile::new(ended);
    let epoch = record.epoch as i64;
    file.scalar("epoch_loss", epoch, ended, record.val_loss as f32);
    file.scalar("epoch_accuracy", epoch, ended, record.val_accuracy as f32);
    file
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Makes `dir` if it is missing, durably.
fn make_dir(dir: &Path) -> Result<()> {
    let made = disk::create_dir_all(dir)
        .with_context(|| format!("cannot create the folder {}", dir.display()))?;
    match made {
        Some(top) => sync_parent(&top),
        None => Ok(()),
    }
}

fn write_file(path: &Path, file: &EventFile) -> Result<()> {
    write_atomically_as(path, TEMP_STEM, |out| out.write_all(file.bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_event_file_names_are_taken_for_ours_and_they_sort_by_epoch() {
        let names = [
            file_name(1_733_000_000, "00009"),
            file_name(1_733_000_000, "00010"),
        ];
        assert!(names[0] < names[1]);
        assert_eq!(start_of(&names[0]), Some(1_733_000_000));
        assert_eq!(start_of(&file_name(7, HPARAMS_SLOT)), Some(7));
        for other in [
            "events.out.tfevents.1733000000.host.12345.0",
            "events.out.tfevents.1733000000.gru-imdb.0001",
            "events.out.tfevents.173300000x.gru-imdb.00001",
            "events.out.tfevents.1733000000.gru-imdb.00001.v2",
            "events-being-written.tmp12",
        ] {
            assert_eq!(start_of(other), None, "{other}");
        }
    }
}
