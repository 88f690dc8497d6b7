//! `history.csv`: one row per finished epoch, Keras CSVLogger's columns
//! first (`epoch` from 0, then the metrics sorted by name), then our
//! timings; every line ends with a newline. pandas reads it as is.
use std::fs::File;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

use crate::atomic::write_atomically;
use crate::train::EpochRecord;

pub const HEADER: [&str; 7] = [
    "epoch",
    "accuracy",
    "loss",
    "val_accuracy",
    "val_loss",
    "seconds",
    "samples_per_second",
];

fn write_rows(out: impl Write, rows: &[EpochRecord]) -> csv::Result<()> {
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record(HEADER)?;
    for r in rows {
        csv.write_record([
            r.epoch.to_string(),
            r.accuracy.to_string(),
            r.loss.to_string(),
            r.val_accuracy.to_string(),
            r.val_loss.to_string(),
            format!("{:.3}", r.seconds),
            format!("{:.1}", r.samples_per_second),
        ])?;
    }
    csv.flush()?;
    Ok(())
}

/// Writes the history to `path` (inside a checkpoint, which is published
/// as a whole).
pub fn write_history(path: &Path, rows: &[EpochRecord]) -> Result<()> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    write_rows(file, rows).with_context(|| format!("cannot write {}", path.display()))
}

/// Writes the history to a file of its own (`--history`), atomically.
pub fn write_history_file(path: &Path, rows: &[EpochRecord]) -> Result<()> {
    write_atomically(path, |out| {
        write_rows(out, rows).map_err(std::io::Error::other)
    })
}
