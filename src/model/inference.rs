//! The model in inference mode: no dropout, no graph, and what each GRU
//! implementation can prepare once for all batches.
use tch::Tensor;

use super::gru::GruMasks;
use super::SentimentModel;
use crate::device::GruImpl;

pub struct Inference<'a> {
    model: &'a SentimentModel,
    prepared: Prepared,
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
        Inference { model, prepared }
    }

    /// Logits `[B]` of ids `[B, T]` (int64).
    pub fn logits(&self, ids: &Tensor) -> Tensor {
        let model = self.model;
        tch::no_grad(|| {
            let h_last = match &self.prepared {
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
            };
            model.dense(&h_last)
        })
    }

    /// Probabilities `[B]` of the positive class with two classes, or
    /// `[B, classes]` of each class with more.
    pub fn probabilities(&self, ids: &Tensor) -> Tensor {
        let logits = self.logits(ids);
        match logits.dim() {
            1 => logits.sigmoid(),
            _ => logits.softmax(-1, tch::Kind::Float),
        }
    }
}
