//! The backward pass through time, per thread's block of samples in three
//! phases: the gate gradients of every step (from the last step back), then
//! per chunk of [`CHUNK`] samples the parameter-gradient products and each
//! sample's input gradient; finally the chunks' parameter gradients are
//! summed in order, so the result does not depend on the thread count.

use super::forward::Record;
use super::kernels::{Kernels, RawBwdStep};
use super::matrix::{copy_rows, extent, gemm, gemm_joined, sum_rows, Epilogue, Matrix, MatrixMut};
use super::packed::padded;
use super::partition::split_rows;
use super::{Engine, Gradients, GruWeights, InputMasks, Tape, CHUNK};
use crate::pool::run_parallel;
use std::ops::Range;

/// The backward pass's buffers, kept in the tape between steps.
#[derive(Default)]
pub(super) struct Scratch {
    /// `[B, T, Hp]` the h-gate block of the recurrent-side pre-activation
    /// gradients dR, `da_h * r` (its z and r blocks are dA's). The step's
    /// stores miss the caches: writing all of dR, it took 110-140 us of a
    /// thread's 1.1-1.2 ms backward at batch 32 (2-core Zen 5 VM), writing
    /// this block alone 43 us.
    d_rh: Vec<f32>,
    /// Per-chunk parameter gradients, [`PartialLayout`] each.
    partials: Vec<f32>,
}

/// See [`Engine::backward`].
pub(super) fn backward<'t>(
    engine: Engine,
    w: &GruWeights,
    x: &[f32],
    tape: &'t mut Tape,
    d_h_last: &[f32],
    d_x: &mut [f32],
) -> &'t Gradients {
    w.check();
    check_inputs(w, x, tape, d_h_last);
    assert_eq!(
        d_x.len(),
        x.len(),
        "gru_cpu::Engine::backward: d_x must be [B, T, D] like x"
    );
    let Tape {
        ref mut record,
        ref mut scratch,
        ref mut grads,
        ..
    } = *tape;
    // The input-side pre-activation gradients dA `[B, T, 3Hp]` take the
    // buffer of the input projections, dead once the forward pass has
    // run: a step's working set shrinks by their 2.5 MB (at batch 32),
    // which Adam's pass over the embedding's 15 MB then finds in the
    // last-level cache more often.
    let mut d_a = std::mem::take(&mut record.xp);
    let pass = BackwardPass::new(engine.kernels, w, x, record, d_h_last);
    let (batch, steps, d, g3) = (pass.batch, pass.steps, pass.d, 3 * pass.hp);
    let n_chunks = batch.div_ceil(CHUNK);
    let chunk_ranges = engine.split(n_chunks);
    let ranges: Vec<Range<usize>> = chunk_ranges
        .iter()
        .map(|c| c.start * CHUNK..(c.end * CHUNK).min(batch))
        .collect();
    let part_len = pass.layout.len();
    // Zeroed by the jobs, each its own chunks, on all threads (with no
    // chunks at all, here: the one partial is the zero gradient).
    scratch.partials.resize(n_chunks.max(1) * part_len, 0.0);
    if n_chunks == 0 {
        scratch.partials.fill(0.0);
    }
    // Fully overwritten below: resizing keeps old values, no zeroing pass.
    d_a.resize(batch * steps * g3, 0.0);
    scratch.d_rh.resize(batch * steps * pass.hp, 0.0);
    let das = split_rows(&mut d_a, steps * g3, &ranges);
    let drhs = split_rows(&mut scratch.d_rh, steps * pass.hp, &ranges);
    let dxs = split_rows(d_x, steps * d, &ranges);
    let parts = split_rows(&mut scratch.partials, part_len, &chunk_ranges);
    let jobs: Vec<BackwardJob> = ranges
        .into_iter()
        .zip(das.into_iter().zip(drhs))
        .zip(dxs.into_iter().zip(parts))
        .map(|((rows, (d_a, d_rh)), (d_x, partials))| BackwardJob {
            rows,
            d_a,
            d_rh,
            d_x,
            partials,
        })
        .collect();
    run_parallel(jobs, |job| pass.block(job));
    pass.sum_chunks(engine, &mut scratch.partials, n_chunks, grads);
    record.xp = d_a;
    &tape.grads
}

fn check_inputs(w: &GruWeights, x: &[f32], tape: &Tape, d_h_last: &[f32]) {
    assert!(
        tape.filled,
        "gru_cpu::Engine::backward: the tape was not filled by forward"
    );
    let r = &tape.record;
    assert!(
        r.input_dim == w.input_dim && r.units == w.units,
        "gru_cpu::Engine::backward: weights differ in shape from the forward call's"
    );
    assert_eq!(
        x.len(),
        r.batch * r.steps * w.input_dim,
        "gru_cpu::Engine::backward: x must be forward's [B, T, D]"
    );
    assert_eq!(
        d_h_last.len(),
        r.batch * w.units,
        "gru_cpu::Engine::backward: d_h_last must be [B, H]"
    );
}

/// One chunk's parameter gradients, in the padded layouts, one after the
/// other: `dW [D, 3Hp] | dU [H, 3Hp] | db [3Hp] | db' [3Hp]`.
#[derive(Clone, Copy)]
struct PartialLayout {
    input_dim: usize,
    units: usize,
    /// 3Hp.
    width: usize,
}

/// The pieces of one [`PartialLayout`].
struct ParameterGradients<'a> {
    kernel: &'a mut [f32],
    recurrent_kernel: &'a mut [f32],
    bias: &'a mut [f32],
    recurrent_bias: &'a mut [f32],
}

impl PartialLayout {
    fn len(&self) -> usize {
        (self.input_dim + self.units + 2) * self.width
    }

    fn split<'a>(&self, part: &'a mut [f32]) -> ParameterGradients<'a> {
        let (kernel, rest) = part.split_at_mut(self.input_dim * self.width);
        let (recurrent_kernel, rest) = rest.split_at_mut(self.units * self.width);
        let (bias, recurrent_bias) = rest.split_at_mut(self.width);
        ParameterGradients {
            kernel,
            recurrent_kernel,
            bias,
            recurrent_bias,
        }
    }
}

/// One thread's share: its samples and their rows of every buffer.
struct BackwardJob<'a> {
    rows: Range<usize>,
    /// `[R, T, 3Hp]`.
    d_a: &'a mut [f32],
    /// `[R, T, Hp]`.
    d_rh: &'a mut [f32],
    /// `[R, T, D]`.
    d_x: &'a mut [f32],
    /// The partial gradients of the chunks of `rows`.
    partials: &'a mut [f32],
}

/// What every block of one backward call shares.
struct BackwardPass<'a> {
    kernels: &'static Kernels,
    d: usize,
    /// D padded to a multiple of 16, the width of the d_x products.
    dp: usize,
    h: usize,
    hp: usize,
    batch: usize,
    steps: usize,
    x: &'a [f32],
    record: &'a Record,
    input_masks: InputMasks<'a>,
    d_h_last: &'a [f32],
    /// U^T `[3Hp, Hp]`, for the state gradient.
    ut: Vec<f32>,
    /// W^T `[3Hp, Dp]`, for the input gradient.
    wt: Vec<f32>,
    layout: PartialLayout,
}

/// A sample's scratch for [`BackwardPass::input_gradient`].
struct InputGradientScratch {
    /// The sample's input mask rows, zero-padded to Dp: `[3, Dp]`.
    mask_rows: Vec<f32>,
    /// `[T, Dp]` when D is not a multiple of 16, else empty.
    dx_padded: Vec<f32>,
}

impl<'a> BackwardPass<'a> {
    fn new(
        kernels: &'static Kernels,
        w: &GruWeights,
        x: &'a [f32],
        record: &'a Record,
        d_h_last: &'a [f32],
    ) -> Self {
        let packed = record
            .packed
            .as_ref()
            .expect("a filled tape holds the weights its forward pass ran with");
        let (d, hp) = (w.input_dim, packed.hp);
        let dp = padded(d);
        BackwardPass {
            kernels,
            d,
            dp,
            h: w.units,
            hp,
            batch: record.batch,
            steps: record.steps,
            x,
            record,
            input_masks: record.input_masks(),
            d_h_last,
            ut: packed.u_transposed(),
            wt: packed.w_transposed(d, dp),
            layout: PartialLayout {
                input_dim: d,
                units: w.units,
                width: 3 * hp,
            },
        }
    }

    /// One thread's share: the gate gradients of its samples, then per
    /// chunk the parameter gradients and each sample's input gradient.
    fn block(&self, job: BackwardJob) {
        job.partials.fill(0.0);
        // Nothing more to do; the zeroed partials are the gradients.
        if job.rows.is_empty() || self.steps == 0 {
            return;
        }
        self.gate_gradients(job.rows.clone(), job.d_a, job.d_rh);
        let mut scratch = InputGradientScratch {
            mask_rows: vec![0.0; 3 * self.dp],
            dx_padded: if self.dp == self.d {
                Vec::new()
            } else {
                vec![0.0; self.steps * self.dp]
            },
        };
        let (rows, g3, steps) = (job.rows, 3 * self.hp, self.steps);
        // Per chunk, samples in order.
        for (c, part) in job.partials.chunks_exact_mut(self.layout.len()).enumerate() {
            let mut grads = self.layout.split(part);
            let first = rows.start + c * CHUNK;
            for b in first..(first + CHUNK).min(rows.end) {
                let i = b - rows.start;
                let da_b = &job.d_a[i * steps * g3..(i + 1) * steps * g3];
                let drh_b = &job.d_rh[i * steps * self.hp..(i + 1) * steps * self.hp];
                self.parameter_gradients(b, da_b, drh_b, &mut grads);
                let dx_b = &mut job.d_x[i * steps * self.d..(i + 1) * steps * self.d];
                self.input_gradient(b, da_b, dx_b, &mut scratch);
            }
        }
    }

    /// Backward through time for samples `rows`: every step's gate
    /// gradients into `da` (`[R, T, 3Hp]`) and `drh` (`[R, T, Hp]`).
    fn gate_gradients(&self, rows: Range<usize>, da: &mut [f32], drh: &mut [f32]) {
        let (h, hp, steps, r_n) = (self.h, self.hp, self.steps, rows.len());
        let g3 = 3 * hp;
        let hs = &self.record.hs[rows.start * (steps + 1) * hp..];
        let gates = &self.record.gates[rows.start * steps * 4 * hp..];
        let mut dh = vec![0.0; r_n * hp];
        copy_rows(&self.d_h_last[rows.start * h..], h, &mut dh, hp);
        let mut dh_next = vec![0.0; r_n * hp];
        for t in (0..steps).rev() {
            BackwardStep {
                rows: r_n,
                hp,
                dh: &dh,
                dh_next: &mut dh_next,
                gates: &gates[t * 4 * hp..],
                gates_ld: steps * 4 * hp,
                hprev: &hs[t * hp..],
                hs_ld: (steps + 1) * hp,
                da: &mut da[t * g3..],
                d_ld: steps * g3,
                drh: &mut drh[t * hp..],
                drh_ld: steps * hp,
            }
            .run(self.kernels);
            let step = StepGradients {
                da: &da[t * g3..],
                drh: &drh[t * hp..],
                rows: r_n,
            };
            self.state_gradient(step, rows.start, &mut dh_next);
            std::mem::swap(&mut dh, &mut dh_next);
        }
    }

    /// Adds the recurrent part to `dh_prev` (holding `dh*z`) of the rows
    /// from `first`: `dh_prev += sum_g mh_g * (dR_g U_g^T)` at one step.
    fn state_gradient(&self, step: StepGradients, first: usize, dh_prev: &mut [f32]) {
        let (hp, steps, r_n) = (self.hp, self.steps, step.rows);
        let g3 = 3 * hp;
        let mut c = MatrixMut::row_major(dh_prev, r_n, hp, hp);
        let masks = &self.record.recurrent_masks;
        let z_r = Matrix::row_major(step.da, r_n, 2 * hp, steps * g3);
        let h = Matrix::row_major(step.drh, r_n, hp, steps * hp);
        if masks.is_empty() {
            let ut = Matrix::row_major(&self.ut, g3, hp, hp);
            gemm_joined(self.kernels, [z_r, h], ut, c, Epilogue::Add);
            return;
        }
        for g in 0..3 {
            let a = match g {
                2 => h,
                _ => Matrix::row_major(&step.da[g * hp..], r_n, hp, steps * g3),
            };
            let ut_g = Matrix::row_major(&self.ut[g * hp * hp..], hp, hp, hp);
            let epi = Epilogue::ElemScale {
                scale: &masks[(g * self.batch + first) * hp..],
                ld: hp,
                add: true,
            };
            gemm(self.kernels, a, ut_g, c.reborrow(), epi);
        }
    }

    /// Adds sample `b`'s share to the chunk's parameter gradients.
    fn parameter_gradients(
        &self,
        b: usize,
        da_b: &[f32],
        drh_b: &[f32],
        grads: &mut ParameterGradients,
    ) {
        let (d, h, hp, steps, kern) = (self.d, self.h, self.hp, self.steps, self.kernels);
        let g3 = 3 * hp;
        let da = Matrix::row_major(da_b, steps, g3, g3);
        // dW[k][j] += mx_g(j)[b][k] * sum_t x[b][t][k] dA[b][t][j]
        let epi = match self.input_masks {
            InputMasks::None => Epilogue::Add,
            masks => Epilogue::RowScale {
                scale: &masks.data()[b * d..],
                gate_stride: masks.gate_stride(self.batch, d),
                gate_width: hp,
            },
        };
        let x_b = Matrix::row_major(&self.x[b * steps * d..], steps, d, d);
        let dw = MatrixMut::row_major(grads.kernel, d, g3, g3);
        gemm(kern, x_b.transposed(), da, dw, epi);
        sum_rows(kern, grads.bias, da);
        // dU[k][j] += mh_g(j)[b][k] * sum_t h_t-1[b][k] dR[b][t][j], in two
        // products: dR's z and r blocks are dA's, its h block is `drh_b`.
        let masks = &self.record.recurrent_masks;
        let epi = |first_gate: usize| {
            if masks.is_empty() {
                Epilogue::Add
            } else {
                let gate_stride = self.batch * hp;
                Epilogue::RowScale {
                    scale: &masks[first_gate * gate_stride + b * hp..],
                    gate_stride,
                    gate_width: hp,
                }
            }
        };
        let h_b = Matrix::row_major(&self.record.hs[b * (steps + 1) * hp..], steps, h, hp);
        let dr_z_r = Matrix::row_major(da_b, steps, 2 * hp, g3);
        let dr_h = Matrix::row_major(drh_b, steps, hp, hp);
        let du = &mut *grads.recurrent_kernel;
        let du_z_r = MatrixMut::row_major(du, h, 2 * hp, g3);
        gemm(kern, h_b.transposed(), dr_z_r, du_z_r, epi(0));
        let du_h = MatrixMut::row_major(&mut du[2 * hp..], h, hp, g3);
        gemm(kern, h_b.transposed(), dr_h, du_h, epi(2));
        // The recurrent bias's z and r columns are the bias's sums, which
        // `sum_chunks` copies: only its h columns are summed here.
        sum_rows(kern, &mut grads.recurrent_bias[2 * hp..], dr_h);
    }

    /// Sample `b`'s input gradient `dx_b [T, D]`, through a padded scratch
    /// when D is not a multiple of 16.
    fn input_gradient(
        &self,
        b: usize,
        da_b: &[f32],
        dx_b: &mut [f32],
        scratch: &mut InputGradientScratch,
    ) {
        let (d, dp, steps) = (self.d, self.dp, self.steps);
        let mask_rows = &mut scratch.mask_rows;
        if dp == d {
            let c = MatrixMut::row_major(dx_b, steps, d, d);
            self.input_gradient_product(b, da_b, c, mask_rows);
        } else {
            let c = MatrixMut::row_major(&mut scratch.dx_padded, steps, dp, dp);
            self.input_gradient_product(b, da_b, c, mask_rows);
            copy_rows(&scratch.dx_padded, dp, dx_b, d);
        }
    }

    /// `d_x[b] = sum_g mx_g[b] * (dA_g[b] W_g^T)` into `c [T, Dp]`: the
    /// masks scale the product's columns, in its epilogue.
    fn input_gradient_product(
        &self,
        b: usize,
        da_b: &[f32],
        mut c: MatrixMut,
        mask_rows: &mut [f32],
    ) {
        let (d, dp, hp, steps) = (self.d, self.dp, self.hp, self.steps);
        let g3 = 3 * hp;
        let masks = self.input_masks;
        if let InputMasks::None = masks {
            let a = Matrix::row_major(da_b, steps, g3, g3);
            let wt = Matrix::row_major(&self.wt, g3, dp, dp);
            gemm(self.kernels, a, wt, c, Epilogue::Store);
            return;
        }
        // One product over all gates with a shared mask, else one per gate.
        let products = masks.rows_per_sample();
        for g in 0..products {
            let row = masks.row(g, b, self.batch, d).expect("masked");
            mask_rows[g * dp..g * dp + d].copy_from_slice(row);
        }
        let k = g3 / products;
        for g in 0..products {
            let a = Matrix::row_major(&da_b[g * hp..], steps, k, g3);
            let wt = Matrix::row_major(&self.wt[g * hp * dp..], k, dp, dp);
            let epi = Epilogue::ElemScale {
                scale: &mask_rows[g * dp..(g + 1) * dp],
                ld: 0,
                add: g > 0,
            };
            gemm(self.kernels, a, wt, c.reborrow(), epi);
        }
    }

    /// Sums the chunks' partial gradients in order and writes them,
    /// without the padding, into `grads`. The columns are shared out over
    /// the threads (each column's sum keeps its order): on one thread it
    /// took 21 us of a 1.2 ms backward at batch 32.
    fn sum_chunks(
        &self,
        engine: Engine,
        partials: &mut [f32],
        n_chunks: usize,
        grads: &mut Gradients,
    ) {
        let (d, h, hp) = (self.d, self.h, self.hp);
        let len = self.layout.len();
        let (total, rest) = partials.split_at_mut(len);
        let rest = &*rest;
        // In whole vectors of 16 floats, as `sum_rows` takes them.
        let ranges: Vec<Range<usize>> = engine
            .split(len / 16)
            .into_iter()
            .map(|r| r.start * 16..r.end * 16)
            .collect();
        let jobs: Vec<_> = split_rows(total, 1, &ranges)
            .into_iter()
            .zip(&ranges)
            .collect();
        run_parallel(jobs, |(total, cols)| {
            let others = &rest[cols.start.min(rest.len())..];
            let others = Matrix::row_major(others, n_chunks.saturating_sub(1), cols.len(), len);
            sum_rows(self.kernels, total, others);
        });
        let total = self.layout.split(total);
        // dR's z and r blocks are dA's, so the two biases share those sums.
        total.recurrent_bias[..2 * hp].copy_from_slice(&total.bias[..2 * hp]);
        grads.d_kernel.resize(d * 3 * h, 0.0);
        grads.d_bias.resize(3 * h, 0.0);
        grads.d_recurrent_kernel.resize(h * 3 * h, 0.0);
        grads.d_recurrent_bias.resize(3 * h, 0.0);
        copy_rows(total.kernel, hp, &mut grads.d_kernel, h);
        copy_rows(total.recurrent_kernel, hp, &mut grads.d_recurrent_kernel, h);
        copy_rows(total.bias, hp, &mut grads.d_bias, h);
        copy_rows(total.recurrent_bias, hp, &mut grads.d_recurrent_bias, h);
    }
}

/// One backward step for `rows` samples (see [`RawBwdStep`]).
struct BackwardStep<'a> {
    rows: usize,
    hp: usize,
    /// The gradient of the step's output state, `[rows, Hp]`.
    dh: &'a [f32],
    /// Receives `dh * z`, the direct part of the previous state's gradient.
    dh_next: &'a mut [f32],
    /// Row i's `[z | r | hh | rh]` at `gates[i * gates_ld..]`.
    gates: &'a [f32],
    gates_ld: usize,
    /// Row i's previous state at `hprev[i * hs_ld..]`.
    hprev: &'a [f32],
    hs_ld: usize,
    /// Row i's dA at `da[i * d_ld..]`.
    da: &'a mut [f32],
    d_ld: usize,
    /// Row i's `da_h * r` at `drh[i * drh_ld..]`.
    drh: &'a mut [f32],
    drh_ld: usize,
}

/// One step's gate gradients for the state gradient: row i's dA at
/// `da[i * T * 3Hp..]`, its `da_h * r` at `drh[i * T * Hp..]`.
#[derive(Clone, Copy)]
struct StepGradients<'a> {
    da: &'a [f32],
    drh: &'a [f32],
    rows: usize,
}

impl BackwardStep<'_> {
    /// Checks every operand's range, then runs the SIMD step.
    fn run(self, kern: &Kernels) {
        let (rows, hp) = (self.rows, self.hp);
        assert!(extent(rows, self.gates_ld, 4 * hp, 1) <= self.gates.len());
        assert!(extent(rows, self.hs_ld, hp, 1) <= self.hprev.len());
        assert!(extent(rows, self.d_ld, 3 * hp, 1) <= self.da.len());
        assert!(extent(rows, self.drh_ld, hp, 1) <= self.drh.len());
        assert!(self.dh.len() >= rows * hp && self.dh_next.len() >= rows * hp);
        let raw = RawBwdStep {
            rows,
            hp,
            dh: self.dh.as_ptr(),
            dh_next: self.dh_next.as_mut_ptr(),
            gates: self.gates.as_ptr(),
            gates_ld: self.gates_ld,
            hprev: self.hprev.as_ptr(),
            hs_ld: self.hs_ld,
            da: self.da.as_mut_ptr(),
            d_ld: self.d_ld,
            drh: self.drh.as_mut_ptr(),
            drh_ld: self.drh_ld,
        };
        // SAFETY: the five asserts above cover every row the step reads or
        // writes; `kern` matches this CPU.
        unsafe { (kern.bwd_step)(&raw) };
    }
}
