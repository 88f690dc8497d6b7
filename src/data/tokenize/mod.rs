//! Texts -> tokens, by one of four rules, and `auto`'s choice between them.
//!
//! Every rule first replaces HTML line breaks (`<br />`, `<br/>`, `<br>`)
//! by spaces and lower-cases the whole text (Unicode lower-casing is
//! context sensitive: a final capital sigma becomes 'ς', not 'σ'); then:
//!
//! | rule | tokens |
//! | --- | --- |
//! | `imdb` | pieces between characters that are neither alphanumeric nor `'`, apostrophes trimmed: the contract, and IMDB's always |
//! | `unicode` | UAX #29 words with a letter or digit, each CJK ideograph alone, emoji kept |
//! | `chars` | every character (extended grapheme cluster) that is not white space (Keras's `char_level=True`, spaces dropped) |
//! | `jieba` | Chinese words (jieba's dictionary); text between Han runs cut by `unicode` |
//!
//! A run records its rule in `config.json`, and every command that reads
//! the run cuts texts by it, so a model never sees ids cut another way.
//! Step 1 of the contract (lossy UTF-8) is the caller's, which owns the
//! bytes.
mod auto;
mod imdb;
mod jieba;
mod scripts;
#[cfg(test)]
mod tests;
mod unicode;

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use unicode_segmentation::UnicodeSegmentation;

pub use auto::{AutoChoice, ScriptCounts};

/// How a text is cut into tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tokenizer {
    /// The contract's rule (`docs/keras-parity.md`); what runs from before
    /// the other rules were cut with.
    #[default]
    Imdb,
    Unicode,
    Chars,
    Jieba,
}

impl Tokenizer {
    pub const ALL: [Tokenizer; 4] = [
        Tokenizer::Imdb,
        Tokenizer::Unicode,
        Tokenizer::Chars,
        Tokenizer::Jieba,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Tokenizer::Imdb => "imdb",
            Tokenizer::Unicode => "unicode",
            Tokenizer::Chars => "chars",
            Tokenizer::Jieba => "jieba",
        }
    }

    /// Calls `f` with each token of `text`, in order, without allocating
    /// one string per token: the pipeline interns tokens straight from
    /// these slices.
    pub fn for_each_token(self, text: &str, mut f: impl FnMut(&str)) {
        let lower = replace_line_breaks(text).to_lowercase();
        match self {
            Tokenizer::Imdb => imdb::for_each_token(&lower, f),
            Tokenizer::Unicode => unicode::for_each_token(&lower, f),
            Tokenizer::Chars => {
                // Characters as people see them: a letter with its marks
                // (Thai's tone marks), an emoji with its skin tone.
                for grapheme in lower.graphemes(true) {
                    if !grapheme.chars().all(char::is_whitespace) {
                        f(grapheme);
                    }
                }
            }
            Tokenizer::Jieba => jieba::for_each_token(&lower, f),
        }
    }

    /// A tail of `text` of about `bytes` bytes (or more) whose tokens are
    /// the last tokens of the whole text, for a caller that keeps only the
    /// last few (pre-truncation): `None` where this rule cannot promise
    /// that, or where the tail would be the whole text. Only `imdb` cuts:
    /// the tail starts after an ASCII white space, which every piece of the
    /// rule ends at. The text before the cut changes nothing after it: a
    /// line break cut in two leaves `/>`, separators either way, and
    /// lower-casing looks back (for a final sigma) no further than the
    /// white space.
    pub fn tail(self, text: &str, bytes: usize) -> Option<&str> {
        if self != Tokenizer::Imdb || text.len() <= bytes {
            return None;
        }
        let from = text.len() - bytes;
        let space = text.as_bytes()[from..]
            .iter()
            .position(|b| b.is_ascii_whitespace())?;
        Some(&text[from + space + 1..])
    }

    /// The classes of characters the rule reads, by the names
    /// `tokenizer.json` gives them (`docs/export.md`): what another
    /// program needs besides Unicode's boundaries and jieba to follow it.
    pub fn character_classes(self) -> Vec<CharacterClass> {
        let word = CharacterClass {
            name: "word_characters",
            contains: char::is_alphanumeric,
        };
        let ideographs = CharacterClass {
            name: "ideographs",
            contains: scripts::is_ideograph,
        };
        let pictographs = CharacterClass {
            name: "pictographs",
            contains: scripts::is_pictograph,
        };
        match self {
            Tokenizer::Imdb => vec![word],
            Tokenizer::Unicode | Tokenizer::Jieba => vec![word, ideographs, pictographs],
            Tokenizer::Chars => vec![CharacterClass {
                name: "white_space",
                contains: char::is_whitespace,
            }],
        }
    }

    /// The tokens of `text`, in order.
    pub fn tokenize(self, text: &str) -> Vec<String> {
        let mut tokens = Vec::new();
        self.for_each_token(text, |t| tokens.push(t.to_owned()));
        tokens
    }

    /// How many tokens `text` has (before `maxlen` cuts any).
    pub fn count(self, text: &str) -> usize {
        let mut n = 0;
        self.for_each_token(text, |_| n += 1);
        n
    }
}

impl fmt::Display for Tokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Tokenizer {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tokenizer::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| format!("unknown tokenizer '{s}'; expected {}", choices()))
    }
}

/// A class of characters a rule tells apart: `word_characters`
/// (alphanumeric, Rust's `char::is_alphanumeric`), `ideographs` and
/// `pictographs` (the ranges of `docs/tokenizers.md`), `white_space`.
#[derive(Clone, Copy)]
pub struct CharacterClass {
    pub name: &'static str,
    pub contains: fn(char) -> bool,
}

/// `--tokenizer`: a rule, or `auto`, which looks at the training texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum TokenizerChoice {
    #[default]
    Auto,
    Given(Tokenizer),
}

impl TokenizerChoice {
    /// What the texts of runs from before the choice existed were cut with.
    pub fn before_tokenizers() -> TokenizerChoice {
        TokenizerChoice::Given(Tokenizer::Imdb)
    }
}

fn choices() -> String {
    let names: Vec<&str> = Tokenizer::ALL.iter().map(|t| t.name()).collect();
    format!("auto, {}", names.join(", "))
}

impl fmt::Display for TokenizerChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenizerChoice::Auto => f.write_str("auto"),
            TokenizerChoice::Given(t) => t.fmt(f),
        }
    }
}

impl FromStr for TokenizerChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(TokenizerChoice::Auto),
            _ => s.parse().map(TokenizerChoice::Given),
        }
    }
}

impl From<TokenizerChoice> for String {
    fn from(choice: TokenizerChoice) -> String {
        choice.to_string()
    }
}

impl TryFrom<String> for TokenizerChoice {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
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
