//! What happens between epochs, as Keras's callbacks do it: the best epoch
//! by a monitored metric (`ModelCheckpoint(save_best_only)` and
//! `restore_best_weights`), `EarlyStopping` and `ReduceLROnPlateau`. Their
//! state is plain data, saved in every checkpoint.

use super::config::{CallbackConfig, Monitor};
use crate::run_dir::{BestEpoch, CallbackState, EpochRecord};

/// What the callbacks decided after an epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochDecision {
    /// This epoch is the new best.
    pub new_best: bool,
    /// The learning rate to use from now on, if it changes.
    pub learning_rate: Option<f64>,
    /// Early stopping ends the run now.
    pub stop: bool,
}

/// Whether `value` beats `reference` by more than `min_delta` in the
/// monitor's direction (Keras's `monitor_op` with `min_delta`).
fn improves(monitor: Monitor, value: f64, reference: Option<f64>, min_delta: f64) -> bool {
    match reference {
        None => true,
        Some(best) if monitor.higher_is_better() => value > best + min_delta,
        Some(best) => value < best - min_delta,
    }
}

impl CallbackState {
    /// Updates the state with a finished epoch's record; `learning_rate`
    /// is the optimiser's current one.
    pub fn after_epoch(
        &mut self,
        config: &CallbackConfig,
        record: &EpochRecord,
        learning_rate: f64,
    ) -> EpochDecision {
        let value = config.monitor.value(record);
        let best_value = self.best.map(|b| b.value);
        let new_best = improves(config.monitor, value, best_value, config.min_delta);
        if new_best {
            self.best = Some(BestEpoch {
                epoch: record.epoch,
                value,
            });
            self.epochs_without_improvement = 0;
        } else {
            self.epochs_without_improvement += 1;
        }
        let stop = config
            .early_stopping_patience
            .is_some_and(|patience| !new_best && self.epochs_without_improvement >= patience);
        if stop {
            self.stopped_early_after = Some(record.epoch);
        }
        EpochDecision {
            new_best,
            learning_rate: self.reduce_on_plateau(config, value, learning_rate),
            stop,
        }
    }

    /// Keras's `ReduceLROnPlateau.on_epoch_end`.
    fn reduce_on_plateau(
        &mut self,
        config: &CallbackConfig,
        value: f64,
        learning_rate: f64,
    ) -> Option<f64> {
        let plateau = config.reduce_lr_on_plateau?;
        let in_cooldown = self.plateau_cooldown > 0;
        if in_cooldown {
            self.plateau_cooldown -= 1;
            self.plateau_wait = 0;
        }
        if improves(config.monitor, value, self.plateau_best, plateau.min_delta) {
            self.plateau_best = Some(value);
            self.plateau_wait = 0;
            return None;
        }
        if in_cooldown {
            return None;
        }
        self.plateau_wait += 1;
        if self.plateau_wait < plateau.patience || learning_rate <= plateau.min_lr {
            return None;
        }
        self.plateau_cooldown = plateau.cooldown;
        self.plateau_wait = 0;
        Some((learning_rate * plateau.factor).max(plateau.min_lr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::ReduceLrOnPlateau;

    fn record(epoch: usize, val_loss: f64) -> EpochRecord {
        EpochRecord {
            epoch,
            accuracy: 0.5,
            loss: 0.5,
            val_accuracy: 1.0 - val_loss,
            val_loss,
            seconds: 1.0,
            samples_per_second: 1.0,
            learning_rate: None,
        }
    }

    fn config(patience: Option<usize>, min_delta: f64) -> CallbackConfig {
        CallbackConfig {
            monitor: Monitor::ValLoss,
            min_delta,
            save_best: true,
            restore_best_weights: true,
            early_stopping_patience: patience,
            reduce_lr_on_plateau: None,
        }
    }

    /// Runs a constructed history through the callbacks; returns the epoch
    /// after which they stopped (if they did) and the best epoch.
    fn replay(config: &CallbackConfig, losses: &[f64]) -> (Option<usize>, Option<usize>) {
        let mut state = CallbackState::default();
        for (epoch, &loss) in losses.iter().enumerate() {
            if state.after_epoch(config, &record(epoch, loss), 1e-3).stop {
                break;
            }
        }
        (state.stopped_early_after, state.best.map(|b| b.epoch))
    }

    #[test]
    fn early_stopping_stops_after_patience_epochs_without_improvement() {
        let losses = [0.5, 0.4, 0.35, 0.36, 0.37, 0.30, 0.2];
        assert_eq!(replay(&config(Some(2), 0.0), &losses), (Some(4), Some(2)));
        assert_eq!(replay(&config(Some(3), 0.0), &losses), (None, Some(6)));
        assert_eq!(replay(&config(None, 0.0), &losses), (None, Some(6)));
    }

    #[test]
    fn an_improvement_smaller_than_min_delta_does_not_count() {
        let losses = [0.5, 0.49, 0.485, 0.3];
        assert_eq!(replay(&config(Some(2), 0.02), &losses), (Some(2), Some(0)));
        assert_eq!(replay(&config(Some(2), 0.0), &losses), (None, Some(3)));
    }

    #[test]
    fn accuracy_is_monitored_upwards() {
        let mut config = config(Some(1), 0.0);
        config.monitor = Monitor::ValAccuracy;
        // val_accuracy = 1 - val_loss: 0.6, 0.7, 0.65 -> stops after epoch 2.
        assert_eq!(replay(&config, &[0.4, 0.3, 0.35]), (Some(2), Some(1)));
    }

    #[test]
    fn reduce_on_plateau_divides_the_rate_after_patience_and_waits_out_its_cooldown() {
        let mut config = config(None, 0.0);
        config.reduce_lr_on_plateau = Some(ReduceLrOnPlateau {
            factor: 0.5,
            patience: 2,
            min_lr: 0.3,
            min_delta: 1e-4,
            cooldown: 1,
        });
        let mut state = CallbackState::default();
        let mut lr = 1.0;
        let mut rates = Vec::new();
        for (epoch, loss) in [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
            .into_iter()
            .enumerate()
        {
            if let Some(new) = state
                .after_epoch(&config, &record(epoch, loss), lr)
                .learning_rate
            {
                lr = new;
            }
            rates.push(lr);
        }
        // Reduced after epochs 2 and 5 (two flat epochs each, with one of
        // cooldown between), the second time only down to min_lr, and
        // never below it.
        assert_eq!(rates, [1.0, 1.0, 0.5, 0.5, 0.5, 0.3, 0.3, 0.3]);
    }
}
