//! `config.json`: what a run was trained with, enough to rebuild its model
//! and its inputs, and to resume it with the same settings.
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use anyhow::{Context, Result};

use crate::data::texts::TextFiles;
use crate::data::{Tokenizer, DEFAULT_DATA_DIR};
use crate::model::ModelConfig;
use crate::run_dir::{RunDir, CONFIG_FILE};
use crate::train::TrainConfig;

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
    PathBuf::from(DEFAULT_DATA_DIR)
}

/// The texts a run trained on: their files and how they were read, and the
/// sha256 of their content and those options when the run started, so
/// that resuming on a changed file is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextsSource {
    pub files: TextFiles,
    pub sha256: String,
    /// The rule the texts were cut by: the one given, or `auto`'s choice
    /// (absent from runs from before there was a choice: `imdb`).
    #[serde(default)]
    pub tokenizer: Tokenizer,
}

impl RunConfig {
    /// The rule that cuts texts into this run's tokens: IMDB runs' is always
    /// `imdb`; a run on a user's texts records its own.
    pub fn tokenizer(&self) -> Tokenizer {
        self.texts.as_ref().map_or(Tokenizer::Imdb, |t| t.tokenizer)
    }

    /// The config of the run in `folder`, with its model checked as the
    /// flags would be.
    pub fn load(folder: &RunDir) -> Result<RunConfig> {
        let path = folder.dir().join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {} (is it a run folder?)", path.display()))?;
        let config: RunConfig = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a gru-imdb run config", path.display()))?;
        config
            .model
            .validate()
            .with_context(|| format!("in {}", path.display()))?;
        Ok(config)
    }
}
