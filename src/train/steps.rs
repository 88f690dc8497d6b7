//! The step-level history: the running loss and accuracy of the epoch so
//! far (what Keras's progress bar shows) every few steps, so a plot has a
//! curve within each epoch and not only one dot per epoch. The last step
//! of an epoch is always recorded, where the running figures equal the
//! epoch's row in the history. The points are part of [`super::FitState`],
//! so a resumed run keeps the ones recorded before it stopped.
use serde::{Deserialize, Serialize};

/// Points per epoch when the interval is left to the program: a curve,
/// yet a file of a few kilobytes.
pub const AUTO_POINTS_PER_EPOCH: usize = 40;

/// How often the running metrics are recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StepInterval {
    /// About `AUTO_POINTS_PER_EPOCH` points per epoch.
    #[default]
    Auto,
    /// Every this many steps (at least 1).
    Every(usize),
}

impl StepInterval {
    /// From `--history-every-steps` (none: automatic).
    pub fn every(steps: Option<usize>) -> StepInterval {
        steps.map_or(StepInterval::Auto, StepInterval::Every)
    }

    /// Whether step `step` (from 1) of `steps_per_epoch` is recorded.
    pub fn records(self, step: usize, steps_per_epoch: usize) -> bool {
        let every = match self {
            StepInterval::Auto => steps_per_epoch.div_ceil(AUTO_POINTS_PER_EPOCH),
            StepInterval::Every(n) => n,
        }
        .max(1);
        step.is_multiple_of(every) || step == steps_per_epoch
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_records_about_forty_points_and_always_the_last_step() {
        let steps = 782; // 25,000 reviews at batch 32
        let recorded: Vec<usize> = (1..=steps)
            .filter(|&s| StepInterval::Auto.records(s, steps))
            .collect();
        assert!((35..=45).contains(&recorded.len()), "{}", recorded.len());
        assert_eq!(recorded.last(), Some(&steps));
    }

    #[test]
    fn a_short_epoch_records_every_step() {
        assert!((1..=5).all(|s| StepInterval::Auto.records(s, 5)));
        assert!(StepInterval::Every(3).records(3, 10));
        assert!(!StepInterval::Every(3).records(4, 10));
        assert!(StepInterval::Every(3).records(10, 10));
    }

    #[test]
    fn a_step_is_placed_by_the_epochs_done() {
        let record = StepRecord {
            epoch: 1,
            step: 5,
            steps_per_epoch: 10,
            accuracy: 0.625,
            loss: 0.5,
        };
        assert_eq!(record.epochs_done(), 1.5);
    }
}
