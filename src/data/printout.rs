//! What `gru-imdb data` prints: the lines of the Keras tutorial (shapes,
//! labels, the first review) and a few figures about the preparation. CI
//! greps these lines, so their formats are fixed.
use std::io::{self, Write};
use std::time::Duration;

use super::prepare::Prepared;
use super::vocab::INDEX_FROM;
use super::{Dataset, Split};

/// Figures about the preparation that the arrays alone no longer show
/// (truncation drops tokens), so they are computed once and cached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Stats {
    /// Tokens in training reviews, before truncation (start ids excluded).
    pub train_tokens: u64,
    /// Of those, how many became the OOV id.
    pub train_oov: u64,
    /// Reviews whose `[1, ids...]` was longer than `maxlen`.
    pub train_truncated: u64,
    pub test_truncated: u64,
}

/// Where the prepared arrays came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    Cache,
    Archive,
    TextFiles,
}

/// What the report is about: the arrays, their figures and class names.
pub(crate) struct Arrays<'a> {
    pub dataset: &'a Dataset,
    pub stats: &'a Stats,
    /// By class: IMDB's are `neg`, `pos`.
    pub class_names: &'a [String],
}

pub(crate) fn print_report(
    out: &mut impl Write,
    arrays: &Arrays<'_>,
    num_words: usize,
    elapsed: Duration,
    origin: Origin,
) -> io::Result<()> {
    let (ds, stats) = (arrays.dataset, arrays.stats);
    let maxlen = ds.train.maxlen;
    writeln!(out, "x_train shape: ({}, {})", ds.train.len(), maxlen)?;
    writeln!(out, "x_test shape: ({}, {})", ds.test.len(), ds.test.maxlen)?;
    writeln!(
        out,
        "y_train labels: {}",
        labels(&ds.train, arrays.class_names)
    )?;
    writeln!(
        out,
        "y_test labels: {}",
        labels(&ds.test, arrays.class_names)
    )?;
    let first = ds.train.x.get(..maxlen).unwrap_or_default();
    writeln!(out, "first training review: {first:?}")?;
    writeln!(
        out,
        "vocabulary: {} distinct training tokens, num_words {num_words}",
        ds.vocab.len()
    )?;
    writeln!(
        out,
        "OOV rate: {:.2}% of training tokens ({} of {}, start and padding ids excluded)",
        percent(stats.train_oov, stats.train_tokens),
        stats.train_oov,
        stats.train_tokens
    )?;
    writeln!(
        out,
        "truncated: {:.1}% of train reviews and {:.1}% of test reviews are longer than {maxlen}",
        percent(stats.train_truncated, ds.train.len() as u64),
        percent(stats.test_truncated, ds.test.len() as u64)
    )?;
    let from = match origin {
        Origin::Cache => "from cache",
        Origin::Archive => "from archive",
        Origin::TextFiles => "from text files",
    };
    writeln!(out, "prepared in {:.2} s ({from})", elapsed.as_secs_f64())
}

/// The count of each class, e.g. `12500 neg, 12500 pos`.
fn labels(split: &Split, class_names: &[String]) -> String {
    class_names
        .iter()
        .zip(class_counts(split, class_names.len()))
        .map(|(name, n)| format!("{n} {name}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How many rows of `split` each of `classes` classes has.
pub(crate) fn class_counts(split: &Split, classes: usize) -> Vec<usize> {
    let mut counts = vec![0usize; classes];
    for &y in &split.y {
        counts[usize::from(y)] += 1;
    }
    counts
}

/// Below this share of training tokens in the vocabulary, the vocabulary
/// is too coarse or too small to learn from: most of each text is OOV.
const LOW_COVERAGE: f64 = 0.80;
/// Above this share of training texts cut by `--maxlen`, most texts lose
/// their beginnings.
const MOST_CUT: f64 = 0.50;

/// What a person needs to judge the vocabulary of a user's texts: printed
/// once it is built (or read from the cache), with a warning naming the
/// flag to try when it covers little or cuts most texts.
#[derive(Debug, Clone, PartialEq)]
pub struct VocabularySummary {
    pub distinct_tokens: usize,
    /// `--max-features`.
    pub num_words: usize,
    /// The share of training tokens that have an id of their own (not OOV).
    pub coverage: f64,
    pub mean_tokens: f64,
    /// The share of training texts longer than `maxlen` (with the start id).
    pub truncated: f64,
    pub maxlen: usize,
}

impl VocabularySummary {
    pub(crate) fn of(prepared: &Prepared, num_words: usize, maxlen: usize) -> VocabularySummary {
        let stats = &prepared.stats;
        let texts = prepared.dataset.train.len().max(1) as f64;
        VocabularySummary {
            distinct_tokens: prepared.dataset.vocab.len(),
            num_words,
            coverage: 1.0 - percent(stats.train_oov, stats.train_tokens) / 100.0,
            mean_tokens: stats.train_tokens as f64 / texts,
            truncated: stats.train_truncated as f64 / texts,
            maxlen,
        }
    }

    /// The lines to print, warnings last.
    pub fn lines(&self) -> Vec<String> {
        // Ranks 1.. get ids from INDEX_FROM + 1, and ids stop below num_words.
        let kept = self
            .distinct_tokens
            .min(self.num_words.saturating_sub(INDEX_FROM + 1));
        let mut lines = vec![
            format!(
                "vocabulary: {} distinct training tokens; the {kept} kept (--max-features {}) \
                 cover {:.1}% of the training tokens",
                self.distinct_tokens,
                self.num_words,
                100.0 * self.coverage
            ),
            format!(
                "lengths: {:.1} tokens per training text on average; {:.1}% are longer than \
                 --maxlen {} and lose their first tokens",
                self.mean_tokens,
                100.0 * self.truncated,
                self.maxlen
            ),
        ];
        if self.coverage < LOW_COVERAGE {
            let advice = match kept < self.distinct_tokens {
                true => "try a larger --max-features, or a --tokenizer that cuts finer (unicode; chars or jieba for Chinese)",
                false => "try a --tokenizer that cuts finer (unicode; chars or jieba for Chinese)",
            };
            lines.push(format!(
                "warning: the vocabulary covers only {:.1}% of the training tokens: {advice}",
                100.0 * self.coverage
            ));
        }
        if self.truncated > MOST_CUT {
            lines.push(format!(
                "warning: {:.1}% of the training texts are cut to --maxlen {}: try a larger --maxlen",
                100.0 * self.truncated,
                self.maxlen
            ));
        }
        lines
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}
