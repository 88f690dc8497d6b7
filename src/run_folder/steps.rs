//! `steps.csv`: the step-level history ([`StepRecord`]), one row per
//! recorded step, written inside each checkpoint beside `history.csv`.
use std::fs::File;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

use crate::train::StepRecord;

pub const HEADER: [&str; 5] = ["epoch", "step", "steps_per_epoch", "accuracy", "loss"];

fn write_rows(out: impl Write, rows: &[StepRecord]) -> csv::Result<()> {
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record(HEADER)?;
    for r in rows {
        csv.write_record([
            r.epoch.to_string(),
            r.step.to_string(),
            r.steps_per_epoch.to_string(),
            r.accuracy.to_string(),
            r.loss.to_string(),
        ])?;
    }
    csv.flush()?;
    Ok(())
}

/// Writes the step history to `path` (inside a checkpoint, which is
/// published as a whole).
pub fn write_steps(path: &Path, rows: &[StepRecord]) -> Result<()> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    write_rows(file, rows).with_context(|| format!("cannot write {}", path.display()))
}
