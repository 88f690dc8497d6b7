//! The Keras model: `Embedding(N, 128) -> GRU(64) -> Dense(1)` with Keras's
//! initialisers and dropout semantics (`docs/keras-parity.md`, sections 2
//! and 3); for more than two classes the head is `Dense(n)` with softmax.
//!
//! Weights are stored in Keras's layouts (gate blocks z | r | h, kernels as
//! `[in, out]`), so the equations read as in the contract and a saved model
//! maps one to one onto a Keras one. The GRU layer (`gru.rs`) has three
//! implementations of one function (`op_by_op.rs`, `fused.rs`,
//! `cpu_kernel.rs`); the [`GruPlan`] of the model's placement says which
//! runs in training and which in evaluation.
mod cpu_kernel;
mod fused;
mod gru;
mod inference;
mod op_by_op;
mod params;
pub mod tensor_slice;

use std::cell::RefCell;

use tch::nn::{self, Init};
use tch::{Device, Tensor};

use crate::device::{GruImpl, GruPlan};
use crate::profile::{self, Phase};
use crate::settings::ModelConfig;
use cpu_kernel::{CpuKernel, KernelTape};
pub use gru::{GruLayer, GruMasks};
pub use inference::Inference;
pub use params::Parameters;
use tensor_slice::{as_mut_slice, as_slice};

/// Embedding -> GRU -> Dense(1 or n). Outputs logits; the sigmoid or
/// softmax lives in the loss and in [`Inference::probabilities`].
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
    /// The embedding gradient of the CPU kernel's path, kept between steps.
    embedding_gradient: RefCell<Option<EmbeddingGradient>>,
}

/// The embedding gradient `[N, D]` as one buffer the steps reuse, filled
/// in Rust: allocating 5 MB afresh every step cost page faults, clearing
/// all of it a pass over memory where only the rows of the last batch's
/// tokens are not zero, and libtorch's `index_add_` (one thread, one
/// dispatched add per position) most of 0.28 ms a step.
struct EmbeddingGradient {
    rows: Tensor,
    /// The token ids whose rows the last step wrote.
    written: Vec<i64>,
}

impl EmbeddingGradient {
    /// Each position's gradient summed into its token's row, in the order
    /// of the positions (as the lookup's backward sums them), the other
    /// rows zero.
    fn accumulate(&mut self, ids: &Tensor, d_inputs: &Tensor) -> Tensor {
        let ids = ids.to_kind(tch::Kind::Int64).contiguous();
        let d_inputs = d_inputs.contiguous();
        let d = self.rows.size()[1] as usize;
        // SAFETY: `rows` is this struct's own buffer, which nothing reads or
        // writes during the call (the optimiser reads it after); `ids` and
        // `d_inputs` are this frame's.
        let (rows, ids, d_inputs) = unsafe {
            (
                as_mut_slice::<f32>(&self.rows),
                as_slice::<i64>(&ids),
                as_slice::<f32>(&d_inputs),
            )
        };
        for &id in &self.written {
            rows[id as usize * d..][..d].fill(0.0);
        }
        for (&id, gradient) in ids.iter().zip(d_inputs.chunks_exact(d)) {
            for (sum, g) in rows[id as usize * d..][..d].iter_mut().zip(gradient) {
                *sum += g;
            }
        }
        self.written.clear();
        self.written.extend_from_slice(ids);
        self.rows.shallow_clone()
    }
}

/// What a training forward leaves for the backward pass: the logits, and
/// for the CPU kernel the tape of the recurrence. The kernel is opaque to
/// autograd, so there the graph of the loss starts at the last GRU state (a
/// leaf); [`TrainForward::backward`] takes autograd's gradient there
/// through the kernel's backward in time and on to the embedding rows.
pub struct TrainForward {
    pub logits: Tensor,
    kernel_pass: Option<KernelPass>,
}

struct KernelPass {
    ids: Tensor,
    h_last: Tensor,
    tape: KernelTape,
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
    /// for the CPU kernel.
    pub fn new(
        vs: &nn::Path,
        config: ModelConfig,
        gru_plan: GruPlan,
        threads: usize,
    ) -> SentimentModel {
        let n = config.max_features as i64;
        let d = config.embedding_dim as i64;
        let h = config.units as i64;
        let outputs = config.outputs() as i64;
        let uniform = Init::Uniform {
            lo: -0.05,
            up: 0.05,
        };
        SentimentModel {
            embeddings: (vs / "embedding").var("embeddings", &[n, d], uniform),
            gru: GruLayer::new(&(vs / "gru"), d, &config),
            dense_kernel: (vs / "dense").var("kernel", &[h, outputs], glorot_uniform(h, outputs)),
            dense_bias: (vs / "dense").var("bias", &[outputs], Init::Const(0.0)),
            config,
            device: vs.device(),
            gru_plan,
            cpu_kernel: CpuKernel::new(threads),
            embedding_gradient: RefCell::new(None),
        }
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
        self.gru
            .draw_masks(batch, self.config.embedding_dim as i64, self.device)
    }

    /// Training-mode forward of a batch of ids `[B, T]` (int64) under this
    /// batch's `masks`. The gradients of a loss of its logits come from
    /// [`TrainForward::backward`].
    pub fn forward_train(&self, ids: &Tensor, masks: &GruMasks) -> TrainForward {
        let gru_impl = self.gru_plan.train;
        // The kernel path computes the embedding gradient itself.
        let embedded = profile::time(Phase::Embedding, || {
            if gru_impl == GruImpl::CpuKernel {
                tch::no_grad(|| self.embed(ids))
            } else {
                self.embed(ids)
            }
        });
        let dense = |h_last: &Tensor| profile::time(Phase::DenseAndLoss, || self.dense(h_last));
        let h_last = match gru_impl {
            GruImpl::CpuKernel => {
                let (h_last, tape) = profile::time(Phase::GruForward, || {
                    self.cpu_kernel.forward_train(&self.gru, embedded, masks)
                });
                let h_last = h_last.set_requires_grad(true);
                return TrainForward {
                    logits: dense(&h_last),
                    kernel_pass: Some(KernelPass {
                        ids: ids.shallow_clone(),
                        h_last,
                        tape,
                    }),
                };
            }
            GruImpl::OpByOp => profile::time(Phase::GruForward, || {
                self.gru.forward_op_by_op(&embedded, masks)
            }),
            GruImpl::Fused => profile::time(Phase::GruForward, || {
                self.gru.forward_fused(&embedded, masks, true)
            }),
        };
        TrainForward {
            logits: dense(&h_last),
            kernel_pass: None,
        }
    }

    /// Inference mode (no dropout, no graph), prepared once for many batches.
    pub fn inference(&self) -> Inference<'_> {
        Inference::new(self)
    }
}

impl TrainForward {
    /// The gradient of `loss` with respect to each parameter. Returned
    /// rather than accumulated into `.grad`. On the CPU kernel's path the
    /// embedding gradient is a buffer the model reuses: it holds this
    /// step's gradient until the next backward.
    pub fn backward(self, model: &SentimentModel, loss: &Tensor) -> Parameters<Tensor> {
        let Some(pass) = self.kernel_pass else {
            // Autograd through the whole model, the GRU's steps included.
            let params = model.parameters();
            let inputs: Vec<&Tensor> = params.iter().collect();
            let grads = profile::time(Phase::GruBackward, || {
                Tensor::run_backward(&[loss], &inputs, false, false)
            });
            return Parameters::from_ordered(grads);
        };
        let [d_dense_kernel, d_dense_bias, d_h_last]: [Tensor; 3] =
            profile::time(Phase::DenseAndLoss, || {
                Tensor::run_backward(
                    &[loss],
                    &[&model.dense_kernel, &model.dense_bias, &pass.h_last],
                    false,
                    false,
                )
            })
            .try_into()
            .expect("three gradients");
        let grads = profile::time(Phase::GruBackward, || {
            model.cpu_kernel.backward(&model.gru, pass.tape, &d_h_last)
        });
        let d_embeddings = profile::time(Phase::EmbeddingGradient, || {
            let mut gradient = model.embedding_gradient.borrow_mut();
            gradient
                .get_or_insert_with(|| EmbeddingGradient {
                    rows: model.embeddings.zeros_like(),
                    written: Vec::new(),
                })
                .accumulate(&pass.ids, &grads.d_inputs)
        });
        Parameters {
            embeddings: d_embeddings,
            gru_kernel: grads.d_kernel,
            gru_recurrent_kernel: grads.d_recurrent_kernel,
            gru_bias: grads.d_bias,
            dense_kernel: d_dense_kernel,
            dense_bias: d_dense_bias,
        }
    }
}
