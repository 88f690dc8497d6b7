//! The SIMD kernels: a register-tiled matrix product with fused epilogues,
//! the elementwise forward and backward GRU steps, and a row sum. Each is
//! written once, generic over [`Simd`], and instantiated per instruction set
//! inside a `#[target_feature]` function; [`detect`] picks the best set the
//! CPU has at run time.
//!
//! Everything here works on raw pointers: the safe wrappers (`gemm` and
//! `sum_rows` in `matrix.rs`, `ForwardStep` in `forward.rs`,
//! `BackwardStep` in `backward.rs`) check every index range before
//! building a `Raw*` description, which is what makes the `unsafe` below
//! sound.

use super::simd::{self, Scalar, Simd};
use std::array::from_fn;

/// What the matrix product does with the accumulated tile `acc = A B`.
#[derive(Clone, Copy)]
pub(crate) enum RawEpi {
    /// `C = acc`.
    Store,
    /// `C = acc + bias[j]`.
    StoreBias(*const f32),
    /// `C += acc`.
    Add,
    /// `C[i][j] += s[(j / gate_width) * gate_stride + i] * acc`: a row scale
    /// that may differ per gate block of columns (dropout masks in dW, dU).
    RowScale {
        s: *const f32,
        gate_stride: usize,
        gate_width: usize,
    },
    /// `C[i][j] (+)= s[i * ld + j] * acc`, accumulating if `add`: recurrent
    /// masks in backward (per row), input masks on d_x (`ld = 0`: per column).
    ElemScale { s: *const f32, ld: usize, add: bool },
}

/// `C (op)= A B` with `A(i, p) = a[i * rs + p * cs]` for `p < k_head` and
/// `A(i, p) = a_tail[i * tail_rs + (p - k_head) * cs]` after (A is two
/// blocks side by side along k, summed in one chain as if they were one),
/// `B(p, j) = b[p * ldb + j]`, `C(i, j) = c[i * ldc + j]`; `n` is a
/// multiple of 16.
pub(crate) struct RawGemm {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: *const f32,
    pub rs: usize,
    pub cs: usize,
    pub k_head: usize,
    pub a_tail: *const f32,
    pub tail_rs: usize,
    pub b: *const f32,
    pub ldb: usize,
    pub c: *mut f32,
    pub ldc: usize,
    pub epi: RawEpi,
}

/// One forward time step for `rows` samples, `hp` (padded) units.
/// Row `i` reads its input projections `[xz | xr | xh]` at `x + xoff[i]`
/// and its recurrent products `[rz | rr | rh]` (recurrent bias included) at
/// `rec + i * 3hp`, updates its state at `h + i * hp`, and, when not null,
/// writes the masked copies `h * mh[g]` for the next step to
/// `hm + g * hm_gs + i * hp` (masks at `mh + g * mh_gs + i * hp`), and the
/// tape `[z | r | hh | rh]` to `gates + i * gates_ld`, new `h` to
/// `hs + i * hs_ld`.
pub(crate) struct RawFwdStep {
    pub rows: usize,
    pub hp: usize,
    pub x: *const f32,
    pub xoff: *const usize,
    pub rec: *const f32,
    pub h: *mut f32,
    pub hm: *mut f32,
    pub hm_gs: usize,
    pub mh: *const f32,
    pub mh_gs: usize,
    pub gates: *mut f32,
    pub gates_ld: usize,
    pub hs: *mut f32,
    pub hs_ld: usize,
}

/// One backward time step for `rows` samples: from `dh` (gradient of the
/// step's output state, `[rows][hp]`) and the tape (`gates + i * gates_ld`,
/// previous state `hprev + i * hs_ld`) writes the pre-activation gradients
/// `dA = [da_z | da_r | da_h]` (input side) to `da + i * d_ld`, the one
/// block in which the recurrent side `dR = [da_z | da_r | da_h*r]` differs,
/// `da_h*r`, to `drh + i * drh_ld`, and the direct part `dh * z` of the
/// previous state's gradient to `dh_next`.
pub(crate) struct RawBwdStep {
    pub rows: usize,
    pub hp: usize,
    pub dh: *const f32,
    pub dh_next: *mut f32,
    pub gates: *const f32,
    pub gates_ld: usize,
    pub hprev: *const f32,
    pub hs_ld: usize,
    pub da: *mut f32,
    pub d_ld: usize,
    pub drh: *mut f32,
    pub drh_ld: usize,
}

/// `dst[j] += src[0][j] + src[1][j] + ...` (in row order) for `j < n`,
/// rows at `src + i * ld`; `n` is a multiple of 16.
pub(crate) struct RawSumRows {
    pub n: usize,
    pub rows: usize,
    pub src: *const f32,
    pub ld: usize,
    pub dst: *mut f32,
}

/// The kernels of one instruction set.
pub(crate) struct Kernels {
    pub name: &'static str,
    pub gemm: unsafe fn(&RawGemm),
    pub fwd_step: unsafe fn(&RawFwdStep),
    pub bwd_step: unsafe fn(&RawBwdStep),
    pub sum_rows: unsafe fn(&RawSumRows),
    /// Elementwise sigmoid (`which = 0`) or tanh over `n` (multiple of 16)
    /// floats; for the accuracy tests.
    #[cfg(test)]
    pub activation: unsafe fn(usize, *const f32, *mut f32, usize),
}

#[inline(always)]
unsafe fn gemm_generic<S: Simd>(g: &RawGemm) {
    let mut j0 = 0;
    while j0 < g.n {
        let nv = ((g.n - j0) / S::LANES).min(S::NV);
        let mut i0 = 0;
        while i0 < g.m {
            let mr = (g.m - i0).min(S::MR);
            // SAFETY: the tile lies inside the m x n range the caller checked.
            unsafe { tile_dispatch::<S>(g, i0, j0, mr, nv) };
            i0 += S::MR;
        }
        j0 += nv * S::LANES;
    }
}

#[inline(always)]
unsafe fn tile_dispatch<S: Simd>(g: &RawGemm, i0: usize, j0: usize, mr: usize, nv: usize) {
    macro_rules! arms {
        ($(($m:literal, $v:literal)),*) => {
            match (mr, nv) {
                // SAFETY: forwarded caller contract.
                $(($m, $v) => unsafe { tile::<S, $m, $v>(g, i0, j0) },)*
                _ => unreachable!("tile {mr}x{nv} out of range"),
            }
        };
    }
    arms!(
        (1, 1),
        (1, 2),
        (1, 3),
        (1, 4),
        (2, 1),
        (2, 2),
        (2, 3),
        (2, 4),
        (3, 1),
        (3, 2),
        (3, 3),
        (3, 4),
        (4, 1),
        (4, 2),
        (4, 3),
        (4, 4),
        (5, 1),
        (5, 2),
        (5, 3),
        (5, 4),
        (6, 1),
        (6, 2),
        (6, 3),
        (6, 4),
        (7, 1),
        (7, 2),
        (7, 3),
        (7, 4),
        (8, 1),
        (8, 2),
        (8, 3),
        (8, 4)
    )
}

/// One `R x (V * LANES)` tile of C at (i0, j0): the accumulators stay in
/// registers over the whole k loop, through both blocks of A.
#[inline(always)]
unsafe fn tile<S: Simd, const R: usize, const V: usize>(g: &RawGemm, i0: usize, j0: usize) {
    // SAFETY: all offsets stay inside the ranges checked by the safe wrapper
    // (rows i0..i0+R < m, columns j0..j0+V*LANES <= n, p < k).
    unsafe {
        let mut acc = [[S::splat(0.0); V]; R];
        let b0 = g.b.add(j0);
        let head = Panel {
            a: g.a.add(i0 * g.rs),
            rs: g.rs,
            cs: g.cs,
            b: b0,
            ldb: g.ldb,
            k: g.k_head,
        };
        accumulate::<S, R, V>(&mut acc, head);
        if g.k > g.k_head {
            let tail = Panel {
                a: g.a_tail.add(i0 * g.tail_rs),
                rs: g.tail_rs,
                b: b0.add(g.k_head * g.ldb),
                k: g.k - g.k_head,
                ..head
            };
            accumulate::<S, R, V>(&mut acc, tail);
        }
        let c0 = g.c.add(i0 * g.ldc + j0);
        match g.epi {
            RawEpi::Store => {
                for (i, row) in acc.iter().enumerate() {
                    for (v, &a) in row.iter().enumerate() {
                        S::store(c0.add(i * g.ldc + v * S::LANES), a);
                    }
                }
            }
            RawEpi::StoreBias(bias) => {
                for (i, row) in acc.iter().enumerate() {
                    for (v, &a) in row.iter().enumerate() {
                        let bb = S::load(bias.add(j0 + v * S::LANES));
                        S::store(c0.add(i * g.ldc + v * S::LANES), S::add(a, bb));
                    }
                }
            }
            RawEpi::Add => {
                for (i, row) in acc.iter().enumerate() {
                    for (v, &a) in row.iter().enumerate() {
                        let cp = c0.add(i * g.ldc + v * S::LANES);
                        S::store(cp, S::add(S::load(cp), a));
                    }
                }
            }
            RawEpi::RowScale {
                s,
                gate_stride,
                gate_width,
            } => {
                // The gate of each column vector, hoisted out of the row
                // loop (an integer division costs as much as many FMAs).
                let mut sp = [s; V];
                for (v, p) in sp.iter_mut().enumerate() {
                    *p = s.add((j0 + v * S::LANES) / gate_width * gate_stride + i0);
                }
                for (i, row) in acc.iter().enumerate() {
                    for (v, &a) in row.iter().enumerate() {
                        let sv = S::splat(*sp[v].add(i));
                        let cp = c0.add(i * g.ldc + v * S::LANES);
                        S::store(cp, S::fma(sv, a, S::load(cp)));
                    }
                }
            }
            RawEpi::ElemScale { s, ld, add } => {
                for (i, row) in acc.iter().enumerate() {
                    for (v, &a) in row.iter().enumerate() {
                        let sv = S::load(s.add((i0 + i) * ld + j0 + v * S::LANES));
                        let cp = c0.add(i * g.ldc + v * S::LANES);
                        let c = if add { S::load(cp) } else { S::splat(0.0) };
                        S::store(cp, S::fma(sv, a, c));
                    }
                }
            }
        }
    }
}

/// `k` steps of a tile's product: `A(i, p) = a[i * rs + p * cs]`,
/// `B(p, j) = b[p * ldb + j]`, both from the tile's corner.
#[derive(Clone, Copy)]
struct Panel {
    a: *const f32,
    rs: usize,
    cs: usize,
    b: *const f32,
    ldb: usize,
    k: usize,
}

/// `acc += A B` over the panel's k: B's row is loaded once per step and
/// reused by all R rows, A's element is broadcast.
#[inline(always)]
unsafe fn accumulate<S: Simd, const R: usize, const V: usize>(
    acc: &mut [[S::V; V]; R],
    panel: Panel,
) {
    // SAFETY: the caller's tile contract covers the panel's R rows, V
    // vectors and k steps.
    unsafe {
        for p in 0..panel.k {
            let bp = panel.b.add(p * panel.ldb);
            let mut bv = [S::splat(0.0); V];
            for (v, bvv) in bv.iter_mut().enumerate() {
                *bvv = S::load(bp.add(v * S::LANES));
            }
            let ap = panel.a.add(p * panel.cs);
            for (i, row) in acc.iter_mut().enumerate() {
                let av = S::splat(*ap.add(i * panel.rs));
                for (accv, &bvv) in row.iter_mut().zip(bv.iter()) {
                    *accv = S::fma(av, bvv, *accv);
                }
            }
        }
    }
}

#[inline(always)]
unsafe fn fwd_step_generic<S: Simd>(p: &RawFwdStep) {
    // SAFETY: the ranges of `rows` rows were checked by the safe wrapper.
    unsafe {
        for i in 0..p.rows {
            let mut v = 0;
            while v + FWD_GROUP * S::LANES <= p.hp {
                fwd_vectors::<S, FWD_GROUP>(p, i, v);
                v += FWD_GROUP * S::LANES;
            }
            while v < p.hp {
                fwd_vectors::<S, 1>(p, i, v);
                v += S::LANES;
            }
        }
    }
}

/// Vectors the forward step computes together: the activations' chains of
/// dependent operations (some 130 cycles from the gates' inputs to the new
/// state) are interleaved two at a time, as the core's schedulers hold too
/// few of the step's operations to overlap many vectors on their own.
/// Measured on the 2-core Zen 5 VM, AVX-512, training forward at batch 32,
/// best of 2 x 100 calls: one vector at a time 0.616 ms, two 0.604 ms,
/// four 0.621 ms (registers run out: 4 x 6 live vectors and the constants).
const FWD_GROUP: usize = 2;

/// The forward step of row `i`'s `N` vectors from unit `v` on.
#[inline(always)]
unsafe fn fwd_vectors<S: Simd, const N: usize>(p: &RawFwdStep, i: usize, v: usize) {
    let hp = p.hp;
    // SAFETY: every pointer/offset combination below was range-checked by
    // the safe wrapper for `rows` rows of `hp` (or 3hp, 4hp) floats, and
    // `v + N * LANES <= hp`.
    unsafe {
        let at = |k: usize| v + k * S::LANES;
        let xr = p.x.add(*p.xoff.add(i));
        let rr = p.rec.add(i * 3 * hp);
        let hr = p.h.add(i * hp);
        let az: [S::V; N] = from_fn(|k| S::add(S::load(xr.add(at(k))), S::load(rr.add(at(k)))));
        let ar: [S::V; N] =
            from_fn(|k| S::add(S::load(xr.add(hp + at(k))), S::load(rr.add(hp + at(k)))));
        let rh: [S::V; N] = from_fn(|k| S::load(rr.add(2 * hp + at(k))));
        let z = simd::sigmoid::<S, N>(az);
        let r = simd::sigmoid::<S, N>(ar);
        let hh = simd::tanh::<S, N>(from_fn(|k| {
            S::fma(r[k], rh[k], S::load(xr.add(2 * hp + at(k))))
        }));
        for k in 0..N {
            // z*h + (1-z)*hh, one rounding less.
            let hn = S::fma(z[k], S::sub(S::load(hr.add(at(k))), hh[k]), hh[k]);
            S::store(hr.add(at(k)), hn);
            if !p.gates.is_null() {
                let gp = p.gates.add(i * p.gates_ld + at(k));
                S::store(gp, z[k]);
                S::store(gp.add(hp), r[k]);
                S::store(gp.add(2 * hp), hh[k]);
                S::store(gp.add(3 * hp), rh[k]);
                S::store(p.hs.add(i * p.hs_ld + at(k)), hn);
            }
            if !p.hm.is_null() {
                for g in 0..3 {
                    let m = S::load(p.mh.add(g * p.mh_gs + i * hp + at(k)));
                    S::store(p.hm.add(g * p.hm_gs + i * hp + at(k)), S::mul(hn, m));
                }
            }
        }
    }
}

#[inline(always)]
unsafe fn bwd_step_generic<S: Simd>(p: &RawBwdStep) {
    let hp = p.hp;
    // SAFETY: ranges checked by the safe wrapper, as in the forward step.
    unsafe {
        let one = S::splat(1.0);
        for i in 0..p.rows {
            let gp = p.gates.add(i * p.gates_ld);
            let hpr = p.hprev.add(i * p.hs_ld);
            let da = p.da.add(i * p.d_ld);
            let drh = p.drh.add(i * p.drh_ld);
            let mut v = 0;
            while v < hp {
                let g = S::load(p.dh.add(i * hp + v));
                let z = S::load(gp.add(v));
                let r = S::load(gp.add(hp + v));
                let hh = S::load(gp.add(2 * hp + v));
                let rh = S::load(gp.add(3 * hp + v));
                let h0 = S::load(hpr.add(v));
                let omz = S::sub(one, z);
                // h' = z h + (1-z) hh: dz = g (h - hh), dhh = g (1-z).
                let da_z = S::mul(S::mul(g, S::sub(h0, hh)), S::mul(z, omz));
                let da_h = S::mul(S::mul(g, omz), S::sub(one, S::mul(hh, hh)));
                let da_r = S::mul(S::mul(da_h, rh), S::mul(r, S::sub(one, r)));
                S::store(da.add(v), da_z);
                S::store(da.add(hp + v), da_r);
                S::store(da.add(2 * hp + v), da_h);
                S::store(drh.add(v), S::mul(da_h, r));
                S::store(p.dh_next.add(i * hp + v), S::mul(g, z));
                v += S::LANES;
            }
        }
    }
}

#[inline(always)]
unsafe fn sum_rows_generic<S: Simd>(p: &RawSumRows) {
    // SAFETY: ranges checked by the safe wrapper.
    unsafe {
        let mut j = 0;
        while j < p.n {
            let mut acc = S::load(p.dst.add(j));
            for i in 0..p.rows {
                acc = S::add(acc, S::load(p.src.add(i * p.ld + j)));
            }
            S::store(p.dst.add(j), acc);
            j += S::LANES;
        }
    }
}

#[cfg(test)]
#[inline(always)]
unsafe fn activation_generic<S: Simd>(which: usize, x: *const f32, y: *mut f32, n: usize) {
    // SAFETY: test-only; the caller passes n valid floats at x and y.
    unsafe {
        let mut j = 0;
        while j < n {
            let v = S::load(x.add(j));
            let [r] = if which == 0 {
                simd::sigmoid::<S, 1>([v])
            } else {
                simd::tanh::<S, 1>([v])
            };
            S::store(y.add(j), r);
            j += S::LANES;
        }
    }
}

/// Instantiates the generic kernels for one instruction set, with that
/// set enabled by `#[target_feature]` (the generic code is all
/// `#[inline(always)]`, so it is compiled for the set it is inlined into).
macro_rules! isa_kernels {
    ($module:ident, $S:ty, $name:literal $(, $feature:literal)?) => {
        mod $module {
            use super::*;
            $(#[target_feature(enable = $feature)])?
            unsafe fn gemm(g: &RawGemm) {
                // SAFETY: forwarded contract; `detect` checked the features.
                unsafe { gemm_generic::<$S>(g) }
            }
            $(#[target_feature(enable = $feature)])?
            unsafe fn fwd_step(p: &RawFwdStep) {
                // SAFETY: as above.
                unsafe { fwd_step_generic::<$S>(p) }
            }
            $(#[target_feature(enable = $feature)])?
            unsafe fn bwd_step(p: &RawBwdStep) {
                // SAFETY: as above.
                unsafe { bwd_step_generic::<$S>(p) }
            }
            $(#[target_feature(enable = $feature)])?
            unsafe fn sum_rows(p: &RawSumRows) {
                // SAFETY: as above.
                unsafe { sum_rows_generic::<$S>(p) }
            }
            #[cfg(test)]
            $(#[target_feature(enable = $feature)])?
            unsafe fn activation(which: usize, x: *const f32, y: *mut f32, n: usize) {
                // SAFETY: as above.
                unsafe { activation_generic::<$S>(which, x, y, n) }
            }
            pub(crate) static KERNELS: Kernels = Kernels {
                name: $name,
                gemm,
                fwd_step,
                bwd_step,
                sum_rows,
                #[cfg(test)]
                activation,
            };
        }
    };
}

isa_kernels!(scalar, Scalar, "scalar");
#[cfg(target_arch = "x86_64")]
isa_kernels!(avx2, simd::Avx2, "avx2+fma", "avx2,fma");
#[cfg(target_arch = "x86_64")]
isa_kernels!(avx512, simd::Avx512, "avx512f", "avx512f");

/// Every kernel set this CPU can run, best first; the scalar one always.
pub(crate) fn available() -> Vec<&'static Kernels> {
    let mut v: Vec<&'static Kernels> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            v.push(&avx512::KERNELS);
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            v.push(&avx2::KERNELS);
        }
    }
    v.push(&scalar::KERNELS);
    v
}

/// The best kernel set for this CPU (detected once).
pub(crate) fn detect() -> &'static Kernels {
    static BEST: std::sync::OnceLock<&'static Kernels> = std::sync::OnceLock::new();
    BEST.get_or_init(|| available()[0])
}
