//! The step-level history: the running loss and accuracy of the epoch so
//! far (what Keras's progress bar shows) every few steps, so a plot has a
//! curve within each epoch and not only one dot per epoch. The last step
//! of an epoch is always recorded, where the running figures equal the
//! epoch's row in the history. The points are part of [`super::FitState`],
//! so a resumed run keeps the ones recorded before it stopped.
use crate::run_dir::StepRecord;
use anyhow::{bail, Result};

use crate::evaluation::{Totals, TotalsSnapshot};

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

/// The recorded steps of the epoch in progress, their running sums kept
/// where training keeps them (on a GPU, on the device) and read together
/// when the epoch ends or is saved: reading them at each recorded step
/// made the host wait for the GPU some 40 times an epoch, and at every
/// step of an epoch of 40 steps or fewer.
pub(super) struct PendingSteps {
    interval: StepInterval,
    epoch: usize,
    steps_per_epoch: usize,
    points: Vec<(usize, TotalsSnapshot)>,
}

impl PendingSteps {
    pub fn new(interval: StepInterval, epoch: usize, steps_per_epoch: usize) -> PendingSteps {
        PendingSteps {
            interval,
            epoch,
            steps_per_epoch,
            points: Vec::new(),
        }
    }

    /// Notes the running sums after step `done` (from 1) if the interval
    /// records it.
    pub fn after_step(&mut self, done: usize, totals: &Totals) {
        if self.interval.records(done, self.steps_per_epoch) {
            self.points.push((done, totals.snapshot()));
        }
    }

    /// The step records noted so far, read; an error names the first step
    /// by which the running loss was no longer finite.
    pub fn read(&mut self) -> Result<Vec<StepRecord>> {
        self.points
            .drain(..)
            .map(|(step, snapshot)| {
                let running = snapshot.read().means();
                check_loss(running.loss, "by", self.epoch, step, self.steps_per_epoch)?;
                Ok(StepRecord {
                    epoch: self.epoch,
                    step,
                    steps_per_epoch: self.steps_per_epoch,
                    accuracy: running.accuracy,
                    loss: running.loss,
                })
            })
            .collect()
    }
}

/// Ends the fit with an error if the loss, seen `when` ("at" or "by") step
/// `step` of `steps` in epoch `epoch` (from 0), is not finite.
pub(super) fn check_loss(
    loss: f64,
    when: &str,
    epoch: usize,
    step: usize,
    steps: usize,
) -> Result<()> {
    if !loss.is_finite() {
        bail!(
            "the loss became {loss} {when} epoch {} step {step} of {steps}: training diverged; \
             the last checkpoint is kept (try a lower --learning-rate)",
            epoch + 1,
        );
    }
    Ok(())
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
    fn pending_steps_are_read_in_order_and_a_loss_gone_bad_is_named_by_its_step() {
        use crate::run_dir::RunningTotals;
        let device = tch::Device::Cpu;
        let mut pending = PendingSteps::new(StepInterval::Every(2), 0, 5);
        let sums = |loss_sum: f64, samples| RunningTotals {
            loss_sum,
            hits: 1.0,
            samples,
        };
        for (done, loss_sum) in [(1, 0.5), (2, 1.0), (3, 1.5), (4, f64::NAN), (5, f64::NAN)] {
            pending.after_step(done, &Totals::from_running(&sums(loss_sum, done), device));
        }
        let error = pending.read().unwrap_err().to_string();
        assert!(error.contains("NaN by epoch 1 step 4 of 5"), "{error}");
        pending.after_step(2, &Totals::from_running(&sums(1.0, 2), device));
        let records = pending.read().unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(
            (records[0].step, records[0].loss, records[0].accuracy),
            (2, 0.5, 0.5)
        );
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
