//! Tokenisation, steps 2-4 of the contract (`docs/keras-parity.md`, section 1):
//! HTML line breaks become spaces, the text is lower-cased (Unicode), and it
//! is split at every character that is neither alphanumeric nor `'`, with
//! apostrophes trimmed from both ends of each piece and empty pieces dropped.
//! Step 1 (lossy UTF-8) is the caller's, since it owns the bytes.
use std::borrow::Cow;

/// The tokens of one review, in order (the tests' view of `for_each_token`).
#[cfg(test)]
pub(crate) fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    for_each_token(text, |t| tokens.push(t.to_owned()));
    tokens
}

/// Calls `f` with each token of `text`, in order, without allocating one
/// string per token: the pipeline interns tokens straight from these slices.
pub(crate) fn for_each_token(text: &str, mut f: impl FnMut(&str)) {
    // Whole-text lower-casing, not per char: Unicode lower-casing is context
    // sensitive (a final capital sigma becomes 'ς', not 'σ').
    let lower = replace_line_breaks(text).to_lowercase();
    for piece in lower.split(|c: char| !(c.is_alphanumeric() || c == '\'')) {
        let token = piece.trim_matches('\'');
        if !token.is_empty() {
            f(token);
        }
    }
}

/// Replaces each `<br />`, `<br/>` and `<br>` (any case) by one space, in a
/// single left-to-right pass. Without it every line break would add a token
/// "br" (the `<`, `/`, `>` and space around it are separators anyway).
fn replace_line_breaks(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut copied = 0; // bytes of `text` already handled
    let mut i = 0;
    while let Some(offset) = text[i..].find('<') {
        let at = i + offset;
        match line_break_len(&bytes[at..]) {
            Some(len) => {
                out.push_str(&text[copied..at]);
                out.push(' ');
                copied = at + len;
                i = copied;
            }
            None => i = at + 1,
        }
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// The byte length of the line break that `s` starts with, if it does.
fn line_break_len(s: &[u8]) -> Option<usize> {
    let rest = s.strip_prefix(b"<")?;
    if rest.len() < 2 || !rest[..2].eq_ignore_ascii_case(b"br") {
        return None;
    }
    [&b" />"[..], b"/>", b">"]
        .iter()
        .find(|tail| rest[2..].starts_with(tail))
        .map(|tail| 3 + tail.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_are_found_in_any_case_and_only_whole() {
        assert_eq!(replace_line_breaks("a<br />b<BR/>c<Br>d"), "a b c d");
        assert_eq!(replace_line_breaks("a<b>c<br d"), "a<b>c<br d");
        assert!(matches!(replace_line_breaks("no breaks"), Cow::Borrowed(_)));
        assert_eq!(replace_line_breaks("é<br>ü<"), "é ü<");
    }
}
