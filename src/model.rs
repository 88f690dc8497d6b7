//! The Keras model: `Embedding(N, 128) -> GRU(64) -> Dense(1)` with Keras's
//! initialisers and dropout semantics (`keras-parity.md` sections 2 and 3).
//!
//! Weights are stored in Keras's layouts (gate blocks z | r | h, kernels as
//! `[in, out]`), so the equations below read as in the contract and a saved
//! model maps one to one onto a Keras one.
use std::cell::RefCell;

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Init};
use tch::{Device, Kind, Tensor};

use crate::gru_cpu;

/// Shape and regularisation of the model; the defaults are the tutorial's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Vocabulary size N (Keras `num_words` / `max_features`).
    pub max_features: usize,
    pub embedding_dim: usize,
    pub units: usize,
    /// Fraction of the GRU's inputs dropped in training.
    pub dropout: f64,
    /// Fraction of the GRU's recurrent state dropped in training.
    pub recurrent_dropout: f64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            max_features: 10_000,
            embedding_dim: 128,
            units: 64,
            dropout: 0.2,
            recurrent_dropout: 0.2,
        }
    }
}

impl ModelConfig {
    /// Refuses shapes and rates that Keras would refuse or that make no model.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.max_features > 3,
            "--max-features must be above 3 (ids 0-2 are padding, start and out-of-vocabulary), got {}",
            self.max_features
        );
        ensure!(self.embedding_dim > 0, "--embedding-dim must be at least 1");
        ensure!(self.units > 0, "--units must be at least 1");
        for (flag, p) in [
            ("--dropout", self.dropout),
            ("--recurrent-dropout", self.recurrent_dropout),
        ] {
            ensure!((0.0..1.0).contains(&p), "{flag} must be in [0, 1), got {p}");
        }
        Ok(())
    }
}

/// Which implementation of the GRU recurrence runs. All compute the same
/// function; they differ in speed and in what they can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GruImpl {
    /// The fastest one for the device and config: the fused Rust kernel on a
    /// CPU, on CUDA cuDNN when there is no recurrent dropout and the
    /// op-by-op step otherwise.
    Auto,
    /// Our fused CPU kernel (`gru_cpu`), forward and backward through time.
    CpuKernel,
    /// The Keras step written out in libtorch ops, one step at a time.
    OpByOp,
    /// libtorch's fused GRU (cuDNN on a GPU); cannot do recurrent dropout.
    Fused,
}

impl std::str::FromStr for GruImpl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(GruImpl::Auto),
            "cpu-kernel" => Ok(GruImpl::CpuKernel),
            "op-by-op" => Ok(GruImpl::OpByOp),
            "fused" => Ok(GruImpl::Fused),
            _ => Err(format!(
                "expected auto, cpu-kernel, op-by-op or fused, got '{s}'"
            )),
        }
    }
}

/// `GRU(units, reset_after=True)` in Keras's parameter layout.
#[derive(Debug)]
pub struct GruLayer {
    /// `[input_dim, 3 * units]`, gates z | r | h.
    pub kernel: Tensor,
    /// `[units, 3 * units]`, gates z | r | h.
    pub recurrent_kernel: Tensor,
    /// `[2, 3 * units]`: row 0 the input bias, row 1 the recurrent bias.
    pub bias: Tensor,
    pub units: i64,
    pub dropout: f64,
    pub recurrent_dropout: f64,
}

/// Dropout masks for one batch, drawn once and reused at every time step.
/// Values are 0 or `1 / (1 - p)`.
pub struct GruMasks {
    /// `[3, B, D]` (one mask per gate) or `[1, B, D]` (one for all gates).
    pub input: Option<Tensor>,
    /// `[3, B, H]`, one mask per gate.
    pub recurrent: Option<Tensor>,
}

fn keep_mask(shape: &[i64], p: f64, device: Device) -> Tensor {
    let keep = 1.0 - p;
    Tensor::full(shape, keep, (Kind::Float, device)).bernoulli() / keep
}

impl GruLayer {
    fn new(vs: &nn::Path, input_dim: i64, cfg: &ModelConfig) -> GruLayer {
        let units = cfg.units as i64;
        GruLayer {
            kernel: vs.var(
                "kernel",
                &[input_dim, 3 * units],
                glorot_uniform(input_dim, 3 * units),
            ),
            recurrent_kernel: vs.var(
                "recurrent_kernel",
                &[units, 3 * units],
                Init::Orthogonal { gain: 1.0 },
            ),
            bias: vs.var("bias", &[2, 3 * units], Init::Const(0.0)),
            units,
            dropout: cfg.dropout,
            recurrent_dropout: cfg.recurrent_dropout,
        }
    }

    /// Draws this batch's masks as Keras does: with recurrent dropout, three
    /// independent input masks and three recurrent masks; without it, one
    /// input mask shared by all gates.
    pub fn draw_masks(&self, batch: i64, input_dim: i64, device: Device) -> GruMasks {
        let gates = if self.recurrent_dropout > 0.0 { 3 } else { 1 };
        GruMasks {
            input: (self.dropout > 0.0)
                .then(|| keep_mask(&[gates, batch, input_dim], self.dropout, device)),
            recurrent: (self.recurrent_dropout > 0.0)
                .then(|| keep_mask(&[3, batch, self.units], self.recurrent_dropout, device)),
        }
    }

    fn gate(t: &Tensor, g: i64, units: i64) -> Tensor {
        t.narrow(-1, g * units, units)
    }

    /// The Keras step, op by op. `x`: `[B, T, D]`; returns the last state `[B, H]`.
    ///
    /// ```text
    /// z  = sigmoid(x W_z + b_z + h U_z + b'_z)
    /// r  = sigmoid(x W_r + b_r + h U_r + b'_r)
    /// hh = tanh(x W_h + b_h + r * (h U_h + b'_h))
    /// h  = z * h + (1 - z) * hh
    /// ```
    ///
    /// Masked copies of x and h feed only the products; the carried h is
    /// unmasked. The three gates are stacked on a leading axis so that a step
    /// is a handful of ops (each op is a kernel launch on a GPU).
    pub fn forward_op_by_op(&self, x: &Tensor, masks: &GruMasks) -> Tensor {
        let (b, t, d) = x.size3().expect("GRU input must be [B, T, D]");
        let u = self.units;
        let kernel = self.kernel.view([d, 3, u]).permute([1, 0, 2]); // [3, D, H]
        let recurrent_kernel = self.recurrent_kernel.view([u, 3, u]).permute([1, 0, 2]); // [3, H, H]
        let input_bias = self.bias.get(0).view([3, 1, u]);
        let recurrent_bias = self.bias.get(1).view([3, 1, u]);
        // Input projections of all steps at once, per gate: [3, B, T, H].
        let x_in = match &masks.input {
            None => x.unsqueeze(0),
            Some(m) => x.unsqueeze(0) * m.unsqueeze(2), // [1 or 3, B, T, D]
        };
        let gates_in = x_in.size()[0];
        let xp =
            (x_in.reshape([gates_in, b * t, d]).matmul(&kernel) + input_bias).view([3, b, t, u]);
        let mut h = Tensor::zeros([b, u], (Kind::Float, x.device()));
        for step in 0..t {
            let x_t = xp.select(2, step); // [3, B, H]
            let h_in = match &masks.recurrent {
                None => h.unsqueeze(0).expand([3, b, u], false),
                Some(m) => h.unsqueeze(0) * m,
            };
            let rec = recurrent_bias.baddbmm(&h_in, &recurrent_kernel, 1.0, 1.0); // [3, B, H]
            let zr = (x_t.narrow(0, 0, 2) + rec.narrow(0, 0, 2)).sigmoid();
            let (z, r) = (zr.get(0), zr.get(1));
            let hh = (x_t.get(2) + r * rec.get(2)).tanh();
            // z * h + (1 - z) * hh, in three ops instead of four.
            h = &hh + z * (&h - &hh);
        }
        h
    }

    /// libtorch's fused GRU (cuDNN on CUDA) on the same parameters, gates
    /// reordered from Keras's z | r | h to libtorch's r | z | n. It has no
    /// recurrent dropout, so it takes at most one shared input mask.
    pub fn forward_fused(&self, x: &Tensor, masks: &GruMasks, train: bool) -> Tensor {
        self.forward_fused_with(&self.fused_params(), x, masks, train)
    }

    /// The weights in libtorch's GRU layout (`w_ih [3H, D]`, `w_hh [3H, H]`,
    /// `b_ih`, `b_hh`, gates r | z | n), as views of one flat buffer: cuDNN
    /// wants that, and otherwise copies them at every call, with a warning.
    /// Still attached to the Keras-layout parameters for autograd.
    pub fn fused_params(&self) -> Vec<Tensor> {
        let u = self.units;
        let to_torch = |m: &Tensor| {
            Tensor::cat(
                &[
                    Self::gate(m, 1, u),
                    Self::gate(m, 0, u),
                    Self::gate(m, 2, u),
                ],
                -1,
            )
        };
        let w_ih = to_torch(&self.kernel).tr();
        let w_hh = to_torch(&self.recurrent_kernel).tr();
        let shapes = [w_ih.size(), w_hh.size(), vec![3 * u], vec![3 * u]];
        let flat = Tensor::cat(
            &[
                w_ih.reshape([-1]),
                w_hh.reshape([-1]),
                to_torch(&self.bias.get(0)),
                to_torch(&self.bias.get(1)),
            ],
            0,
        );
        let mut offset = 0;
        shapes
            .iter()
            .map(|shape| {
                let n: i64 = shape.iter().product();
                let view = flat.narrow(0, offset, n).view(shape.as_slice());
                offset += n;
                view
            })
            .collect()
    }

    /// [`GruLayer::forward_fused`] with weights from [`GruLayer::fused_params`],
    /// so inference can prepare them once for many batches.
    pub fn forward_fused_with(
        &self,
        params: &[Tensor],
        x: &Tensor,
        masks: &GruMasks,
        train: bool,
    ) -> Tensor {
        assert!(
            masks.recurrent.is_none(),
            "the fused GRU has no recurrent dropout"
        );
        let x = match &masks.input {
            None => x.shallow_clone(),
            Some(m) => {
                assert_eq!(m.size()[0], 1, "the fused GRU takes one shared input mask");
                x * m.get(0).unsqueeze(1)
            }
        };
        let h0 = Tensor::zeros([1, x.size()[0], self.units], (Kind::Float, x.device()));
        // `train` only tells cuDNN to keep what its backward needs; the
        // dropout argument (between stacked layers) is 0.
        let (_, h_n) = x.gru(&h0, params, true, 1, 0.0, train, false, true);
        h_n.squeeze_dim(0)
    }

    /// Borrowed views of the parameters for the CPU kernel.
    ///
    /// # Safety
    /// The tensors must be contiguous f32 CPU tensors that outlive the
    /// returned weights and are not written meanwhile.
    unsafe fn cpu_weights(&self, input_dim: usize) -> gru_cpu::GruWeights<'_> {
        let units = self.units as usize;
        let bias = f32_slice(&self.bias);
        gru_cpu::GruWeights {
            input_dim,
            units,
            kernel: f32_slice(&self.kernel),
            bias: &bias[..3 * units],
            recurrent_kernel: f32_slice(&self.recurrent_kernel),
            recurrent_bias: &bias[3 * units..],
        }
    }
}

/// The data of a contiguous f32 CPU tensor.
///
/// # Safety
/// The tensor must be a contiguous f32 CPU tensor, alive and unchanged while
/// the slice is in use.
unsafe fn f32_slice(t: &Tensor) -> &[f32] {
    debug_assert!(t.is_contiguous() && t.kind() == Kind::Float && t.device() == Device::Cpu);
    let n = t.numel();
    if n == 0 {
        return &[];
    }
    std::slice::from_raw_parts(t.data_ptr() as *const f32, n)
}

fn glorot_uniform(fan_in: i64, fan_out: i64) -> Init {
    let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
    Init::Uniform {
        lo: -limit,
        up: limit,
    }
}

/// Embedding -> GRU -> Dense(1). Outputs logits; the sigmoid lives in the loss
/// and in `Inference::probabilities`.
pub struct SentimentModel {
    /// `[N, D]`.
    pub embeddings: Tensor,
    pub gru: GruLayer,
    /// `[H, 1]`.
    pub dense_kernel: Tensor,
    /// `[1]`.
    pub dense_bias: Tensor,
    pub config: ModelConfig,
    pub device: Device,
    pub gru_impl: GruImpl,
    /// Threads of the CPU kernel.
    pub threads: usize,
    /// The CPU kernel's tape between steps, so its buffers are reused.
    spare_tape: RefCell<Option<gru_cpu::Tape>>,
}

/// What a training forward leaves for the backward pass: logits, and for the
/// CPU kernel the tape of the recurrence. The kernel is opaque to autograd,
/// so the graph of the loss starts at the last GRU state (a leaf);
/// [`TrainForward::backward`] takes autograd's gradient there through the
/// kernel's backward in time and on to the embedding rows.
pub struct TrainForward {
    pub logits: Tensor,
    kernel_pass: Option<KernelPass>,
}

struct KernelPass {
    ids: Tensor,
    /// The looked-up vectors `[B, T, D]`, outside any graph.
    embedded: Tensor,
    h_last: Tensor,
    tape: gru_cpu::Tape,
}

impl SentimentModel {
    /// Creates the variables under `vs` with Keras's initialisers.
    pub fn new(
        vs: &nn::Path,
        config: ModelConfig,
        gru_impl: GruImpl,
        threads: usize,
    ) -> SentimentModel {
        let n = config.max_features as i64;
        let d = config.embedding_dim as i64;
        let h = config.units as i64;
        SentimentModel {
            embeddings: (vs / "embedding").var(
                "embeddings",
                &[n, d],
                Init::Uniform {
                    lo: -0.05,
                    up: 0.05,
                },
            ),
            gru: GruLayer::new(&(vs / "gru"), d, &config),
            dense_kernel: (vs / "dense").var("kernel", &[h, 1], glorot_uniform(h, 1)),
            dense_bias: (vs / "dense").var("bias", &[1], Init::Const(0.0)),
            config,
            device: vs.device(),
            gru_impl,
            threads: threads.max(1),
            spare_tape: RefCell::new(None),
        }
    }

    /// The trainable tensors, in the order of [`TrainForward::backward`]'s
    /// gradients.
    pub fn parameters(&self) -> Vec<Tensor> {
        [
            &self.embeddings,
            &self.gru.kernel,
            &self.gru.recurrent_kernel,
            &self.gru.bias,
            &self.dense_kernel,
            &self.dense_bias,
        ]
        .into_iter()
        .map(Tensor::shallow_clone)
        .collect()
    }

    /// The implementation that runs for this device and config.
    pub fn resolved_gru_impl(&self, train: bool) -> GruImpl {
        let recurrent_dropout = train && self.config.recurrent_dropout > 0.0;
        match self.gru_impl {
            GruImpl::Auto if self.device == Device::Cpu => GruImpl::CpuKernel,
            GruImpl::Auto if recurrent_dropout => GruImpl::OpByOp,
            GruImpl::Auto => GruImpl::Fused,
            chosen => chosen,
        }
    }

    /// `[B, T]` ids -> `[B, T, D]` vectors.
    fn embed(&self, ids: &Tensor) -> Tensor {
        Tensor::embedding(&self.embeddings, ids, -1, false, false)
    }

    fn dense(&self, h_last: &Tensor) -> Tensor {
        (h_last.matmul(&self.dense_kernel) + &self.dense_bias).squeeze_dim(-1)
    }

    /// Training-mode forward of a batch of ids `[B, T]` (int64): dropout on,
    /// masks drawn from libtorch's generator. The gradients of a loss of its
    /// logits come from [`TrainForward::backward`].
    pub fn forward_train(&self, ids: &Tensor) -> TrainForward {
        let gru_impl = self.resolved_gru_impl(true);
        // The kernel path computes the embedding gradient itself.
        let embedded = if gru_impl == GruImpl::CpuKernel {
            tch::no_grad(|| self.embed(ids))
        } else {
            self.embed(ids)
        };
        let (b, _, d) = embedded.size3().expect("ids must be [B, T]");
        let masks = self.gru.draw_masks(b, d, self.device);
        match gru_impl {
            GruImpl::CpuKernel => {
                let mut tape = self.spare_tape.take().unwrap_or_default();
                let h_last = self.kernel_forward(&embedded, &masks, Some(&mut tape));
                let h_last = h_last.set_requires_grad(true);
                TrainForward {
                    logits: self.dense(&h_last),
                    kernel_pass: Some(KernelPass {
                        ids: ids.shallow_clone(),
                        embedded,
                        h_last,
                        tape,
                    }),
                }
            }
            GruImpl::OpByOp => TrainForward {
                logits: self.dense(&self.gru.forward_op_by_op(&embedded, &masks)),
                kernel_pass: None,
            },
            GruImpl::Fused | GruImpl::Auto => TrainForward {
                logits: self.dense(&self.gru.forward_fused(&embedded, &masks, true)),
                kernel_pass: None,
            },
        }
    }

    /// Inference mode (no dropout, no graph), prepared once for many batches.
    pub fn inference(&self) -> Inference<'_> {
        let path = match self.resolved_gru_impl(false) {
            GruImpl::CpuKernel => {
                let embeddings = self.embeddings.detach().contiguous();
                // SAFETY: contiguous f32 CPU tensors alive for the call, not written meanwhile.
                InferencePath::ProjectionTable(unsafe {
                    let weights = self.gru.cpu_weights(self.config.embedding_dim);
                    gru_cpu::Engine::new(self.threads)
                        .projection_table(&weights, f32_slice(&embeddings))
                })
            }
            GruImpl::OpByOp => InferencePath::OpByOp,
            GruImpl::Fused | GruImpl::Auto => {
                InferencePath::Fused(tch::no_grad(|| self.gru.fused_params()))
            }
        };
        Inference { model: self, path }
    }

    fn kernel_forward(
        &self,
        embedded: &Tensor,
        masks: &GruMasks,
        tape: Option<&mut gru_cpu::Tape>,
    ) -> Tensor {
        let (b, t, d) = embedded.size3().expect("GRU input must be [B, T, D]");
        let masks_input = masks.input.as_ref().map(Tensor::contiguous);
        let masks_recurrent = masks.recurrent.as_ref().map(Tensor::contiguous);
        // SAFETY: all tensors below are contiguous f32 CPU tensors owned by
        // this frame or by the model, and nothing writes them during the call.
        let h_last = unsafe {
            let weights = self.gru.cpu_weights(d as usize);
            let input_masks = match &masks_input {
                None => gru_cpu::InputMasks::None,
                Some(m) if m.size()[0] == 1 => gru_cpu::InputMasks::Shared(f32_slice(m)),
                Some(m) => gru_cpu::InputMasks::PerGate(f32_slice(m)),
            };
            let x = gru_cpu::Sequences {
                data: f32_slice(embedded),
                batch: b as usize,
                steps: t as usize,
            };
            let masks = gru_cpu::Masks {
                input: input_masks,
                recurrent: masks_recurrent.as_ref().map(|m| f32_slice(m)),
            };
            gru_cpu::Engine::new(self.threads).forward(&weights, x, masks, tape)
        };
        Tensor::from_slice(&h_last).view([b, self.gru.units])
    }
}

impl TrainForward {
    /// The gradient of `loss` with respect to each of
    /// [`SentimentModel::parameters`], in that order. Returned rather than
    /// accumulated into `.grad`, so no step spends time zeroing and adding
    /// into the 1.3M-entry embedding gradient.
    pub fn backward(self, model: &SentimentModel, loss: &Tensor) -> Vec<Tensor> {
        let Some(mut pass) = self.kernel_pass else {
            return Tensor::run_backward(&[loss], &model.parameters(), false, false);
        };
        let mut dense = Tensor::run_backward(
            &[loss],
            &[&model.dense_kernel, &model.dense_bias, &pass.h_last],
            false,
            false,
        );
        let d_h_last = dense.pop().expect("three gradients").contiguous();
        let (b, t, d) = pass.embedded.size3().expect("embedded is [B, T, D]");
        // SAFETY: as in `kernel_forward`; the tape belongs to this pass.
        let grads = unsafe {
            let weights = model.gru.cpu_weights(d as usize);
            gru_cpu::Engine::new(model.threads).backward(
                &weights,
                f32_slice(&pass.embedded),
                &mut pass.tape,
                f32_slice(&d_h_last),
            )
        };
        let from = |v: &[f32], shape: &[i64]| Tensor::from_slice(v).view(shape);
        let h = model.gru.units;
        // What the embedding lookup's backward does: sum each position's
        // gradient into its token's row.
        let d_embeddings = model.embeddings.zeros_like().index_add_(
            0,
            &pass.ids.reshape([-1]),
            &from(&grads.d_x, &[b * t, d]),
        );
        let d_bias = Tensor::cat(
            &[
                from(&grads.d_bias, &[1, 3 * h]),
                from(&grads.d_recurrent_bias, &[1, 3 * h]),
            ],
            0,
        );
        let gradients = vec![
            d_embeddings,
            from(&grads.d_kernel, &model.gru.kernel.size()),
            from(
                &grads.d_recurrent_kernel,
                &model.gru.recurrent_kernel.size(),
            ),
            d_bias,
            dense.remove(0),
            dense.remove(0),
        ];
        model.spare_tape.replace(Some(pass.tape));
        gradients
    }
}

/// The model in inference mode, with what each implementation prepares once
/// for all batches.
pub struct Inference<'a> {
    model: &'a SentimentModel,
    path: InferencePath,
}

enum InferencePath {
    /// The CPU kernel: without dropout the input projection `x W + b`
    /// depends on the token alone, so it is computed once per vocabulary
    /// entry (`[N, 3H]`) and each batch runs only the recurrence.
    ProjectionTable(Vec<f32>),
    OpByOp,
    /// The fused GRU, with its weights in libtorch's layout.
    Fused(Vec<Tensor>),
}

impl Inference<'_> {
    /// Logits `[B]` of ids `[B, T]` (int64).
    pub fn logits(&self, ids: &Tensor) -> Tensor {
        let model = self.model;
        tch::no_grad(|| {
            let no_masks = GruMasks {
                input: None,
                recurrent: None,
            };
            let h_last = match &self.path {
                InferencePath::ProjectionTable(table) => {
                    let (b, t) = ids.size2().expect("ids must be [B, T]");
                    let ids = ids.to_kind(Kind::Int64).contiguous();
                    // SAFETY: contiguous CPU tensors alive for the call, not written meanwhile.
                    let h_last = unsafe {
                        let weights = model.gru.cpu_weights(model.config.embedding_dim);
                        let ids =
                            std::slice::from_raw_parts(ids.data_ptr() as *const i64, ids.numel());
                        let ids = gru_cpu::TokenIds {
                            ids,
                            batch: b as usize,
                            steps: t as usize,
                        };
                        gru_cpu::Engine::new(model.threads).forward_from_table(&weights, table, ids)
                    };
                    Tensor::from_slice(&h_last).view([b, model.gru.units])
                }
                InferencePath::OpByOp => model.gru.forward_op_by_op(&model.embed(ids), &no_masks),
                InferencePath::Fused(params) => {
                    model
                        .gru
                        .forward_fused_with(params, &model.embed(ids), &no_masks, false)
                }
            };
            model.dense(&h_last)
        })
    }

    /// Probabilities `[B]` of the positive class.
    pub fn probabilities(&self, ids: &Tensor) -> Tensor {
        self.logits(ids).sigmoid()
    }
}
