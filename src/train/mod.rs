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
mod steps;

use std::time::Instant;

use anyhow::Result;
use tch::{Device, Kind, Tensor};

use crate::evaluation::{evaluate, loss_with_logits, SplitTensors, Totals};
use crate::model::{KernelBackward, RunningSums, SentimentModel};
use crate::optim::Adam;
use crate::pool;
use crate::profile::{self, Phase};
use crate::progress::{EpochProgress, Verbosity};
use crate::run_folder::{EpochRecord, FitState, RunningTotals};
pub use callbacks::EpochDecision;
pub use config::{CallbackConfig, Monitor, ReduceLrOnPlateau, TrainConfig};
use next_batch::{Batch, NextBatch};
pub use steps::StepInterval;
use steps::{check_loss, PendingSteps};

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

    /// Step `step` (from 0) of epoch `epoch` (from 0): its batch, forward,
    /// backward and update, its loss and hits added to `totals`. The batch
    /// is `ahead` if the step before prepared it. Where the model works
    /// beside the head (the CPU kernel on two threads or more), a second
    /// thread groups this batch's rows for Adam and prepares the next batch
    /// ([`NextBatch::pick`]) while this one computes the head's loss and
    /// gradients, and the step returns it. The kernel's threads are idle
    /// during the head, and the next draws come from libtorch's generator
    /// either way, so the numbers are the same.
    fn train_step(
        &mut self,
        order: &Tensor,
        step: usize,
        totals: &mut Totals,
        epoch: usize,
        ahead: Option<Batch>,
    ) -> Result<Option<Batch>> {
        let (train, model) = (self.data.train, self.model);
        let len = self.batch_len(step);
        let Batch { masks, x, y } = profile::time(Phase::Batch, || {
            ahead.unwrap_or_else(|| {
                let idx = self.batch_indices(order, step);
                Batch {
                    masks: model.draw_masks(len),
                    x: train.x.index_select(0, &idx),
                    y: train.y.index_select(0, &idx),
                }
            })
        });
        let forward = model.forward_train(&x, &masks);
        let steps = self.steps();
        let next = (step + 1 < steps && model.works_beside_head()).then(|| NextBatch {
            len: self.batch_len(step + 1),
            indices: self.batch_indices(order, step + 1),
            x: train.x.shallow_clone(),
            y: train.y.shallow_clone(),
        });
        let head = || -> Result<KernelBackward> {
            if forward.fuses_head() {
                let (loss_sum, hits) = totals.sums_for_kernel(y.size()[0] as usize);
                let sums = RunningSums { loss_sum, hits };
                return Ok(forward.fused_head_to_kernel(model, &y, sums));
            }
            let loss = profile::time(Phase::DenseAndLoss, || {
                loss_with_logits(&forward.logits, &y)
            });
            // Reading the loss waits for a GPU, so there it is checked when
            // the recorded steps are read, at the end of the epoch (or
            // when it is saved), before anything is saved.
            if y.device() == Device::Cpu {
                check_loss(loss.double_value(&[]), "at", epoch, step + 1, steps)?;
            }
            totals.add(&forward.logits, &y, &loss);
            Ok(forward.backward_to_kernel_for_labels(model, &loss, &y))
        };
        let (head, ahead) = match next {
            Some(next) => {
                let drawer = model.mask_drawer();
                let (optimizer, ids) = (&mut *self.optimizer, x.shallow_clone());
                let beside = move || {
                    optimizer.group_rows_ahead(&ids);
                    next.pick(drawer)
                };
                let started = Instant::now();
                let timed_head = || (head(), started.elapsed());
                let ((head, head_time), next) = pool::join(timed_head, beside);
                // What the head did not hide of the work beside it.
                profile::add(Phase::Batch, started.elapsed().saturating_sub(head_time));
                (head, Some(next))
            }
            None => (head(), None),
        };
        let grads = head?.finish(model);
        profile::time(Phase::Adam, || self.optimizer.step(&grads));
        Ok(ahead)
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
