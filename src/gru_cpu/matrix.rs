//! Named matrix views over f32 slices and the safe wrappers of the matrix
//! kernels: every index range is checked here before a `Raw*` description
//! goes to the SIMD code. Also the row copies that pad the units to the
//! kernels' width and take the padding off again.

use super::kernels::{Kernels, RawEpi, RawGemm, RawSumRows};

/// A read-only matrix view: element `(i, j)` at `data[i * row_stride + j * col_stride]`,
/// `i < rows`, `j < cols`. `data` may run past the last element.
#[derive(Clone, Copy)]
pub(super) struct Matrix<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Matrix<'a> {
    /// `rows x cols`, row `i` starting at `data[i * ld]`.
    pub(super) fn row_major(data: &'a [f32], rows: usize, cols: usize, ld: usize) -> Self {
        Matrix {
            data,
            rows,
            cols,
            row_stride: ld,
            col_stride: 1,
        }
    }

    /// The transpose, reading the same floats.
    pub(super) fn transposed(self) -> Self {
        Matrix {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Whether every element lies inside `data`.
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || extent(self.rows, self.row_stride, self.cols, self.col_stride) <= self.data.len()
    }
}

/// A row-major matrix that a product writes: element `(i, j)` at `data[i * ld + j]`.
pub(super) struct MatrixMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    ld: usize,
}

impl<'a> MatrixMut<'a> {
    /// `rows x cols`, row `i` starting at `data[i * ld]`.
    pub(super) fn row_major(data: &'a mut [f32], rows: usize, cols: usize, ld: usize) -> Self {
        MatrixMut {
            data,
            rows,
            cols,
            ld,
        }
    }

    /// The same view for one product, keeping this one for the next.
    pub(super) fn reborrow(&mut self) -> MatrixMut<'_> {
        MatrixMut {
            data: &mut *self.data,
            rows: self.rows,
            cols: self.cols,
            ld: self.ld,
        }
    }
}

/// What [`gemm`] does with the product `acc = A B`, with borrowed operands
/// (see [`RawEpi`] for the formulas).
pub(super) enum Epilogue<'a> {
    /// `C = acc`.
    Store,
    /// `C = acc + bias[j]`.
    StoreBias(&'a [f32]),
    /// `C += acc`.
    Add,
    /// `C[i][j] += scale[(j / gate_width) * gate_stride + i] * acc`.
    RowScale {
        scale: &'a [f32],
        gate_stride: usize,
        gate_width: usize,
    },
    /// `C[i][j] (+)= scale[i * ld + j] * acc`, accumulating if `add`.
    ElemScale {
        scale: &'a [f32],
        ld: usize,
        add: bool,
    },
}

/// Largest index `(rows-1)*ld + (cols-1)*cd` of a strided view, plus one.
pub(super) fn extent(rows: usize, ld: usize, cols: usize, cd: usize) -> usize {
    (rows - 1) * ld + (cols - 1) * cd + 1
}

/// `C (op)= A B` for `A [m, k]`, `B [k, n]` (row-major, `n` a multiple of
/// 16), `C [m, n]`. Checks the shapes and every range it will touch, then
/// runs the SIMD kernel.
pub(super) fn gemm(kern: &Kernels, a: Matrix, b: Matrix, c: MatrixMut, epi: Epilogue) {
    let no_tail = Matrix {
        data: &[],
        cols: 0,
        row_stride: 0,
        ..a
    };
    gemm_joined(kern, [a, no_tail], b, c, epi);
}

/// [`gemm`] for an A in two blocks side by side, `A = [head | tail]`
/// (`head [m, k1]`, `tail [m, k2]`, the same column stride), `k = k1 +
/// k2`: each element of C is summed over all k in one chain, exactly as if
/// A were one block.
pub(super) fn gemm_joined(
    kern: &Kernels,
    [head, tail]: [Matrix; 2],
    b: Matrix,
    c: MatrixMut,
    epi: Epilogue,
) {
    let (m, n, k) = (head.rows, b.cols, head.cols + tail.cols);
    assert!(
        tail.rows == m && tail.col_stride == head.col_stride,
        "gemm: the blocks of A must have the same rows and column stride"
    );
    assert!(b.rows == k && c.rows == m && c.cols == n, "gemm shapes");
    assert!(b.col_stride == 1 && n.is_multiple_of(16));
    if m == 0 || n == 0 {
        return;
    }
    assert!(head.in_bounds() && tail.in_bounds() && b.in_bounds());
    assert!(extent(m, c.ld, n, 1) <= c.data.len());
    let raw = RawGemm {
        m,
        n,
        k,
        a: head.data.as_ptr(),
        rs: head.row_stride,
        cs: head.col_stride,
        k_head: head.cols,
        a_tail: tail.data.as_ptr(),
        tail_rs: tail.row_stride,
        b: b.data.as_ptr(),
        ldb: b.row_stride,
        c: c.data.as_mut_ptr(),
        ldc: c.ld,
        epi: raw_epilogue(epi, m, n),
    };
    // SAFETY: every index the kernel touches (A's two blocks, B, C and the
    // epilogue's operand over i < m, j < n, p < k) was checked above or in
    // `raw_epilogue` (the kernel reads the tail only when it has columns);
    // `kern` is a set whose instruction set `kernels::detect`/`available`
    // found on this CPU.
    unsafe { (kern.gemm)(&raw) }
}

/// The epilogue's operand as a pointer, after checking that it covers an
/// `m x n` product.
fn raw_epilogue(epi: Epilogue, m: usize, n: usize) -> RawEpi {
    match epi {
        Epilogue::Store => RawEpi::Store,
        Epilogue::StoreBias(bias) => {
            assert!(n <= bias.len());
            RawEpi::StoreBias(bias.as_ptr())
        }
        Epilogue::Add => RawEpi::Add,
        Epilogue::RowScale {
            scale,
            gate_stride,
            gate_width,
        } => {
            assert!(gate_width > 0 && ((n - 1) / gate_width) * gate_stride + m <= scale.len());
            RawEpi::RowScale {
                s: scale.as_ptr(),
                gate_stride,
                gate_width,
            }
        }
        Epilogue::ElemScale { scale, ld, add } => {
            assert!(extent(m, ld, n, 1) <= scale.len());
            RawEpi::ElemScale {
                s: scale.as_ptr(),
                ld,
                add,
            }
        }
    }
}

/// `dst[j] += sum_i src(i, j)`, rows in order, for `j < dst.len()` (a
/// multiple of 16, the columns of `src`).
pub(super) fn sum_rows(kern: &Kernels, dst: &mut [f32], src: Matrix) {
    let n = dst.len();
    assert!(src.cols == n && src.col_stride == 1 && n.is_multiple_of(16));
    if src.rows == 0 || n == 0 {
        return;
    }
    assert!(src.in_bounds());
    let raw = RawSumRows {
        n,
        rows: src.rows,
        src: src.data.as_ptr(),
        ld: src.row_stride,
        dst: dst.as_mut_ptr(),
    };
    // SAFETY: ranges checked above; `kern` matches this CPU.
    unsafe { (kern.sum_rows)(&raw) }
}

/// Copies each row of `src` (rows of `src_width`) into the same row of
/// `dst` (rows of `dst_width`), as many leading columns as both have: from
/// `H` columns into `Hp` it pads (the rest of `dst` is left as it is), from
/// `Hp` into `H` it drops the padding.
pub(super) fn copy_rows(src: &[f32], src_width: usize, dst: &mut [f32], dst_width: usize) {
    let width = src_width.min(dst_width);
    for (d, s) in dst
        .chunks_exact_mut(dst_width)
        .zip(src.chunks_exact(src_width))
    {
        d[..width].copy_from_slice(&s[..width]);
    }
}

/// Rows of `[z | r | h]` blocks of `h` columns, each block zero-padded to
/// `hp` columns.
pub(super) fn pad_gates(src: &[f32], h: usize, hp: usize) -> Vec<f32> {
    let mut out = vec![0.0; src.len() / h * hp];
    copy_rows(src, h, &mut out, hp);
    out
}
