//! Preparing a user's texts at scale: one million short generated texts
//! (about 100 MB of CSV, three classes) through `data::texts::load_texts`,
//! first from the file, then from the cache. `cargo bench --bench
//! texts_prepare`; `TEXTS_BENCH_ROWS` changes the count. Prints the wall
//! time of each and the process's peak resident memory after each (Linux
//! `VmHWM`), beside the size of the file and of the padded arrays.
//!
//! Generation streams to the file, so the peak is that of preparing.
//!
//! Measured once on the 2-core AMD EPYC VM, release build, with other
//! builds running on the machine (so times are upper bounds), default
//! `--max-features 10000 --maxlen 100`:
//!
//! | 1,000,000 texts, 95.3 MB CSV | wall   | peak RSS of the process |
//! |------------------------------|--------|-------------------------|
//! | baseline (libtorch loaded)   |        | 112 MiB                 |
//! | from the file (and cached)   | 2.13 s | 678 MiB                 |
//! | from the cache               | 1.04 s | 678 MiB (no new peak)   |
//!
//! The padded arrays are 382 MiB; the rest of the peak is the tokens of
//! every text as table ids (about 20 a text) held until encoding. Both
//! times include hashing the file for the cache key.
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use gru_imdb::data::texts::{load_texts, EmptyTexts, TableOptions, TextFiles, TextsConfig};
use gru_imdb::data::{Tokenizer, TokenizerChoice};

/// Words of each of the three classes, and words of all of them.
const CLASS_WORDS: [[&str; 8]; 3] = [
    [
        "goal", "match", "team", "coach", "score", "league", "striker", "referee",
    ],
    [
        "code", "chip", "cloud", "server", "app", "kernel", "compiler", "laptop",
    ],
    [
        "pizza", "bread", "soup", "spice", "cake", "garlic", "noodle", "butter",
    ],
];
const COMMON: [&str; 16] = [
    "the", "a", "today", "really", "new", "big", "again", "with", "and", "was", "not", "very",
    "of", "my", "this", "great",
];

fn generate(path: &Path, rows: usize) -> std::io::Result<u64> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writeln!(out, "text,label")?;
    let mut state = 42u64;
    let mut next = |n: usize| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 33) % n as u64) as usize
    };
    for _ in 0..rows {
        let class = next(3);
        // 14 to 21 words: about 100 bytes a row.
        let words = 14 + next(8);
        for w in 0..words {
            let word = if next(4) == 0 {
                CLASS_WORDS[class][next(8)]
            } else {
                COMMON[next(COMMON.len())]
            };
            let sep = if w == 0 { "" } else { " " };
            write!(out, "{sep}{word}")?;
        }
        // A tail of numbers grows the vocabulary as real texts do.
        writeln!(out, " n{},{class}", next(100_000))?;
    }
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// Peak resident memory of this process so far, in MiB.
fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let rows: usize = std::env::var("TEXTS_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let tmp = tempfile::tempdir().expect("a temporary folder");
    let file = tmp.path().join("texts.csv");
    let bytes = generate(&file, rows).expect("generate the texts");
    println!(
        "{rows} texts, {:.1} MB of CSV; peak after generating: {:.0} MiB",
        bytes as f64 / 1e6,
        peak_mib()
    );
    let cfg = TextsConfig {
        data_dir: tmp.path().join("cache"),
        files: TextFiles {
            train_file: file,
            test_file: None,
            table: TableOptions::default(),
            empty_texts: EmptyTexts::Warn,
            tokenizer: TokenizerChoice::Given(Tokenizer::Imdb),
        },
        max_features: 10_000,
        maxlen: 100,
        progress: false,
    };
    let padded_mib = (rows * cfg.maxlen * 4 + rows) as f64 / (1 << 20) as f64;
    for pass in ["from the file", "from the cache"] {
        let started = Instant::now();
        let ds = load_texts(&cfg).expect("prepare the texts");
        let seconds = started.elapsed().as_secs_f64();
        assert_eq!(ds.dataset.train.len(), rows);
        println!(
            "{pass}: {seconds:.2} s; peak so far {:.0} MiB (padded arrays {padded_mib:.0} MiB)",
            peak_mib()
        );
    }
}
