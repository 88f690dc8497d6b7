//! The `imdb` rule, steps 2-4 of the contract (`docs/keras-parity.md`,
//! section 1): after the shared steps (HTML line breaks become spaces, the
//! text is lower-cased), the text is split at every character that is
//! neither alphanumeric nor `'`, with apostrophes trimmed from both ends of
//! each piece and empty pieces dropped.

/// Calls `f` with each token of `lower` (already lower-cased), in order.
pub(super) fn for_each_token(lower: &str, mut f: impl FnMut(&str)) {
    for piece in lower.split(|c: char| !(c.is_alphanumeric() || c == '\'')) {
        let token = piece.trim_matches('\'');
        if !token.is_empty() {
            f(token);
        }
    }
}
