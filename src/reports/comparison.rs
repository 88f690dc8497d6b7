//! Runs side by side: the settings that differ between their configs, and
//! what each run reached (final and best validation figures, seconds per
//! epoch, device). The same differing settings name the runs in plots.
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::run_dir::EpochRecord;

use super::run_record::RunRecord;

/// `{"model": {"units": 64}}` -> `model.units = 64`, for every leaf.
fn flatten(value: &Value, prefix: &str, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(fields) => {
            for (key, inner) in fields {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(inner, &path, out);
            }
        }
        leaf => {
            out.insert(prefix.to_owned(), leaf.clone());
        }
    }
}

/// A config's settings by dotted key, as JSON values (numbers stay
/// numbers: TensorBoard's hparams keep their type).
pub fn flat_values(config: &Value) -> BTreeMap<String, Value> {
    let mut flat = BTreeMap::new();
    flatten(config, "", &mut flat);
    flat
}

/// A config's settings by dotted key, e.g. `model.units` -> `64`.
pub fn flat_settings(config: &Value) -> BTreeMap<String, String> {
    flat_values(config)
        .into_iter()
        .map(|(key, value)| match value {
            Value::String(s) => (key, s),
            other => (key, other.to_string()),
        })
        .collect()
}

/// Each config's settings, flattened to dotted keys.
fn settings(configs: &[&Value]) -> Vec<BTreeMap<String, String>> {
    configs.iter().map(|c| flat_settings(c)).collect()
}

/// The dotted keys whose values are not the same in every config (a key
/// missing from some config differs too), in sorted order.
pub fn differing_keys(configs: &[&Value]) -> Vec<String> {
    let flat = settings(configs);
    let keys: BTreeSet<&String> = flat.iter().flat_map(|f| f.keys()).collect();
    keys.into_iter()
        .filter(|key| flat.iter().any(|f| f.get(*key) != flat[0].get(*key)))
        .cloned()
        .collect()
}

/// `train.adam.learning_rate` -> `learning_rate`, unless another key ends
/// the same way.
fn short_names(keys: &[String]) -> Vec<String> {
    let last = |k: &str| k.rsplit('.').next().unwrap_or(k).to_owned();
    keys.iter()
        .map(|k| {
            let short = last(k);
            let clashes = keys.iter().filter(|o| last(o) == short).count() > 1;
            if clashes {
                k.clone()
            } else {
                short
            }
        })
        .collect()
}

/// A legend name per run from the settings that differ, e.g.
/// `units=32, dropout=0.5`; the folder name when nothing tells them apart.
pub fn run_labels(runs: &[RunRecord]) -> Vec<String> {
    let configs: Vec<Value> = runs.iter().map(RunRecord::config_json).collect();
    let configs: Vec<&Value> = configs.iter().collect();
    // Runs differ in seed and start time anyway: seed is named only when
    // it is the one difference.
    let mut keys = differing_keys(&configs);
    if keys.len() > 1 {
        keys.retain(|k| k != "seed");
    }
    let names = short_names(&keys);
    let flat = settings(&configs);
    let labels: Vec<String> = runs
        .iter()
        .zip(&flat)
        .map(|(run, f)| {
            let parts: Vec<String> = keys
                .iter()
                .zip(&names)
                .map(|(k, n)| format!("{n}={}", f.get(k).map_or("-", String::as_str)))
                .collect();
            if parts.is_empty() {
                run.name()
            } else {
                parts.join(", ")
            }
        })
        .collect();
    let unique: BTreeSet<&String> = labels.iter().collect();
    if unique.len() == labels.len() {
        labels
    } else {
        runs.iter().map(RunRecord::name).collect()
    }
}

/// A figure and the epoch (counted from 1, as Keras prints "Epoch 1/5")
/// where a run reached it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AtEpoch {
    pub value: f64,
    pub epoch: usize,
}

/// One run's line of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunComparison {
    pub run: String,
    pub dir: String,
    /// The differing settings' values, by dotted key.
    pub settings: BTreeMap<String, String>,
    pub epochs: usize,
    pub final_val_accuracy: f64,
    pub final_val_loss: f64,
    pub best_val_accuracy: AtEpoch,
    pub best_val_loss: AtEpoch,
    /// Mean wall time of an epoch, validation included.
    pub seconds_per_epoch: f64,
    pub device: String,
}

/// Which way a figure improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Better {
    Higher,
    Lower,
}

/// The first epoch with the best value of `value`.
pub(super) fn best(run: &RunRecord, value: fn(&EpochRecord) -> f64, better: Better) -> AtEpoch {
    run.epochs
        .iter()
        .map(|e| AtEpoch {
            value: value(e),
            epoch: e.epoch + 1,
        })
        .reduce(|kept, next| {
            let improves = match better {
                Better::Higher => next.value > kept.value,
                Better::Lower => next.value < kept.value,
            };
            if improves {
                next
            } else {
                kept
            }
        })
        .expect("a loaded run has at least one epoch")
}

/// The comparison of `runs` (each loaded, so each has an epoch).
pub fn compare(runs: &[RunRecord]) -> Vec<RunComparison> {
    let configs: Vec<Value> = runs.iter().map(RunRecord::config_json).collect();
    let configs: Vec<&Value> = configs.iter().collect();
    let keys = differing_keys(&configs);
    runs.iter()
        .zip(settings(&configs))
        .map(|(run, flat)| {
            let last = run.epochs.last().expect("a loaded run has an epoch");
            RunComparison {
                run: run.name(),
                dir: run.dir.display().to_string(),
                settings: keys
                    .iter()
                    .map(|k| (k.clone(), flat.get(k).cloned().unwrap_or_default()))
                    .collect(),
                epochs: run.epochs.len(),
                final_val_accuracy: last.val_accuracy,
                final_val_loss: last.val_loss,
                best_val_accuracy: best(run, |e| e.val_accuracy, Better::Higher),
                best_val_loss: best(run, |e| e.val_loss, Better::Lower),
                seconds_per_epoch: run.epochs.iter().map(|e| e.seconds).sum::<f64>()
                    / run.epochs.len() as f64,
                device: run.config.device.clone(),
            }
        })
        .collect()
}

/// The comparison as an aligned text table, one row per run.
pub fn comparison_table(rows: &[RunComparison]) -> String {
    let keys: Vec<String> = rows
        .first()
        .map(|r| r.settings.keys().cloned().collect())
        .unwrap_or_default();
    let mut header = vec!["run".to_owned()];
    header.extend(short_names(&keys));
    header.extend(
        [
            "epochs done",
            "val_acc",
            "best val_acc (epoch)",
            "val_loss",
            "best val_loss (epoch)",
            "s/epoch",
            "device",
        ]
        .map(String::from),
    );
    let mut table = vec![header];
    for r in rows {
        let mut line = vec![r.run.clone()];
        line.extend(r.settings.values().cloned());
        line.extend([
            r.epochs.to_string(),
            format!("{:.4}", r.final_val_accuracy),
            format!(
                "{:.4} ({})",
                r.best_val_accuracy.value, r.best_val_accuracy.epoch
            ),
            format!("{:.4}", r.final_val_loss),
            format!("{:.4} ({})", r.best_val_loss.value, r.best_val_loss.epoch),
            format!("{:.1}", r.seconds_per_epoch),
            r.device.clone(),
        ]);
        table.push(line);
    }
    align(&table)
}

/// Columns padded to their widest cell, two spaces apart.
fn align(table: &[Vec<String>]) -> String {
    let columns = table.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            table
                .iter()
                .filter_map(|row| row.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in table {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, &w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_settings_that_differ_are_listed() {
        let a = json!({"model": {"units": 64, "dropout": 0.2}, "seed": 1, "device": "cpu"});
        let b = json!({"model": {"units": 32, "dropout": 0.2}, "seed": 2, "device": "cpu"});
        assert_eq!(differing_keys(&[&a, &b]), vec!["model.units", "seed"]);
        assert!(differing_keys(&[&a, &a]).is_empty());
    }

    #[test]
    fn a_key_missing_from_one_config_differs() {
        let a = json!({"model": {"units": 64}, "extra": true});
        let b = json!({"model": {"units": 64}});
        assert_eq!(differing_keys(&[&a, &b]), vec!["extra"]);
    }

    #[test]
    fn short_names_keep_the_path_only_when_they_would_clash() {
        let keys = ["model.units", "train.a.dropout", "model.dropout"].map(String::from);
        assert_eq!(
            short_names(&keys),
            vec!["units", "train.a.dropout", "model.dropout"]
        );
    }

    #[test]
    fn table_columns_line_up() {
        let table = align(&[
            vec!["run".into(), "x".into()],
            vec!["longer name".into(), "1".into()],
        ]);
        assert_eq!(table, "run          x\nlonger name  1\n");
    }
}
