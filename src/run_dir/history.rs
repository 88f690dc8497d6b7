//! `history.csv`: one row per finished epoch, Keras CSVLogger's columns
//! first (`epoch` from 0, then the metrics sorted by name), then our
//! timings; every line ends with a newline. pandas reads it as is.
use std::path::Path;

use anyhow::Result;

use super::csv_table::{write_table, write_table_file};
use super::records::EpochRecord;
use crate::atomic::write_atomically;

pub const HEADER: [&str; 7] = [
    "epoch",
    "accuracy",
    "loss",
    "val_accuracy",
    "val_loss",
    "seconds",
    "samples_per_second",
];

/// A row's cells.
fn fields(r: &EpochRecord) -> Vec<String> {
    vec![
        r.epoch.to_string(),
        r.accuracy.to_string(),
        r.loss.to_string(),
        r.val_accuracy.to_string(),
        r.val_loss.to_string(),
        format!("{:.3}", r.seconds),
        format!("{:.1}", r.samples_per_second),
    ]
}

/// Writes the history to `path` (inside a checkpoint, which is published
/// as a whole).
pub fn write_history(path: &Path, rows: &[EpochRecord]) -> Result<()> {
    write_table_file(path, &HEADER, rows, fields)
}

/// Writes the history to a file of its own (`--history`), atomically.
pub fn write_history_file(path: &Path, rows: &[EpochRecord]) -> Result<()> {
    write_atomically(path, |out| {
        write_table(out, &HEADER, rows, fields).map_err(std::io::Error::other)
    })
}
