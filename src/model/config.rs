//! The model's shape and regularisation, as the flags and `config.json`
//! give them, checked as Keras would check them.
use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

use crate::data::texts::MAX_CLASSES;

/// Shape and regularisation of the model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Vocabulary size N (Keras `num_words` / `max_features`).
    pub max_features: usize,
    pub embedding_dim: usize,
    pub units: usize,
    /// Fraction of the GRU's inputs dropped in training.
    pub dropout: f64,
    /// Fraction of the GRU's recurrent state dropped in training.
    pub recurrent_dropout: f64,
    /// Classes of the data: two keep Keras's binary head (one sigmoid
    /// unit), more take one softmax unit each. The data sets it; configs
    /// saved before there were other classes are IMDB's two.
    #[serde(default = "two_classes")]
    pub classes: usize,
}

fn two_classes() -> usize {
    2
}

impl ModelConfig {
    /// Refuses shapes and rates that Keras would refuse or that make no
    /// model; also run on a `config.json` read back from a run folder.
    pub fn validate(&self) -> Result<()> {
        check_max_features(self.max_features)?;
        at_least_one("--embedding-dim", self.embedding_dim)?;
        at_least_one("--units", self.units)?;
        ensure!(
            (2..=MAX_CLASSES).contains(&self.classes),
            "a model has 2 to {MAX_CLASSES} classes, got {}",
            self.classes
        );
        for (flag, p) in [
            ("--dropout", self.dropout),
            ("--recurrent-dropout", self.recurrent_dropout),
        ] {
            ensure!((0.0..1.0).contains(&p), "{flag} must be in [0, 1), got {p}");
        }
        Ok(())
    }

    /// Units of the dense head: one sigmoid unit for two classes (Keras's
    /// binary model), else one softmax unit per class.
    pub fn outputs(&self) -> usize {
        match self.classes {
            2 => 1,
            n => n,
        }
    }
}

/// `--max-features`: ids are i32 (what Keras and the embedding take), and
/// 0-2 are padding, start and out-of-vocabulary, so a word needs id 3 up.
pub(crate) fn check_max_features(max_features: usize) -> Result<()> {
    ensure!(
        (4..=i32::MAX as usize).contains(&max_features),
        "--max-features must be between 4 and {} (ids 0-2 are padding, start and out-of-vocabulary), got {max_features}",
        i32::MAX
    );
    Ok(())
}

/// A count flag (`--units`, `--epochs`, ...): at least 1.
pub(crate) fn at_least_one(flag: &str, value: usize) -> Result<()> {
    ensure!(value >= 1, "{flag} must be at least 1, got {value}");
    Ok(())
}
