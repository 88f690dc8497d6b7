//! The model in inference mode: no dropout, no graph, and what each GRU
//! implementation can prepare once for all batches.
use tch::{Device, Kind, Tensor};

use super::gru::GruMasks;
use super::SentimentModel;
use crate::device::GruImpl;

/// Samples per call of our CPU kernel in evaluation: at 1,024 a call runs
/// 20% faster per sample than at 32 (`benches/gru_cpu`) and wakes the
/// worker threads once instead of 32 times.
const CPU_KERNEL_SAMPLES_PER_CALL: usize = 1024;

pub struct Inference<'a> {
    model: &'a SentimentModel,
    prepared: Prepared,
    /// The dense head on the CPU for [`Inference::probabilities_by_row`]:
    /// `[outputs, H]` (each output's weights side by side) and `[outputs]`.
    head_kernel: Vec<f32>,
    head_bias: Vec<f32>,
}

enum Prepared {
    /// The CPU kernel: without dropout the input projection `x W + b`
    /// depends on the token alone, so it is computed once per vocabulary
    /// entry (`[N, 3H]`) and each batch runs only the recurrence.
    ProjectionTable(Vec<f32>),
    /// The CUDA kernel, from the same table (`E W`, `[N, 3H]`) on the GPU.
    CudaTable(Tensor),
    OpByOp,
    /// The fused GRU, with its weights in libtorch's layout.
    Fused(Vec<Tensor>),
}

impl Inference<'_> {
    pub(super) fn new(model: &SentimentModel) -> Inference<'_> {
        let prepared = match model.gru_plan.eval {
            GruImpl::CpuKernel => Prepared::ProjectionTable(
                model
                    .cpu_kernel
                    .projection_table(&model.gru, &model.embeddings),
            ),
            GruImpl::CudaKernel => Prepared::CudaTable(
                model
                    .cuda_kernel()
                    .projection_table(&model.gru, &model.embeddings),
            ),
            GruImpl::OpByOp => Prepared::OpByOp,
            GruImpl::Fused => Prepared::Fused(tch::no_grad(|| model.gru.fused_params())),
        };
        Inference {
            model,
            prepared,
            head_kernel: floats(&model.dense_kernel.detach().tr()),
            head_bias: floats(&model.dense_bias.detach()),
        }
    }

    /// Logits `[B]` of ids `[B, T]` (int64).
    pub fn logits(&self, ids: &Tensor) -> Tensor {
        self.head(&self.last_states(ids))
    }

    /// The GRU's last states `[B, H]` of ids `[B, T]` (int64).
    pub fn last_states(&self, ids: &Tensor) -> Tensor {
        let model = self.model;
        tch::no_grad(|| match &self.prepared {
            Prepared::ProjectionTable(table) => model.cpu_kernel.forward_from_table(
                &model.gru,
                model.config.embedding_dim,
                table,
                ids,
            ),
            Prepared::CudaTable(table) => model
                .cuda_kernel()
                .forward_from_table(&model.gru, table, ids)
                .expect("the CUDA kernel's inputs are the model's own tensors"),
            Prepared::OpByOp => model
                .gru
                .forward_op_by_op(&model.embed(ids), &GruMasks::NONE),
            Prepared::Fused(params) => {
                model
                    .gru
                    .forward_fused_with(params, &model.embed(ids), &GruMasks::NONE, false)
            }
        })
    }

    /// Logits of last states `[B, H]`.
    pub fn head(&self, h_last: &Tensor) -> Tensor {
        tch::no_grad(|| self.model.dense(h_last))
    }

    /// How many samples to give [`Inference::last_states`] at once when
    /// the caller's batches are of `batch` samples: more where that cannot
    /// change a bit. Our CPU kernel computes each sample's states alone
    /// (the same operations in the same order whatever the batch), so it
    /// takes whole batches up to `CPU_KERNEL_SAMPLES_PER_CALL` samples.
    pub fn samples_per_call(&self, batch: usize) -> usize {
        match self.prepared {
            Prepared::ProjectionTable(_) => batch * (CPU_KERNEL_SAMPLES_PER_CALL / batch).max(1),
            _ => batch,
        }
    }

    /// Probabilities of ids `[B, T]`, one row per sample (of the positive
    /// class with two classes, of each class with more),
    /// with each sample's bits the same whatever else is in its batch. The
    /// CPU kernel's states are (see [`Inference::samples_per_call`]), but
    /// libtorch's matrix product sums a row in an order that depends on the
    /// batch's size (measured: 799 of 1,000 logits differed in their last
    /// bit between batches of 1 and 1,000), so the head and its sigmoid or
    /// softmax are computed here, one row at a time, in a fixed order.
    pub fn probabilities_by_row(&self, ids: &Tensor) -> Vec<Vec<f32>> {
        let states = floats(&self.last_states(ids));
        let units = self.model.config.units;
        states
            .chunks(units)
            .map(|row| {
                let logits: Vec<f32> = self
                    .head_kernel
                    .chunks(units)
                    .zip(&self.head_bias)
                    .map(|(weights, b)| dot(row, weights) + b)
                    .collect();
                match logits.as_slice() {
                    [logit] => vec![1.0 / (1.0 + (-logit).exp())],
                    _ => softmax(&logits),
                }
            })
            .collect()
    }
}

/// A tensor's values, on the CPU, row-major.
fn floats(tensor: &Tensor) -> Vec<f32> {
    let tensor = tensor
        .to_device(Device::Cpu)
        .to_kind(Kind::Float)
        .contiguous()
        .flatten(0, -1);
    Vec::<f32>::try_from(tensor).expect("a float tensor")
}

/// Summed in order, so the same inputs give the same bits.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0.0, |sum, (x, y)| sum + x * y)
}

fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum = exps.iter().fold(0.0, |sum, e| sum + e);
    exps.iter().map(|e| e / sum).collect()
}
