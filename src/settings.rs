//! What each command takes, validated once.
//!
//! The command line (`cli`) parses flags into raw structs; converting them
//! into the settings below is the only place where ranges are checked and
//! defaults filled in, so the rest of the library can trust what it gets.
//! Keras's defaults are written here once ([`defaults`]) and shown by the
//! flags' `--help`.
use std::path::PathBuf;

use anyhow::{bail, ensure, Result};

use crate::data::memory::{available_memory, padded_texts_bytes};
use crate::data::texts::TextFiles;
use crate::data::DataConfig;
use crate::device::{InferenceDevice, Placement};
use crate::model::config::{at_least_one, check_max_features};
use crate::model::ModelConfig;
use crate::progress::Verbosity;
use crate::results::OutputFormat;
use crate::run_config::{RunConfig, TextsSource};
use crate::run_folder::{RunOutputs, WeightsChoice};
use crate::train::TrainConfig;

/// The tutorial's numbers (`docs/keras-parity.md`): the flags' defaults.
pub mod defaults {
    pub const EPOCHS: usize = 5;
    pub const BATCH_SIZE: usize = 32;
    pub const MAX_FEATURES: usize = 10_000;
    pub const MAXLEN: usize = 100;
    pub const EMBEDDING_DIM: usize = 128;
    pub const UNITS: usize = 64;
    pub const DROPOUT: f64 = 0.2;
    pub const RECURRENT_DROPOUT: f64 = 0.2;
    pub const LEARNING_RATE: f64 = 1e-3;
    pub const BETA_1: f64 = 0.9;
    pub const BETA_2: f64 = 0.999;
    pub const EPSILON: f64 = 1e-7;
    /// Keras's `ReduceLROnPlateau` defaults.
    pub const REDUCE_LR_FACTOR: f64 = 0.1;
    pub const REDUCE_LR_PATIENCE: usize = 10;
    pub const REDUCE_LR_MIN_DELTA: f64 = 1e-4;
    pub const REDUCE_LR_COOLDOWN: usize = 0;
    pub const MIN_LR: f64 = 0.0;
    /// Keras's `verbose=1`: a progress bar.
    pub const VERBOSE: u8 = 1;
    pub const DATA_DIR: &str = crate::data::DEFAULT_DATA_DIR;
    /// Batch sizes `evaluate` measures.
    pub const EVALUATE_BATCH_SIZES: &str = "32,1024";
    pub const EVALUATE_REPEATS: usize = 3;
}

/// Everything `gru-imdb train` needs.
#[derive(Debug, Clone)]
pub struct TrainSettings {
    pub data: DataConfig,
    /// A user's texts instead of IMDB (`data` then gives their cache folder
    /// and shape).
    pub texts: Option<TextFiles>,
    pub model: ModelConfig,
    pub train: TrainConfig,
    /// Seeds libtorch's generator: weights, dropout masks and shuffling.
    pub seed: u64,
    pub placement: Placement,
    pub outputs: RunOutputs,
    pub verbosity: Verbosity,
    /// Stop (as an interrupt would, with a checkpoint) after this many
    /// training steps in all.
    pub stop_after_steps: Option<usize>,
    /// Print where each epoch's time goes.
    pub profile: bool,
}

impl TrainSettings {
    /// What a run with these settings records in `config.json`;
    /// `data_sha256` is the sha256 of what it trains on: IMDB's archive,
    /// or its own texts.
    pub fn run_config(&self, data_sha256: &str) -> RunConfig {
        let texts = self.texts.clone().map(|files| TextsSource {
            files,
            sha256: data_sha256.to_owned(),
        });
        let archive_sha256 = match texts {
            Some(_) => self.data.sha256.clone(),
            None => Some(data_sha256.to_owned()),
        };
        RunConfig {
            model: self.model,
            train: self.train,
            maxlen: self.data.maxlen,
            data_dir: self.data.data_dir.clone(),
            data_url: self.data.url.clone(),
            data_sha256: archive_sha256,
            texts,
            seed: self.seed,
            device: self.placement.device_name(),
            gru_implementation: format!("{:?}", self.placement.gru.train),
            threads: self.placement.threads,
            history: self.outputs.history.clone(),
            gru_imdb_version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// Everything `gru-imdb predict` needs.
#[derive(Debug, Clone)]
pub struct PredictSettings {
    pub run_dir: PathBuf,
    pub texts: Vec<String>,
    pub weights: WeightsChoice,
    pub device: InferenceDevice,
    /// Tab-separated lines, or JSON Lines (`--json`).
    pub format: OutputFormat,
}

/// The archive `evaluate` reads: the run's own unless given.
#[derive(Debug, Clone)]
pub struct EvaluateData {
    pub data_dir: PathBuf,
    /// `None` takes the run's archive (and its sha256).
    pub url: Option<String>,
    pub sha256: Option<String>,
}

/// Everything `gru-imdb evaluate` needs.
#[derive(Debug, Clone)]
pub struct EvaluateSettings {
    pub run_dir: PathBuf,
    pub data: EvaluateData,
    pub batch_sizes: Vec<usize>,
    /// Timed passes per batch size, after one warm-up pass.
    pub repeats: usize,
    pub weights: WeightsChoice,
    pub device: InferenceDevice,
    /// Also write the figures as JSON here.
    pub json: Option<PathBuf>,
}

/// `evaluate`'s `--repeats` and `--batch-size`: at least 1 each.
pub fn check_passes(repeats: usize, batch_sizes: &[usize]) -> Result<()> {
    at_least_one("--repeats", repeats)?;
    for &batch_size in batch_sizes {
        at_least_one("--batch-size", batch_size)?;
    }
    Ok(())
}

impl DataConfig {
    pub fn validate(&self) -> Result<()> {
        check_max_features(self.max_features)?;
        at_least_one("--maxlen", self.maxlen)?;
        if let Some(sha) = &self.sha256 {
            check_sha256(sha)?;
        }
        Ok(())
    }
}

/// `--threads`: at least 1, and no more than the cores: the kernel's
/// workers spin-wait for each other, so a thread without a core of its own
/// stalls all of them (measured: 72 s for a 1 s epoch with 10,000).
pub fn check_threads(threads: usize) -> Result<()> {
    at_least_one("--threads", threads)?;
    let cores = crate::device::available_threads();
    ensure!(
        threads <= cores,
        "--threads must be at most {cores}, the cores this machine gives us, got {threads}"
    );
    Ok(())
}

/// Refuses settings whose training cannot fit in the memory available now,
/// before anything is allocated, naming the flag that asks for the most.
/// The estimate counts the prepared arrays, the parameters with their
/// gradients and Adam's two moments, the evaluation table, and one batch's
/// record of the recurrence; what libtorch adds on top is small beside it.
/// `samples` counts the texts of both splits.
pub fn check_memory(
    data: &DataConfig,
    model: &ModelConfig,
    train: &TrainConfig,
    samples: usize,
) -> Result<()> {
    match available_memory() {
        Some(available) => check_memory_within(data, model, train, samples, available),
        None => Ok(()),
    }
}

/// A flag and how many times its default it is.
#[derive(Debug, Clone, Copy)]
struct FlagSize {
    flag: &'static str,
    above_default: f64,
}

impl FlagSize {
    fn new(flag: &'static str, value: usize, default: usize) -> FlagSize {
        FlagSize {
            flag,
            above_default: value as f64 / default as f64,
        }
    }
}

/// A part of the memory estimate: what it holds, its bytes, and the flags
/// it grows with.
struct MemoryNeed {
    what: &'static str,
    bytes: f64,
    flags: Vec<FlagSize>,
}

impl MemoryNeed {
    /// The flag that made this part large: the one furthest above its
    /// default (the first when none is further than the others).
    fn flag(&self) -> &'static str {
        let furthest = self.flags.iter().fold(self.flags[0], |most, f| {
            if f.above_default > most.above_default {
                *f
            } else {
                most
            }
        });
        furthest.flag
    }
}

/// The parts of [`check_memory`]'s estimate.
fn memory_needs(
    data: &DataConfig,
    model: &ModelConfig,
    train: &TrainConfig,
    samples: usize,
) -> [MemoryNeed; 5] {
    let (n, d, h) = (
        model.max_features as f64,
        model.embedding_dim as f64,
        model.units as f64,
    );
    let (t, b) = (data.maxlen as f64, train.batch_size as f64);
    let max_features = FlagSize::new("--max-features", model.max_features, defaults::MAX_FEATURES);
    let embedding_dim = FlagSize::new(
        "--embedding-dim",
        model.embedding_dim,
        defaults::EMBEDDING_DIM,
    );
    let units = FlagSize::new("--units", model.units, defaults::UNITS);
    let maxlen = FlagSize::new("--maxlen", data.maxlen, defaults::MAXLEN);
    let batch_size = FlagSize::new("--batch-size", train.batch_size, defaults::BATCH_SIZE);
    const F32: f64 = 4.0;
    // Parameter, gradient and two moments per weight.
    let per_weight = 4.0 * F32;
    [
        MemoryNeed {
            what: "the padded texts",
            bytes: padded_texts_bytes(samples, data.maxlen),
            flags: vec![maxlen],
        },
        MemoryNeed {
            what: "the embedding table",
            bytes: n * d * per_weight,
            flags: vec![max_features, embedding_dim],
        },
        MemoryNeed {
            what: "the evaluation table",
            bytes: n * 3.0 * h * F32,
            flags: vec![max_features, units],
        },
        MemoryNeed {
            what: "the GRU's weights",
            bytes: (3.0 * h * (d + h + 2.0) + h + 1.0) * per_weight,
            flags: vec![units, embedding_dim],
        },
        MemoryNeed {
            what: "one batch's record of the recurrence",
            bytes: b * t * (14.0 * h + 4.0 * d) * F32,
            flags: vec![batch_size, maxlen, units, embedding_dim],
        },
    ]
}

/// [`check_memory`] against `available` bytes. Each part of the estimate
/// is put on the flag that made it large ([`MemoryNeed::flag`]), and the
/// flag with the most is named: a huge --embedding-dim is named for the
/// embedding table, not --max-features.
fn check_memory_within(
    data: &DataConfig,
    model: &ModelConfig,
    train: &TrainConfig,
    samples: usize,
    available: f64,
) -> Result<()> {
    let needs = memory_needs(data, model, train, samples);
    let total: f64 = needs.iter().map(|need| need.bytes).sum();
    if total <= available {
        return Ok(());
    }
    // The parts by flag, in the order the flags first come.
    let mut by_flag: Vec<(&str, f64, Vec<&str>)> = Vec::new();
    for need in &needs {
        let flag = need.flag();
        match by_flag.iter_mut().find(|(f, _, _)| *f == flag) {
            Some((_, bytes, whats)) => {
                *bytes += need.bytes;
                whats.push(need.what);
            }
            None => by_flag.push((flag, need.bytes, vec![need.what])),
        }
    }
    let (flag, most, whats) = by_flag
        .iter()
        .fold(&by_flag[0], |a, b| if b.1 > a.1 { b } else { a });
    let whats = match whats.as_slice() {
        [init @ .., last] if !init.is_empty() => format!("{} and {last}", init.join(", ")),
        _ => whats.join(""),
    };
    let gib = |bytes: f64| bytes / (1u64 << 30) as f64;
    bail!(
        "these settings need about {:.1} GiB, most of it for {flag} ({:.1} GiB: {whats}), \
         but {:.1} GiB of memory is available: lower {flag}",
        gib(total),
        gib(*most),
        gib(available)
    )
}

/// A user's texts need something to validate on: a test file, or a part
/// of the training file.
pub fn check_texts_validation(texts: &TextFiles, train: &TrainConfig) -> Result<()> {
    ensure!(
        texts.test_file.is_some() || train.validation_split.is_some(),
        "--train-file {} needs --test-file or --validation-split: there is nothing to validate on",
        texts.train_file.display()
    );
    Ok(())
}

/// `--data-sha256`: 64 hex digits.
pub fn check_sha256(sha: &str) -> Result<()> {
    ensure!(
        sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()),
        "--data-sha256 must be 64 hex digits, got '{sha}'"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::memory::IMDB_REVIEWS;
    use crate::optim::AdamConfig;
    use crate::train::CallbackConfig;

    const GIB: f64 = (1u64 << 30) as f64;

    /// The tutorial's settings, with `change` applied to the flags.
    fn refusal(samples: usize, change: impl Fn(&mut DataConfig, &mut ModelConfig)) -> String {
        let mut data = DataConfig {
            data_dir: PathBuf::from(defaults::DATA_DIR),
            url: String::new(),
            sha256: None,
            max_features: defaults::MAX_FEATURES,
            maxlen: defaults::MAXLEN,
            progress: false,
        };
        let mut model = ModelConfig {
            max_features: defaults::MAX_FEATURES,
            embedding_dim: defaults::EMBEDDING_DIM,
            units: defaults::UNITS,
            dropout: defaults::DROPOUT,
            recurrent_dropout: defaults::RECURRENT_DROPOUT,
            classes: 2,
        };
        change(&mut data, &mut model);
        model.max_features = data.max_features;
        let train = TrainConfig {
            epochs: defaults::EPOCHS,
            batch_size: defaults::BATCH_SIZE,
            validation_batch_size: defaults::BATCH_SIZE,
            adam: AdamConfig {
                learning_rate: defaults::LEARNING_RATE,
                beta_1: defaults::BETA_1,
                beta_2: defaults::BETA_2,
                epsilon: defaults::EPSILON,
            },
            validation_split: None,
            callbacks: CallbackConfig::default(),
            history_every_steps: None,
        };
        assert!(check_memory_within(&data, &model, &train, samples, 1e3 * GIB).is_ok());
        check_memory_within(&data, &model, &train, samples, GIB / 4.0)
            .expect_err("a quarter of a GiB is too little")
            .to_string()
    }

    #[test]
    fn a_huge_embedding_dim_is_named_for_the_embedding_table_not_max_features() {
        let err = refusal(IMDB_REVIEWS, |_, model| model.embedding_dim = 40_000);
        assert!(
            err.contains("most of it for --embedding-dim (")
                && err.contains("the embedding table")
                && err.ends_with("lower --embedding-dim"),
            "{err}"
        );
        assert!(!err.contains("--max-features"), "{err}");
    }

    #[test]
    fn a_huge_max_features_is_named_for_the_embedding_table_not_embedding_dim() {
        let err = refusal(IMDB_REVIEWS, |data, _| data.max_features = 2_000_000);
        assert!(
            err.contains("most of it for --max-features (")
                && err.contains("the embedding table and the evaluation table")
                && err.ends_with("lower --max-features"),
            "{err}"
        );
    }

    #[test]
    fn a_huge_maxlen_is_named_for_the_texts_and_the_batch_it_lengthens() {
        // Three texts: the batch's record, not the texts, is most of it.
        let err = refusal(3, |data, _| data.maxlen = 1_000_000);
        assert!(
            err.contains("most of it for --maxlen (")
                && err.contains("the padded texts and one batch's record of the recurrence")
                && err.ends_with("lower --maxlen"),
            "{err}"
        );
    }
}
