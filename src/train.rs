//! `model.fit(...)` and `model.evaluate(...)` with Keras's semantics
//! (`keras-parity.md` section 4), and the per-epoch history.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Reduction, Tensor};

use crate::atomic::write_atomically;
use crate::data::Split;
use crate::model::SentimentModel;
use crate::optim::{Adam, AdamConfig};
use crate::progress::{EpochProgress, Verbosity};

/// How to fit; the defaults are the tutorial's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    /// Batch size of validation and of the final evaluation (Keras's
    /// `validation_batch_size`; results do not depend on it).
    pub validation_batch_size: usize,
    pub adam: AdamConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 5,
            batch_size: 32,
            validation_batch_size: 32,
            adam: AdamConfig::default(),
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        ensure!(self.epochs > 0, "--epochs must be at least 1");
        ensure!(self.batch_size > 0, "--batch-size must be at least 1");
        ensure!(
            self.validation_batch_size > 0,
            "--validation-batch-size must be at least 1"
        );
        let lr = self.adam.learning_rate;
        ensure!(
            lr > 0.0 && lr.is_finite(),
            "--learning-rate must be a positive number, got {lr}"
        );
        Ok(())
    }
}

/// A split as tensors on the training device: ids `[n, T]` (int64) and
/// labels `[n]` (float 0/1).
pub struct SplitTensors {
    pub x: Tensor,
    pub y: Tensor,
}

impl SplitTensors {
    pub fn new(split: &Split, device: Device) -> SplitTensors {
        let n = split.len() as i64;
        SplitTensors {
            x: Tensor::from_slice(&split.x)
                .view([n, split.maxlen as i64])
                .to_kind(Kind::Int64)
                .to_device(device),
            y: Tensor::from_slice(&split.y)
                .to_kind(Kind::Float)
                .to_device(device),
        }
    }

    pub fn len(&self) -> usize {
        self.y.size()[0] as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Mean loss and accuracy over a set of samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub loss: f64,
    pub accuracy: f64,
}

/// Sums of per-sample loss and hits, for sample-weighted means over
/// batches. Kept as tensors on the device and read only when needed, so a
/// GPU is not synchronised at every step.
struct Totals {
    loss: Tensor,
    hits: Tensor,
    samples: usize,
}

impl Totals {
    fn new(device: Device) -> Totals {
        let zero = || Tensor::zeros([], (Kind::Double, device));
        Totals {
            loss: zero(),
            hits: zero(),
            samples: 0,
        }
    }

    /// Adds a batch: `mean_loss` is the batch mean, as the optimiser saw it.
    fn add(&mut self, logits: &Tensor, labels: &Tensor, mean_loss: &Tensor) {
        tch::no_grad(|| {
            let n = labels.size()[0];
            let hits = logits
                .gt(0.0)
                .to_kind(Kind::Float)
                .eq_tensor(labels)
                .sum(Kind::Double);
            self.loss += mean_loss.to_kind(Kind::Double) * n as f64;
            self.hits += hits;
            self.samples += n as usize;
        })
    }

    fn means(&self) -> Evaluation {
        let n = self.samples.max(1) as f64;
        Evaluation {
            loss: self.loss.double_value(&[]) / n,
            accuracy: self.hits.double_value(&[]) / n,
        }
    }
}

fn bce_with_logits(logits: &Tensor, labels: &Tensor) -> Tensor {
    logits.binary_cross_entropy_with_logits::<Tensor>(labels, None, None, Reduction::Mean)
}

/// `model.evaluate(x, y, batch_size)`: inference mode, no dropout.
pub fn evaluate(model: &SentimentModel, data: &SplitTensors, batch_size: usize) -> Evaluation {
    let inference = model.inference();
    let mut totals = Totals::new(data.y.device());
    let n = data.len() as i64;
    let mut start = 0;
    while start < n {
        let len = (batch_size as i64).min(n - start);
        let logits = inference.logits(&data.x.narrow(0, start, len));
        let labels = data.y.narrow(0, start, len);
        totals.add(&logits, &labels, &bce_with_logits(&logits, &labels));
        start += len;
    }
    totals.means()
}

/// One row of the history, as Keras's CSVLogger writes it plus timings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Counted from 0, as in Keras's CSV.
    pub epoch: usize,
    pub accuracy: f64,
    pub loss: f64,
    pub val_accuracy: f64,
    pub val_loss: f64,
    /// Wall time of the epoch: training and validation.
    pub seconds: f64,
    /// Training samples per second (training part only).
    pub samples_per_second: f64,
}

/// `model.fit(x, y, batch_size, epochs, validation_data=(x_val, y_val))`.
///
/// The training set is reshuffled before every epoch and every sample is
/// used (the last batch is partial). `on_epoch` runs after each epoch, e.g.
/// to log history and save weights, so a killed run keeps finished epochs.
pub fn fit(
    model: &SentimentModel,
    optimizer: &mut Adam,
    train: &SplitTensors,
    validation: &SplitTensors,
    config: &TrainConfig,
    verbosity: Verbosity,
    mut on_epoch: impl FnMut(&EpochRecord) -> Result<()>,
) -> Result<Vec<EpochRecord>> {
    let n = train.len() as i64;
    let batch = config.batch_size as i64;
    let steps = (n + batch - 1) / batch;
    let mut history = Vec::with_capacity(config.epochs);
    for epoch in 0..config.epochs {
        let started = Instant::now();
        let mut progress = EpochProgress::start(verbosity, epoch + 1, config.epochs, steps as u64);
        let order = Tensor::randperm(n, (Kind::Int64, Device::Cpu)).to_device(train.x.device());
        let mut totals = Totals::new(train.y.device());
        for step in 0..steps {
            let idx = order.narrow(0, step * batch, batch.min(n - step * batch));
            let (x, y) = (train.x.index_select(0, &idx), train.y.index_select(0, &idx));
            let forward = model.forward_train(&x);
            let loss = bce_with_logits(&forward.logits, &y);
            totals.add(&forward.logits, &y, &loss);
            optimizer.step(&forward.backward(model, &loss));
            progress.step(step as u64 + 1, || {
                let running = totals.means();
                vec![("accuracy", running.accuracy), ("loss", running.loss)]
            });
        }
        let train_seconds = started.elapsed().as_secs_f64();
        let trained = totals.means();
        let validated = evaluate(model, validation, config.validation_batch_size);
        let record = EpochRecord {
            epoch,
            accuracy: trained.accuracy,
            loss: trained.loss,
            val_accuracy: validated.accuracy,
            val_loss: validated.loss,
            seconds: started.elapsed().as_secs_f64(),
            samples_per_second: n as f64 / train_seconds,
        };
        progress.finish(&[
            ("accuracy", record.accuracy),
            ("loss", record.loss),
            ("val_accuracy", record.val_accuracy),
            ("val_loss", record.val_loss),
        ]);
        on_epoch(&record)?;
        history.push(record);
    }
    Ok(history)
}

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
