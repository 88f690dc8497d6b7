//! The vector primitives the kernels are written in, once for each
//! instruction set: AVX-512F (16 lanes), AVX2 + FMA (8 lanes) and a scalar
//! fallback (1 lane) that is correct on every target.
//!
//! Every method is `#[inline(always)]` so that a generic kernel instantiated
//! inside a `#[target_feature]` function (see `kernels.rs`) is compiled
//! with that instruction set throughout.
//!
//! Also here: the vectorised `exp` for non-positive arguments and the
//! `sigmoid` / `tanh` built on it (error bounds on `sigmoid` and `tanh`).

use std::array::from_fn;

/// A vector of `LANES` f32 and the operations the kernels need.
///
/// # Safety
/// The methods are `unsafe` because the SIMD implementations need their
/// instruction set (the caller guarantees it was detected) and because
/// `load`/`store` dereference raw pointers to `LANES` valid floats.
pub(crate) trait Simd: Copy {
    /// f32 lanes in one vector.
    const LANES: usize;
    /// Rows of a micro-kernel tile, and vectors per tile row (tile width =
    /// `NV * LANES` columns): `MR x NV` accumulators plus a row of B and a
    /// broadcast of A must fit in the register file.
    const MR: usize;
    const NV: usize;
    type V: Copy;
    unsafe fn splat(x: f32) -> Self::V;
    unsafe fn load(p: *const f32) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn div(a: Self::V, b: Self::V) -> Self::V;
    /// `a * b + c`, fused where the hardware has FMA.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn abs(a: Self::V) -> Self::V;
    /// Round to the nearest integer, ties to even.
    unsafe fn round(a: Self::V) -> Self::V;
    /// `a * 2^n` for integral `n` in [-126, 0] (the only range `exp_nonpos` needs).
    unsafe fn ldexp(a: Self::V, n: Self::V) -> Self::V;
    /// Lane-wise `if a < b { x } else { y }`.
    unsafe fn select_lt(a: Self::V, b: Self::V, x: Self::V, y: Self::V) -> Self::V;
    /// `|mag|` with the sign of `sign`.
    unsafe fn copysign(mag: Self::V, sign: Self::V) -> Self::V;
}

#[derive(Clone, Copy)]
pub(crate) struct Scalar;

impl Simd for Scalar {
    const LANES: usize = 1;
    const MR: usize = 4;
    const NV: usize = 4;
    type V = f32;
    #[inline(always)]
    unsafe fn splat(x: f32) -> f32 {
        x
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> f32 {
        // SAFETY: the caller guarantees `p` points to a valid f32.
        unsafe { *p }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: f32) {
        // SAFETY: the caller guarantees `p` points to a writable f32.
        unsafe { *p = v }
    }
    #[inline(always)]
    unsafe fn add(a: f32, b: f32) -> f32 {
        a + b
    }
    #[inline(always)]
    unsafe fn sub(a: f32, b: f32) -> f32 {
        a - b
    }
    #[inline(always)]
    unsafe fn mul(a: f32, b: f32) -> f32 {
        a * b
    }
    #[inline(always)]
    unsafe fn div(a: f32, b: f32) -> f32 {
        a / b
    }
    #[inline(always)]
    unsafe fn fma(a: f32, b: f32, c: f32) -> f32 {
        // Unfused: `mul_add` is a slow libm call on x86 without FMA, and the
        // fallback only has to be correct, not bit-equal to the SIMD paths.
        a * b + c
    }
    #[inline(always)]
    unsafe fn max(a: f32, b: f32) -> f32 {
        a.max(b)
    }
    #[inline(always)]
    unsafe fn abs(a: f32) -> f32 {
        a.abs()
    }
    #[inline(always)]
    unsafe fn round(a: f32) -> f32 {
        a.round_ties_even()
    }
    #[inline(always)]
    unsafe fn ldexp(a: f32, n: f32) -> f32 {
        a * f32::from_bits(((n as i32 + 127) as u32) << 23)
    }
    #[inline(always)]
    unsafe fn select_lt(a: f32, b: f32, x: f32, y: f32) -> f32 {
        if a < b {
            x
        } else {
            y
        }
    }
    #[inline(always)]
    unsafe fn copysign(mag: f32, sign: f32) -> f32 {
        mag.copysign(sign)
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Simd, MR_AVX2, MR_AVX512, NV_AVX2, NV_AVX512};
    use std::arch::x86_64::*;

    /// AVX2 + FMA, 8 lanes. 16 ymm registers: 4 x 2 accumulators + 2 B + 1 A.
    #[derive(Clone, Copy)]
    pub(crate) struct Avx2;

    // SAFETY (all methods below): callers run these only inside functions
    // compiled with `avx2,fma` after runtime detection of both; pointer
    // arguments point to 8 valid floats (caller's contract).
    impl Simd for Avx2 {
        const LANES: usize = 8;
        const MR: usize = MR_AVX2;
        const NV: usize = NV_AVX2;
        type V = __m256;
        #[inline(always)]
        unsafe fn splat(x: f32) -> __m256 {
            unsafe { _mm256_set1_ps(x) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m256 {
            unsafe { _mm256_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m256) {
            unsafe { _mm256_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn add(a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_add_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn sub(a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_sub_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn mul(a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_mul_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn div(a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_div_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
            unsafe { _mm256_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        unsafe fn max(a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_max_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn abs(a: __m256) -> __m256 {
            unsafe { _mm256_andnot_ps(_mm256_set1_ps(-0.0), a) }
        }
        #[inline(always)]
        unsafe fn round(a: __m256) -> __m256 {
            unsafe { _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a) }
        }
        #[inline(always)]
        unsafe fn ldexp(a: __m256, n: __m256) -> __m256 {
            unsafe {
                let bits = _mm256_slli_epi32::<23>(_mm256_add_epi32(
                    _mm256_cvtps_epi32(n),
                    _mm256_set1_epi32(127),
                ));
                _mm256_mul_ps(a, _mm256_castsi256_ps(bits))
            }
        }
        #[inline(always)]
        unsafe fn select_lt(a: __m256, b: __m256, x: __m256, y: __m256) -> __m256 {
            unsafe { _mm256_blendv_ps(y, x, _mm256_cmp_ps::<_CMP_LT_OQ>(a, b)) }
        }
        #[inline(always)]
        unsafe fn copysign(mag: __m256, sign: __m256) -> __m256 {
            unsafe {
                let s = _mm256_set1_ps(-0.0);
                _mm256_or_ps(_mm256_andnot_ps(s, mag), _mm256_and_ps(s, sign))
            }
        }
    }

    /// AVX-512F, 16 lanes. 32 zmm registers: 4 x 4 accumulators + 4 B + 1 A.
    #[derive(Clone, Copy)]
    pub(crate) struct Avx512;

    // SAFETY (all methods below): callers run these only inside functions
    // compiled with `avx512f` after runtime detection; pointer arguments
    // point to 16 valid floats (caller's contract).
    impl Simd for Avx512 {
        const LANES: usize = 16;
        const MR: usize = MR_AVX512;
        const NV: usize = NV_AVX512;
        type V = __m512;
        #[inline(always)]
        unsafe fn splat(x: f32) -> __m512 {
            unsafe { _mm512_set1_ps(x) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m512 {
            unsafe { _mm512_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m512) {
            unsafe { _mm512_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn add(a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_add_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn sub(a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_sub_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn mul(a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_mul_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn div(a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_div_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
            unsafe { _mm512_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        unsafe fn max(a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_max_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn abs(a: __m512) -> __m512 {
            unsafe { _mm512_abs_ps(a) }
        }
        #[inline(always)]
        unsafe fn round(a: __m512) -> __m512 {
            unsafe { _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a) }
        }
        #[inline(always)]
        unsafe fn ldexp(a: __m512, n: __m512) -> __m512 {
            unsafe { _mm512_scalef_ps(a, n) }
        }
        #[inline(always)]
        unsafe fn select_lt(a: __m512, b: __m512, x: __m512, y: __m512) -> __m512 {
            unsafe { _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, b), y, x) }
        }
        #[inline(always)]
        unsafe fn copysign(mag: __m512, sign: __m512) -> __m512 {
            unsafe {
                // Bitwise select, imm 0xCA = `a ? b : c` per bit: (mask & sign) | (!mask & mag),
                // with mask = the sign bit; integer form because float
                // and/or need AVX512DQ.
                let m = _mm512_set1_epi32(i32::MIN);
                _mm512_castsi512_ps(_mm512_ternarylogic_epi32::<0xCA>(
                    m,
                    _mm512_castps_si512(sign),
                    _mm512_castps_si512(mag),
                ))
            }
        }
    }
}

/// `exp(y)` for `y <= 0` (Cephes `expf`: range reduction by ln 2 split in
/// two, degree-5 polynomial), for `N` vectors at once: every step runs on
/// all `N` before the next, so that their independent chains interleave
/// (one vector's chain is some 20 dependent operations). Arguments below
/// -87 are clamped to -87 so that `2^n` stays a normal number; `exp(-87)
/// = 1.6e-38`, so the absolute error that clamp adds is below 2e-38.
/// Relative error elsewhere: about 2 ulp (measured in the tests).
#[inline(always)]
pub(crate) unsafe fn exp_nonpos<S: Simd, const N: usize>(y: [S::V; N]) -> [S::V; N] {
    // SAFETY: pure arithmetic on vectors; the caller runs on S's instruction set.
    unsafe {
        let y: [S::V; N] = from_fn(|k| S::max(y[k], S::splat(-87.0)));
        let n: [S::V; N] = from_fn(|k| S::round(S::mul(y[k], S::splat(std::f32::consts::LOG2_E))));
        let r: [S::V; N] = from_fn(|k| S::fma(n[k], S::splat(-0.693_359_4), y[k]));
        let r: [S::V; N] = from_fn(|k| S::fma(n[k], S::splat(2.121_944_4e-4), r[k]));
        let mut p = [S::splat(1.987_569_2e-4); N];
        for c in [
            1.398_199_9e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            1.666_666_5e-1,
            0.5,
        ] {
            p = from_fn(|k| S::fma(p[k], r[k], S::splat(c)));
        }
        let e: [S::V; N] =
            from_fn(|k| S::add(S::fma(p[k], S::mul(r[k], r[k]), r[k]), S::splat(1.0)));
        from_fn(|k| S::ldexp(e[k], n[k]))
    }
}

/// Logistic sigmoid `1 / (1 + exp(-x))` of `N` vectors, as `1/(1+e)` for
/// x >= 0 and `e/(1+e)` for x < 0 with `e = exp(-|x|) <= 1`, so that
/// neither branch cancels or overflows. Relative error at most 1.8e-7 (3
/// ulp) against f64 over a dense sweep of [-90, 90] (the test bounds it by
/// 4e-7), except results below 2e-38 (x < -87), which come out as about
/// 1.6e-38.
#[inline(always)]
pub(crate) unsafe fn sigmoid<S: Simd, const N: usize>(x: [S::V; N]) -> [S::V; N] {
    // SAFETY: pure arithmetic on vectors; the caller runs on S's instruction set.
    unsafe {
        let one = S::splat(1.0);
        let e = exp_nonpos::<S, N>(from_fn(|k| S::sub(S::splat(0.0), S::abs(x[k]))));
        from_fn(|k| {
            S::div(
                S::select_lt(x[k], S::splat(0.0), e[k], one),
                S::add(one, e[k]),
            )
        })
    }
}

/// Hyperbolic tangent of `N` vectors. For |x| >= 0.625: `(1 - e) / (1 +
/// e)` with `e = exp(-2|x|) <= 0.29`, so the subtraction loses no
/// precision; below that an odd polynomial `x + x^3 P(x^2)` (degree 11,
/// fitted for relative error, 4.4e-9 approximation error) avoids the
/// cancellation of `1 - e` near 0. Relative error at most 1.5e-7 against
/// f64 over a dense sweep of [-90, 90] (the test bounds it by 4e-7).
#[inline(always)]
pub(crate) unsafe fn tanh<S: Simd, const N: usize>(x: [S::V; N]) -> [S::V; N] {
    // SAFETY: pure arithmetic on vectors; the caller runs on S's instruction set.
    unsafe {
        let one = S::splat(1.0);
        let a: [S::V; N] = from_fn(|k| S::abs(x[k]));
        let e = exp_nonpos::<S, N>(from_fn(|k| S::mul(a[k], S::splat(-2.0))));
        let big: [S::V; N] = from_fn(|k| S::div(S::sub(one, e[k]), S::add(one, e[k])));
        let u: [S::V; N] = from_fn(|k| S::mul(a[k], a[k]));
        let mut p = [S::splat(-5.705_016e-3); N];
        for c in [
            2.063_911_6e-2,
            -5.373_972_5e-2,
            1.333_144_2e-1,
            -3.333_328e-1,
        ] {
            p = from_fn(|k| S::fma(p[k], u[k], S::splat(c)));
        }
        let small: [S::V; N] = from_fn(|k| S::fma(S::mul(a[k], u[k]), p[k], a[k]));
        from_fn(|k| S::copysign(S::select_lt(a[k], S::splat(0.625), small[k], big[k]), x[k]))
    }
}

/// AVX2 tiles: 6 rows x 2 ymm = 12 accumulators, with 2 of B and 1
/// broadcast 15 of the 16 registers; 8 loads per 12 FMAs, and 12
/// independent chains to cover the FMA latency. Measured against the
/// 4 x 2 it replaced, same sitting (2-core AMD EPYC, AVX2 forced): training
/// forward + backward at batch 32 81-83% of the FMA peak instead of 68-71%;
/// 4 x 3 (16 registers and more) fell to 43-45%.
const MR_AVX2: usize = 6;
const NV_AVX2: usize = 2;
/// AVX-512 tiles: 4 rows x 4 zmm = 16 accumulators of 32 registers. 6 x 4,
/// 8 x 3 and 6 x 3 measured the same or worse (70-73% of the peak).
const MR_AVX512: usize = 4;
const NV_AVX512: usize = 4;
