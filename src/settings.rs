//! What each command takes, validated once.
//!
//! The command line (`cli`) parses flags into raw structs; converting them
//! into the settings below is the only place where ranges are checked and
//! defaults filled in, so the rest of the library can trust what it gets.
//! Keras's defaults are written here once ([`defaults`]) and shown by the
//! flags' `--help`.
use std::path::PathBuf;

use anyhow::{ensure, Result};

use crate::data::texts::TextFiles;
use crate::data::DataConfig;
use crate::device::{DeviceAndThreads, PlacementChoice};
use crate::model::config::{at_least_one, check_max_features};
use crate::model::ModelConfig;
use crate::progress::Verbosity;
use crate::reports::OutputFormat;
use crate::run_dir::{RunOutputs, WeightsChoice};
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
    /// The model the flags ask for: two classes (IMDB's) until planning
    /// counts a user's (`commands::train`), or the resumed run's.
    pub model: ModelConfig,
    pub train: TrainConfig,
    /// Seeds libtorch's generator: weights, dropout masks and shuffling.
    pub seed: u64,
    /// Resolved in planning, after the data.
    pub placement: PlacementChoice,
    pub outputs: RunOutputs,
    pub verbosity: Verbosity,
    /// Stop (as an interrupt would, with a checkpoint) after this many
    /// training steps in all.
    pub stop_after_steps: Option<usize>,
    /// Print where each epoch's time goes.
    pub profile: bool,
}

/// Everything `gru-imdb predict` needs.
#[derive(Debug, Clone)]
pub struct PredictSettings {
    pub run_dir: PathBuf,
    pub texts: Vec<String>,
    pub weights: WeightsChoice,
    pub device: DeviceAndThreads,
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
    pub device: DeviceAndThreads,
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

/// Everything `gru-imdb serve` needs.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub run_dir: PathBuf,
    /// `<name>` in `/v1/models/<name>`: the run folder's name unless given.
    pub model_name: String,
    pub address: std::net::SocketAddr,
    pub access: Access,
    pub weights: WeightsChoice,
    pub device: DeviceAndThreads,
    pub batching: Batching,
    pub limits: ServeLimits,
    /// Print each request's review texts in the request log.
    pub log_texts: bool,
}

/// Who may call the API.
#[derive(Clone)]
pub enum Access {
    /// Anyone who reaches the address (a loopback one, or `--no-auth`).
    Open,
    /// Callers that send `Authorization: Bearer <key>`.
    Key(String),
}

impl std::fmt::Debug for Access {
    /// Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Access::Open => f.write_str("Open"),
            Access::Key(_) => f.write_str("Key(..)"),
        }
    }
}

/// How concurrent requests are gathered into one forward pass.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// Reviews in one forward pass, at most.
    pub max_batch: usize,
    /// How long the first request of a batch waits for others.
    pub timeout: std::time::Duration,
}

/// What one caller may ask of the server.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    pub max_body_bytes: usize,
    pub max_instances: usize,
    pub max_text_bytes: usize,
    /// For a request's headers, counted from when the connection waits for
    /// one (so also how long a kept-alive connection may sit idle), and
    /// then again for its body.
    pub read_timeout: std::time::Duration,
    pub max_connections: usize,
}

/// `serve`'s counts: at least 1 each.
pub fn check_serve_limits(batching: &Batching, limits: &ServeLimits) -> Result<()> {
    at_least_one("--max-batch", batching.max_batch)?;
    at_least_one("--max-body-bytes", limits.max_body_bytes)?;
    at_least_one("--max-instances", limits.max_instances)?;
    at_least_one("--max-text-bytes", limits.max_text_bytes)?;
    at_least_one("--max-connections", limits.max_connections)?;
    ensure!(
        !limits.read_timeout.is_zero(),
        "--read-timeout-ms must be at least 1"
    );
    Ok(())
}
