//! How one call's rows are split between threads: contiguous ranges, and
//! the disjoint pieces of the buffers that each range writes.

use std::ops::Range;

/// Contiguous ranges splitting `n` items into `parts` near-equal pieces.
pub(super) fn split_even(n: usize, parts: usize) -> Vec<Range<usize>> {
    (0..parts)
        .map(|i| i * n / parts..(i + 1) * n / parts)
        .collect()
}

/// Splits `buf` into the disjoint pieces of `row_len`-float rows that the
/// sorted, contiguous `ranges` cover.
pub(super) fn split_rows<'a>(
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

/// One thread's share of a call that writes one output row per input row.
pub(super) struct RowBlock<'a> {
    /// The input rows.
    pub rows: Range<usize>,
    /// Their output rows.
    pub out: &'a mut [f32],
}

/// The blocks of `ranges` over `out`, rows of `row_len` floats.
pub(super) fn row_blocks(
    out: &mut [f32],
    row_len: usize,
    ranges: Vec<Range<usize>>,
) -> Vec<RowBlock<'_>> {
    let outs = split_rows(out, row_len, &ranges);
    ranges
        .into_iter()
        .zip(outs)
        .map(|(rows, out)| RowBlock { rows, out })
        .collect()
}
