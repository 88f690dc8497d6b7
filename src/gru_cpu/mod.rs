//! A fused CPU GRU layer: the Keras `GRU(reset_after=True)` step with Keras's
//! dropout semantics, forward and hand-derived backward through time, in
//! pure Rust on f32 slices (no tch), multi-threaded over the batch and
//! vectorised with AVX-512F or AVX2+FMA where the CPU has them (detected at
//! run time; a scalar path runs everywhere else).
//!
//! Layouts are Keras's, row-major, gate blocks in the order z | r | h:
//! `kernel` W `[D, 3H]`, `bias` b `[3H]`, `recurrent_kernel` U `[H, 3H]`,
//! `recurrent_bias` b' `[3H]`. One step, for input `x` and state `h`
//! (`h_0 = 0`), with input dropout masks `mx_g` and recurrent masks `mh_g`
//! (already scaled by `1/(1-p)`, constant over time):
//!
//! ```text
//! z  = sigmoid((x*mx_z) W_z + b_z + (h*mh_z) U_z + b'_z)
//! r  = sigmoid((x*mx_r) W_r + b_r + (h*mh_r) U_r + b'_r)
//! hh = tanh((x*mx_h) W_h + b_h + r * ((h*mh_h) U_h + b'_h))
//! h  = z*h + (1-z)*hh          (the carried state is the unmasked h)
//! ```
//!
//! API: an [`Engine`] (the kernels for this CPU and a thread count) with
//! [`Engine::forward`] (training and evaluation; with a [`Tape`] it records
//! what [`Engine::backward`] needs), [`Engine::backward`] (all parameter
//! gradients and the gradient of the inputs), and the evaluation fast path
//! [`Engine::projection_table`] + [`Engine::forward_from_table`]: without
//! dropout the input projection `x_t W + b` depends only on the token id,
//! so it is computed once per vocabulary row and the recurrence gathers
//! rows of that table.
//!
//! One training step, with the masks drawn by the caller (libtorch's seeded
//! RNG) and the rest of the model in tch:
//!
//! ```text
//! let engine = Engine::new(2);
//! let w = GruWeights { input_dim: 128, units: 64, kernel, bias, recurrent_kernel, recurrent_bias };
//! let x = Sequences { data: &x, batch: b, steps: t };
//! let masks = Masks { input: InputMasks::PerGate(&mx), recurrent: Some(&mh) };
//! let h_t = engine.forward(&w, x, masks, Some(&mut tape));
//! // ... Dense + loss in tch, giving d_h_t = dLoss/dh_T [B, H] ...
//! let g = engine.backward(&w, x.data, &mut tape, &d_h_t, &mut d_x); // &Gradients, lent by the tape
//! // d_x [B, T, D] goes back into the embedding (summed by token id),
//! // g.d_kernel etc. into the optimizer.
//! ```
//!
//! Evaluation: `let table = engine.projection_table(&w, &embedding)` once
//! per evaluation, then `engine.forward_from_table(&w, &table, ids)` per
//! batch, with `ids = TokenIds { ids: &ids, batch: b, steps: t }`.
//!
//! The code by phase: `forward.rs` (input projections and the recurrence,
//! recording the tape), `backward.rs` (backward through time, then the
//! parameter and input gradients), `projection_table.rs` (evaluation from the
//! projection table), `matrix.rs` (the checked matrix helpers), `packed.rs`
//! (the weights padded for the kernels), `partition.rs` and the crate's `pool.rs` (the
//! split over threads), `kernels.rs` and `simd.rs` (the SIMD code).
//!
//! Threads: `threads` counts the calling thread; the others are persistent
//! workers (see `crate::pool`) that spin for up to 1 ms after a call, then
//! sleep. Give the layer all cores: on the 2-core target, 2. libtorch's
//! OpenMP threads spin for a while after each of its parallel ops and would
//! then compete with ours; at these tiny sizes libtorch gains little from
//! threads, so `tch::set_num_threads(1)` (or `OMP_WAIT_POLICY=passive`)
//! around this layer avoids the contention.
//!
//! Results do not depend on the thread count: rows are independent in the
//! recurrence, and parameter gradients are summed per fixed chunk of
//! [`CHUNK`] samples, then over chunks in order.
//!
//! Numerics: f32 throughout; sigmoid and tanh are vectorised
//! approximations within 2e-7 relative of the exact functions (see
//! `simd.rs`); forward and gradients match an f64 evaluation of the
//! equations to about 1e-5 relative (the tests).

mod backward;
mod forward;
mod kernels;
mod matrix;
mod packed;
mod partition;
mod projection_table;
mod simd;
#[cfg(test)]
mod tests;

use crate::pool::run_parallel;
use kernels::Kernels;
use std::ops::Range;

/// Samples per gradient-summation chunk (see the module docs). Small enough
/// that a final batch of 8 still splits over two threads.
pub const CHUNK: usize = 4;

/// The layer's parameters, borrowed, in Keras layout (see the module docs).
#[derive(Clone, Copy)]
pub struct GruWeights<'a> {
    /// D: the size of one input vector.
    pub input_dim: usize,
    /// H: the size of the state.
    pub units: usize,
    /// W `[D, 3H]`.
    pub kernel: &'a [f32],
    /// b `[3H]`.
    pub bias: &'a [f32],
    /// U `[H, 3H]`.
    pub recurrent_kernel: &'a [f32],
    /// b' `[3H]`.
    pub recurrent_bias: &'a [f32],
}

/// `[B, T, D]` embedded inputs.
#[derive(Clone, Copy)]
pub struct Sequences<'a> {
    pub data: &'a [f32],
    pub batch: usize,
    pub steps: usize,
}

/// `[B, T]` token ids.
#[derive(Clone, Copy)]
pub struct TokenIds<'a> {
    pub ids: &'a [i64],
    pub batch: usize,
    pub steps: usize,
}

/// Input dropout masks, one row of D per sample, values 0 or `1/(1-p)`.
#[derive(Clone, Copy)]
pub enum InputMasks<'a> {
    /// No input dropout.
    None,
    /// `[B, D]`, one mask for all three gates (Keras with `recurrent_dropout = 0`).
    Shared(&'a [f32]),
    /// `[3, B, D]`, gates z, r, h (Keras with `recurrent_dropout > 0`).
    PerGate(&'a [f32]),
}

/// A batch's dropout masks (drawn by the caller, scaled by `1/(1-p)`).
/// [`Masks::NONE`] for evaluation.
#[derive(Clone, Copy)]
pub struct Masks<'a> {
    pub input: InputMasks<'a>,
    /// `[3, B, H]` (gates z, r, h), or `None` without recurrent dropout.
    pub recurrent: Option<&'a [f32]>,
}

impl Masks<'_> {
    /// No dropout.
    pub const NONE: Masks<'static> = Masks {
        input: InputMasks::None,
        recurrent: None,
    };
}

/// What [`Engine::backward`] needs from [`Engine::forward`]: the states,
/// gate activations and copies of the masks, plus buffers that later calls
/// reuse. Create one with [`Tape::default`] and pass it to every training
/// step.
#[derive(Default)]
pub struct Tape {
    /// Set by `forward`; `backward` refuses a tape without it.
    filled: bool,
    record: forward::Record,
    scratch: backward::Scratch,
    grads: Gradients,
}

/// Gradients of the loss with respect to the parameters, in their layouts.
/// [`Engine::backward`] writes them into buffers the [`Tape`] keeps (no
/// allocation or page faults per training step) and lends them out.
#[derive(Clone, Default)]
pub struct Gradients {
    /// `[D, 3H]`.
    pub d_kernel: Vec<f32>,
    /// `[3H]`.
    pub d_bias: Vec<f32>,
    /// `[H, 3H]`.
    pub d_recurrent_kernel: Vec<f32>,
    /// `[3H]`.
    pub d_recurrent_bias: Vec<f32>,
}

/// The kernels for this CPU and a thread count; every entry point is a method.
#[derive(Clone, Copy)]
pub struct Engine {
    kernels: &'static Kernels,
    /// At least 1; counts the calling thread.
    threads: usize,
}

impl Engine {
    /// The best instruction set this CPU has; `threads` counts the calling
    /// thread (0 acts as 1).
    pub fn new(threads: usize) -> Engine {
        Engine {
            kernels: kernels::detect(),
            threads: threads.max(1),
        }
    }

    /// One engine per instruction set this CPU has, best first (the scalar
    /// one always last): for tests and benchmarks that compare them.
    pub fn all_available(threads: usize) -> Vec<Engine> {
        kernels::available()
            .into_iter()
            .map(|kernels| Engine {
                kernels,
                threads: threads.max(1),
            })
            .collect()
    }

    /// Threads a call uses at most, the calling one included.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// "avx512f", "avx2+fma" or "scalar" (for logs and benchmarks).
    pub fn instruction_set(&self) -> &'static str {
        self.kernels.name
    }

    /// Forward pass from embedded inputs `x [B, T, D]`; returns the last
    /// state `h_T [B, H]`. Training: pass the batch's masks and a tape,
    /// which this call fills for [`Engine::backward`]. Evaluation:
    /// [`Masks::NONE`], no tape (or see [`Engine::forward_from_table`]).
    pub fn forward(
        &self,
        w: &GruWeights,
        x: Sequences<'_>,
        masks: Masks<'_>,
        tape: Option<&mut Tape>,
    ) -> Vec<f32> {
        forward::forward(*self, w, x, masks, tape)
    }

    /// Backward pass through time for the batch that the last
    /// [`Engine::forward`] with this `tape` computed, at the weights that
    /// call ran with (the tape keeps them; `w` gives the shapes): `x` must
    /// be that call's input `[B, T, D]` (it is not copied into the tape),
    /// `d_h_last [B, H]` the gradient of the loss with respect to its
    /// output. Writes the gradient of the inputs into `d_x [B, T, D]` (the
    /// caller's, so that it can go on as a tensor without a copy) and
    /// returns the parameters' gradients, borrowed from the tape until its
    /// next use.
    pub fn backward<'t>(
        &self,
        w: &GruWeights,
        x: &[f32],
        tape: &'t mut Tape,
        d_h_last: &[f32],
        d_x: &mut [f32],
    ) -> &'t Gradients {
        backward::backward(*self, w, x, tape, d_h_last, d_x)
    }

    /// The embedding lookup: row `ids[i]` of `table [N, width]` into row
    /// `i` of `out [len(ids), width]`, the rows shared out over the
    /// threads. Panics if an id is not a row of `table`.
    pub fn gather_rows(&self, table: &[f32], width: usize, ids: &[i64], out: &mut [f32]) {
        assert_eq!(
            out.len(),
            ids.len() * width,
            "gru_cpu::Engine::gather_rows: out must be [len(ids), width]"
        );
        if width == 0 {
            return;
        }
        let ranges = self.split(ids.len());
        let jobs = ranges
            .iter()
            .map(|r| &ids[r.clone()])
            .zip(partition::split_rows(out, width, &ranges));
        run_parallel(jobs.collect(), |(ids, out)| {
            for (&id, row) in ids.iter().zip(out.chunks_exact_mut(width)) {
                row.copy_from_slice(&table[id as usize * width..][..width]);
            }
        });
    }

    /// The evaluation input projections of every vocabulary row:
    /// `table [V, 3H] = embedding [V, D] W + b`, for
    /// [`Engine::forward_from_table`].
    pub fn projection_table(&self, w: &GruWeights, embedding: &[f32]) -> Vec<f32> {
        projection_table::projection_table(*self, w, embedding)
    }

    /// Evaluation forward from token ids `[B, T]` through a
    /// [`Engine::projection_table`] `[V, 3H]`: the same result as
    /// [`Engine::forward`] on the embedded ids without masks. Returns `h_T
    /// [B, H]`.
    pub fn forward_from_table(&self, w: &GruWeights, table: &[f32], ids: TokenIds<'_>) -> Vec<f32> {
        projection_table::forward_from_table(*self, w, table, ids)
    }

    /// `n` items in contiguous near-equal ranges, one per thread, at most
    /// `n` of them (but always one).
    fn split(&self, n: usize) -> Vec<Range<usize>> {
        partition::split_even(n, self.threads.min(n).max(1))
    }
}

impl GruWeights<'_> {
    fn check(&self) {
        let (d, h) = (self.input_dim, self.units);
        assert!(d > 0 && h > 0, "gru_cpu: input_dim and units must be > 0");
        assert_eq!(
            self.kernel.len(),
            d * 3 * h,
            "gru_cpu: kernel must be [D, 3H]"
        );
        assert_eq!(self.bias.len(), 3 * h, "gru_cpu: bias must be [3H]");
        assert_eq!(
            self.recurrent_kernel.len(),
            h * 3 * h,
            "gru_cpu: recurrent_kernel must be [H, 3H]"
        );
        assert_eq!(
            self.recurrent_bias.len(),
            3 * h,
            "gru_cpu: recurrent_bias must be [3H]"
        );
    }
}

impl<'a> InputMasks<'a> {
    /// All mask rows, `[B, D]` or `[3, B, D]`; empty without masks.
    fn data(&self) -> &'a [f32] {
        match *self {
            InputMasks::None => &[],
            InputMasks::Shared(m) | InputMasks::PerGate(m) => m,
        }
    }

    /// Mask rows per sample: 0, 1 (shared by the gates) or 3.
    fn rows_per_sample(&self) -> usize {
        match self {
            InputMasks::None => 0,
            InputMasks::Shared(_) => 1,
            InputMasks::PerGate(_) => 3,
        }
    }

    /// How far apart one sample's rows of consecutive gates lie: 0 when
    /// the gates share a row.
    fn gate_stride(&self, batch: usize, d: usize) -> usize {
        match self {
            InputMasks::PerGate(_) => batch * d,
            InputMasks::None | InputMasks::Shared(_) => 0,
        }
    }

    /// The mask row of gate `g` for sample `b`, if any.
    fn row(&self, g: usize, b: usize, batch: usize, d: usize) -> Option<&'a [f32]> {
        match *self {
            InputMasks::None => None,
            InputMasks::Shared(m) => Some(&m[b * d..(b + 1) * d]),
            InputMasks::PerGate(m) => Some(&m[(g * batch + b) * d..(g * batch + b + 1) * d]),
        }
    }
}
