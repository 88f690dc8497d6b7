//! Reading a run's history files back: `history.csv` (one row per epoch)
//! and `steps.csv` (the running metrics every few steps). Every error names
//! the file and the line.
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};

use crate::run_dir::{EpochRecord, StepRecord};
use crate::run_dir::{HISTORY_HEADER, STEPS_HEADER};

/// The numeric rows of a CSV file whose header must be `columns`.
fn numeric_rows(path: &Path, columns: &[&str]) -> Result<Vec<Vec<f64>>> {
    let header = columns.join(",");
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines = text.lines();
    let found = lines.next().unwrap_or_default();
    ensure!(
        found == header,
        "{}: line 1: expected the header {header:?}, found {found:?}",
        path.display()
    );
    let columns = columns.len();
    lines
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            let fields: Vec<&str> = line.split(',').collect();
            ensure!(
                fields.len() == columns,
                "{}: line {}: expected {columns} fields, found {}",
                path.display(),
                i + 2,
                fields.len()
            );
            fields
                .iter()
                .map(|f| {
                    f.trim().parse::<f64>().with_context(|| {
                        format!("{}: line {}: {f:?} is not a number", path.display(), i + 2)
                    })
                })
                .collect()
        })
        .collect()
}

/// A whole non-negative number from a CSV field, or an error naming it.
fn count(value: f64, path: &Path, column: &str) -> Result<usize> {
    if value >= 0.0 && value.fract() == 0.0 && value < usize::MAX as f64 {
        Ok(value as usize)
    } else {
        bail!(
            "{}: {column} must be a whole number, found {value}",
            path.display()
        )
    }
}

/// `history.csv` as written by training; refuses a file with no finished
/// epoch, since there is nothing to show for it.
pub fn read_epoch_history(path: &Path) -> Result<Vec<EpochRecord>> {
    let records = numeric_rows(path, &HISTORY_HEADER)?
        .into_iter()
        .map(|row| {
            Ok(EpochRecord {
                epoch: count(row[0], path, "epoch")?,
                accuracy: row[1],
                loss: row[2],
                val_accuracy: row[3],
                val_loss: row[4],
                seconds: row[5],
                samples_per_second: row[6],
                learning_rate: None,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    ensure!(
        !records.is_empty(),
        "{} has no finished epoch yet",
        path.display()
    );
    Ok(records)
}

/// `steps.csv`; a run from before step histories has none, which is an
/// empty history rather than an error.
pub fn read_step_history(path: &Path) -> Result<Vec<StepRecord>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    numeric_rows(path, &STEPS_HEADER)?
        .into_iter()
        .map(|row| {
            Ok(StepRecord {
                epoch: count(row[0], path, "epoch")?,
                step: count(row[1], path, "step")?,
                steps_per_epoch: count(row[2], path, "steps_per_epoch")?,
                accuracy: row[3],
                loss: row[4],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_dir::{write_history_file, write_steps};

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_history_written_by_training_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.csv");
        let record = EpochRecord {
            epoch: 0,
            accuracy: 0.75,
            loss: 0.5,
            val_accuracy: 0.8,
            val_loss: 0.45,
            seconds: 12.5,
            samples_per_second: 2000.0,
            learning_rate: None,
        };
        write_history_file(&path, &[record]).unwrap();
        assert_eq!(read_epoch_history(&path).unwrap(), vec![record]);
    }

    #[test]
    fn a_step_history_written_by_training_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("steps.csv");
        let rows = [StepRecord {
            epoch: 1,
            step: 5,
            steps_per_epoch: 10,
            accuracy: 0.625,
            loss: 0.5,
        }];
        write_steps(&path, &rows).unwrap();
        assert_eq!(read_step_history(&path).unwrap(), rows);
    }

    #[test]
    fn a_malformed_row_is_named_by_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "{}\n0,0.5,0.6,0.5,0.6,1.0,100.0\n1,0.7,oops,0.6,0.5,1.0,100.0\n",
            HISTORY_HEADER.join(",")
        );
        let path = write(dir.path(), "history.csv", &text);
        let err = format!("{:#}", read_epoch_history(&path).unwrap_err());
        assert!(
            err.contains("history.csv: line 3") && err.contains("oops"),
            "{err}"
        );
    }

    #[test]
    fn a_history_with_no_finished_epoch_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "history.csv",
            &format!("{}\n", HISTORY_HEADER.join(",")),
        );
        let err = format!("{:#}", read_epoch_history(&path).unwrap_err());
        assert!(err.contains("no finished epoch"), "{err}");
    }

    #[test]
    fn a_wrong_header_or_short_row_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "a.csv", "epoch,loss\n0,1\n");
        assert!(format!("{:#}", read_epoch_history(&path).unwrap_err()).contains("line 1"));
        let text = format!("{}\n0,0.5\n", HISTORY_HEADER.join(","));
        let path = write(dir.path(), "b.csv", &text);
        assert!(format!("{:#}", read_epoch_history(&path).unwrap_err()).contains("line 2"));
    }

    #[test]
    fn a_missing_step_history_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_step_history(&dir.path().join("steps.csv"))
            .unwrap()
            .is_empty());
    }
}
