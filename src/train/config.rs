//! How to fit: epochs, batches, Adam, validation and the callbacks, as
//! the flags and `config.json` give them, checked as Keras would.
use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

use crate::model::config::at_least_one;
use crate::optim::{AdamConfig, Optimizer};
use crate::run_dir::EpochRecord;

/// How to fit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    /// Batch size of validation and of the final evaluation (Keras's
    /// `validation_batch_size`; results do not depend on it).
    pub validation_batch_size: usize,
    pub adam: AdamConfig,
    /// Which embedding rows Adam moves. Runs from before the choice used
    /// Keras's Adam.
    #[serde(default)]
    pub optimizer: Optimizer,
    /// Keras's `validation_split`: validate on this last fraction of the
    /// training data instead of on the test set.
    pub validation_split: Option<f64>,
    /// Absent from the configs of runs from before callbacks: none then.
    #[serde(default)]
    pub callbacks: CallbackConfig,
    /// Record the running metrics in `steps.csv` every this many steps
    /// (none: about 40 points per epoch). Runs from before it have none.
    #[serde(default)]
    pub history_every_steps: Option<usize>,
}

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        at_least_one("--epochs", self.epochs)?;
        at_least_one("--batch-size", self.batch_size)?;
        at_least_one("--validation-batch-size", self.validation_batch_size)?;
        let AdamConfig {
            learning_rate,
            beta_1,
            beta_2,
            epsilon,
        } = self.adam;
        ensure!(
            learning_rate > 0.0 && learning_rate.is_finite(),
            "--learning-rate must be a positive number, got {learning_rate}"
        );
        // Keras's ranges; 1 (or NaN) would divide by zero in the bias
        // corrections and train to NaN weights.
        for (flag, beta) in [("--beta-1", beta_1), ("--beta-2", beta_2)] {
            ensure!(
                (0.0..1.0).contains(&beta),
                "{flag} must be in [0, 1), got {beta}"
            );
        }
        ensure!(
            epsilon > 0.0 && epsilon.is_finite(),
            "--epsilon must be a positive number, got {epsilon}"
        );
        if let Some(split) = self.validation_split {
            ensure!(
                split > 0.0 && split < 1.0,
                "--validation-split must be in (0, 1), got {split}"
            );
        }
        self.callbacks.validate()
    }
}

/// The metric that picks the best epoch, stops early and reduces the
/// learning rate (Keras's `monitor`, with the direction Keras's `mode="auto"`
/// infers from the name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Monitor {
    #[value(name = "val_loss")]
    ValLoss,
    #[value(name = "val_accuracy")]
    ValAccuracy,
    #[value(name = "loss")]
    Loss,
    #[value(name = "accuracy")]
    Accuracy,
}

impl Monitor {
    pub fn name(self) -> &'static str {
        match self {
            Monitor::ValLoss => "val_loss",
            Monitor::ValAccuracy => "val_accuracy",
            Monitor::Loss => "loss",
            Monitor::Accuracy => "accuracy",
        }
    }

    pub fn higher_is_better(self) -> bool {
        matches!(self, Monitor::ValAccuracy | Monitor::Accuracy)
    }

    pub fn value(self, record: &EpochRecord) -> f64 {
        match self {
            Monitor::ValLoss => record.val_loss,
            Monitor::ValAccuracy => record.val_accuracy,
            Monitor::Loss => record.loss,
            Monitor::Accuracy => record.accuracy,
        }
    }
}

/// Keras's `ReduceLROnPlateau(factor, patience, min_lr, min_delta, cooldown)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReduceLrOnPlateau {
    pub factor: f64,
    pub patience: usize,
    pub min_lr: f64,
    pub min_delta: f64,
    pub cooldown: usize,
}

/// What happens between epochs. The default is none of it (monitoring
/// val_loss), what a run from before the callbacks did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CallbackConfig {
    pub monitor: Monitor,
    /// An epoch is the new best only if it beats the best by more than this.
    pub min_delta: f64,
    /// Keep the best epoch's weights beside the last ones.
    pub save_best: bool,
    /// End the run with the best epoch's weights.
    pub restore_best_weights: bool,
    /// Stop after this many epochs without a new best.
    pub early_stopping_patience: Option<usize>,
    pub reduce_lr_on_plateau: Option<ReduceLrOnPlateau>,
}

impl Default for CallbackConfig {
    fn default() -> Self {
        CallbackConfig {
            monitor: Monitor::ValLoss,
            min_delta: 0.0,
            save_best: false,
            restore_best_weights: false,
            early_stopping_patience: None,
            reduce_lr_on_plateau: None,
        }
    }
}

impl CallbackConfig {
    /// Whether the best epoch's weights are kept beside the last ones.
    pub fn keeps_best(&self) -> bool {
        self.save_best || self.restore_best_weights
    }

    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.min_delta >= 0.0 && self.min_delta.is_finite(),
            "--min-delta must be a number at least 0, got {}",
            self.min_delta
        );
        if let Some(plateau) = &self.reduce_lr_on_plateau {
            ensure!(
                plateau.factor > 0.0 && plateau.factor < 1.0,
                "--reduce-lr-factor must be in (0, 1), got {}",
                plateau.factor
            );
            at_least_one("--reduce-lr-patience", plateau.patience)?;
            ensure!(
                plateau.min_lr >= 0.0 && plateau.min_lr.is_finite(),
                "--min-lr must be a number at least 0, got {}",
                plateau.min_lr
            );
        }
        Ok(())
    }
}
