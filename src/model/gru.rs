//! `GRU(units, reset_after=True)` in Keras's parameter layout, with Keras's
//! dropout masks. Its implementations are in files of their own:
//! `op_by_op.rs` (the Keras step in libtorch ops), `fused.rs` (libtorch's
//! fused GRU, cuDNN on a GPU), `cpu_kernel.rs` (our fused CPU kernel) and
//! `cuda_kernel.rs` (our CUDA kernels).
use tch::nn::{self, Init};
use tch::{Device, Kind, Tensor};

use super::glorot_uniform;
use super::tensor_slice::as_mut_slice;
use crate::cpu_generator;
use crate::model::ModelConfig;

/// The layer's weights, gate blocks in the order z | r | h.
#[derive(Debug)]
pub struct GruLayer {
    /// `[input_dim, 3 * units]`.
    pub kernel: Tensor,
    /// `[units, 3 * units]`.
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

impl GruMasks {
    /// Evaluation: no dropout.
    pub const NONE: GruMasks = GruMasks {
        input: None,
        recurrent: None,
    };
}

/// Keras's dropout mask: each element kept (`1 / (1 - p)`) with
/// probability `1 - p`, else 0, from libtorch's generator.
///
/// A GPU draws it with libtorch's `bernoulli` on a tensor of probabilities,
/// divided by `1 - p`. On the CPU that `bernoulli` computes, element by
/// element, `u < (float)(1 - p)` from one uniform float `u` of the
/// generator (`at::bernoulli_distribution` over
/// `at::uniform_real_distribution`, as `uniform_` draws), and the division
/// is one in floats; [`cpu_keep_mask`] computes just that from
/// `cpu_generator::uniform`: the same masks, and the generator left in the
/// same state (`tests/model.rs` checks both).
fn keep_mask(shape: &[i64], p: f64, device: Device) -> Tensor {
    let keep = 1.0 - p;
    match device {
        Device::Cpu => cpu_keep_mask(shape, keep),
        _ => Tensor::full(shape, keep, (Kind::Float, device)).bernoulli() / keep,
    }
}

/// [`keep_mask`] on the CPU, with `keep = 1 - p`. A training step's masks
/// at batch 32 (2-core Zen 5, one thread): 106 us as `bernoulli`, 48-99 us
/// as `rand`, `lt`, `to_kind` and the division, 16-25 us so.
fn cpu_keep_mask(shape: &[i64], keep: f64) -> Tensor {
    let mask = Tensor::empty(shape, (Kind::Float, Device::Cpu));
    // SAFETY: a new contiguous f32 CPU tensor that nothing else holds yet.
    let values = unsafe { as_mut_slice::<f32>(&mask) };
    cpu_generator::uniform(values);
    let (keep, kept) = (keep as f32, 1.0 / keep as f32);
    for v in values.iter_mut() {
        *v = if *v < keep { kept } else { 0.0 };
    }
    mask
}

impl GruLayer {
    /// Creates the variables under `vs` with Keras's initialisers: Glorot
    /// uniform kernel, orthogonal recurrent kernel, zero biases.
    pub(super) fn new(vs: &nn::Path, input_dim: i64, cfg: &ModelConfig) -> GruLayer {
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

    /// A `[rows, 3H]` weight as one `[rows, H]` block per gate: `[3, rows,
    /// H]` (a view).
    pub(super) fn per_gate(&self, weight: &Tensor) -> Tensor {
        let rows = weight.size()[0];
        weight.view([rows, 3, self.units]).permute([1, 0, 2])
    }

    /// Draws this batch's masks (see [`MaskDrawer::draw`]).
    pub fn draw_masks(&self, batch: i64, input_dim: i64, device: Device) -> GruMasks {
        self.mask_drawer(input_dim, device).draw(batch)
    }

    /// What drawing masks takes, for inputs of `input_dim` on `device`.
    pub fn mask_drawer(&self, input_dim: i64, device: Device) -> MaskDrawer {
        MaskDrawer {
            input_dim,
            units: self.units,
            dropout: self.dropout,
            recurrent_dropout: self.recurrent_dropout,
            device,
        }
    }
}

/// The shapes and rates of a layer's masks, without its weights: a copy
/// that another thread can draw with.
#[derive(Debug, Clone, Copy)]
pub struct MaskDrawer {
    input_dim: i64,
    units: i64,
    dropout: f64,
    recurrent_dropout: f64,
    device: Device,
}

impl MaskDrawer {
    /// Draws a batch's masks as Keras does: with recurrent dropout, three
    /// independent input masks and three recurrent masks; without it, one
    /// input mask shared by all gates.
    pub fn draw(self, batch: i64) -> GruMasks {
        let gates = if self.recurrent_dropout > 0.0 { 3 } else { 1 };
        GruMasks {
            input: (self.dropout > 0.0)
                .then(|| keep_mask(&[gates, batch, self.input_dim], self.dropout, self.device)),
            recurrent: (self.recurrent_dropout > 0.0)
                .then(|| keep_mask(&[3, batch, self.units], self.recurrent_dropout, self.device)),
        }
    }
}
