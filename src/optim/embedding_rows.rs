//! Keras's Adam on a CPU embedding whose gradient comes by position
//! ([`crate::model::Gradient::ByPosition`]): the gradient is never
//! materialised as an `[N, D]` tensor.
//!
//! Keras updates every row at every step; a row that no review of the batch
//! looked up has a zero gradient, yet its moments decay and it moves. So
//! this is still one pass over the whole table, cut into one contiguous
//! share of rows per thread of about equal work (`RowGroups::work_before`),
//! but it reads no gradient tensor: a run of rows outside the batch takes
//! the update with the constant 0, and a row of the batch first sums its
//! positions' gradients in batch order into one row buffer (the order of
//! libtorch's lookup backward and of the buffer this replaced). The bits
//! are those of the dense update of the summed gradient.
//!
//! Measured on the 2-core EPYC (Zen 5, AVX-512), one sitting, a 1-epoch
//! run on the real reviews: the summing into a dense buffer (one thread,
//! 0.13 s an epoch) and the dense pass that read it (0.32-0.36 s) became
//! this pass, 0.25-0.26 s; `cargo bench --bench adam`, another sitting,
//! 0.21 ms a step against 0.30 ms for the dense pass alone.
//!
//! In training the pass waits on memory more than on its arithmetic (a
//! square root and a division per element per step, about 40 cycles a
//! row with the table in cache). The table, its moments (15 MB) and a
//! training step's working set (about 12 MB at batch 32) share a 32 MB
//! last-level cache with the host's other tenants. Timed inside the pass
//! on the 2-core Zen 5: a row outside the batch took 100-120 cycles at
//! batch 32 and 70-80 at batch 16. So the kernel keeps its working set
//! small (`gru_cpu`'s backward puts dA in the buffer of the input
//! projections). Deferring the zero-gradient rows' steps until a row is
//! looked up again was tried three times, the last with the next batch's
//! ids and at most 3 steps' wait, and was never faster (0.30-0.40 s an
//! epoch the first time, 0.20-0.22 against 0.17-0.22 s the last): it keeps
//! every step's arithmetic and trades the streaming order for rows
//! scattered over the table (`docs/cpu.md`).
//!
//! Under `lazy-adam` the same pass skips the runs outside the batch: it
//! visits only the batch's distinct rows (at most B·T of them, 3,200 at
//! batch 32), so its cost follows the batch, not the table.
use crate::gru_cuda::AdamConstants;
use crate::pool::run_parallel;

use super::denormals::FlushDenormals;
use super::dense::{update_element, PARALLEL_MIN};
use super::Optimizer;

/// The embedding's parameter and moments, `[N, D]` each, row-major.
pub(super) struct Table<'a> {
    pub p: &'a mut [f32],
    pub m: &'a mut [f32],
    pub v: &'a mut [f32],
    /// Floats per row.
    pub d: usize,
}

/// A step's embedding gradient by position: `ids [B·T]` and `d_inputs
/// [B·T, D]`.
pub(super) struct ByPosition<'a> {
    pub ids: &'a [i64],
    pub d_inputs: &'a [f32],
}

/// How a step updates the table.
pub(super) struct TableStep {
    /// Every row (`adam`), or only the batch's (`lazy-adam`).
    pub optimizer: Optimizer,
    pub constants: AdamConstants,
    pub threads: usize,
}

/// Adam's update of the table (its rows that `step.optimizer` moves) with
/// the gradient `gradient`; `groups` is scratch kept between steps.
pub(super) fn update_table(
    table: Table,
    gradient: ByPosition,
    groups: &mut RowGroups,
    step: TableStep,
) {
    let d = table.d;
    if d == 0 {
        return; // No elements.
    }
    let rows = table.p.len() / d;
    assert_eq!(
        gradient.d_inputs.len(),
        gradient.ids.len() * d,
        "Adam: an embedding gradient needs one row of {d} per position"
    );
    groups.group(gradient.ids, rows);
    let TableStep {
        optimizer,
        constants: c,
        threads,
    } = step;
    let moved = match optimizer {
        Optimizer::Adam => rows,
        Optimizer::LazyAdam => groups.rows.len(),
    };
    let threads = if moved * d < PARALLEL_MIN {
        1
    } else {
        threads.clamp(1, moved)
    };
    let mut shares = Vec::with_capacity(threads);
    let mut rest = table;
    let mut first = 0;
    let work = groups.work_before(rows, optimizer);
    for k in 0..threads {
        let end = groups.rows_for_work(work * (k + 1) / threads, rows, optimizer);
        let (share, tail) = rest.split_at_row(end - first);
        let batch = groups.between(first, end);
        shares.push((first, share, batch));
        (rest, first) = (tail, end);
    }
    run_parallel(shares, |(first, share, batch)| {
        let rows = ShareRows {
            first,
            batch,
            optimizer,
        };
        update_share(share, rows, gradient.d_inputs, c)
    });
}

impl<'a> Table<'a> {
    /// The first `rows` rows, and the others.
    fn split_at_row(self, rows: usize) -> (Table<'a>, Table<'a>) {
        let at = rows * self.d;
        let (p, p_rest) = self.p.split_at_mut(at);
        let (m, m_rest) = self.m.split_at_mut(at);
        let (v, v_rest) = self.v.split_at_mut(at);
        let d = self.d;
        (
            Table { p, m, v, d },
            Table {
                p: p_rest,
                m: m_rest,
                v: v_rest,
                d,
            },
        )
    }
}

/// The batch's rows in a share: `(row, positions)`, rows ascending.
type BatchRows<'a> = Vec<(usize, &'a [u32])>;

/// Which rows of a share to update.
struct ShareRows<'a> {
    /// The table's row that is the share's first.
    first: usize,
    batch: BatchRows<'a>,
    /// Under `adam` the rows outside the batch too.
    optimizer: Optimizer,
}

fn update_share(share: Table, rows: ShareRows, d_inputs: &[f32], c: AdamConstants) {
    let _flush = FlushDenormals::new();
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F, checked just above.
        return unsafe { update_share_avx512(share, rows, d_inputs, c) };
    }
    update_share_portable(share, rows, d_inputs, c)
}

/// The same loop compiled for AVX-512 (as `dense::update_slice_avx512`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn update_share_avx512(share: Table, rows: ShareRows, d_inputs: &[f32], c: AdamConstants) {
    update_share_portable(share, rows, d_inputs, c)
}

/// The rows of `share`: the batch's rows with their positions' sum and,
/// under `adam`, the runs outside the batch with a zero gradient.
#[inline(always)]
fn update_share_portable(share: Table, rows: ShareRows, d_inputs: &[f32], c: AdamConstants) {
    let Table { p, m, v, d } = share;
    let ShareRows {
        first,
        batch,
        optimizer,
    } = rows;
    let zero_gradient = |from: usize, to: usize, p: &mut [f32], m: &mut [f32], v: &mut [f32]| {
        if optimizer == Optimizer::LazyAdam {
            return;
        }
        let range = from * d..to * d;
        let (p, m, v) = (&mut p[range.clone()], &mut m[range.clone()], &mut v[range]);
        for ((p, m), v) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()) {
            update_element(p, m, v, 0.0, c);
        }
    };
    let mut gradient = vec![0.0f32; d];
    let mut next = 0;
    for (row, positions) in batch {
        let row = row - first;
        zero_gradient(next, row, p, m, v);
        gradient.fill(0.0);
        for &position in positions {
            let g = &d_inputs[position as usize * d..][..d];
            for (sum, g) in gradient.iter_mut().zip(g) {
                *sum += g;
            }
        }
        let range = row * d..(row + 1) * d;
        let (p, m, v) = (&mut p[range.clone()], &mut m[range.clone()], &mut v[range]);
        for (((p, m), v), &g) in p
            .iter_mut()
            .zip(m.iter_mut())
            .zip(v.iter_mut())
            .zip(&gradient)
        {
            update_element(p, m, v, g, c);
        }
        next = row + 1;
    }
    zero_gradient(next, p.len() / d, p, m, v);
}

/// A batch's positions grouped by the row they look up: the distinct rows
/// ascending, and each one's positions in batch order.
#[derive(Default)]
pub(super) struct RowGroups {
    rows: Vec<u32>,
    /// `rows[k]`'s positions are `positions[starts[k]..starts[k + 1]]`.
    starts: Vec<u32>,
    positions: Vec<u32>,
    /// Per table row: its count, then where its next position goes; 0
    /// for rows outside the batch between calls.
    slot: Vec<u32>,
    /// The ids grouped last, so that grouping them again is free.
    ids: Vec<i64>,
    /// One bit per table row, set for the rows `ids` looks up: the rows in
    /// ascending order without a pass over all `slot`s (18 -> 9 us a step
    /// at batch 32 of a 10,000-row table, `cargo bench --bench adam`).
    looked_up: Vec<u64>,
}

impl RowGroups {
    /// Groups `ids`, each below `rows` (panics otherwise: the lookup of
    /// the same ids already read those rows); nothing to do if they are
    /// the ids grouped last.
    pub(super) fn group(&mut self, ids: &[i64], rows: usize) {
        if self.ids == ids && self.slot.len() == rows {
            return;
        }
        self.ids.clear();
        self.ids.extend_from_slice(ids);
        self.slot.resize(rows, 0);
        for &r in &self.rows {
            self.slot[r as usize] = 0;
        }
        self.looked_up.clear();
        self.looked_up.resize(rows.div_ceil(64), 0);
        for &id in ids {
            self.slot[id as usize] += 1;
            self.looked_up[id as usize / 64] |= 1 << (id % 64);
        }
        self.rows.clear();
        self.starts.clear();
        let mut start = 0;
        for (word, &bits) in self.looked_up.iter().enumerate() {
            let mut bits = bits;
            while bits != 0 {
                let r = word * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                self.rows.push(r as u32);
                self.starts.push(start);
                start += std::mem::replace(&mut self.slot[r], start);
            }
        }
        self.starts.push(start);
        self.positions.resize(ids.len(), 0);
        for (position, &id) in ids.iter().enumerate() {
            let next = &mut self.slot[id as usize];
            self.positions[*next as usize] = position as u32;
            *next += 1;
        }
    }

    /// The work of updating rows `0..end`, in units where a row costs 5
    /// and each position of the batch 3 more; under `lazy-adam` only the
    /// batch's rows count. Measured in training on the 2-core Zen 5:
    /// 100-120 cycles a row, 70-80 for a position's share of a row's
    /// gradient sum. Frequent words have the low ids, so equal rows per
    /// thread gave the first thread 60% of the work.
    fn work_before(&self, end: usize, optimizer: Optimizer) -> usize {
        let grouped = self.rows.partition_point(|&r| (r as usize) < end);
        let moved = match optimizer {
            Optimizer::Adam => end,
            Optimizer::LazyAdam => grouped,
        };
        5 * moved + 3 * self.starts.get(grouped).map_or(0, |&s| s as usize)
    }

    /// The first `end <= rows` with `work_before(end) >= work`.
    fn rows_for_work(&self, work: usize, rows: usize, optimizer: Optimizer) -> usize {
        let (mut below, mut end) = (0, rows);
        while below < end {
            let middle = (below + end) / 2;
            if self.work_before(middle, optimizer) < work {
                below = middle + 1;
            } else {
                end = middle;
            }
        }
        end
    }

    /// The grouped rows in `first..end`, with their positions.
    fn between(&self, first: usize, end: usize) -> BatchRows<'_> {
        let from = self.rows.partition_point(|&r| (r as usize) < first);
        let to = self.rows.partition_point(|&r| (r as usize) < end);
        (from..to)
            .map(|k| {
                let positions =
                    &self.positions[self.starts[k] as usize..self.starts[k + 1] as usize];
                (self.rows[k] as usize, positions)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threads_shares_of_a_skewed_batch_carry_about_equal_work() {
        let rows = 1000;
        // Frequent words have low ids: 3,000 positions in the first 100 rows.
        let ids: Vec<i64> = (0..3000).map(|k| (k * 7 % 100) as i64).collect();
        let mut groups = RowGroups::default();
        groups.group(&ids, rows);
        let adam = Optimizer::Adam;
        let total = groups.work_before(rows, adam);
        assert_eq!(total, 5 * rows + 3 * ids.len());
        let end = groups.rows_for_work(total / 2, rows, adam);
        assert!(groups.work_before(end, adam) >= total / 2);
        assert!(groups.work_before(end - 1, adam) < total / 2);
        // Equal rows would give the first thread 11,500 of the 14,000.
        assert_eq!(groups.work_before(rows / 2, adam), 11_500);
        assert!(end < 100, "split at row {end}");
        let positions: usize = groups.between(0, end).iter().map(|(_, p)| p.len()).sum();
        let rest: usize = groups.between(end, rows).iter().map(|(_, p)| p.len()).sum();
        assert_eq!(positions + rest, ids.len());
    }

    #[test]
    fn under_lazy_adam_only_the_batchs_rows_are_work() {
        let rows = 80_000;
        // 100 distinct rows, each at 30 positions, spread over the table.
        let ids: Vec<i64> = (0..3000).map(|k| (k % 100 * 800) as i64).collect();
        let mut groups = RowGroups::default();
        groups.group(&ids, rows);
        let lazy = Optimizer::LazyAdam;
        let total = groups.work_before(rows, lazy);
        assert_eq!(total, 5 * 100 + 3 * ids.len());
        // Half the work is half the batch's rows, wherever they lie.
        let end = groups.rows_for_work(total / 2, rows, lazy);
        assert_eq!(groups.between(0, end).len(), 50);
        assert_eq!(groups.between(end, rows).len(), 50);
    }
}
