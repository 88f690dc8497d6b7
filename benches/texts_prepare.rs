//! Preparing a user's texts at scale: one million short generated texts
//! (about 100 MB of CSV, three classes) through `data::texts::load_texts`,
//! first from the file, then from the cache. `cargo bench --bench
//! texts_prepare`; `TEXTS_BENCH_ROWS` changes the count, and
//! `TEXTS_BENCH_TOKENIZER` (default `imdb`) the rule: with `unicode`,
//! `chars` or `jieba` the texts are short Chinese reviews (about 25
//! characters, built from 48 words) instead of English. Prints the wall
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
//! The tokenizers, one sitting on the 2-core AMD EPYC Zen 4 (AVX-512),
//! nothing else running, best of two, from the file (from the cache: 0.46-0.48 s
//! for all):
//!
//! | 1,000,000 texts | CSV | from the file | peak RSS |
//! |------------------------------------|---------|--------|---------|
//! | English, `imdb`                    | 95.3 MB | 2.70 s | 670 MiB |
//! | Chinese (about 25 characters), `jieba`   | 79.0 MB | 2.80 s | 650 MiB |
//! | Chinese, `unicode`                 | 79.0 MB | 3.16 s | 652 MiB |
//! | Chinese, `chars`                   | 79.0 MB | 2.85 s | 666 MiB |
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

/// Chinese words of each of the three classes (hotel, phone, food
/// reviews), and words of all of them.
const CHINESE_CLASS_WORDS: [[&str; 8]; 3] = [
    [
        "酒店",
        "房间",
        "前台",
        "早餐",
        "床",
        "隔音",
        "入住",
        "服务员",
    ],
    [
        "手机", "屏幕", "电池", "充电", "拍照", "系统", "外观", "快递",
    ],
    ["味道", "外卖", "米饭", "辣", "送餐", "分量", "新鲜", "汤"],
];
const CHINESE_COMMON: [&str; 16] = [
    "非常",
    "不错",
    "还行",
    "很",
    "好",
    "差",
    "满意",
    "失望",
    "一般",
    "推荐",
    "这次",
    "真的",
    "以后",
    "还会",
    "再来",
    "性价比",
];

/// A deterministic draw in `0..n`, from an LCG seeded with 42.
fn draws() -> impl FnMut(usize) -> usize {
    let mut state = 42u64;
    move |n: usize| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 33) % n as u64) as usize
    }
}

/// Short Chinese reviews without spaces, `，` between clauses, a class each.
fn generate_chinese(path: &Path, rows: usize) -> std::io::Result<u64> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writeln!(out, "text,label")?;
    let mut next = draws();
    for _ in 0..rows {
        let class = next(3);
        let words = 8 + next(8);
        for w in 0..words {
            let word = match next(3) {
                0 => CHINESE_CLASS_WORDS[class][next(8)],
                _ => CHINESE_COMMON[next(CHINESE_COMMON.len())],
            };
            let sep = if w > 0 && next(4) == 0 { "，" } else { "" };
            write!(out, "{sep}{word}")?;
        }
        writeln!(out, "！,{class}")?;
    }
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

fn generate(path: &Path, rows: usize) -> std::io::Result<u64> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writeln!(out, "text,label")?;
    let mut next = draws();
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
    let tokenizer: Tokenizer = std::env::var("TEXTS_BENCH_TOKENIZER")
        .map_or(Ok(Tokenizer::Imdb), |name| name.parse())
        .expect("TEXTS_BENCH_TOKENIZER names a tokenizer");
    let bytes = match tokenizer {
        Tokenizer::Imdb => generate(&file, rows),
        _ => generate_chinese(&file, rows),
    }
    .expect("generate the texts");
    println!(
        "{rows} texts, tokenizer {tokenizer}, {:.1} MB of CSV; peak after generating: {:.0} MiB",
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
            tokenizer: TokenizerChoice::Given(tokenizer),
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
