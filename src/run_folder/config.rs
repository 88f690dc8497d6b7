//! `config.json`: what a run was trained with, enough to rebuild its model
//! and its inputs, and to resume it with the same settings.
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::settings::{ModelConfig, TrainConfig, TrainSettings};

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

impl RunConfig {
    /// What a run with `settings` records.
    pub fn new(settings: &TrainSettings) -> RunConfig {
        RunConfig {
            model: settings.model,
            train: settings.train,
            maxlen: settings.data.maxlen,
            data_dir: settings.data.data_dir.clone(),
            data_url: settings.data.url.clone(),
            data_sha256: settings.data.sha256.clone(),
            seed: settings.seed,
            device: settings.placement.device_name(),
            gru_implementation: format!("{:?}", settings.placement.gru.train),
            threads: settings.placement.threads,
            history: settings.outputs.history.clone(),
            gru_imdb_version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}
