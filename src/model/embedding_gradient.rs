//! The embedding gradient of our kernels' paths (which autograd does not
//! see): each position's input gradient summed into its token's row, the
//! other rows zero, with the buffers kept between steps.
use tch::{Device, Kind, Tensor};

use super::tensor_slice::{as_mut_slice, as_slice};
use crate::gru_cuda::StepKernels;

pub(super) enum EmbeddingGradient {
    /// One `[N, D]` buffer the steps reuse, filled in Rust: allocating 5 MB
    /// afresh every step cost page faults, clearing all of it a pass over
    /// memory where only the rows of the last batch's tokens are not zero,
    /// and libtorch's `index_add_` (one thread, one dispatched add per
    /// position) most of 0.28 ms a step.
    Cpu {
        rows: Tensor,
        /// The token ids whose rows the last step wrote.
        written: Vec<i64>,
    },
    /// The step kernels' fixed-point sums `[N, D]` (int64, zero between
    /// steps): two launches, deterministic.
    Cuda {
        kernels: &'static StepKernels,
        sums: Tensor,
    },
}

impl EmbeddingGradient {
    /// The buffers for `embeddings [N, D]`, on its device.
    pub fn new(embeddings: &Tensor) -> EmbeddingGradient {
        match embeddings.device() {
            Device::Cpu => EmbeddingGradient::Cpu {
                rows: embeddings.zeros_like(),
                written: Vec::new(),
            },
            Device::Cuda(ordinal) => EmbeddingGradient::Cuda {
                kernels: StepKernels::get(ordinal)
                    .expect("the step kernels load where the GRU kernels did"),
                sums: embeddings.zeros_like().to_kind(Kind::Int64),
            },
            other => unreachable!("our kernels run on the CPU or CUDA, not {other:?}"),
        }
    }

    /// The gradient of `ids [B, T]` given the input gradient `d_inputs
    /// [B, T, D]`. On the CPU it is this buffer, valid until the next call.
    pub fn compute(&mut self, ids: &Tensor, d_inputs: &Tensor) -> Tensor {
        let ids = ids.to_kind(Kind::Int64).contiguous();
        let d_inputs = d_inputs.contiguous();
        match self {
            EmbeddingGradient::Cpu { rows, written } => {
                accumulate_on_cpu(rows, written, &ids, &d_inputs)
            }
            EmbeddingGradient::Cuda { kernels, sums } => kernels
                .embedding_gradient(&ids, &d_inputs, sums)
                .expect("the embedding gradient's inputs are the model's own tensors"),
        }
    }
}

/// Each position's gradient summed into its token's row of `rows`, in the
/// order of the positions (as the lookup's backward sums them), after
/// clearing the rows the last call wrote.
fn accumulate_on_cpu(
    rows: &Tensor,
    written: &mut Vec<i64>,
    ids: &Tensor,
    d_inputs: &Tensor,
) -> Tensor {
    let d = rows.size()[1] as usize;
    // SAFETY: `rows` is the caller's own buffer, which nothing reads or
    // writes during the call (the optimiser reads it after); `ids` and
    // `d_inputs` are the caller's contiguous tensors.
    let (row_data, ids, d_inputs) = unsafe {
        (
            as_mut_slice::<f32>(rows),
            as_slice::<i64>(ids),
            as_slice::<f32>(d_inputs),
        )
    };
    for &id in written.iter() {
        row_data[id as usize * d..][..d].fill(0.0);
    }
    for (&id, gradient) in ids.iter().zip(d_inputs.chunks_exact(d)) {
        for (sum, g) in row_data[id as usize * d..][..d].iter_mut().zip(gradient) {
            *sum += g;
        }
    }
    written.clear();
    written.extend_from_slice(ids);
    rows.shallow_clone()
}
