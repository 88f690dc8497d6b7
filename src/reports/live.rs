//! The picture a run folder keeps current while training goes on:
//! `history.svg`, redrawn (atomically) after every checkpoint from the
//! histories the checkpoint holds. It is derived from them, so it is not
//! part of the checkpoint.
use std::path::Path;

use anyhow::Result;

use crate::run_dir::HISTORY_PLOT_FILE;
use crate::run_dir::{EpochRecord, StepRecord};

use super::curves::{write_history_plot, PlotRun};

/// Redraws `run_dir/history.svg`; before the first finished epoch there is
/// nothing to draw, and nothing is written.
pub fn write_run_plot(run_dir: &Path, epochs: &[EpochRecord], steps: &[StepRecord]) -> Result<()> {
    if epochs.is_empty() {
        return Ok(());
    }
    let run = PlotRun {
        label: "",
        epochs,
        steps,
    };
    write_history_plot(&run_dir.join(HISTORY_PLOT_FILE), &[run])
}
