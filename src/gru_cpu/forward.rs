//! The forward pass: per block of samples, the input projections of all
//! steps in one product, then the recurrence step by step, recording the
//! tape for the backward pass when training.

use super::kernels::{Kernels, RawFwdStep};
use super::matrix::{copy_rows, extent, gemm, Epilogue, Matrix, MatrixMut};
use super::packed::Packed;
use super::partition::{row_blocks, split_rows};
use super::{Engine, GruWeights, InputMasks, Masks, Sequences, Tape};
use crate::pool::run_parallel;
use std::ops::Range;

/// Rows of one block of the evaluation recurrence: the block's state,
/// recurrent products and gathered inputs stay in L1/L2 over all steps.
pub(super) const EVAL_BLOCK: usize = 32;

/// Which input masks a tape holds; their rows are in `Record::input_masks`.
#[derive(Clone, Copy, Default)]
enum InputMaskKind {
    #[default]
    None,
    Shared,
    PerGate,
}

/// What the forward pass records for the backward pass, and its scratch.
#[derive(Default)]
pub(super) struct Record {
    pub(super) batch: usize,
    pub(super) steps: usize,
    pub(super) input_dim: usize,
    pub(super) units: usize,
    input_mask_kind: InputMaskKind,
    input_masks: Vec<f32>,
    /// `[3, B, Hp]`, zero-padded; empty without recurrent masks.
    pub(super) recurrent_masks: Vec<f32>,
    /// `[B, T, 3Hp]` input projections (forward scratch; the backward
    /// pass reuses the buffer).
    pub(super) xp: Vec<f32>,
    /// `[B, T+1, Hp]` states, `h_0 = 0` first.
    pub(super) hs: Vec<f32>,
    /// `[B, T, 4, Hp]`: z, r, hh and the recurrent h-gate product rh.
    pub(super) gates: Vec<f32>,
    /// The weights the forward pass ran with, padded.
    pub(super) packed: Option<Packed>,
}

impl Record {
    /// The input masks of the recorded batch.
    pub(super) fn input_masks(&self) -> InputMasks<'_> {
        match self.input_mask_kind {
            InputMaskKind::None => InputMasks::None,
            InputMaskKind::Shared => InputMasks::Shared(&self.input_masks),
            InputMaskKind::PerGate => InputMasks::PerGate(&self.input_masks),
        }
    }

    /// Takes the shapes and masks of `pass`'s batch and sizes the buffers
    /// (old values stay where the forward pass overwrites them anyway).
    fn begin(&mut self, pass: &ForwardPass) {
        let (batch, steps, hp) = (pass.x.batch, pass.x.steps, pass.packed.hp);
        self.batch = batch;
        self.steps = steps;
        self.input_dim = pass.w.input_dim;
        self.units = pass.w.units;
        self.input_mask_kind = match pass.input_masks {
            InputMasks::None => InputMaskKind::None,
            InputMasks::Shared(_) => InputMaskKind::Shared,
            InputMasks::PerGate(_) => InputMaskKind::PerGate,
        };
        self.input_masks.clear();
        self.input_masks.extend_from_slice(pass.input_masks.data());
        self.recurrent_masks.clear();
        self.recurrent_masks
            .extend_from_slice(pass.recurrent_masks.as_deref().unwrap_or(&[]));
        self.xp.resize(batch * steps * 3 * hp, 0.0);
        self.hs.resize(batch * (steps + 1) * hp, 0.0);
        self.gates.resize(batch * steps * 4 * hp, 0.0);
    }
}

/// See [`Engine::forward`].
pub(super) fn forward(
    engine: Engine,
    w: &GruWeights,
    x: Sequences,
    masks: Masks,
    tape: Option<&mut Tape>,
) -> Vec<f32> {
    w.check();
    check_inputs(w, x, masks);
    let pass = ForwardPass::new(engine.kernels, *w, x, masks);
    let mut out = vec![0.0; x.batch * w.units];
    let ranges = engine.split(x.batch);
    match tape {
        Some(tape) => {
            pass.run_taped(tape, ranges, &mut out);
            // The backward pass takes the same padded weights.
            tape.record.packed = Some(pass.packed);
        }
        None => pass.run_untaped(ranges, &mut out),
    }
    out
}

fn check_inputs(w: &GruWeights, x: Sequences, masks: Masks) {
    let (d, h, batch) = (w.input_dim, w.units, x.batch);
    assert_eq!(
        x.data.len(),
        batch * x.steps * d,
        "gru_cpu::Engine::forward: x must be [B, T, D]"
    );
    match masks.input {
        InputMasks::None => {}
        InputMasks::Shared(m) => assert_eq!(
            m.len(),
            batch * d,
            "gru_cpu::Engine::forward: shared input mask must be [B, D]"
        ),
        InputMasks::PerGate(m) => assert_eq!(
            m.len(),
            3 * batch * d,
            "gru_cpu::Engine::forward: per-gate input masks must be [3, B, D]"
        ),
    }
    if let Some(m) = masks.recurrent {
        assert_eq!(
            m.len(),
            3 * batch * h,
            "gru_cpu::Engine::forward: recurrent masks must be [3, B, H]"
        );
    }
}

/// What every block of one forward call shares.
struct ForwardPass<'a> {
    kernels: &'static Kernels,
    w: GruWeights<'a>,
    packed: Packed,
    x: Sequences<'a>,
    input_masks: InputMasks<'a>,
    /// `[3, B, Hp]` zero-padded recurrent masks, if any.
    recurrent_masks: Option<Vec<f32>>,
}

/// One block's rows of the tape.
struct BlockTape<'a> {
    /// `[R, T+1, Hp]`.
    hs: &'a mut [f32],
    /// `[R, T, 4Hp]`.
    gates: &'a mut [f32],
}

impl BlockTape<'_> {
    /// Records `h_0 = 0` for each of the `rows` rows.
    fn start(&mut self, rows: usize, steps: usize, hp: usize) {
        for i in 0..rows {
            self.hs[i * (steps + 1) * hp..][..hp].fill(0.0);
        }
    }

    /// Where step `t` records its gates and new states.
    fn step(&mut self, t: usize, steps: usize, hp: usize) -> StepTape<'_> {
        StepTape {
            gates: &mut self.gates[t * 4 * hp..],
            gates_ld: steps * 4 * hp,
            hs: &mut self.hs[(t + 1) * hp..],
            hs_ld: (steps + 1) * hp,
        }
    }
}

/// One thread's share of a taped forward call.
struct TapedJob<'a> {
    rows: Range<usize>,
    xp: &'a mut [f32],
    tape: BlockTape<'a>,
    out: &'a mut [f32],
}

impl<'a> ForwardPass<'a> {
    fn new(
        kernels: &'static Kernels,
        w: GruWeights<'a>,
        x: Sequences<'a>,
        masks: Masks<'a>,
    ) -> Self {
        let packed = Packed::new(&w);
        let hp = packed.hp;
        let recurrent_masks = masks.recurrent.map(|m| {
            let mut padded = vec![0.0; 3 * x.batch * hp];
            copy_rows(m, w.units, &mut padded, hp);
            padded
        });
        ForwardPass {
            kernels,
            w,
            packed,
            x,
            input_masks: masks.input,
            recurrent_masks,
        }
    }

    /// Training: the blocks are the threads' shares, their scratch and
    /// tape rows the tape's.
    fn run_taped(&self, tape: &mut Tape, ranges: Vec<Range<usize>>, out: &mut [f32]) {
        let record = &mut tape.record;
        record.begin(self);
        let (steps, hp) = (self.x.steps, self.packed.hp);
        let xps = split_rows(&mut record.xp, steps * 3 * hp, &ranges);
        let hss = split_rows(&mut record.hs, (steps + 1) * hp, &ranges);
        let gss = split_rows(&mut record.gates, steps * 4 * hp, &ranges);
        let outs = split_rows(out, self.w.units, &ranges);
        let jobs: Vec<TapedJob> = ranges
            .into_iter()
            .zip(xps)
            .zip(hss.into_iter().zip(gss))
            .zip(outs)
            .map(|(((rows, xp), (hs, gates)), out)| TapedJob {
                rows,
                xp,
                tape: BlockTape { hs, gates },
                out,
            })
            .collect();
        run_parallel(jobs, |job| {
            self.block(job.rows, job.xp, Some(job.tape), job.out);
        });
        tape.filled = true;
    }

    /// Evaluation: each thread's share runs in blocks of [`EVAL_BLOCK`]
    /// rows that reuse one scratch buffer.
    fn run_untaped(&self, ranges: Vec<Range<usize>>, out: &mut [f32]) {
        let (h, g3) = (self.w.units, 3 * self.packed.hp);
        run_parallel(row_blocks(out, h, ranges), |job| {
            let rows = job.rows;
            let mut xp = vec![0.0; EVAL_BLOCK.min(rows.len()) * self.x.steps * g3];
            for (start, out) in rows
                .clone()
                .step_by(EVAL_BLOCK)
                .zip(job.out.chunks_mut(EVAL_BLOCK * h))
            {
                let block = start..(start + EVAL_BLOCK).min(rows.end);
                self.block(block, &mut xp, None, out);
            }
        });
    }

    /// Forward over samples `rows` (all time steps): input projections into
    /// `xp [R, T, 3Hp]`, then the recurrence; final states into `out [R, H]`.
    fn block(&self, rows: Range<usize>, xp: &mut [f32], tape: Option<BlockTape>, out: &mut [f32]) {
        if rows.is_empty() {
            return;
        }
        self.input_projections(rows.clone(), xp);
        self.recurrence(rows, xp, tape, out);
    }

    /// `xp = (x * mx_g) W_g + b_g` for all steps: one product for the block
    /// without input masks, else one per sample with its scaled kernel.
    fn input_projections(&self, rows: Range<usize>, xp: &mut [f32]) {
        let (kern, p) = (self.kernels, &self.packed);
        let (d, t_n, g3) = (self.w.input_dim, self.x.steps, 3 * p.hp);
        let r_n = rows.len();
        let x = self.x.data;
        if let InputMasks::None = self.input_masks {
            let a = Matrix::row_major(&x[rows.start * t_n * d..], r_n * t_n, d, d);
            let c = MatrixMut::row_major(xp, r_n * t_n, g3, g3);
            gemm(kern, a, p.kernel(), c, Epilogue::StoreBias(&p.b));
            return;
        }
        let mut scaled = vec![0.0; d * g3];
        for (i, b) in rows.enumerate() {
            let m = |g| self.input_masks.row(g, b, self.x.batch, d).expect("masked");
            p.scaled_kernel([m(0), m(1), m(2)], &mut scaled);
            let a = Matrix::row_major(&x[b * t_n * d..], t_n, d, d);
            let c = MatrixMut::row_major(&mut xp[i * t_n * g3..], t_n, g3, g3);
            let scaled_kernel = Matrix::row_major(&scaled, d, g3, g3);
            gemm(kern, a, scaled_kernel, c, Epilogue::StoreBias(&p.b));
        }
    }

    /// The recurrence over all steps from `h_0 = 0`, inputs from `xp`.
    fn recurrence(
        &self,
        rows: Range<usize>,
        xp: &[f32],
        mut tape: Option<BlockTape>,
        out: &mut [f32],
    ) {
        let (hp, t_n, r_n) = (self.packed.hp, self.x.steps, rows.len());
        let g3 = 3 * hp;
        let mut state = vec![0.0; r_n * hp];
        let mut rec = vec![0.0; r_n * g3];
        // The state times each gate's recurrent masks, for the next products.
        let mut masked_copies = self
            .recurrent_masks
            .as_ref()
            .map(|_| vec![0.0; 3 * r_n * hp]);
        let row_masks = self
            .recurrent_masks
            .as_deref()
            .map(|m| &m[rows.start * hp..]);
        let mut xoff = vec![0; r_n];
        if let Some(tape) = tape.as_mut() {
            tape.start(r_n, t_n, hp);
        }
        for t in 0..t_n {
            let (kern, p) = (self.kernels, &self.packed);
            recurrent_product(kern, p, r_n, &state, masked_copies.as_deref(), &mut rec);
            for (i, o) in xoff.iter_mut().enumerate() {
                *o = (i * t_n + t) * g3;
            }
            let masked = masked_copies
                .as_deref_mut()
                .zip(row_masks)
                .map(|(copies, masks)| MaskedState {
                    copies,
                    masks,
                    gate_stride: self.x.batch * hp,
                });
            ForwardStep {
                hp,
                x: xp,
                xoff: &xoff,
                rec: &rec,
                h: &mut state,
                masked,
                tape: tape.as_mut().map(|tape| tape.step(t, t_n, hp)),
            }
            .run(kern);
        }
        copy_rows(&state, hp, out, self.w.units);
    }
}

/// The recurrent products of one step, `rec = (h*mh_g) U_g + b'_g`, for
/// `rows` rows. Without masks one product over all three gates; with them
/// one per gate from the masked copies `hm [3, rows, Hp]`.
pub(super) fn recurrent_product(
    kern: &Kernels,
    p: &Packed,
    rows: usize,
    h: &[f32],
    hm: Option<&[f32]>,
    rec: &mut [f32],
) {
    let (hp, g3) = (p.hp, 3 * p.hp);
    match hm {
        None => gemm(
            kern,
            Matrix::row_major(h, rows, hp, hp),
            Matrix::row_major(&p.u, hp, g3, g3),
            MatrixMut::row_major(rec, rows, g3, g3),
            Epilogue::StoreBias(&p.rb),
        ),
        Some(hm) => {
            for g in 0..3 {
                gemm(
                    kern,
                    Matrix::row_major(&hm[g * rows * hp..], rows, hp, hp),
                    Matrix::row_major(&p.u[g * hp..], hp, hp, g3),
                    MatrixMut::row_major(&mut rec[g * hp..], rows, hp, g3),
                    Epilogue::StoreBias(&p.rb[g * hp..]),
                );
            }
        }
    }
}

/// Where a step writes the masked copies of the new state for the next
/// step's recurrent products.
pub(super) struct MaskedState<'a> {
    /// `hm [3, rows, Hp]`.
    pub(super) copies: &'a mut [f32],
    /// The recurrent masks of these rows, gate g's at `g * gate_stride`.
    pub(super) masks: &'a [f32],
    pub(super) gate_stride: usize,
}

/// Where a step records its rows of the tape.
pub(super) struct StepTape<'a> {
    /// `[z | r | hh | rh]` of row i at `gates[i * gates_ld..]`.
    pub(super) gates: &'a mut [f32],
    pub(super) gates_ld: usize,
    /// The new state of row i at `hs[i * hs_ld..]`.
    pub(super) hs: &'a mut [f32],
    pub(super) hs_ld: usize,
}

/// One forward step for `xoff.len()` rows (see [`RawFwdStep`]).
pub(super) struct ForwardStep<'a> {
    pub(super) hp: usize,
    /// Input projections; row i's `[xz | xr | xh]` at `x[xoff[i]..]`.
    pub(super) x: &'a [f32],
    pub(super) xoff: &'a [usize],
    /// Recurrent products `[rows, 3Hp]`.
    pub(super) rec: &'a [f32],
    /// The state `[rows, Hp]`, updated in place.
    pub(super) h: &'a mut [f32],
    pub(super) masked: Option<MaskedState<'a>>,
    pub(super) tape: Option<StepTape<'a>>,
}

impl ForwardStep<'_> {
    /// Checks every operand's range, then runs the SIMD step.
    pub(super) fn run(self, kern: &Kernels) {
        let (rows, hp) = (self.xoff.len(), self.hp);
        if rows == 0 {
            return;
        }
        assert!(self.xoff.iter().all(|&o| o + 3 * hp <= self.x.len()));
        assert!(rows * 3 * hp <= self.rec.len() && rows * hp <= self.h.len());
        let mut raw = RawFwdStep {
            rows,
            hp,
            x: self.x.as_ptr(),
            xoff: self.xoff.as_ptr(),
            rec: self.rec.as_ptr(),
            h: self.h.as_mut_ptr(),
            hm: std::ptr::null_mut(),
            hm_gs: 0,
            mh: std::ptr::null(),
            mh_gs: 0,
            gates: std::ptr::null_mut(),
            gates_ld: 0,
            hs: std::ptr::null_mut(),
            hs_ld: 0,
        };
        if let Some(m) = self.masked {
            assert!(
                3 * rows * hp <= m.copies.len() && 2 * m.gate_stride + rows * hp <= m.masks.len()
            );
            (raw.hm, raw.hm_gs) = (m.copies.as_mut_ptr(), rows * hp);
            (raw.mh, raw.mh_gs) = (m.masks.as_ptr(), m.gate_stride);
        }
        if let Some(t) = self.tape {
            assert!(extent(rows, t.gates_ld, 4 * hp, 1) <= t.gates.len());
            assert!(extent(rows, t.hs_ld, hp, 1) <= t.hs.len());
            (raw.gates, raw.gates_ld) = (t.gates.as_mut_ptr(), t.gates_ld);
            (raw.hs, raw.hs_ld) = (t.hs.as_mut_ptr(), t.hs_ld);
        }
        // SAFETY: all ranges checked above; `kern` matches this CPU.
        unsafe { (kern.fwd_step)(&raw) }
    }
}
