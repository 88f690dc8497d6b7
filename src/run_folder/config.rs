//! `config.json`: what a run was trained with, enough to rebuild its model
//! and its inputs, and to resume it with the same settings.
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::settings::{ModelConfig, TrainConfig};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunConfig {
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub maxlen: usize,
    pub data_dir: PathBuf,
    pub data_url: String,
    pub data_sha256: Option<String>,
    pub seed: u64,
    pub device: String,
    pub gru_implementation: String,
    pub threads: usize,
    /// `--history`, when the history is kept outside the run folder.
    pub history: Option<PathBuf>,
    pub gru_imdb_version: String,
}
