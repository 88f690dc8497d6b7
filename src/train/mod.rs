//! `model.fit(...)` with Keras's semantics (`docs/keras-parity.md`,
//! section 4), resumable at any step: everything that changes as training
//! goes is in [`FitState`], which a checkpoint saves, and every random draw
//! comes from libtorch's generator in a fixed order (each epoch's shuffle,
//! then each step's dropout masks), so a resumed run draws, and discards,
//! those of the steps it has already done and then continues on the very
//! numbers the uninterrupted run would have used.
mod callbacks;
mod config;
pub mod interrupt;
mod next_batch;
mod step_history;

use std::time::Instant;

use anyhow::Result;
use tch::{Device, Kind, Tensor};

use crate::evaluation::{evaluate, SplitTensors, Totals};
use crate::model::{RunningSums, SentimentModel, StepTotals, TrainBatch};
use crate::optim::Adam;
use crate::profile::{self, Phase};
use crate::progress::{EpochProgress, Verbosity};
use crate::run_dir::{EpochRecord, FitState, RunningTotals};
pub use callbacks::EpochDecision;
pub use config::{CallbackConfig, Monitor, ReduceLrOnPlateau, TrainConfig};
use next_batch::NextBatch;
pub use step_history::StepInterval;
use step_history::{check_loss, PendingSteps};

/// Why a fit returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FitEnd {
    /// All epochs ran.
    Finished,
    /// Early stopping ended it after this epoch.
    StoppedEarly { after_epoch: usize },
    /// An interrupt asked it to stop; the state was saved.
    Interrupted,
}

/// When the caller is asked to save a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SavePoint {
    /// An epoch ended; its decision says whether it is the new best.
    EpochEnd(EpochDecision),
    /// An interrupt arrived in the middle of an epoch.
    MidEpoch,
}

/// The data a fit reads.
pub struct FitData<'a> {
    pub train: &'a SplitTensors,
    pub validation: &'a SplitTensors,
}

/// `model.fit(x, y, batch_size, epochs, validation_data=(x_val, y_val),
/// callbacks=...)`.
pub struct Fit<'a> {
    pub model: &'a SentimentModel,
    pub optimizer: &'a mut Adam,
    pub data: FitData<'a>,
    pub config: &'a TrainConfig,
    pub verbosity: Verbosity,
    /// Stop as an interrupt would once this many steps (counted over all
    /// epochs) are done: for time-boxed runs and for testing resumption.
    pub stop_after_steps: Option<usize>,
}

impl Fit<'_> {
    /// Trains from `state` on. The training set is reshuffled before every
    /// epoch and every sample is used (the last batch is partial). `save`
    /// is called with the state after every epoch, and at the current step
    /// when an interrupt arrives; a loss that is not finite ends the fit
    /// with an error before anything more is saved.
    pub fn run(
        &mut self,
        state: &mut FitState,
        mut save: impl FnMut(&FitState, &Adam, SavePoint) -> Result<()>,
    ) -> Result<FitEnd> {
        if let Some(after_epoch) = state.callbacks.stopped_early_after {
            return Ok(FitEnd::StoppedEarly { after_epoch });
        }
        for epoch in 0..self.config.epochs {
            let order = self.shuffle();
            if epoch < state.epoch {
                self.skip_steps(self.steps());
                continue;
            }
            let Some(progress) = self.train_epoch(state, &order, &mut save)? else {
                return Ok(FitEnd::Interrupted);
            };
            let decision = self.end_epoch(state, progress);
            save(state, self.optimizer, SavePoint::EpochEnd(decision))?;
            if decision.stop {
                return Ok(FitEnd::StoppedEarly {
                    after_epoch: state.epoch - 1,
                });
            }
            if self.should_stop(state) && state.epoch < self.config.epochs {
                return Ok(FitEnd::Interrupted);
            }
        }
        Ok(FitEnd::Finished)
    }

    fn samples(&self) -> i64 {
        self.data.train.len() as i64
    }

    fn steps(&self) -> usize {
        self.data.train.len().div_ceil(self.config.batch_size)
    }

    /// The samples of batch `step`: the batch size, or fewer at the end.
    fn batch_len(&self, step: usize) -> i64 {
        let batch = self.config.batch_size as i64;
        batch.min(self.samples() - step as i64 * batch)
    }

    /// An interrupt arrived, or the step limit is reached.
    fn should_stop(&self, state: &FitState) -> bool {
        let done = state.epoch * self.steps() + state.step;
        interrupt::requested() || self.stop_after_steps.is_some_and(|limit| done >= limit)
    }

    /// This epoch's order of the training samples.
    fn shuffle(&self) -> Tensor {
        Tensor::randperm(self.samples(), (Kind::Int64, Device::Cpu))
            .to_device(self.data.train.x.device())
    }

    /// Draws the dropout masks of the first `steps` steps of an epoch and
    /// drops them: what a resumed run does for the steps it has done.
    fn skip_steps(&self, steps: usize) {
        for step in 0..steps {
            self.model.draw_masks(self.batch_len(step));
        }
    }

    /// The steps of the epoch in progress, and its progress display to
    /// finish; `None` if an interrupt stopped it (after saving where it
    /// stood).
    fn train_epoch(
        &mut self,
        state: &mut FitState,
        order: &Tensor,
        save: &mut impl FnMut(&FitState, &Adam, SavePoint) -> Result<()>,
    ) -> Result<Option<EpochProgress>> {
        let steps = self.steps();
        let mut progress = EpochProgress::start(
            self.verbosity,
            state.epoch + 1,
            self.config.epochs,
            steps as u64,
        );
        let mut totals = Totals::from_running(&state.running, self.data.train.y.device());
        let interval = StepInterval::every(self.config.history_every_steps);
        let mut pending = PendingSteps::new(interval, state.epoch, steps);
        self.skip_steps(state.step);
        let started = Instant::now();
        let mut ahead = None;
        for step in state.step..steps {
            ahead = self.train_step(order, step, &mut totals, state.epoch, ahead)?;
            pending.after_step(step + 1, &totals);
            progress.step(step as u64 + 1, || {
                let running = totals.means();
                vec![("accuracy", running.accuracy), ("loss", running.loss)]
            });
            state.step = step + 1;
            if self.should_stop(state) && step + 1 < steps {
                state.steps.extend(pending.read()?);
                state.running = totals.running();
                state.epoch_seconds += started.elapsed().as_secs_f64();
                save(state, self.optimizer, SavePoint::MidEpoch)?;
                return Ok(None);
            }
        }
        state.steps.extend(pending.read()?);
        state.step = steps;
        state.running = totals.running();
        state.epoch_seconds += started.elapsed().as_secs_f64();
        Ok(Some(progress))
    }

    /// The indices into the training set of batch `step` of `order`.
    fn batch_indices(&self, order: &Tensor, step: usize) -> Tensor {
        let start = step as i64 * self.config.batch_size as i64;
        order.narrow(0, start, self.batch_len(step))
    }

    /// Step `step` (from 0) of epoch `epoch` (from 0): its batch, the
    /// model's step and Adam's update, its loss and hits added to
    /// `totals`. The batch is `ahead` if the step before prepared it.
    /// Beside the model's head, where it has a thread idle then
    /// ([`SentimentModel::train_step`]), Adam groups this batch's rows and
    /// the next batch is prepared ([`NextBatch::pick`]); the step returns
    /// it.
    fn train_step(
        &mut self,
        order: &Tensor,
        step: usize,
        totals: &mut Totals,
        epoch: usize,
        ahead: Option<TrainBatch>,
    ) -> Result<Option<TrainBatch>> {
        let train = self.data.train;
        let batch = profile::time(Phase::Batch, || {
            ahead.unwrap_or_else(|| {
                let indices = self.batch_indices(order, step);
                TrainBatch {
                    masks: self.model.draw_masks(self.batch_len(step)),
                    ids: train.x.index_select(0, &indices),
                    labels: train.y.index_select(0, &indices),
                }
            })
        });
        let steps = self.steps();
        let next = (step + 1 < steps).then(|| NextBatch {
            len: self.batch_len(step + 1),
            indices: self.batch_indices(order, step + 1),
            x: train.x.shallow_clone(),
            y: train.y.shallow_clone(),
        });
        let mut step_totals = StepLoss {
            totals,
            at: StepAt { epoch, step, steps },
        };
        let optimizer = &mut *self.optimizer;
        let beside = next.map(|next| {
            let ids = batch.ids.shallow_clone();
            move |drawer| {
                optimizer.group_rows_ahead(&ids);
                next.pick(drawer)
            }
        });
        let output = self.model.train_step(&batch, &mut step_totals, beside)?;
        profile::time(Phase::Adam, || self.optimizer.step(&output.gradients));
        Ok(output.beside)
    }

    /// Validation, the epoch's record and the callbacks' decision.
    fn end_epoch(&mut self, state: &mut FitState, progress: EpochProgress) -> EpochDecision {
        let started = Instant::now();
        let trained = state.running.means();
        let validated = profile::time(Phase::Validation, || {
            evaluate(
                self.model,
                self.data.validation,
                self.config.validation_batch_size,
            )
        });
        let record = EpochRecord {
            epoch: state.epoch,
            accuracy: trained.accuracy,
            loss: trained.loss,
            val_accuracy: validated.accuracy,
            val_loss: validated.loss,
            seconds: state.epoch_seconds + started.elapsed().as_secs_f64(),
            samples_per_second: self.samples() as f64 / state.epoch_seconds,
            learning_rate: Some(self.optimizer.learning_rate()),
        };
        progress.finish(&record_metrics(&record));
        if let Some(table) = profile::take_table(record.seconds) {
            if self.verbosity != Verbosity::Silent {
                println!("{table}");
            }
        }
        let decision = state.callbacks.after_epoch(
            &self.config.callbacks,
            &record,
            self.optimizer.learning_rate(),
        );
        if let Some(learning_rate) = decision.learning_rate {
            if self.verbosity != Verbosity::Silent {
                println!(
                    "Epoch {}: ReduceLROnPlateau reducing learning rate to {learning_rate}.",
                    state.epoch + 1
                );
            }
            self.optimizer.set_learning_rate(learning_rate);
        }
        state.history.push(record);
        state.epoch += 1;
        state.step = 0;
        state.running = RunningTotals::default();
        state.epoch_seconds = 0.0;
        decision
    }
}

/// The metrics Keras prints at the end of an epoch.
fn record_metrics(record: &EpochRecord) -> [(&'static str, f64); 4] {
    [
        ("accuracy", record.accuracy),
        ("loss", record.loss),
        ("val_accuracy", record.val_accuracy),
        ("val_loss", record.val_loss),
    ]
}

/// Where a step stands in the fit: for the error of a loss that is not
/// finite.
#[derive(Clone, Copy)]
struct StepAt {
    /// From 0.
    epoch: usize,
    /// From 0.
    step: usize,
    steps: usize,
}

/// The epoch's running totals as the model's step adds to them.
struct StepLoss<'t> {
    totals: &'t mut Totals,
    at: StepAt,
}

impl StepTotals for StepLoss<'_> {
    fn running_sums(&mut self, batch: usize) -> RunningSums<'_> {
        let (loss_sum, hits) = self.totals.sums_for_kernel(batch);
        RunningSums { loss_sum, hits }
    }

    fn add(&mut self, logits: &Tensor, labels: &Tensor, loss: &Tensor) -> Result<()> {
        // Reading the loss waits for a GPU, so there it is checked when
        // the recorded steps are read, at the end of the epoch (or when
        // it is saved), before anything is saved.
        if labels.device() == Device::Cpu {
            let StepAt { epoch, step, steps } = self.at;
            check_loss(loss.double_value(&[]), "at", epoch, step + 1, steps)?;
        }
        self.totals.add(logits, labels, loss);
        Ok(())
    }
}
