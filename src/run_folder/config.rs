//! `config.json`: what a run was trained with, enough to rebuild its model
//! and its inputs, and to resume it with the same settings.
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::data::texts::TextFiles;
use crate::settings::{ModelConfig, TrainConfig};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunConfig {
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub maxlen: usize,
    pub data_dir: PathBuf,
    pub data_url: String,
    pub data_sha256: Option<String>,
    /// A run on a user's texts (`--train-file`) instead of IMDB; absent from
    /// IMDB runs' configs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub texts: Option<TextsSource>,
    pub seed: u64,
    pub device: String,
    pub gru_implementation: String,
    pub threads: usize,
    /// `--history`, when the history is kept outside the run folder.
    pub history: Option<PathBuf>,
    pub gru_imdb_version: String,
}

/// The texts a run trained on: their files and how they were read, and the
/// sha256 of their content and those options when the run started, so
/// that resuming on a changed file is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextsSource {
    pub files: TextFiles,
    pub sha256: String,
}
