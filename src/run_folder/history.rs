//! `history.csv`: one row per finished epoch.
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::atomic::write_atomically;
use crate::train::EpochRecord;

/// The history as a CSV file, rewritten atomically after every epoch: Keras
/// CSVLogger's columns first (`epoch` from 0, then the metrics sorted by
/// name), then our timings. pandas reads it as is.
pub struct HistoryCsv {
    path: PathBuf,
    rows: Vec<EpochRecord>,
}

impl HistoryCsv {
    pub const HEADER: &'static str =
        "epoch,accuracy,loss,val_accuracy,val_loss,seconds,samples_per_second";

    pub fn new(path: &Path) -> HistoryCsv {
        HistoryCsv {
            path: path.to_path_buf(),
            rows: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn append(&mut self, record: &EpochRecord) -> Result<()> {
        self.rows.push(*record);
        let rows = &self.rows;
        write_atomically(&self.path, |out| {
            writeln!(out, "{}", Self::HEADER)?;
            for r in rows {
                writeln!(
                    out,
                    "{},{},{},{},{},{:.3},{:.1}",
                    r.epoch,
                    r.accuracy,
                    r.loss,
                    r.val_accuracy,
                    r.val_loss,
                    r.seconds,
                    r.samples_per_second
                )?;
            }
            Ok(())
        })
    }
}
