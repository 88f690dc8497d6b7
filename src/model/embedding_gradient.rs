//! The embedding gradient of the CUDA kernel's path (which autograd does
//! not see): each position's input gradient summed into its token's row,
//! the other rows zero, in buffers kept between steps. The CPU kernel's
//! path leaves the sums to the optimiser (`Gradient::ByPosition`).
use tch::{Kind, Tensor};

use crate::gru_cuda::StepKernels;

/// The step kernels' fixed-point sums `[N, D]` (int64, zero between
/// steps): two launches, deterministic.
pub(super) struct EmbeddingGradient {
    kernels: &'static StepKernels,
    sums: Tensor,
}

impl EmbeddingGradient {
    /// The buffers for `embeddings [N, D]`, on the GPU of `kernels`.
    pub fn new(embeddings: &Tensor, kernels: &'static StepKernels) -> EmbeddingGradient {
        EmbeddingGradient {
            kernels,
            sums: embeddings.zeros_like().to_kind(Kind::Int64),
        }
    }

    /// The gradient of `ids [B, T]` given the input gradient `d_inputs
    /// [B, T, D]`.
    pub fn compute(&mut self, ids: &Tensor, d_inputs: &Tensor) -> Tensor {
        let ids = ids.to_kind(Kind::Int64).contiguous();
        let d_inputs = d_inputs.contiguous();
        self.kernels
            .embedding_gradient(&ids, &d_inputs, &self.sums)
            .expect("the embedding gradient's inputs are the model's own tensors")
    }
}
