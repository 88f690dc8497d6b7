//! The `unicode` rule: the words of Unicode's word boundaries (UAX #29,
//! the `unicode-segmentation` crate) that hold a letter or a digit, with
//! each CJK ideograph a word of its own, as BERT's basic tokenizer cuts
//! them; emoji are kept, one token per emoji sequence, and punctuation,
//! symbols and spaces are dropped.
//!
//! UAX #29 keeps `don't`, `l'homme`, `3.5` and `e-mail`'s halves as words
//! and works for every script that separates words with spaces or marks
//! (Latin, Cyrillic, Greek, Arabic, Hebrew, Devanagari, spaced Korean); a
//! run of katakana stays one word, while hiragana and Thai, which it cannot
//! cut into words, come out a character (a grapheme cluster) at a time.
use unicode_segmentation::UnicodeSegmentation;

use super::scripts::{is_ideograph, is_pictograph};

/// Calls `f` with each token of `lower` (already lower-cased), in order.
pub(super) fn for_each_token(lower: &str, mut f: impl FnMut(&str)) {
    for segment in lower.split_word_bounds() {
        if is_word(segment) {
            split_ideographs(segment, &mut f);
        }
    }
}

/// Whether `piece` holds a letter, a digit or an emoji: what is kept.
fn is_word(piece: &str) -> bool {
    piece
        .chars()
        .any(|c| c.is_alphanumeric() || is_pictograph(c))
}

/// Calls `f` with each ideograph of `segment` alone and with each run of
/// other characters between them. UAX #29 already breaks around most
/// ideographs; this catches the rest (an ideograph followed by a mark).
fn split_ideographs(segment: &str, f: &mut impl FnMut(&str)) {
    let mut run_start = 0;
    for (at, c) in segment.char_indices() {
        if is_ideograph(c) {
            emit_if_word(&segment[run_start..at], f);
            let end = at + c.len_utf8();
            f(&segment[at..end]);
            run_start = end;
        }
    }
    if run_start == 0 {
        f(segment);
    } else {
        emit_if_word(&segment[run_start..], f);
    }
}

fn emit_if_word(piece: &str, f: &mut impl FnMut(&str)) {
    if is_word(piece) {
        f(piece);
    }
}
