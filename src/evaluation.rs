//! `model.evaluate(...)`, and the sums both it and training keep: mean
//! loss (binary, or sparse categorical, cross-entropy) and accuracy over
//! batches, weighted by samples.
use tch::{Device, Kind, Tensor};

use crate::data::Split;
use crate::model::tensor_slice::as_slice;
use crate::model::{loss_with_logits, SentimentModel};
use crate::run_dir::RunningTotals;

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

/// The sums' means. (`RunningTotals` is part of the run folder's format:
/// a checkpoint saves the epoch's sums so far.)
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
/// batches.
pub struct Totals {
    sums: Sums,
    samples: usize,
}

/// The loss and hit sums, f64 either way.
enum Sums {
    /// On the CPU, plain numbers. The tensor ops of [`Sums::Device`] took
    /// 20-25 us a batch there, 0.02 s of an epoch's training and
    /// validation (2-core Zen 5).
    Host { loss: f64, hits: f64 },
    /// Scalars on a GPU, read only when needed, so that it is not
    /// synchronised at every step.
    Device { loss: Tensor, hits: Tensor },
}

impl Sums {
    fn new(running: &RunningTotals, device: Device) -> Sums {
        let (loss, hits) = (running.loss_sum, running.hits);
        if device == Device::Cpu {
            return Sums::Host { loss, hits };
        }
        let scalar = |v: f64| Tensor::from(v).to_kind(Kind::Double).to_device(device);
        Sums::Device {
            loss: scalar(loss),
            hits: scalar(hits),
        }
    }

    /// `(loss, hits)` as numbers (a GPU is synchronised).
    fn read(&self) -> (f64, f64) {
        match self {
            Sums::Host { loss, hits } => (*loss, *hits),
            Sums::Device { loss, hits } => (loss.double_value(&[]), hits.double_value(&[])),
        }
    }

    /// A copy, left on the device.
    fn copy(&self) -> Sums {
        match self {
            Sums::Host { loss, hits } => Sums::Host {
                loss: *loss,
                hits: *hits,
            },
            Sums::Device { loss, hits } => Sums::Device {
                loss: loss.copy(),
                hits: hits.copy(),
            },
        }
    }
}

impl Totals {
    pub fn new(device: Device) -> Totals {
        Totals::from_running(&RunningTotals::default(), device)
    }

    /// Goes on from sums saved earlier.
    pub fn from_running(running: &RunningTotals, device: Device) -> Totals {
        Totals {
            sums: Sums::new(running, device),
            samples: running.samples,
        }
    }

    /// The sums as plain numbers (a GPU is synchronised).
    pub fn running(&self) -> RunningTotals {
        let (loss_sum, hits) = self.sums.read();
        RunningTotals {
            loss_sum,
            hits,
            samples: self.samples,
        }
    }

    /// Adds a batch: `mean_loss` is the batch mean, as the optimiser saw it.
    /// The same f64 operations on either side, so the same bits: the batch
    /// mean widened and times n, added to the sum; the hits counted
    /// exactly.
    pub fn add(&mut self, logits: &Tensor, labels: &Tensor, mean_loss: &Tensor) {
        let n = labels.size()[0];
        self.samples += n as usize;
        match &mut self.sums {
            Sums::Host { loss, hits } => {
                *loss += mean_loss.double_value(&[]) * n as f64;
                *hits += host_hits(logits, labels)
                    .unwrap_or_else(|| hits_tensor(logits, labels).double_value(&[]));
            }
            Sums::Device { loss, hits } => tch::no_grad(|| {
                *loss += mean_loss.to_kind(Kind::Double) * n as f64;
                *hits += hits_tensor(logits, labels);
            }),
        }
    }

    pub fn means(&self) -> Evaluation {
        self.running().means()
    }

    /// A copy of the sums as they stand, left on the device: reading it
    /// later does not hold up the work queued meanwhile.
    pub fn snapshot(&self) -> TotalsSnapshot {
        TotalsSnapshot {
            sums: self.sums.copy(),
            samples: self.samples,
        }
    }

    /// The loss and hit sums (f64 scalars on the GPU) for a kernel to add
    /// a batch of `n` samples to.
    pub fn sums_for_kernel(&mut self, n: usize) -> (&Tensor, &Tensor) {
        self.samples += n;
        match &self.sums {
            Sums::Device { loss, hits } => (loss, hits),
            Sums::Host { .. } => panic!("Totals: the kernels' sums live on a GPU"),
        }
    }
}

/// The batch's hits as a tensor: predictions (a positive logit, or the
/// largest) equal to the labels.
fn hits_tensor(logits: &Tensor, labels: &Tensor) -> Tensor {
    tch::no_grad(|| {
        let predicted = match logits.dim() {
            1 => logits.gt(0.0),
            _ => logits.argmax(-1, false),
        };
        predicted
            .to_kind(Kind::Float)
            .eq_tensor(labels)
            .sum(Kind::Double)
    })
}

/// [`hits_tensor`]'s count without tensor ops, for one sigmoid unit's f32
/// logits and labels on the CPU; `None` otherwise.
fn host_hits(logits: &Tensor, labels: &Tensor) -> Option<f64> {
    let host_f32 = |t: &Tensor| {
        t.device() == Device::Cpu && t.kind() == Kind::Float && t.dim() == 1 && t.is_contiguous()
    };
    if !host_f32(logits) || !host_f32(labels) || logits.size() != labels.size() {
        return None;
    }
    // SAFETY: both are contiguous f32 CPU tensors (checked above, and
    // again by `as_slice`), only read while they are borrowed here.
    let (logits, labels) = unsafe { (as_slice::<f32>(logits), as_slice::<f32>(labels)) };
    let hits = logits
        .iter()
        .zip(labels)
        .filter(|&(&x, &y)| f32::from(u8::from(x > 0.0)) == y)
        .count();
    Some(hits as f64)
}

/// [`Totals`] at one point of an epoch, still on the device.
pub struct TotalsSnapshot {
    sums: Sums,
    samples: usize,
}

impl TotalsSnapshot {
    /// The sums as plain numbers (a GPU is synchronised).
    pub fn read(&self) -> RunningTotals {
        let (loss_sum, hits) = self.sums.read();
        RunningTotals {
            loss_sum,
            hits,
            samples: self.samples,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn device_totals() -> Totals {
        let zero = || Tensor::from(0.0f64);
        Totals {
            sums: Sums::Device {
                loss: zero(),
                hits: zero(),
            },
            samples: 0,
        }
    }

    #[test]
    fn sums_kept_as_numbers_have_the_bits_of_the_tensor_ops() {
        tch::manual_seed(3);
        let (mut host, mut tensors) = (Totals::new(Device::Cpu), device_totals());
        for batch in [32i64, 32, 7, 1] {
            let cpu = (Kind::Float, Device::Cpu);
            // Some logits exactly 0, which count as predicting 0.
            let logits = (Tensor::randn([batch], cpu) * 3.0).round();
            let labels = Tensor::randint(2, [batch], cpu);
            let mean_loss = Tensor::rand([], cpu);
            host.add(&logits, &labels, &mean_loss);
            tensors.add(&logits, &labels, &mean_loss);
            // Softmax logits take the tensor ops' count on either side.
            let classes = Tensor::randn([batch, 3], cpu);
            let class_labels = Tensor::randint(3, [batch], cpu);
            host.add(&classes, &class_labels, &mean_loss);
            tensors.add(&classes, &class_labels, &mean_loss);
        }
        let (a, b) = (host.running(), tensors.running());
        assert_eq!(a.loss_sum.to_bits(), b.loss_sum.to_bits());
        assert_eq!(a.hits, b.hits);
        assert_eq!(a.samples, b.samples);
        assert_eq!(host.snapshot().read(), a);
    }
}
