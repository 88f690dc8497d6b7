//! Evaluation from the projection table: without dropout the input
//! projection `x_t W + b` depends only on the token, so it is computed once
//! per vocabulary row and each batch runs only the recurrence, gathering
//! its inputs from the table.

use super::forward::{recurrent_product, ForwardStep, EVAL_BLOCK};
use super::matrix::{copy_rows, gemm, Epilogue, Matrix, MatrixMut};
use super::packed::Packed;
use super::partition::{row_blocks, RowBlock};
use super::{Engine, GruWeights, TokenIds};
use crate::pool::run_parallel;

/// See [`Engine::projection_table`].
pub(super) fn projection_table(engine: Engine, w: &GruWeights, embedding: &[f32]) -> Vec<f32> {
    w.check();
    let (d, h) = (w.input_dim, w.units);
    assert_eq!(
        embedding.len() % d,
        0,
        "gru_cpu::Engine::projection_table: embedding must be [V, D]"
    );
    let v = embedding.len() / d;
    let p = Packed::new(w);
    let (hp, g3) = (p.hp, 3 * p.hp);
    let mut out = vec![0.0; v * 3 * h];
    let blocks = row_blocks(&mut out, 3 * h, engine.split(v));
    run_parallel(blocks, |RowBlock { rows, out }| {
        let a = Matrix::row_major(&embedding[rows.start * d..], rows.len(), d, d);
        let bias = Epilogue::StoreBias(&p.b);
        if hp == h {
            let c = MatrixMut::row_major(out, rows.len(), g3, g3);
            gemm(engine.kernels, a, p.kernel(), c, bias);
        } else {
            let mut padded = vec![0.0; rows.len() * g3];
            let c = MatrixMut::row_major(&mut padded, rows.len(), g3, g3);
            gemm(engine.kernels, a, p.kernel(), c, bias);
            copy_rows(&padded, hp, out, h);
        }
    });
    out
}

/// See [`Engine::forward_from_table`].
pub(super) fn forward_from_table(
    engine: Engine,
    w: &GruWeights,
    table: &[f32],
    ids: TokenIds,
) -> Vec<f32> {
    w.check();
    check_ids(w.units, table, ids);
    let pass = TablePass {
        engine,
        units: w.units,
        packed: Packed::new(w),
        table,
        ids,
    };
    let mut out = vec![0.0; ids.batch * w.units];
    let blocks = row_blocks(&mut out, w.units, engine.split(ids.batch));
    run_parallel(blocks, |job| pass.rows(job));
    out
}

fn check_ids(h: usize, table: &[f32], ids: TokenIds) {
    assert_eq!(
        table.len() % (3 * h),
        0,
        "gru_cpu::Engine::forward_from_table: table must be [V, 3H]"
    );
    let v = (table.len() / (3 * h)) as i64;
    assert_eq!(
        ids.ids.len(),
        ids.batch * ids.steps,
        "gru_cpu::Engine::forward_from_table: ids must be [B, T]"
    );
    assert!(
        ids.ids.iter().all(|&i| (0..v).contains(&i)),
        "gru_cpu::Engine::forward_from_table: token id outside the table"
    );
}

/// What every block of one [`forward_from_table`] call shares.
struct TablePass<'a> {
    engine: Engine,
    units: usize,
    packed: Packed,
    /// `[V, 3H]`.
    table: &'a [f32],
    ids: TokenIds<'a>,
}

/// One block's recurrence buffers, reused by the thread's next block.
struct BlockBuffers {
    /// `[R, Hp]`.
    state: Vec<f32>,
    /// `[R, 3Hp]` recurrent products.
    rec: Vec<f32>,
    /// Where each row's input projections start in the table (or in
    /// `gathered`).
    xoff: Vec<usize>,
    /// `[R, 3Hp]`: the rows' table rows padded to Hp units, when H is not
    /// a multiple of 16 (else empty: the step reads the table itself).
    gathered: Vec<f32>,
}

impl TablePass<'_> {
    /// One thread's share, in blocks of [`EVAL_BLOCK`] rows.
    fn rows(&self, job: RowBlock) {
        let (h, hp) = (self.units, self.packed.hp);
        let rows = job.rows;
        let blk_n = EVAL_BLOCK.min(rows.len());
        let mut buffers = BlockBuffers {
            state: vec![0.0; blk_n * hp],
            rec: vec![0.0; blk_n * 3 * hp],
            xoff: vec![0; blk_n],
            gathered: if hp == h {
                Vec::new()
            } else {
                vec![0.0; blk_n * 3 * hp]
            },
        };
        for (start, out) in rows
            .clone()
            .step_by(EVAL_BLOCK)
            .zip(job.out.chunks_mut(EVAL_BLOCK * h))
        {
            let r_n = (rows.end - start).min(EVAL_BLOCK);
            self.block(start, r_n, &mut buffers);
            copy_rows(&buffers.state[..r_n * hp], hp, out, h);
        }
    }

    /// The recurrence of rows `start..start + r_n` over all steps, final
    /// states into `buffers.state`.
    fn block(&self, start: usize, r_n: usize, buffers: &mut BlockBuffers) {
        let (h, hp) = (self.units, self.packed.hp);
        let g3 = 3 * hp;
        let state = &mut buffers.state[..r_n * hp];
        let rec = &mut buffers.rec[..r_n * g3];
        let xoff = &mut buffers.xoff[..r_n];
        state.fill(0.0);
        for t in 0..self.ids.steps {
            recurrent_product(self.engine.kernels, &self.packed, r_n, state, None, rec);
            for (i, o) in xoff.iter_mut().enumerate() {
                let id = self.ids.ids[(start + i) * self.ids.steps + t] as usize;
                if hp == h {
                    *o = id * g3;
                } else {
                    let row = &self.table[id * 3 * h..(id + 1) * 3 * h];
                    copy_rows(row, h, &mut buffers.gathered[i * g3..(i + 1) * g3], hp);
                    *o = i * g3;
                }
            }
            let x = if hp == h {
                self.table
            } else {
                &buffers.gathered
            };
            ForwardStep {
                hp,
                x,
                xoff: &*xoff,
                rec: &*rec,
                h: &mut *state,
                masked: None,
                tape: None,
            }
            .run(self.engine.kernels);
        }
    }
}
