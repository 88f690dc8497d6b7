//! What `gru-imdb data` prints: the lines of the Keras tutorial (shapes,
//! labels, the first review) and a few figures about the preparation. CI
//! greps these lines, so their formats are fixed.
use std::io::{self, Write};
use std::time::Duration;

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

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}
