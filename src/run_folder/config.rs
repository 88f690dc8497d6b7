//! `config.json`: what a run was trained with, enough to rebuild its model
//! and its inputs, and to resume it with the same settings.
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::data::texts::TextFiles;
use crate::model::ModelConfig;
use crate::settings::{defaults, TrainConfig, TrainSettings};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunConfig {
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub maxlen: usize,
    /// Absent from the configs of runs from before resuming: the default.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    pub data_url: String,
    /// The archive's sha256: `--data-sha256`, or for IMDB runs the sha256
    /// of the archive read, which pins it for `--resume` and `evaluate`
    /// (absent from runs from before that, and unused by runs on a user's
    /// texts, whose own sha256 is in `texts`).
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

fn default_data_dir() -> PathBuf {
    PathBuf::from(defaults::DATA_DIR)
}

/// The texts a run trained on: their files and how they were read, and the
/// sha256 of their content and those options when the run started, so
/// that resuming on a changed file is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextsSource {
    pub files: TextFiles,
    pub sha256: String,
}

impl RunConfig {
    /// What a run with `settings` records; `data_sha256` is the sha256 of
    /// what it trains on: IMDB's archive, or its own texts.
    pub fn new(settings: &TrainSettings, data_sha256: &str) -> RunConfig {
        let texts = settings.texts.clone().map(|files| TextsSource {
            files,
            sha256: data_sha256.to_owned(),
        });
        let archive_sha256 = match texts {
            Some(_) => settings.data.sha256.clone(),
            None => Some(data_sha256.to_owned()),
        };
        RunConfig {
            model: settings.model,
            train: settings.train,
            maxlen: settings.data.maxlen,
            data_dir: settings.data.data_dir.clone(),
            data_url: settings.data.url.clone(),
            data_sha256: archive_sha256,
            texts,
            seed: settings.seed,
            device: settings.placement.device_name(),
            gru_implementation: format!("{:?}", settings.placement.gru.train),
            threads: settings.placement.threads,
            history: settings.outputs.history.clone(),
            gru_imdb_version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}
