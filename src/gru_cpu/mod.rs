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
//! API: [`forward`] (training and evaluation; with a [`Tape`] it records
//! what [`backward`] needs), [`backward`] (all parameter gradients and the
//! gradient of the inputs), and the evaluation fast path
//! [`projection_table`] + [`forward_from_table`]: without dropout the input
//! projection `x_t W + b` depends only on the token id, so it is computed
//! once per vocabulary row and the recurrence gathers rows of that table.
//!
//! One training step, with the masks drawn by the caller (libtorch's seeded
//! RNG) and the rest of the model in tch:
//!
//! ```text
//! let w = GruWeights { input_dim: 128, units: 64, kernel, bias, recurrent_kernel, recurrent_bias };
//! let h_t = forward(&w, &x, b, t, InputMasks::PerGate(&mx), Some(&mh), Some(&mut tape), 2);
//! // ... Dense + loss in tch, giving d_h_t = dLoss/dh_T [B, H] ...
//! let g = backward(&w, &x, &mut tape, &d_h_t, 2);   // &Gradients, lent by the tape
//! // g.d_x [B, T, D] goes back into the embedding (index_add by token id),
//! // g.d_kernel etc. into the optimizer.
//! ```
//!
//! Evaluation: `let table = projection_table(&w, &embedding, 2)` once per
//! evaluation, then `forward_from_table(&w, &table, &ids, b, t, 2)` per batch.
//!
//! Threads: `threads` counts the calling thread; the others are persistent
//! workers (see `pool.rs`) that sleep between calls. Give the layer all
//! cores: on the 2-core target, 2. libtorch's OpenMP threads spin for a
//! while after each of its parallel ops and would then compete with ours;
//! at these tiny sizes libtorch gains little from threads, so
//! `tch::set_num_threads(1)` (or `OMP_WAIT_POLICY=passive`) around this
//! layer avoids the contention.
//!
//! Results do not depend on the thread count: rows are independent in the
//! recurrence, and parameter gradients are summed per fixed chunk of
//! [`CHUNK`] samples, then over chunks in order.
//!
//! Numerics: f32 throughout; sigmoid and tanh are vectorised
//! approximations within 2e-7 relative of the exact functions (see
//! `simd.rs`); forward and gradients match an f64 evaluation of the
//! equations to about 1e-5 relative (the tests).

mod kernels;
mod pool;
mod simd;
#[cfg(test)]
mod tests;

use kernels::{Kernels, RawBwdStep, RawEpi, RawFwdStep, RawGemm, RawSumRows};
use std::ops::Range;
use std::sync::{Mutex, PoisonError};

/// Samples per gradient-summation chunk (see the module docs). Small enough
/// that a final batch of 8 still splits over two threads.
pub const CHUNK: usize = 4;

/// Rows of one block of the evaluation recurrence: the block's state,
/// recurrent products and gathered inputs stay in L1/L2 over all steps.
const EVAL_BLOCK: usize = 32;

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

/// What [`backward`] needs from [`forward`]: the states, gate activations
/// and copies of the masks, plus buffers that later calls reuse. Create one
/// with [`Tape::default`] and pass it to every training step.
#[derive(Default)]
pub struct Tape {
    batch: usize,
    steps: usize,
    input_dim: usize,
    units: usize,
    /// Set by `forward`; `backward` refuses a tape without it.
    filled: bool,
    /// 0 = none, 1 = shared, 3 = per gate (the number of mask rows per sample).
    input_mask_gates: usize,
    input_masks: Vec<f32>,
    /// `[3, B, Hp]`, zero-padded; empty without recurrent masks.
    recurrent_masks: Vec<f32>,
    /// `[B, T, 3Hp]` input projections (forward scratch).
    xp: Vec<f32>,
    /// `[B, T+1, Hp]` states, `h_0 = 0` first.
    hs: Vec<f32>,
    /// `[B, T, 4, Hp]`: z, r, hh and the recurrent h-gate product rh.
    gates: Vec<f32>,
    /// `[B, T, 3Hp]` backward scratch: input-side and recurrent-side
    /// pre-activation gradients.
    d_a: Vec<f32>,
    d_r: Vec<f32>,
    /// Per-chunk parameter gradients `[chunks, dW | dU | db | db']`.
    partials: Vec<f32>,
    grads: Gradients,
}

/// Gradients of the loss, in the layouts of the inputs they belong to.
/// [`backward`] writes them into buffers the [`Tape`] keeps (no allocation
/// or page faults per training step) and lends them out.
#[derive(Clone, Default)]
pub struct Gradients {
    /// `[B, T, D]`, of the (unmasked) inputs.
    pub d_x: Vec<f32>,
    /// `[D, 3H]`.
    pub d_kernel: Vec<f32>,
    /// `[3H]`.
    pub d_bias: Vec<f32>,
    /// `[H, 3H]`.
    pub d_recurrent_kernel: Vec<f32>,
    /// `[3H]`.
    pub d_recurrent_bias: Vec<f32>,
}

/// Internally the units are padded to a multiple of 16 (one AVX-512 vector)
/// with zero weights, so no kernel has a remainder loop; padded units stay 0.
fn padded(n: usize) -> usize {
    n.div_ceil(16) * 16
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

/// Copies `rows` rows of `[z | r | h]` blocks of `h` columns into blocks of
/// `hp` columns (zero padding after each block).
fn pad_gates(src: &[f32], rows: usize, h: usize, hp: usize) -> Vec<f32> {
    let mut out = vec![0.0; rows * 3 * hp];
    for (o, s) in out.chunks_exact_mut(3 * hp).zip(src.chunks_exact(3 * h)) {
        for g in 0..3 {
            o[g * hp..g * hp + h].copy_from_slice(&s[g * h..(g + 1) * h]);
        }
    }
    out
}

/// The inverse of `pad_gates`, into `out`.
fn unpad_gates(src: &[f32], h: usize, hp: usize, out: &mut [f32]) {
    for (o, s) in out.chunks_exact_mut(3 * h).zip(src.chunks_exact(3 * hp)) {
        for g in 0..3 {
            o[g * h..(g + 1) * h].copy_from_slice(&s[g * hp..g * hp + h]);
        }
    }
}

/// The weights in the padded layouts the kernels read.
struct Packed {
    hp: usize,
    /// W `[D, 3Hp]`.
    w: Vec<f32>,
    /// b `[3Hp]`, b' `[3Hp]`.
    b: Vec<f32>,
    rb: Vec<f32>,
    /// U `[Hp, 3Hp]` (rows >= H zero).
    u: Vec<f32>,
}

impl Packed {
    fn new(w: &GruWeights) -> Self {
        let (d, h) = (w.input_dim, w.units);
        let hp = padded(h);
        let mut u = pad_gates(w.recurrent_kernel, h, h, hp);
        u.resize(hp * 3 * hp, 0.0);
        Packed {
            hp,
            w: pad_gates(w.kernel, d, h, hp),
            b: pad_gates(w.bias, 1, h, hp),
            rb: pad_gates(w.recurrent_bias, 1, h, hp),
            u,
        }
    }

    /// U^T `[3Hp, Hp]`: row `g*Hp + j` holds column j of U_g.
    fn u_transposed(&self) -> Vec<f32> {
        let hp = self.hp;
        let mut ut = vec![0.0; 3 * hp * hp];
        for k in 0..hp {
            for j in 0..3 * hp {
                ut[j * hp + k] = self.u[k * 3 * hp + j];
            }
        }
        ut
    }
}

/// The dropout mask row of gate `g` for sample `b`, if any.
fn input_mask_row(
    data: &[f32],
    gates: usize,
    batch: usize,
    d: usize,
    g: usize,
    b: usize,
) -> Option<&[f32]> {
    match gates {
        0 => None,
        1 => Some(&data[b * d..(b + 1) * d]),
        _ => Some(&data[(g * batch + b) * d..(g * batch + b + 1) * d]),
    }
}

/// `W` with row `d` of gate g's block scaled by `mask_g[d]` (so that
/// `x (W scaled) = (x * mask_g) W_g`), into `out [D, 3Hp]`.
fn scale_kernel(pw: &[f32], hp: usize, masks: [&[f32]; 3], out: &mut [f32]) {
    let rows = out.chunks_exact_mut(hp).zip(pw.chunks_exact(hp));
    // Row k of the padded kernel is 3 blocks of hp: gates z, r, h.
    for (blk, (o, w)) in rows.enumerate() {
        let s = masks[blk % 3][blk / 3];
        for (y, &x) in o.iter_mut().zip(w) {
            *y = x * s;
        }
    }
}

/// Contiguous ranges splitting `n` items into `parts` near-equal pieces.
fn split_even(n: usize, parts: usize) -> Vec<Range<usize>> {
    (0..parts)
        .map(|i| i * n / parts..(i + 1) * n / parts)
        .collect()
}

/// Splits `buf` into the disjoint pieces of `row_len`-float rows that the
/// sorted, contiguous `ranges` cover.
fn split_rows<'a>(
    mut buf: &'a mut [f32],
    row_len: usize,
    ranges: &[Range<usize>],
) -> Vec<&'a mut [f32]> {
    let mut out = Vec::with_capacity(ranges.len());
    let mut at = 0;
    for r in ranges {
        let rest = std::mem::take(&mut buf);
        let (_, rest) = rest.split_at_mut((r.start - at) * row_len);
        let (mine, rest) = rest.split_at_mut(r.len() * row_len);
        out.push(mine);
        buf = rest;
        at = r.end;
    }
    out
}

/// Runs `f` on every job in parallel: the first on the calling thread,
/// the others on the persistent workers of [`pool`].
fn run_parallel<J: Send>(jobs: Vec<J>, f: impl Fn(J) + Sync) {
    if jobs.len() <= 1 {
        jobs.into_iter().for_each(f);
        return;
    }
    let slots: Vec<Mutex<Option<J>>> = jobs.into_iter().map(|j| Mutex::new(Some(j))).collect();
    pool::run(slots.len(), &|i| {
        let job = slots[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(job) = job {
            f(job);
        }
    });
}

/// The epilogue of [`gemm`], with borrowed operands.
enum Epi<'a> {
    Store,
    StoreBias(&'a [f32]),
    Add,
    RowScale {
        s: &'a [f32],
        gate_stride: usize,
        gate_width: usize,
    },
    ElemScale {
        s: &'a [f32],
        ld: usize,
        add: bool,
    },
}

/// Largest index `(rows-1)*ld + (cols-1)*cd` of a strided view, plus one.
fn extent(rows: usize, ld: usize, cols: usize, cd: usize) -> usize {
    (rows - 1) * ld + (cols - 1) * cd + 1
}

/// `C (op)= A B`, `A(i, p) = a[i*rs + p*cs]`, `B(p, j) = b[p*ldb + j]`,
/// `C(i, j) = c[i*ldc + j]`, `i < m`, `j < n` (a multiple of 16), `p < k`.
/// Checks every range it will touch, then runs the SIMD kernel.
#[allow(clippy::too_many_arguments)]
fn gemm(
    kern: &Kernels,
    m: usize,
    n: usize,
    k: usize,
    a: (&[f32], usize, usize),
    b: (&[f32], usize),
    c: (&mut [f32], usize),
    epi: Epi,
) {
    let ((a, rs, cs), (b, ldb), (c, ldc)) = (a, b, c);
    assert!(n.is_multiple_of(16));
    if m == 0 || n == 0 {
        return;
    }
    if k > 0 {
        assert!(extent(m, rs, k, cs) <= a.len());
        assert!(extent(k, ldb, n, 1) <= b.len());
    }
    assert!(extent(m, ldc, n, 1) <= c.len());
    let epi = match epi {
        Epi::Store => RawEpi::Store,
        Epi::StoreBias(bias) => {
            assert!(n <= bias.len());
            RawEpi::StoreBias(bias.as_ptr())
        }
        Epi::Add => RawEpi::Add,
        Epi::RowScale {
            s,
            gate_stride,
            gate_width,
        } => {
            assert!(gate_width > 0 && ((n - 1) / gate_width) * gate_stride + m <= s.len());
            RawEpi::RowScale {
                s: s.as_ptr(),
                gate_stride,
                gate_width,
            }
        }
        Epi::ElemScale { s, ld, add } => {
            assert!(extent(m, ld, n, 1) <= s.len());
            RawEpi::ElemScale {
                s: s.as_ptr(),
                ld,
                add,
            }
        }
    };
    let raw = RawGemm {
        m,
        n,
        k,
        a: a.as_ptr(),
        rs,
        cs,
        b: b.as_ptr(),
        ldb,
        c: c.as_mut_ptr(),
        ldc,
        epi,
    };
    // SAFETY: every index the kernel touches (A, B, C and the epilogue's
    // operand over i < m, j < n, p < k) was checked above; `kern` is a set
    // whose instruction set `kernels::detect`/`available` found on this CPU.
    unsafe { (kern.gemm)(&raw) }
}

/// Masked copies of the state for the next step: `(hm [3, rows, Hp],
/// masks of these rows (gate g at g * gate_stride), gate_stride)`.
type MaskedState<'a> = (&'a mut [f32], &'a [f32], usize);
/// Tape rows of this step: `(gates, row stride, hs at step t+1, row stride)`.
type StepTape<'a> = (&'a mut [f32], usize, &'a mut [f32], usize);

/// One forward step for `xoff.len()` rows (see [`RawFwdStep`]).
#[allow(clippy::too_many_arguments)] // the step's operands, each checked here
fn fwd_step(
    kern: &Kernels,
    hp: usize,
    x: &[f32],
    xoff: &[usize],
    rec: &[f32],
    h: &mut [f32],
    masked: Option<MaskedState>,
    tape: Option<StepTape>,
) {
    let rows = xoff.len();
    if rows == 0 {
        return;
    }
    assert!(xoff.iter().all(|&o| o + 3 * hp <= x.len()));
    assert!(rows * 3 * hp <= rec.len() && rows * hp <= h.len());
    let mut raw = RawFwdStep {
        rows,
        hp,
        x: x.as_ptr(),
        xoff: xoff.as_ptr(),
        rec: rec.as_ptr(),
        h: h.as_mut_ptr(),
        hm: std::ptr::null_mut(),
        hm_gs: 0,
        mh: std::ptr::null(),
        mh_gs: 0,
        gates: std::ptr::null_mut(),
        gates_ld: 0,
        hs: std::ptr::null_mut(),
        hs_ld: 0,
    };
    if let Some((hm, mh, mh_gs)) = masked {
        assert!(3 * rows * hp <= hm.len() && 2 * mh_gs + rows * hp <= mh.len());
        (raw.hm, raw.hm_gs, raw.mh, raw.mh_gs) = (hm.as_mut_ptr(), rows * hp, mh.as_ptr(), mh_gs);
    }
    if let Some((gates, gates_ld, hs, hs_ld)) = tape {
        assert!(extent(rows, gates_ld, 4 * hp, 1) <= gates.len());
        assert!(extent(rows, hs_ld, hp, 1) <= hs.len());
        (raw.gates, raw.gates_ld, raw.hs, raw.hs_ld) =
            (gates.as_mut_ptr(), gates_ld, hs.as_mut_ptr(), hs_ld);
    }
    // SAFETY: all ranges checked above; `kern` matches this CPU.
    unsafe { (kern.fwd_step)(&raw) }
}

/// `dst[j] += sum_i src[i*ld + j]` for `j < dst.len()` (a multiple of 16).
fn sum_rows(kern: &Kernels, dst: &mut [f32], src: &[f32], rows: usize, ld: usize) {
    let n = dst.len();
    assert!(n.is_multiple_of(16));
    if rows == 0 || n == 0 {
        return;
    }
    assert!(extent(rows, ld, n, 1) <= src.len());
    let raw = RawSumRows {
        n,
        rows,
        src: src.as_ptr(),
        ld,
        dst: dst.as_mut_ptr(),
    };
    // SAFETY: ranges checked above; `kern` matches this CPU.
    unsafe { (kern.sum_rows)(&raw) }
}

/// The recurrent products of one step, `rec = (h*mh_g) U_g + b'_g`, for
/// `rows` rows. Without masks one product over all three gates; with them
/// one per gate from the masked copies `hm [3, rows, Hp]`.
fn recurrent_product(
    kern: &Kernels,
    p: &Packed,
    rows: usize,
    h: &[f32],
    hm: Option<&[f32]>,
    rec: &mut [f32],
) {
    let hp = p.hp;
    match hm {
        None => gemm(
            kern,
            rows,
            3 * hp,
            hp,
            (h, hp, 1),
            (&p.u, 3 * hp),
            (rec, 3 * hp),
            Epi::StoreBias(&p.rb),
        ),
        Some(hm) => {
            for g in 0..3 {
                gemm(
                    kern,
                    rows,
                    hp,
                    hp,
                    (&hm[g * rows * hp..], hp, 1),
                    (&p.u[g * hp..], 3 * hp),
                    (&mut rec[g * hp..], 3 * hp),
                    Epi::StoreBias(&p.rb[g * hp..]),
                );
            }
        }
    }
}

/// Input-side parameters of one forward block.
struct FwdInputs<'a> {
    x: &'a [f32],
    steps: usize,
    batch: usize,
    mask_gates: usize,
    input_masks: &'a [f32],
    /// `[3, B, Hp]` padded recurrent masks, if any.
    recurrent_masks: Option<&'a [f32]>,
}

/// Tape rows of one block: `(hs [R, T+1, Hp], gates [R, T, 4Hp])`.
type BlockTape<'a> = (&'a mut [f32], &'a mut [f32]);

/// Forward over samples `rows` (all time steps): input projections into
/// `xp [R, T, 3Hp]`, then the recurrence; final states into `out [R, H]`.
#[allow(clippy::too_many_arguments)] // one block's slices of the shared buffers
fn forward_block(
    kern: &Kernels,
    w: &GruWeights,
    p: &Packed,
    inp: &FwdInputs,
    rows: Range<usize>,
    xp: &mut [f32],
    mut tape: Option<BlockTape>,
    out: &mut [f32],
) {
    let (d, h, hp, t_n) = (w.input_dim, w.units, p.hp, inp.steps);
    let r_n = rows.len();
    let g3 = 3 * hp;
    if r_n == 0 {
        return;
    }
    // Input projections for all steps: one product per sample when masks
    // make the kernel sample-dependent, else one for the whole block.
    if inp.mask_gates == 0 {
        let a = &inp.x[rows.start * t_n * d..];
        gemm(
            kern,
            r_n * t_n,
            g3,
            d,
            (a, d, 1),
            (&p.w, g3),
            (xp, g3),
            Epi::StoreBias(&p.b),
        );
    } else {
        let mut wb = vec![0.0; d * g3];
        for (i, b) in rows.clone().enumerate() {
            let m = |g| {
                input_mask_row(inp.input_masks, inp.mask_gates, inp.batch, d, g, b).expect("masked")
            };
            scale_kernel(&p.w, hp, [m(0), m(1), m(2)], &mut wb);
            gemm(
                kern,
                t_n,
                g3,
                d,
                (&inp.x[b * t_n * d..], d, 1),
                (&wb, g3),
                (&mut xp[i * t_n * g3..], g3),
                Epi::StoreBias(&p.b),
            );
        }
    }
    let mut hstate = vec![0.0; r_n * hp];
    let mut rec = vec![0.0; r_n * g3];
    let mut hm = inp.recurrent_masks.map(|_| vec![0.0; 3 * r_n * hp]);
    let mh = inp.recurrent_masks.map(|m| &m[rows.start * hp..]);
    let mh_gs = inp.batch * hp;
    let mut xoff = vec![0; r_n];
    if let Some((hs, _)) = tape.as_mut() {
        for i in 0..r_n {
            hs[i * (t_n + 1) * hp..][..hp].fill(0.0);
        }
    }
    for t in 0..t_n {
        recurrent_product(kern, p, r_n, &hstate, hm.as_deref(), &mut rec);
        for (i, o) in xoff.iter_mut().enumerate() {
            *o = (i * t_n + t) * g3;
        }
        let masked = match (hm.as_mut(), mh) {
            (Some(hm), Some(mh)) => Some((hm.as_mut_slice(), mh, mh_gs)),
            _ => None,
        };
        let step_tape = tape.as_mut().map(|(hs, gates)| {
            (
                &mut gates[t * 4 * hp..],
                t_n * 4 * hp,
                &mut hs[(t + 1) * hp..],
                (t_n + 1) * hp,
            )
        });
        fwd_step(kern, hp, xp, &xoff, &rec, &mut hstate, masked, step_tape);
    }
    for (o, s) in out.chunks_exact_mut(h).zip(hstate.chunks_exact(hp)) {
        o.copy_from_slice(&s[..h]);
    }
}

/// Forward pass from embedded inputs `x [B, T, D]`; returns the last state
/// `h_T [B, H]`. Training: pass the masks (drawn by the caller, scaled by
/// `1/(1-p)`): input masks per [`InputMasks`], recurrent masks `[3, B, H]`
/// (gates z, r, h) or `None`; and a tape, which this call fills for
/// [`backward`]. Evaluation: no masks, no tape (or see
/// [`forward_from_table`]). `threads` counts the calling thread (0 acts as 1).
#[allow(clippy::too_many_arguments)]
pub fn forward(
    w: &GruWeights,
    x: &[f32],
    batch: usize,
    steps: usize,
    input_masks: InputMasks,
    recurrent_masks: Option<&[f32]>,
    tape: Option<&mut Tape>,
    threads: usize,
) -> Vec<f32> {
    forward_impl(
        kernels::detect(),
        w,
        x,
        batch,
        steps,
        input_masks,
        recurrent_masks,
        tape,
        threads,
    )
}

#[allow(clippy::too_many_arguments)]
fn forward_impl(
    kern: &Kernels,
    w: &GruWeights,
    x: &[f32],
    batch: usize,
    steps: usize,
    input_masks: InputMasks,
    recurrent_masks: Option<&[f32]>,
    tape: Option<&mut Tape>,
    threads: usize,
) -> Vec<f32> {
    w.check();
    let (d, h) = (w.input_dim, w.units);
    assert_eq!(
        x.len(),
        batch * steps * d,
        "gru_cpu::forward: x must be [B, T, D]"
    );
    let (mask_gates, mask_data) = match input_masks {
        InputMasks::None => (0, &[][..]),
        InputMasks::Shared(m) => {
            assert_eq!(
                m.len(),
                batch * d,
                "gru_cpu::forward: shared input mask must be [B, D]"
            );
            (1, m)
        }
        InputMasks::PerGate(m) => {
            assert_eq!(
                m.len(),
                3 * batch * d,
                "gru_cpu::forward: per-gate input masks must be [3, B, D]"
            );
            (3, m)
        }
    };
    if let Some(m) = recurrent_masks {
        assert_eq!(
            m.len(),
            3 * batch * h,
            "gru_cpu::forward: recurrent masks must be [3, B, H]"
        );
    }
    let p = Packed::new(w);
    let hp = p.hp;
    let g3 = 3 * hp;
    let mh_pad = recurrent_masks.map(|m| {
        let mut out = vec![0.0; 3 * batch * hp];
        for (o, s) in out.chunks_exact_mut(hp).zip(m.chunks_exact(h)) {
            o[..h].copy_from_slice(s);
        }
        out
    });
    let inp = FwdInputs {
        x,
        steps,
        batch,
        mask_gates,
        input_masks: mask_data,
        recurrent_masks: mh_pad.as_deref(),
    };
    let mut out = vec![0.0; batch * h];
    let n_threads = threads.clamp(1, batch.max(1));
    let ranges = split_even(batch, n_threads);
    let outs = split_rows(&mut out, h, &ranges);
    match tape {
        Some(tape) => {
            tape.batch = batch;
            tape.steps = steps;
            tape.input_dim = d;
            tape.units = h;
            tape.input_mask_gates = mask_gates;
            tape.input_masks.clear();
            tape.input_masks.extend_from_slice(mask_data);
            tape.recurrent_masks.clear();
            tape.recurrent_masks
                .extend_from_slice(mh_pad.as_deref().unwrap_or(&[]));
            tape.xp.resize(batch * steps * g3, 0.0);
            tape.hs.resize(batch * (steps + 1) * hp, 0.0);
            tape.gates.resize(batch * steps * 4 * hp, 0.0);
            let xps = split_rows(&mut tape.xp, steps * g3, &ranges);
            let hss = split_rows(&mut tape.hs, (steps + 1) * hp, &ranges);
            let gss = split_rows(&mut tape.gates, steps * 4 * hp, &ranges);
            let jobs: Vec<_> = ranges
                .into_iter()
                .zip(xps)
                .zip(hss)
                .zip(gss)
                .zip(outs)
                .collect();
            run_parallel(jobs, |((((rows, xp), hs), gates), out)| {
                forward_block(kern, w, &p, &inp, rows, xp, Some((hs, gates)), out);
            });
            tape.filled = true;
        }
        None => {
            let jobs: Vec<_> = ranges.into_iter().zip(outs).collect();
            run_parallel(jobs, |(rows, out)| {
                let mut xp = vec![0.0; EVAL_BLOCK.min(rows.len()) * steps * g3];
                for (blk, out) in (rows.start..rows.end)
                    .step_by(EVAL_BLOCK)
                    .zip(out.chunks_mut(EVAL_BLOCK * h))
                {
                    let blk = blk..(blk + EVAL_BLOCK).min(rows.end);
                    forward_block(kern, w, &p, &inp, blk, &mut xp, None, out);
                }
            });
        }
    }
    out
}

/// Backward pass through time for the batch that the last [`forward`]
/// with this `tape` computed: `x` must be that call's input `[B, T, D]` (it
/// is not copied into the tape), `d_h_last [B, H]` the gradient of the loss
/// with respect to its output. Returns every gradient, borrowed from the
/// tape until its next use; `threads` as in [`forward`].
pub fn backward<'t>(
    w: &GruWeights,
    x: &[f32],
    tape: &'t mut Tape,
    d_h_last: &[f32],
    threads: usize,
) -> &'t Gradients {
    backward_impl(kernels::detect(), w, x, tape, d_h_last, threads)
}

fn backward_impl<'t>(
    kern: &Kernels,
    w: &GruWeights,
    x: &[f32],
    tape: &'t mut Tape,
    d_h_last: &[f32],
    threads: usize,
) -> &'t Gradients {
    w.check();
    assert!(
        tape.filled,
        "gru_cpu::backward: the tape was not filled by forward"
    );
    let (d, h, batch, steps) = (w.input_dim, w.units, tape.batch, tape.steps);
    assert!(
        tape.input_dim == d && tape.units == h,
        "gru_cpu::backward: weights differ in shape from the forward call's"
    );
    assert_eq!(
        x.len(),
        batch * steps * d,
        "gru_cpu::backward: x must be forward's [B, T, D]"
    );
    assert_eq!(
        d_h_last.len(),
        batch * h,
        "gru_cpu::backward: d_h_last must be [B, H]"
    );
    let p = Packed::new(w);
    let hp = p.hp;
    let g3 = 3 * hp;
    let dp = padded(d);
    let ut = p.u_transposed();
    // W^T [3Hp, Dp] for d_x; per-sample scaled copies when masked.
    let mut wt = vec![0.0; g3 * dp];
    for k in 0..d {
        for j in 0..g3 {
            wt[j * dp + k] = p.w[k * g3 + j];
        }
    }
    let n_chunks = batch.div_ceil(CHUNK);
    let n_threads = threads.clamp(1, n_chunks.max(1));
    let chunk_ranges = split_even(n_chunks, n_threads);
    let ranges: Vec<Range<usize>> = chunk_ranges
        .iter()
        .map(|c| c.start * CHUNK..(c.end * CHUNK).min(batch))
        .collect();
    let (dw_len, du_len) = (d * g3, h * g3);
    // Per chunk: [dW | dU | db | db'], summed over chunks at the end.
    let part_len = dw_len + du_len + 2 * g3;
    tape.partials.clear();
    tape.partials.resize(n_chunks.max(1) * part_len, 0.0);
    // Fully overwritten below: resizing keeps old values, no zeroing pass.
    tape.grads.d_x.resize(batch * steps * d, 0.0);
    tape.d_a.resize(batch * steps * g3, 0.0);
    tape.d_r.resize(batch * steps * g3, 0.0);
    let Tape {
        ref hs,
        ref gates,
        ref input_masks,
        ref recurrent_masks,
        input_mask_gates,
        ref mut d_a,
        ref mut d_r,
        ref mut partials,
        ref mut grads,
        ..
    } = *tape;
    let das = split_rows(d_a, steps * g3, &ranges);
    let drs = split_rows(d_r, steps * g3, &ranges);
    let dxs = split_rows(&mut grads.d_x, steps * d, &ranges);
    let parts = split_rows(partials, part_len, &chunk_ranges);
    let jobs: Vec<_> = ranges
        .iter()
        .cloned()
        .zip(das)
        .zip(drs)
        .zip(dxs)
        .zip(parts)
        .collect();
    run_parallel(jobs, |((((rows, da), dr), dx), part)| {
        let r_n = rows.len();
        // Nothing to do; the zeroed partials are the gradients.
        if r_n == 0 || steps == 0 {
            return;
        }
        let b0 = rows.start;
        let hs = &hs[b0 * (steps + 1) * hp..];
        let gates = &gates[b0 * steps * 4 * hp..];
        let mut dh = vec![0.0; r_n * hp];
        for (o, s) in dh
            .chunks_exact_mut(hp)
            .zip(d_h_last[b0 * h..].chunks_exact(h))
        {
            o[..h].copy_from_slice(s);
        }
        let mut dh_next = vec![0.0; r_n * hp];
        for t in (0..steps).rev() {
            {
                assert!(extent(r_n, steps * 4 * hp, 4 * hp, 1) + t * 4 * hp <= gates.len());
                assert!(extent(r_n, (steps + 1) * hp, hp, 1) + t * hp <= hs.len());
                assert!(extent(r_n, steps * g3, g3, 1) + t * g3 <= da.len().min(dr.len()));
                assert!(dh.len() >= r_n * hp && dh_next.len() >= r_n * hp);
                let raw = RawBwdStep {
                    rows: r_n,
                    hp,
                    dh: dh.as_ptr(),
                    dh_next: dh_next.as_mut_ptr(),
                    gates: gates[t * 4 * hp..].as_ptr(),
                    gates_ld: steps * 4 * hp,
                    hprev: hs[t * hp..].as_ptr(),
                    hs_ld: (steps + 1) * hp,
                    da: da[t * g3..].as_mut_ptr(),
                    dr: dr[t * g3..].as_mut_ptr(),
                    d_ld: steps * g3,
                };
                // SAFETY: the four asserts above cover every row the step
                // reads or writes; `kern` matches this CPU.
                unsafe { (kern.bwd_step)(&raw) };
            }
            // dh_prev = dh*z + sum_g mh_g * (dR_g U_g^T).
            if recurrent_masks.is_empty() {
                gemm(
                    kern,
                    r_n,
                    hp,
                    g3,
                    (&dr[t * g3..], steps * g3, 1),
                    (&ut, hp),
                    (&mut dh_next, hp),
                    Epi::Add,
                );
            } else {
                for g in 0..3 {
                    let s = &recurrent_masks[(g * batch + b0) * hp..];
                    gemm(
                        kern,
                        r_n,
                        hp,
                        hp,
                        (&dr[t * g3 + g * hp..], steps * g3, 1),
                        (&ut[g * hp * hp..], hp),
                        (&mut dh_next, hp),
                        Epi::ElemScale {
                            s,
                            ld: hp,
                            add: true,
                        },
                    );
                }
            }
            std::mem::swap(&mut dh, &mut dh_next);
        }
        // Parameter gradients, per chunk, samples in order.
        // This sample's input mask rows, zero-padded to Dp: [3, Dp].
        let mut mrows = vec![0.0; 3 * dp];
        let mut dx_pad = if dp == d {
            Vec::new()
        } else {
            vec![0.0; steps * dp]
        };
        for (c, part) in part.chunks_exact_mut(part_len).enumerate() {
            let (dw, rest) = part.split_at_mut(dw_len);
            let (du, rest) = rest.split_at_mut(du_len);
            let (db, dbr) = rest.split_at_mut(g3);
            let first = b0 + c * CHUNK;
            for b in first..(first + CHUNK).min(rows.end) {
                let i = b - b0;
                let da_b = &da[i * steps * g3..(i + 1) * steps * g3];
                let dr_b = &dr[i * steps * g3..(i + 1) * steps * g3];
                // dW[k][j] += mx_g(j)[b][k] * sum_t x[b][t][k] dA[b][t][j]
                let epi = match input_mask_gates {
                    0 => Epi::Add,
                    gates_n => Epi::RowScale {
                        s: &input_masks[b * d..],
                        gate_stride: if gates_n == 1 { 0 } else { batch * d },
                        gate_width: hp,
                    },
                };
                gemm(
                    kern,
                    d,
                    g3,
                    steps,
                    (&x[b * steps * d..], 1, d),
                    (da_b, g3),
                    (dw, g3),
                    epi,
                );
                // dU[k][j] += mh_g(j)[b][k] * sum_t h_t-1[b][k] dR[b][t][j]
                let epi = if recurrent_masks.is_empty() {
                    Epi::Add
                } else {
                    Epi::RowScale {
                        s: &recurrent_masks[b * hp..],
                        gate_stride: batch * hp,
                        gate_width: hp,
                    }
                };
                gemm(
                    kern,
                    h,
                    g3,
                    steps,
                    (&hs[i * (steps + 1) * hp..], 1, hp),
                    (dr_b, g3),
                    (du, g3),
                    epi,
                );
                sum_rows(kern, db, da_b, steps, g3);
                sum_rows(kern, dbr, dr_b, steps, g3);
                // d_x[b] = sum_g mx_g[b] * (dA_g[b] W_g^T): the masks scale
                // the product's columns, in its epilogue.
                let (c, ldc): (&mut [f32], usize) = if dp == d {
                    (&mut dx[i * steps * d..(i + 1) * steps * d], d)
                } else {
                    (&mut dx_pad, dp)
                };
                if input_mask_gates == 0 {
                    gemm(
                        kern,
                        steps,
                        dp,
                        g3,
                        (da_b, g3, 1),
                        (&wt, dp),
                        (c, ldc),
                        Epi::Store,
                    );
                } else {
                    for g in 0..input_mask_gates {
                        let m = input_mask_row(input_masks, input_mask_gates, batch, d, g, b)
                            .expect("masked");
                        mrows[g * dp..g * dp + d].copy_from_slice(m);
                    }
                    // One product over all gates with a shared mask, else one per gate.
                    let kg = if input_mask_gates == 1 { g3 } else { hp };
                    for g in 0..g3 / kg {
                        let epi = Epi::ElemScale {
                            s: &mrows[g * dp..(g + 1) * dp],
                            ld: 0,
                            add: g > 0,
                        };
                        let (a, bw) = (&da_b[g * hp..], &wt[g * hp * dp..]);
                        gemm(
                            kern,
                            steps,
                            dp,
                            kg,
                            (a, g3, 1),
                            (bw, dp),
                            (&mut *c, ldc),
                            epi,
                        );
                    }
                }
                if dp != d {
                    let dx_b = &mut dx[i * steps * d..(i + 1) * steps * d];
                    for (o, s) in dx_b.chunks_exact_mut(d).zip(dx_pad.chunks_exact(dp)) {
                        o.copy_from_slice(&s[..d]);
                    }
                }
            }
        }
    });
    // Sum the chunks in order into the first one.
    let (total, rest) = partials.split_at_mut(part_len);
    sum_rows(kern, total, rest, n_chunks.saturating_sub(1), part_len);
    let (dw, rest) = total.split_at(dw_len);
    let (du, rest) = rest.split_at(du_len);
    let (db, dbr) = rest.split_at(g3);
    grads.d_kernel.resize(d * 3 * h, 0.0);
    grads.d_bias.resize(3 * h, 0.0);
    grads.d_recurrent_kernel.resize(h * 3 * h, 0.0);
    grads.d_recurrent_bias.resize(3 * h, 0.0);
    unpad_gates(dw, h, hp, &mut grads.d_kernel);
    unpad_gates(du, h, hp, &mut grads.d_recurrent_kernel);
    unpad_gates(db, h, hp, &mut grads.d_bias);
    unpad_gates(dbr, h, hp, &mut grads.d_recurrent_bias);
    &tape.grads
}

/// The evaluation input projections of every vocabulary row:
/// `table [V, 3H] = embedding [V, D] W + b`, for [`forward_from_table`].
pub fn projection_table(w: &GruWeights, embedding: &[f32], threads: usize) -> Vec<f32> {
    projection_table_impl(kernels::detect(), w, embedding, threads)
}

fn projection_table_impl(
    kern: &Kernels,
    w: &GruWeights,
    embedding: &[f32],
    threads: usize,
) -> Vec<f32> {
    w.check();
    let (d, h) = (w.input_dim, w.units);
    assert_eq!(
        embedding.len() % d,
        0,
        "gru_cpu::projection_table: embedding must be [V, D]"
    );
    let v = embedding.len() / d;
    let p = Packed::new(w);
    let (hp, g3) = (p.hp, 3 * p.hp);
    let mut out = vec![0.0; v * 3 * h];
    let ranges = split_even(v, threads.clamp(1, v.max(1)));
    let outs = split_rows(&mut out, 3 * h, &ranges);
    run_parallel(ranges.into_iter().zip(outs).collect(), |(rows, out)| {
        let a = &embedding[rows.start * d..];
        if hp == h {
            gemm(
                kern,
                rows.len(),
                g3,
                d,
                (a, d, 1),
                (&p.w, g3),
                (out, g3),
                Epi::StoreBias(&p.b),
            );
        } else {
            let mut tmp = vec![0.0; rows.len() * g3];
            gemm(
                kern,
                rows.len(),
                g3,
                d,
                (a, d, 1),
                (&p.w, g3),
                (&mut tmp, g3),
                Epi::StoreBias(&p.b),
            );
            unpad_gates(&tmp, h, hp, out);
        }
    });
    out
}

/// Evaluation forward from token ids `[B, T]` through a
/// [`projection_table`] `[V, 3H]`: the same result as [`forward`] on the
/// embedded ids without masks. Returns `h_T [B, H]`.
pub fn forward_from_table(
    w: &GruWeights,
    table: &[f32],
    ids: &[i64],
    batch: usize,
    steps: usize,
    threads: usize,
) -> Vec<f32> {
    forward_from_table_impl(kernels::detect(), w, table, ids, batch, steps, threads)
}

fn forward_from_table_impl(
    kern: &Kernels,
    w: &GruWeights,
    table: &[f32],
    ids: &[i64],
    batch: usize,
    steps: usize,
    threads: usize,
) -> Vec<f32> {
    w.check();
    let h = w.units;
    assert_eq!(
        table.len() % (3 * h),
        0,
        "gru_cpu::forward_from_table: table must be [V, 3H]"
    );
    let v = (table.len() / (3 * h)) as i64;
    assert_eq!(
        ids.len(),
        batch * steps,
        "gru_cpu::forward_from_table: ids must be [B, T]"
    );
    assert!(
        ids.iter().all(|&i| (0..v).contains(&i)),
        "gru_cpu::forward_from_table: token id outside the table"
    );
    let p = Packed::new(w);
    let (hp, g3) = (p.hp, 3 * p.hp);
    let mut out = vec![0.0; batch * h];
    let ranges = split_even(batch, threads.clamp(1, batch.max(1)));
    let outs = split_rows(&mut out, h, &ranges);
    run_parallel(ranges.into_iter().zip(outs).collect(), |(rows, out)| {
        let blk_n = EVAL_BLOCK.min(rows.len());
        let mut hstate = vec![0.0; blk_n * hp];
        let mut rec = vec![0.0; blk_n * g3];
        let mut xoff = vec![0; blk_n];
        // Rows gathered into the padded layout when H is not a multiple of 16.
        let mut gathered = if hp == h {
            Vec::new()
        } else {
            vec![0.0; blk_n * g3]
        };
        for (blk, out) in (rows.start..rows.end)
            .step_by(EVAL_BLOCK)
            .zip(out.chunks_mut(EVAL_BLOCK * h))
        {
            let r_n = (rows.end - blk).min(EVAL_BLOCK);
            let (hstate, rec, xoff) = (
                &mut hstate[..r_n * hp],
                &mut rec[..r_n * g3],
                &mut xoff[..r_n],
            );
            hstate.fill(0.0);
            for t in 0..steps {
                recurrent_product(kern, &p, r_n, hstate, None, rec);
                for (i, o) in xoff.iter_mut().enumerate() {
                    let id = ids[(blk + i) * steps + t] as usize;
                    if hp == h {
                        *o = id * g3;
                    } else {
                        let dst = &mut gathered[i * g3..(i + 1) * g3];
                        let src = &table[id * 3 * h..(id + 1) * 3 * h];
                        for g in 0..3 {
                            dst[g * hp..g * hp + h].copy_from_slice(&src[g * h..(g + 1) * h]);
                        }
                        *o = i * g3;
                    }
                }
                let x = if hp == h { table } else { &gathered };
                fwd_step(kern, hp, x, xoff, rec, hstate, None, None);
            }
            for (o, s) in out.chunks_exact_mut(h).zip(hstate.chunks_exact(hp)) {
                o.copy_from_slice(&s[..h]);
            }
        }
    });
    out
}

/// The instruction set the kernels use on this CPU: "avx512f", "avx2+fma"
/// or "scalar" (for logs and benchmarks).
pub fn instruction_set() -> &'static str {
    kernels::detect().name
}
