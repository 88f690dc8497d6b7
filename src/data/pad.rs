//! Keras `pad_sequences(maxlen)` with its defaults: `padding='pre'`,
//! `truncating='pre'`, value 0. A long review keeps its last `maxlen` ids
//! (the end of a review tends to carry the verdict); a short one gets zeros
//! in front, so the GRU's last state is always next to real words.

/// The padding id.
pub const PAD_ID: i32 = 0;

/// Pads every sequence to `maxlen`; the result is row-major `n x maxlen`.
pub fn pad_sequences(seqs: &[Vec<i32>], maxlen: usize) -> Vec<i32> {
    let mut out = vec![PAD_ID; seqs.len() * maxlen];
    if maxlen > 0 {
        for (seq, row) in seqs.iter().zip(out.chunks_exact_mut(maxlen)) {
            pad_into(seq, row);
        }
    }
    out
}

/// Writes `seq` into `row` (already zeroed), pre-truncated and pre-padded to
/// `row.len()`.
pub(crate) fn pad_into(seq: &[i32], row: &mut [i32]) {
    let kept = &seq[seq.len().saturating_sub(row.len())..];
    let start = row.len() - kept.len();
    row[start..].copy_from_slice(kept);
}
