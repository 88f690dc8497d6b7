//! Archive -> arrays: reads the reviews, tokenises them on every core while
//! the single gzip stream is still being inflated, ranks the training
//! tokens, and encodes and pads both splits.
//!
//! Each tokeniser thread interns tokens into its own table, so a review is
//! tokenised once and kept as small integers; the tables are merged by
//! token text only once, after the last review.
use std::collections::HashMap;
use std::path::Path;
use std::sync::{mpsc, Mutex, PoisonError};
use std::thread;

use anyhow::{anyhow, Result};

use super::archive::{self, Folder, RawReview};
use super::pad::{pad_into, PAD_ID};
use super::report::Stats;
use super::tokenize::for_each_token;
use super::vocab::{id_of_rank, Vocabulary, OOV_ID, START_ID};
use super::{Dataset, Split};

/// A prepared dataset with the figures the report prints about it.
pub(crate) struct Prepared {
    pub dataset: Dataset,
    pub stats: Stats,
}

/// Reviews travel to the tokenisers in batches, to keep the channel cheap.
const BATCH: usize = 256;

pub(crate) fn prepare(archive_path: &Path, num_words: usize, maxlen: usize) -> Result<Prepared> {
    let workers = thread::available_parallelism().map_or(2, |n| n.get());
    let tokenisers = tokenise_archive(archive_path, workers)?;
    let vocab = Vocabulary::from_counts(merged_training_counts(&tokenisers));
    Ok(encode_and_pad(&tokenisers, vocab, num_words, maxlen))
}

/// One review after tokenising: its place in the arrays, and its tokens as
/// ids into the table of the tokeniser that handled it.
struct Tokenised {
    folder: Folder,
    id: u64,
    name: String,
    tokens: Vec<u32>,
}

/// A tokeniser thread's state: its token table and what it tokenised.
#[derive(Default)]
struct Tokeniser {
    table: HashMap<Box<str>, u32>,
    /// How often each table entry occurs in training reviews.
    training_counts: Vec<u64>,
    reviews: Vec<Tokenised>,
}

impl Tokeniser {
    fn add(&mut self, review: RawReview) {
        // Step 1 of the contract: invalid UTF-8 becomes U+FFFD, not an error.
        let text = String::from_utf8_lossy(&review.text);
        let train = review.folder.is_train();
        let mut tokens = Vec::with_capacity(text.len() / 4);
        for_each_token(&text, |t| {
            let local = match self.table.get(t) {
                Some(&local) => local,
                None => {
                    let local = self.training_counts.len() as u32;
                    self.table.insert(t.into(), local);
                    self.training_counts.push(0);
                    local
                }
            };
            if train {
                self.training_counts[local as usize] += 1;
            }
            tokens.push(local);
        });
        self.reviews.push(Tokenised {
            folder: review.folder,
            id: review.id,
            name: review.name,
            tokens,
        });
    }
}

/// Inflates and parses the archive on this thread while `workers` threads
/// tokenise the reviews it hands them.
fn tokenise_archive(path: &Path, workers: usize) -> Result<Vec<Tokeniser>> {
    let (tx, rx) = mpsc::sync_channel::<Vec<RawReview>>(2 * workers);
    let rx = Mutex::new(rx);
    thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut tokeniser = Tokeniser::default();
                    loop {
                        // A poisoned lock only means another tokeniser
                        // panicked; its join below reports that.
                        let batch = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                        let Ok(batch) = batch else { break };
                        for review in batch {
                            tokeniser.add(review);
                        }
                    }
                    tokeniser
                })
            })
            .collect();
        // `tx` moves into this block and is dropped at its end, which is what
        // lets the tokenisers finish, also when reading fails half-way.
        let read = {
            let tx = tx;
            let mut batch = Vec::with_capacity(BATCH);
            archive::read_reviews(path, |review| {
                batch.push(review);
                if batch.len() == BATCH {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                    tx.send(full)
                        .map_err(|_| anyhow!("the tokeniser threads stopped"))?;
                }
                Ok(())
            })
            .and_then(|()| {
                tx.send(batch)
                    .map_err(|_| anyhow!("the tokeniser threads stopped"))
            })
        };
        let tokenisers = handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow!("a tokeniser thread panicked")))
            .collect::<Result<Vec<_>>>();
        read?;
        tokenisers
    })
}

/// Training counts by token text, over all tokenisers.
fn merged_training_counts(tokenisers: &[Tokeniser]) -> HashMap<String, u64> {
    let mut counts: HashMap<String, u64> = HashMap::new();
    for tk in tokenisers {
        for (token, &local) in &tk.table {
            let n = tk.training_counts[local as usize];
            if n > 0 {
                *counts.entry(token.to_string()).or_default() += n;
            }
        }
    }
    counts
}

fn encode_and_pad(
    tokenisers: &[Tokeniser],
    vocab: Vocabulary,
    num_words: usize,
    maxlen: usize,
) -> Prepared {
    // Keras id of every table entry of every tokeniser.
    let ids: Vec<Vec<i32>> = tokenisers
        .iter()
        .map(|tk| {
            let mut ids = vec![OOV_ID; tk.training_counts.len()];
            for (token, &local) in &tk.table {
                ids[local as usize] = id_of_rank(vocab.rank(token), num_words);
            }
            ids
        })
        .collect();
    let mut order: Vec<(usize, &Tokenised)> = tokenisers
        .iter()
        .enumerate()
        .flat_map(|(w, tk)| tk.reviews.iter().map(move |r| (w, r)))
        .collect();
    order.sort_unstable_by(|a, b| {
        (a.1.folder, a.1.id, &a.1.name).cmp(&(b.1.folder, b.1.id, &b.1.name))
    });

    let mut stats = Stats::default();
    let mut train = SplitBuilder::new(maxlen);
    let mut test = SplitBuilder::new(maxlen);
    let mut seq = Vec::new();
    for (w, review) in order {
        seq.clear();
        seq.push(START_ID);
        seq.extend(review.tokens.iter().map(|&t| ids[w][t as usize]));
        let truncated = seq.len() > maxlen;
        if review.folder.is_train() {
            stats.train_tokens += review.tokens.len() as u64;
            stats.train_oov += seq[1..].iter().filter(|&&id| id == OOV_ID).count() as u64;
            stats.train_truncated += truncated as u64;
            train.push(&seq, review.folder.label());
        } else {
            stats.test_truncated += truncated as u64;
            test.push(&seq, review.folder.label());
        }
    }
    Prepared {
        dataset: Dataset {
            train: train.split,
            test: test.split,
            vocab,
        },
        stats,
    }
}

/// Appends padded rows to a split.
struct SplitBuilder {
    split: Split,
}

impl SplitBuilder {
    fn new(maxlen: usize) -> Self {
        SplitBuilder {
            split: Split {
                x: Vec::new(),
                y: Vec::new(),
                maxlen,
            },
        }
    }

    fn push(&mut self, seq: &[i32], label: u8) {
        let x = &mut self.split.x;
        let start = x.len();
        x.resize(start + self.split.maxlen, PAD_ID);
        pad_into(seq, &mut x[start..]);
        self.split.y.push(label);
    }
}
