//! `steps.csv`: the step-level history ([`StepRecord`]), one row per
//! recorded step, written inside each checkpoint beside `history.csv`.
use std::path::Path;

use anyhow::Result;

use super::csv_table::write_table_file;
use super::records::StepRecord;

pub const HEADER: [&str; 5] = ["epoch", "step", "steps_per_epoch", "accuracy", "loss"];

/// A row's cells.
fn fields(r: &StepRecord) -> Vec<String> {
    vec![
        r.epoch.to_string(),
        r.step.to_string(),
        r.steps_per_epoch.to_string(),
        r.accuracy.to_string(),
        r.loss.to_string(),
    ]
}

/// Writes the step history to `path` (inside a checkpoint, which is
/// published as a whole).
pub fn write_steps(path: &Path, rows: &[StepRecord]) -> Result<()> {
    write_table_file(path, &HEADER, rows, fields)
}
