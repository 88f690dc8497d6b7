//! The records of a run, as its checkpoints and histories keep them:
//! training fills them, and every command that reads a run reads them.
//! They are the run folder's format, so they live with it.
use serde::{Deserialize, Serialize};

/// One row of the history, as Keras's CSVLogger writes it plus timings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Counted from 0, as in Keras's CSV.
    pub epoch: usize,
    pub accuracy: f64,
    pub loss: f64,
    pub val_accuracy: f64,
    pub val_loss: f64,
    /// Wall time of the epoch: training and validation.
    pub seconds: f64,
    /// Training samples per second (training part only).
    pub samples_per_second: f64,
    /// The learning rate the epoch trained with (absent from runs from
    /// before it was kept, and from `history.csv`, whose columns are
    /// Keras's): TensorBoard's `epoch_learning_rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning_rate: Option<f64>,
}

/// Where a fit stands: enough, with the weights and Adam's state, to go on
/// exactly where it stopped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FitState {
    /// Epochs finished.
    pub epoch: usize,
    /// Steps finished in the epoch in progress (0 between epochs).
    pub step: usize,
    pub running: RunningTotals,
    /// Training seconds already spent on the epoch in progress.
    pub epoch_seconds: f64,
    pub history: Vec<EpochRecord>,
    /// The step-level history so far (checkpoints from before it have none).
    #[serde(default)]
    pub steps: Vec<StepRecord>,
    pub callbacks: CallbackState,
}

/// The running metrics after `step` (from 1) of `steps_per_epoch` steps of
/// epoch `epoch` (from 0, as in `history.csv`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub epoch: usize,
    pub step: usize,
    pub steps_per_epoch: usize,
    pub accuracy: f64,
    pub loss: f64,
}

impl StepRecord {
    /// Epochs done at this point, e.g. 1.5 halfway through the second: the
    /// x coordinate shared with the epoch rows (plotted at `epoch + 1`).
    pub fn epochs_done(&self) -> f64 {
        self.epoch as f64 + self.step as f64 / self.steps_per_epoch.max(1) as f64
    }
}

/// The best epoch so far by the monitored metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BestEpoch {
    /// Counted from 0, as in the history.
    pub epoch: usize,
    pub value: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallbackState {
    pub best: Option<BestEpoch>,
    /// Epochs since the last improvement (early stopping's patience).
    pub epochs_without_improvement: usize,
    /// Reduce-on-plateau's own best, waiting count and cooldown.
    pub plateau_best: Option<f64>,
    pub plateau_wait: usize,
    pub plateau_cooldown: usize,
    /// The epoch after which early stopping ended the run.
    pub stopped_early_after: Option<usize>,
}

/// The running loss and hit sums of the epoch in progress as plain
/// numbers, as a checkpoint saves them (evaluation's `Totals` keeps them
/// while training).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RunningTotals {
    pub loss_sum: f64,
    pub hits: f64,
    pub samples: usize,
}
