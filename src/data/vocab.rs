//! The vocabulary: training tokens ranked by count (ties by code points),
//! and the Keras `imdb.load_data` id scheme on top of the ranks.
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::tokenize::Tokenizer;
use crate::atomic::write_atomically;

/// Keras `imdb.load_data` conventions: padding is 0 (see `pad`), every
/// review starts with 1, any word out of vocabulary is 2, and the word of
/// rank r is r + 3.
pub const START_ID: i32 = 1;
pub const OOV_ID: i32 = 2;
pub const INDEX_FROM: usize = 3;

/// Training tokens in rank order (rank 1 first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocabulary {
    tokens: Vec<String>,
    ranks: HashMap<String, u32>,
}

impl Vocabulary {
    /// Counts the tokens of the training texts, cut by `tokenizer`, and
    /// ranks them, one text after another (the pipeline counts in parallel
    /// instead).
    pub fn build<'a>(
        tokenizer: Tokenizer,
        training_texts: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let mut counts: HashMap<String, u64> = HashMap::new();
        for text in training_texts {
            tokenizer.for_each_token(text, |t| match counts.get_mut(t) {
                Some(n) => *n += 1,
                None => {
                    counts.insert(t.to_owned(), 1);
                }
            });
        }
        Self::from_counts(counts)
    }

    /// Ranks tokens by count, highest first; equal counts by code points,
    /// ascending (byte order of UTF-8 is code point order).
    pub(crate) fn from_counts(counts: impl IntoIterator<Item = (String, u64)>) -> Self {
        let mut counted: Vec<(String, u64)> = counts.into_iter().collect();
        counted.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Self::from_ranked(counted.into_iter().map(|(t, _)| t).collect())
    }

    fn from_ranked(tokens: Vec<String>) -> Self {
        let ranks = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32 + 1))
            .collect();
        Vocabulary { tokens, ranks }
    }

    /// Number of distinct training tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Tokens in rank order: `tokens()[0]` has rank 1.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// The 1-based rank of `token`, or `None` if training never saw it.
    pub fn rank(&self, token: &str) -> Option<usize> {
        self.ranks.get(token).map(|&r| r as usize)
    }

    /// The id of `token` with `num_words` (Keras `num_words`).
    pub fn id(&self, token: &str, num_words: usize) -> i32 {
        id_of_rank(self.rank(token), num_words)
    }

    /// One text, cut by `tokenizer` (the run's), as `[1, ids...]`.
    pub fn encode(&self, tokenizer: Tokenizer, text: &str, num_words: usize) -> Vec<i32> {
        let mut ids = vec![START_ID];
        tokenizer.for_each_token(text, |t| ids.push(self.id(t, num_words)));
        ids
    }

    /// [`Vocabulary::encode`]'s ids, or a tail of them at least `last`
    /// long: what pre-truncation to `last` keeps is the same. Long texts
    /// are cut first ([`Tokenizer::tail`]), so only their end is cut into
    /// tokens (IMDB reviews have 230 tokens on average; the model reads
    /// the last 100).
    pub fn encode_last(
        &self,
        tokenizer: Tokenizer,
        text: &str,
        num_words: usize,
        last: usize,
    ) -> Vec<i32> {
        // About 6 bytes a token in English; doubled until enough.
        let mut bytes = 6 * last.max(1);
        while let Some(tail) = tokenizer.tail(text, bytes) {
            let mut ids = Vec::with_capacity(last + last / 2);
            tokenizer.for_each_token(tail, |t| ids.push(self.id(t, num_words)));
            if ids.len() >= last {
                return ids;
            }
            bytes *= 2;
        }
        self.encode(tokenizer, text, num_words)
    }

    /// Writes one token per line in rank order, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomically(path, |out| out.write_all(self.to_text().as_bytes()))
            .with_context(|| format!("cannot save the vocabulary to {}", path.display()))
    }

    /// Reads a file written by `save`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the vocabulary {}", path.display()))?;
        Self::from_text(&text).with_context(|| format!("bad vocabulary file {}", path.display()))
    }

    /// The text form `save` writes: one token per line, rank order. Tokens
    /// never hold a newline (it is a separator), so this is unambiguous.
    pub(crate) fn to_text(&self) -> String {
        let mut text = String::with_capacity(self.tokens.iter().map(|t| t.len() + 1).sum());
        for t in &self.tokens {
            text.push_str(t);
            text.push('\n');
        }
        text
    }

    /// Parses the text form, refusing anything `to_text` cannot produce.
    pub(crate) fn from_text(text: &str) -> Result<Self> {
        if !text.is_empty() && !text.ends_with('\n') {
            bail!("the last line is not terminated (truncated file?)");
        }
        let tokens: Vec<String> = text.lines().map(str::to_owned).collect();
        let vocab = Self::from_ranked(tokens);
        if vocab.ranks.len() != vocab.tokens.len() {
            bail!("a token appears twice");
        }
        if let Some(line) = vocab.tokens.iter().position(|t| t.is_empty()) {
            bail!("line {} is empty", line + 1);
        }
        Ok(vocab)
    }
}

/// Keras ids from a rank: `r + 3` while that is below `num_words`, else the
/// OOV id; a token never seen in training (`None`) is OOV too.
pub(crate) fn id_of_rank(rank: Option<usize>, num_words: usize) -> i32 {
    match rank {
        Some(r) if r + INDEX_FROM < num_words => (r + INDEX_FROM) as i32,
        _ => OOV_ID,
    }
}
