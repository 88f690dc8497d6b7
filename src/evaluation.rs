//! `model.evaluate(...)`, and the sums both it and training keep: mean
//! loss (binary, or sparse categorical, cross-entropy) and accuracy over
//! batches, weighted by samples.
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Reduction, Tensor};

use crate::data::Split;
use crate::model::SentimentModel;

/// A split as tensors on the training device: ids `[n, T]` (int64) and
/// labels `[n]` (float: 0/1, or the class number).
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

    /// The same tensors, shared.
    pub fn shallow_clone(&self) -> SplitTensors {
        SplitTensors {
            x: self.x.shallow_clone(),
            y: self.y.shallow_clone(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Mean loss and accuracy over a set of samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    pub loss: f64,
    pub accuracy: f64,
}

/// The sums of [`Totals`] as plain numbers, e.g. for a checkpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RunningTotals {
    pub loss_sum: f64,
    pub hits: f64,
    pub samples: usize,
}

impl RunningTotals {
    pub fn means(&self) -> Evaluation {
        let n = self.samples.max(1) as f64;
        Evaluation {
            loss: self.loss_sum / n,
            accuracy: self.hits / n,
        }
    }
}

/// Sums of per-sample loss and hits, for sample-weighted means over
/// batches. Kept as tensors on the device and read only when needed, so a
/// GPU is not synchronised at every step.
pub struct Totals {
    loss: Tensor,
    hits: Tensor,
    samples: usize,
}

impl Totals {
    pub fn new(device: Device) -> Totals {
        Totals::from_running(&RunningTotals::default(), device)
    }

    /// Goes on from sums saved earlier.
    pub fn from_running(running: &RunningTotals, device: Device) -> Totals {
        let scalar = |v: f64| Tensor::from(v).to_kind(Kind::Double).to_device(device);
        Totals {
            loss: scalar(running.loss_sum),
            hits: scalar(running.hits),
            samples: running.samples,
        }
    }

    /// The sums as plain numbers (a GPU is synchronised).
    pub fn running(&self) -> RunningTotals {
        RunningTotals {
            loss_sum: self.loss.double_value(&[]),
            hits: self.hits.double_value(&[]),
            samples: self.samples,
        }
    }

    /// Adds a batch: `mean_loss` is the batch mean, as the optimiser saw it.
    pub fn add(&mut self, logits: &Tensor, labels: &Tensor, mean_loss: &Tensor) {
        tch::no_grad(|| {
            let n = labels.size()[0];
            let predicted = match logits.dim() {
                1 => logits.gt(0.0),
                _ => logits.argmax(-1, false),
            };
            let hits = predicted
                .to_kind(Kind::Float)
                .eq_tensor(labels)
                .sum(Kind::Double);
            self.loss += mean_loss.to_kind(Kind::Double) * n as f64;
            self.hits += hits;
            self.samples += n as usize;
        })
    }

    pub fn means(&self) -> Evaluation {
        self.running().means()
    }

    /// A copy of the sums as they stand, left on the device: reading it
    /// later does not hold up the work queued meanwhile.
    pub fn snapshot(&self) -> TotalsSnapshot {
        TotalsSnapshot {
            loss: self.loss.copy(),
            hits: self.hits.copy(),
            samples: self.samples,
        }
    }

    /// The loss and hit sums (f64 scalars on the device) for a kernel to
    /// add a batch of `n` samples to.
    pub fn sums_for_kernel(&mut self, n: usize) -> (&Tensor, &Tensor) {
        self.samples += n;
        (&self.loss, &self.hits)
    }
}

/// [`Totals`] at one point of an epoch, still on the device.
pub struct TotalsSnapshot {
    loss: Tensor,
    hits: Tensor,
    samples: usize,
}

impl TotalsSnapshot {
    /// The sums as plain numbers (a GPU is synchronised).
    pub fn read(&self) -> RunningTotals {
        RunningTotals {
            loss_sum: self.loss.double_value(&[]),
            hits: self.hits.double_value(&[]),
            samples: self.samples,
        }
    }
}

/// The batch mean of Keras's loss: binary cross-entropy for one sigmoid
/// unit (logits `[B]`), sparse categorical cross-entropy for softmax units
/// (logits `[B, classes]`, labels the class numbers).
pub fn loss_with_logits(logits: &Tensor, labels: &Tensor) -> Tensor {
    match logits.dim() {
        1 => logits.binary_cross_entropy_with_logits::<Tensor>(labels, None, None, Reduction::Mean),
        _ => logits.cross_entropy_for_logits(&labels.to_kind(Kind::Int64)),
    }
}

/// `model.evaluate(x, y, batch_size)`: inference mode, no dropout. The
/// head, the loss and the totals go batch by batch; the GRU may take
/// several batches at once where that changes nothing
/// ([`crate::model::Inference::samples_per_call`]).
pub fn evaluate(model: &SentimentModel, data: &SplitTensors, batch_size: usize) -> Evaluation {
    let inference = model.inference();
    let mut totals = Totals::new(data.y.device());
    let n = data.len() as i64;
    let per_call = inference.samples_per_call(batch_size) as i64;
    let mut first = 0;
    while first < n {
        let rows = per_call.min(n - first);
        let states = inference.last_states(&data.x.narrow(0, first, rows));
        let mut start = 0;
        while start < rows {
            let len = (batch_size as i64).min(rows - start);
            let logits = inference.head(&states.narrow(0, start, len));
            let labels = data.y.narrow(0, first + start, len);
            totals.add(&logits, &labels, &loss_with_logits(&logits, &labels));
            start += len;
        }
        first += per_call;
    }
    totals.means()
}
