//! The IMDB data pipeline: download -> archive -> tokenise -> vocabulary ->
//! encode -> pad -> cache. The contract is `docs/keras-parity.md`, section 1.
mod archive;
mod cache;
#[cfg(test)]
mod contract_tests;
mod dir_lock;
mod download;
pub mod memory;
mod npy;
mod pad;
mod prepare;
mod printout;
mod review_texts;
pub mod texts;
pub mod tokenize;
mod vocab;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};

pub use archive::{MAX_ARCHIVE_BYTES, MAX_REVIEW_BYTES};
pub(crate) use download::sha256_file;
pub use download::CANONICAL_SIZE;
pub use npy::write_npy_i32;
pub use pad::{pad_sequences, PAD_ID};
pub use printout::VocabularySummary;
pub use review_texts::{read_texts, ArchiveTexts, LabeledText};
pub use tokenize::{CharacterClass, Tokenizer, TokenizerChoice};
pub use vocab::{Vocabulary, INDEX_FROM, OOV_ID, START_ID};

use cache::CacheKey;
use dir_lock::DataDirLock;
use download::Source;
use prepare::Prepared;
use printout::Origin;

/// Where archives and prepared arrays are kept unless `--data-dir` says.
pub const DEFAULT_DATA_DIR: &str = "data";

pub const CANONICAL_URL: &str = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz";
pub const CANONICAL_SHA256: &str =
    "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe";

/// Where the data comes from and how it is shaped; defaults equal Keras's.
#[derive(Debug, Clone)]
pub struct DataConfig {
    /// Download and cache folder.
    pub data_dir: PathBuf,
    /// http(s) URL or local path of `aclImdb_v1.tar.gz`.
    pub url: String,
    /// Expected sha256 (hex) of the archive; `None` for the canonical URL
    /// means the canonical checksum.
    pub sha256: Option<String>,
    /// Keras `num_words`.
    pub max_features: usize,
    /// Keras `pad_sequences(maxlen)`.
    pub maxlen: usize,
    /// Show a download progress bar when stderr is a terminal (plain
    /// one-line messages are printed either way).
    pub progress: bool,
}

/// One split as row-major arrays: `x` is `n x maxlen` ids, `y` is 0/1.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub x: Vec<i32>,
    pub y: Vec<u8>,
    pub maxlen: usize,
}

impl Split {
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// Keras's `validation_split`: the first part of the samples for
    /// training and the last `fraction` for validation, in the order given
    /// (`split_at = int(n * (1 - fraction))`).
    pub fn split_last(&self, fraction: f64) -> (Split, Split) {
        let at = (self.len() as f64 * (1.0 - fraction)) as usize;
        let rows = |range: std::ops::Range<usize>| Split {
            x: self.x[range.start * self.maxlen..range.end * self.maxlen].to_vec(),
            y: self.y[range].to_vec(),
            maxlen: self.maxlen,
        };
        (rows(0..at), rows(at..self.len()))
    }

    /// The samples in a fixed pseudo-random order that depends on nothing
    /// but the data. Keras's `imdb.load_data` shuffles its arrays (seed
    /// 113); ours follow the contract's order (all negative reviews, then
    /// all positive ones), in which a last fraction would be one class only.
    pub fn in_shuffled_order(&self) -> Split {
        let mut order: Vec<usize> = (0..self.len()).collect();
        // Fisher-Yates with splitmix64 seeded like load_data: fixed, so the
        // same data always splits the same way, whatever --seed says.
        let mut state: u64 = 113;
        for i in (1..order.len()).rev() {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            order.swap(i, (z % (i as u64 + 1)) as usize);
        }
        Split {
            x: order
                .iter()
                .flat_map(|&i| &self.x[i * self.maxlen..(i + 1) * self.maxlen])
                .copied()
                .collect(),
            y: order.iter().map(|&i| self.y[i]).collect(),
            maxlen: self.maxlen,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
}

/// Both splits, in the contract's order (neg then pos, by numeric id), and
/// the vocabulary they were encoded with.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub train: Split,
    pub test: Split,
    pub vocab: Vocabulary,
}

/// Download (if not kept) -> verify -> read -> tokenise -> vocabulary ->
/// encode -> pad, or load the cache of an earlier run.
pub fn load_dataset(cfg: &DataConfig) -> Result<Dataset> {
    Ok(load_imdb(cfg)?.dataset)
}

/// IMDB's arrays and the sha256 of the archive they were made from, which
/// ties a run to its data even when no `--data-sha256` pinned it.
pub struct ImdbDataset {
    pub dataset: Dataset,
    pub archive_sha256: String,
}

/// [`load_dataset`], with the archive's sha256.
pub fn load_imdb(cfg: &DataConfig) -> Result<ImdbDataset> {
    let (prepared, _, key) = load(cfg)?;
    Ok(ImdbDataset {
        dataset: prepared.dataset,
        archive_sha256: key.archive_sha256,
    })
}

/// The `data` subcommand: `load_dataset` (or, with `texts`, a user's
/// texts), the report, and an optional `.npy` export.
pub fn run_data_command(
    cfg: &DataConfig,
    texts: Option<texts::TextFiles>,
    export: Option<&Path>,
) -> Result<()> {
    if let Some(files) = texts {
        return texts::run_texts_data_command(&texts::TextsConfig::new(cfg, files), export);
    }
    // Before anything is read: IMDB's count is known, its padding is not cheap.
    memory::check_padded_texts_memory(cfg.maxlen, memory::IMDB_REVIEWS)?;
    let started = Instant::now();
    let (prepared, origin, _) = load(cfg)?;
    let elapsed = started.elapsed();
    let mut out = std::io::stdout().lock();
    printout::print_report(
        &mut out,
        &printout::Arrays {
            dataset: &prepared.dataset,
            stats: &prepared.stats,
            class_names: &IMDB_CLASSES.map(str::to_owned),
        },
        cfg.max_features,
        elapsed,
        origin,
    )
    .and_then(|()| out.flush())
    .context("cannot write the report")?;
    if let Some(dir) = export {
        export_npy(dir, &prepared.dataset)?;
        eprintln!(
            "exported x_train, y_train, x_test, y_test (.npy) to {}",
            dir.display()
        );
    }
    Ok(())
}

/// IMDB's classes: `y` is 0 for `neg` and 1 for `pos`.
const IMDB_CLASSES: [&str; 2] = ["neg", "pos"];

/// `cfg`'s archive: where it comes from and the sha256 it must have, with
/// the data folder it is kept in made.
pub(crate) struct ArchiveSource<'a> {
    cfg: &'a DataConfig,
    source: Source,
    expected: Option<String>,
    /// The topmost folder that `open` made, if it made the data folder.
    made: Option<PathBuf>,
}

impl ArchiveSource<'_> {
    pub fn open(cfg: &DataConfig) -> Result<ArchiveSource<'_>> {
        let source = Source::parse(&cfg.url)?;
        let expected = download::expected_sha256(&cfg.url, cfg.sha256.as_deref());
        let made = crate::disk::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("cannot create the data folder {}", cfg.data_dir.display()))?;
        Ok(ArchiveSource {
            cfg,
            source,
            expected,
            made,
        })
    }

    /// After a failure: the folders `open` made, if they stayed empty (a
    /// partial download in them is kept, to be resumed).
    pub fn remove_if_empty(&self) {
        let Some(top) = &self.made else { return };
        for dir in self.cfg.data_dir.ancestors() {
            if crate::disk::remove_dir(dir).is_err() || dir == top {
                break;
            }
        }
    }

    /// The verified archive, downloaded if need be, given to `read` (see
    /// `download::obtain`).
    pub fn obtain<T>(&self, read: impl FnMut(&Path, &str) -> Result<T>) -> Result<T> {
        download::obtain(
            &self.source,
            &self.cfg.data_dir,
            self.expected.as_deref(),
            self.cfg.progress,
            read,
        )
    }
}

fn load(cfg: &DataConfig) -> Result<(Prepared, Origin, CacheKey)> {
    let archive = ArchiveSource::open(cfg)?;
    let loaded = load_from(cfg, &archive);
    if loaded.is_err() {
        archive.remove_if_empty();
    }
    loaded
}

fn load_from(cfg: &DataConfig, archive: &ArchiveSource) -> Result<(Prepared, Origin, CacheKey)> {
    let expected = archive.expected.clone();
    // Reading a cache needs no turn: it is written atomically.
    if let Some((key, prepared)) = known_cache(cfg, expected.as_deref()) {
        return from_cache(cfg, &key, prepared);
    }
    // Runs that share the folder take turns from here; one that waited may
    // find the cache that the other has just written.
    let turn = DataDirLock::acquire(&cfg.data_dir)?;
    if turn.waited() {
        if let Some((key, prepared)) = known_cache(cfg, expected.as_deref()) {
            return from_cache(cfg, &key, prepared);
        }
    }
    let read = |archive: &Path, sha: &str| {
        let key = cache_key(cfg, sha);
        if expected.is_none() {
            if let Some(prepared) = cached(cfg, &key) {
                return Ok((key, prepared, Origin::Cache));
            }
        }
        let prepared = prepare::prepare(archive, cfg.max_features, cfg.maxlen)?;
        Ok((key, prepared, Origin::Archive))
    };
    let (key, prepared, origin) = archive.obtain(read)?;
    if origin == Origin::Cache {
        return from_cache(cfg, &key, prepared);
    }
    cache::save(&key.path(&cfg.data_dir), &key, &prepared)?;
    save_vocabulary(cfg, &key, &prepared.dataset.vocab)?;
    Ok((prepared, Origin::Archive, key))
}

fn cache_key(cfg: &DataConfig, archive_sha256: &str) -> CacheKey {
    CacheKey {
        archive_sha256: archive_sha256.to_owned(),
        num_words: cfg.max_features,
        maxlen: cfg.maxlen,
    }
}

/// With a known checksum the cache is found without reading the archive,
/// or even looking for it: a second run touches no network.
fn known_cache(cfg: &DataConfig, expected: Option<&str>) -> Option<(CacheKey, Prepared)> {
    let key = cache_key(cfg, expected?);
    let prepared = cached(cfg, &key)?;
    Some((key, prepared))
}

/// The cache for `key`, if there is an intact one; a damaged one is reported
/// and left to be overwritten by the rebuild.
fn cached(cfg: &DataConfig, key: &CacheKey) -> Option<Prepared> {
    cache::load(&key.path(&cfg.data_dir), key).unwrap_or_else(|e| {
        eprintln!("warning: {e:#}; rebuilding it");
        None
    })
}

/// A cache hit, with its vocabulary file written again if it was removed.
fn from_cache(
    cfg: &DataConfig,
    key: &CacheKey,
    prepared: Prepared,
) -> Result<(Prepared, Origin, CacheKey)> {
    if !vocabulary_path(cfg, key).exists() {
        save_vocabulary(cfg, key, &prepared.dataset.vocab)?;
    }
    Ok((prepared, Origin::Cache, key.clone()))
}

/// The vocabulary as text, for people and other tools; it depends on the
/// archive only, not on the options.
fn vocabulary_path(cfg: &DataConfig, key: &CacheKey) -> PathBuf {
    let short = key.archive_sha256.get(..16).unwrap_or(&key.archive_sha256);
    cfg.data_dir.join(format!("imdb-{short}-vocab.txt"))
}

fn save_vocabulary(cfg: &DataConfig, key: &CacheKey, vocab: &Vocabulary) -> Result<()> {
    vocab.save(&vocabulary_path(cfg, key))
}

/// `x_*` as `n x maxlen` and `y_*` as `n`, all int32, like Keras's arrays.
fn export_npy(dir: &Path, ds: &Dataset) -> Result<()> {
    crate::disk::create_dir_all(dir)
        .with_context(|| format!("cannot create the export folder {}", dir.display()))?;
    for (name, split) in [("train", &ds.train), ("test", &ds.test)] {
        let x = dir.join(format!("x_{name}.npy"));
        write_npy_i32(&x, &[split.len(), split.maxlen], &split.x)?;
        let y: Vec<i32> = split.y.iter().map(|&v| i32::from(v)).collect();
        write_npy_i32(&dir.join(format!("y_{name}.npy")), &[split.len()], &y)?;
    }
    Ok(())
}
