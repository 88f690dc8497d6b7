//! `GRU(units, reset_after=True)` in Keras's parameter layout, with Keras's
//! dropout masks. Its implementations are in files of their own:
//! `op_by_op.rs` (the Keras step in libtorch ops), `fused.rs` (libtorch's
//! fused GRU, cuDNN on a GPU), `cpu_kernel.rs` (our fused CPU kernel) and
//! `cuda_kernel.rs` (our CUDA kernels).
use tch::nn::{self, Init};
use tch::{Device, Kind, Tensor};

use super::glorot_uniform;
use crate::settings::ModelConfig;

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
/// On the CPU it is drawn as `uniform < 1 - p`, which is what libtorch's
/// `bernoulli` on a tensor of probabilities computes, element by element
/// from one 32-bit draw each (`at::bernoulli_distribution` over
/// `at::uniform_real_distribution`, as `uniform_` draws): the same masks,
/// and the generator left in the same state (`tests/model.rs` checks both).
/// `uniform_` skips the per-element checks and the tensor of
/// probabilities: a training step's masks took 57 us instead of 106 us
/// (2-core Zen 5, one thread). A GPU's two kernels consume its generator
/// differently, so there it stays `bernoulli`.
fn keep_mask(shape: &[i64], p: f64, device: Device) -> Tensor {
    let keep = 1.0 - p;
    let kept = match device {
        Device::Cpu => Tensor::rand(shape, (Kind::Float, device))
            .lt(keep)
            .to_kind(Kind::Float),
        _ => Tensor::full(shape, keep, (Kind::Float, device)).bernoulli(),
    };
    kept / keep
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
