//! The weights in the padded layouts the kernels read.

use super::matrix::{pad_gates, Matrix};
use super::GruWeights;

/// Internally the units are padded to a multiple of 16 (one AVX-512 vector)
/// with zero weights, so no kernel has a remainder loop; padded units stay 0.
pub(super) fn padded(n: usize) -> usize {
    n.div_ceil(16) * 16
}

/// The layer's weights with every gate block padded from H to Hp units.
pub(super) struct Packed {
    pub hp: usize,
    /// W `[D, 3Hp]`.
    pub w: Vec<f32>,
    /// b `[3Hp]`.
    pub b: Vec<f32>,
    /// b' `[3Hp]`.
    pub rb: Vec<f32>,
    /// U `[Hp, 3Hp]` (rows >= H zero).
    pub u: Vec<f32>,
}

impl Packed {
    pub(super) fn new(w: &GruWeights) -> Self {
        let hp = padded(w.units);
        let mut u = pad_gates(w.recurrent_kernel, w.units, hp);
        u.resize(hp * 3 * hp, 0.0);
        Packed {
            hp,
            w: pad_gates(w.kernel, w.units, hp),
            b: pad_gates(w.bias, w.units, hp),
            rb: pad_gates(w.recurrent_bias, w.units, hp),
            u,
        }
    }

    /// W `[D, 3Hp]` as a matrix.
    pub(super) fn kernel(&self) -> Matrix<'_> {
        let g3 = 3 * self.hp;
        Matrix::row_major(&self.w, self.w.len() / g3, g3, g3)
    }

    /// U^T `[3Hp, Hp]`: row `g*Hp + j` holds column j of U_g.
    pub(super) fn u_transposed(&self) -> Vec<f32> {
        transpose(&self.u, self.hp, 3 * self.hp, self.hp)
    }

    /// W^T `[3Hp, Dp]` for `input_dim` D, zero columns from D to `dp`.
    pub(super) fn w_transposed(&self, input_dim: usize, dp: usize) -> Vec<f32> {
        transpose(&self.w, input_dim, 3 * self.hp, dp)
    }

    /// `W` with row `k` of gate g's block scaled by `masks[g][k]` (so that
    /// `x (W scaled) = (x * mask_g) W_g`), into `out [D, 3Hp]`.
    pub(super) fn scaled_kernel(&self, masks: [&[f32]; 3], out: &mut [f32]) {
        let hp = self.hp;
        let rows = out.chunks_exact_mut(hp).zip(self.w.chunks_exact(hp));
        // Row k of the padded kernel is 3 blocks of hp: gates z, r, h.
        for (blk, (o, w)) in rows.enumerate() {
            let s = masks[blk % 3][blk / 3];
            for (y, &x) in o.iter_mut().zip(w) {
                *y = x * s;
            }
        }
    }
}

/// The transpose `[cols, ld]` of the row-major `src [rows, cols]`, rows of
/// `ld >= rows` floats (zero past `rows`). In blocks of [`TRANSPOSE_BLOCK`]
/// square, so that the block's output rows stay in L1 while its input rows
/// are read: element by element with the output's stride of `ld` floats it
/// took 50-60 us for the 128 x 192 kernel on the 2-core Zen 5 VM, 5% of a
/// backward call at batch 32, on one thread.
fn transpose(src: &[f32], rows: usize, cols: usize, ld: usize) -> Vec<f32> {
    let mut out = vec![0.0; cols * ld];
    for k0 in (0..rows).step_by(TRANSPOSE_BLOCK) {
        for j0 in (0..cols).step_by(TRANSPOSE_BLOCK) {
            let j1 = (j0 + TRANSPOSE_BLOCK).min(cols);
            for k in k0..(k0 + TRANSPOSE_BLOCK).min(rows) {
                for (j, &v) in (j0..j1).zip(&src[k * cols + j0..k * cols + j1]) {
                    out[j * ld + k] = v;
                }
            }
        }
    }
    out
}

/// The side of a [`transpose`] block.
const TRANSPOSE_BLOCK: usize = 16;
