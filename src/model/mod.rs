//! The Keras model: `Embedding(N, 128) -> GRU(64) -> Dense(1)` with Keras's
//! initialisers and dropout semantics (`docs/keras-parity.md`, sections 2
//! and 3); for more than two classes the head is `Dense(n)` with softmax.
//!
//! Weights are stored in Keras's layouts (gate blocks z | r | h, kernels as
//! `[in, out]`), so the equations read as in the contract and a saved model
//! maps one to one onto a Keras one. The GRU layer (`gru.rs`) has four
//! implementations of one function (`op_by_op.rs`, `fused.rs`,
//! `cpu_kernel.rs`, `cuda_kernel.rs`); the [`GruPlan`] of the model's
//! placement says which runs in training and which in evaluation. Our
//! kernels are opaque to autograd: `backprop.rs` takes the gradient through
//! them, and `embedding_gradient.rs` on to the embedding rows (on a GPU;
//! on the CPU the optimiser sums the rows, `gradient.rs`). A training step
//! is one call, [`SentimentModel::train_step`] (`step.rs`), with the
//! model's loss (`loss.rs`).
mod backprop;
pub mod config;
mod cpu_kernel;
mod cuda_kernel;
mod embedding_gradient;
mod fused;
mod gradient;
mod gru;
mod inference;
mod loss;
mod op_by_op;
mod params;
mod step;
pub mod tensor_slice;

use std::cell::RefCell;

use tch::nn::{self, Init};
use tch::{Device, Tensor};

use crate::device::{GruImpl, GruPlan};
use crate::profile::{self, Phase};
pub use backprop::{KernelBackward, RunningSums};
pub use config::ModelConfig;
use cpu_kernel::{CpuKernel, KernelTape};
use cuda_kernel::{CudaKernel, CudaTape};
use embedding_gradient::EmbeddingGradient;
pub use gradient::{Gradient, PositionGradients, RowGradients};
pub use gru::{GruLayer, GruMasks, MaskDrawer};
pub use inference::Inference;
pub use loss::loss_with_logits;
pub use params::Parameters;
pub use step::{StepOutput, StepTotals, TrainBatch};

/// Embedding -> GRU -> Dense(1 or n). Outputs logits; the sigmoid or
/// softmax lives in the loss and in [`Inference::probabilities_by_row`].
pub struct SentimentModel {
    /// `[N, D]`.
    pub embeddings: Tensor,
    pub gru: GruLayer,
    /// `[H, outputs]`.
    pub dense_kernel: Tensor,
    /// `[outputs]`.
    pub dense_bias: Tensor,
    pub config: ModelConfig,
    pub device: Device,
    pub gru_plan: GruPlan,
    cpu_kernel: CpuKernel,
    /// Our CUDA kernels, when the plan runs them.
    cuda_kernel: Option<CudaKernel>,
    /// The embedding gradient of the CUDA kernel's path, kept between steps.
    embedding_gradient: RefCell<Option<EmbeddingGradient>>,
}

/// What a training forward leaves for the backward pass: the logits, and
/// for the CPU kernel the tape of the recurrence. The kernel is opaque to
/// autograd, so there the graph of the loss starts at the last GRU state (a
/// leaf); [`TrainForward::backward`] takes autograd's gradient there
/// through the kernel's backward in time and on to the embedding rows.
pub struct TrainForward {
    pub logits: Tensor,
    /// The batch's ids `[B, T]`, which the embedding's gradient names.
    ids: Tensor,
    kernel_pass: Option<KernelPass>,
}

/// A forward pass through one of our kernels, which autograd cannot see.
struct KernelPass {
    h_last: Tensor,
    tape: Tape,
}

enum Tape {
    /// Boxed: the CPU tape holds its buffers inline (368 bytes), and a
    /// step moves the tape twice.
    Cpu(Box<KernelTape>),
    Cuda(CudaTape),
}

pub(crate) fn glorot_uniform(fan_in: i64, fan_out: i64) -> Init {
    let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
    Init::Uniform {
        lo: -limit,
        up: limit,
    }
}

impl SentimentModel {
    /// Creates the variables under `vs` with Keras's initialisers; `threads`
    /// for the CPU kernel. A plan with the CUDA kernel loads it (compiled
    /// once a process, usually by [`GruPlan::choose`]); an error if it
    /// cannot.
    pub fn new(
        vs: &nn::Path,
        config: ModelConfig,
        gru_plan: GruPlan,
        threads: usize,
    ) -> anyhow::Result<SentimentModel> {
        let n = config.max_features as i64;
        let d = config.embedding_dim as i64;
        let h = config.units as i64;
        let outputs = config.outputs() as i64;
        let uniform = Init::Uniform {
            lo: -0.05,
            up: 0.05,
        };
        let cuda_kernel = match gru_plan.uses(GruImpl::CudaKernel) {
            true => Some(CudaKernel::new(vs.device(), config.units)?),
            false => None,
        };
        Ok(SentimentModel {
            embeddings: (vs / "embedding").var("embeddings", &[n, d], uniform),
            gru: GruLayer::new(&(vs / "gru"), d, &config),
            dense_kernel: (vs / "dense").var("kernel", &[h, outputs], glorot_uniform(h, outputs)),
            dense_bias: (vs / "dense").var("bias", &[outputs], Init::Const(0.0)),
            config,
            device: vs.device(),
            gru_plan,
            cpu_kernel: CpuKernel::new(threads),
            cuda_kernel,
            embedding_gradient: RefCell::new(None),
        })
    }

    /// The trainable tensors (shallow copies).
    pub fn parameters(&self) -> Parameters<Tensor> {
        Parameters {
            embeddings: self.embeddings.shallow_clone(),
            gru_kernel: self.gru.kernel.shallow_clone(),
            gru_recurrent_kernel: self.gru.recurrent_kernel.shallow_clone(),
            gru_bias: self.gru.bias.shallow_clone(),
            dense_kernel: self.dense_kernel.shallow_clone(),
            dense_bias: self.dense_bias.shallow_clone(),
        }
    }

    /// `[B, T]` ids -> `[B, T, D]` vectors.
    fn embed(&self, ids: &Tensor) -> Tensor {
        Tensor::embedding(&self.embeddings, ids, -1, false, false)
    }

    /// Logits: `[B]` with one unit, `[B, classes]` with more (squeezing a
    /// dimension of more than one leaves it).
    fn dense(&self, h_last: &Tensor) -> Tensor {
        (h_last.matmul(&self.dense_kernel) + &self.dense_bias).squeeze_dim(-1)
    }

    /// The dropout masks of a training batch of `batch` samples, drawn from
    /// libtorch's generator. Training draws them for every step, in order,
    /// so a resumed run can draw (and discard) those of the steps it skips.
    pub fn draw_masks(&self, batch: i64) -> GruMasks {
        self.mask_drawer().draw(batch)
    }

    /// What [`SentimentModel::draw_masks`] takes, for another thread.
    pub fn mask_drawer(&self) -> MaskDrawer {
        self.gru
            .mask_drawer(self.config.embedding_dim as i64, self.device)
    }

    /// Training-mode forward of a batch of ids `[B, T]` (int64) under this
    /// batch's `masks`. The gradients of a loss of its logits come from
    /// [`TrainForward::backward`].
    pub fn forward_train(&self, ids: &Tensor, masks: &GruMasks) -> TrainForward {
        let gru_impl = self.gru_plan.train;
        // Our kernels compute the embedding gradient themselves.
        let ours = matches!(gru_impl, GruImpl::CpuKernel | GruImpl::CudaKernel);
        let embedded = profile::time(Phase::Embedding, || match gru_impl {
            GruImpl::CpuKernel => self.cpu_kernel.embed(&self.embeddings, ids),
            _ if ours => tch::no_grad(|| self.embed(ids)),
            _ => self.embed(ids),
        });
        let dense = |h_last: &Tensor| profile::time(Phase::DenseAndLoss, || self.dense(h_last));
        let (h_last, tape) = match gru_impl {
            GruImpl::CpuKernel => profile::time(Phase::GruForward, || {
                let (h_last, tape) = self.cpu_kernel.forward_train(&self.gru, embedded, masks);
                (h_last, Tape::Cpu(Box::new(tape)))
            }),
            GruImpl::CudaKernel => profile::time(Phase::GruForward, || {
                let (h_last, tape) = self
                    .cuda_kernel()
                    .forward_train(&self.gru, &embedded, masks)
                    .expect("the CUDA kernel's inputs are the model's own tensors");
                (h_last, Tape::Cuda(tape))
            }),
            GruImpl::OpByOp | GruImpl::Fused => {
                let h_last = profile::time(Phase::GruForward, || match gru_impl {
                    GruImpl::OpByOp => self.gru.forward_op_by_op(&embedded, masks),
                    _ => self.gru.forward_fused(&embedded, masks, true),
                });
                return TrainForward {
                    logits: dense(&h_last),
                    ids: ids.shallow_clone(),
                    kernel_pass: None,
                };
            }
        };
        let h_last = h_last.set_requires_grad(true);
        TrainForward {
            logits: dense(&h_last),
            ids: ids.shallow_clone(),
            kernel_pass: Some(KernelPass { h_last, tape }),
        }
    }

    fn cuda_kernel(&self) -> &CudaKernel {
        self.cuda_kernel
            .as_ref()
            .expect("a plan with the CUDA kernel loads it")
    }

    /// Inference mode (no dropout, no graph), prepared once for many batches.
    pub fn inference(&self) -> Inference<'_> {
        Inference::new(self)
    }
}
