//! `gru-imdb train`: plan (data, classes, placement) -> model -> fit ->
//! test, leaving a run folder that a killed or interrupted run can be
//! resumed from.
mod memory_estimate;
mod plan;
mod training_data;

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use tch::nn;

use crate::evaluation::{evaluate, SplitTensors};
use crate::model::SentimentModel;
use crate::optim::Adam;
use crate::profile;
use crate::progress::Verbosity;
use crate::reports::comparison::flat_values;
use crate::reports::live::write_run_plot;
use crate::reports::model_summary::model_summary;
use crate::run_config::RunConfig;
use crate::run_dir::{
    load_weights, read_optimizer, BestWeights, Checkpoint, FitState, RunDir, RunFiles, RunInputs,
    RunResults, RunStatus, TestResult, WeightsChoice,
};
use crate::settings::TrainSettings;
use crate::train::{interrupt, Fit, FitData, FitEnd, SavePoint};
use plan::TrainPlan;

/// How a training command ended, when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrainOutcome {
    Finished,
    /// Stopped by an interrupt after saving a checkpoint; `--resume` goes on.
    Interrupted {
        run_dir: std::path::PathBuf,
    },
}

/// A run being trained: its folder, model, optimiser and where it stands.
struct Session<'a> {
    settings: &'a TrainSettings,
    plan: &'a TrainPlan,
    folder: RunDir,
    vs: nn::VarStore,
    model: SentimentModel,
    optimizer: Adam,
    state: FitState,
    /// What the checkpoints tie the weights to.
    inputs: RunInputs,
    /// The settings as TensorBoard's hparams, by dotted name; `None` with
    /// `--no-tensorboard`.
    hparams: Option<BTreeMap<String, serde_json::Value>>,
    started: Instant,
}

pub fn train_command(settings: &TrainSettings) -> Result<TrainOutcome> {
    interrupt::install();
    // The data first, so a run folder is made only for a run that can start.
    let plan = &TrainPlan::make(settings)?;
    let placement = &plan.placement;
    if settings.profile {
        profile::enable();
        if let tch::Device::Cuda(ordinal) = placement.device {
            profile::synchronize_gpu(ordinal);
        }
    }
    // After the placement: seeding reaches a GPU's generator only once
    // libtorch's CUDA backend is loaded.
    tch::manual_seed(settings.seed as i64);
    let data = &plan.data;
    let (train, validation) = data.split_validation(settings)?;
    let steps_per_epoch = train.len().div_ceil(settings.train.batch_size);
    let mut session = Session::start(settings, plan, steps_per_epoch)?;
    let test = &data.dataset.test;
    data.report_texts(
        &train,
        validation.as_ref().unwrap_or(test),
        settings.verbosity,
    );
    let test_data = SplitTensors::new(test, placement.device);
    let validation_data = match &validation {
        Some(split) => SplitTensors::new(split, placement.device),
        None => test_data.shallow_clone(),
    };
    let train_data = SplitTensors::new(&train, placement.device);
    let data = FitData {
        train: &train_data,
        validation: &validation_data,
    };
    match session.fit(data) {
        Ok(FitEnd::Interrupted) => {
            session.save_results(RunStatus::Interrupted, None, None)?;
            Ok(TrainOutcome::Interrupted {
                run_dir: session.folder.dir().to_path_buf(),
            })
        }
        Ok(_) => {
            let test = session.test(&test_data)?;
            session.save_results(RunStatus::Finished, None, test)?;
            Ok(TrainOutcome::Finished)
        }
        Err(err) => {
            // The run's own error comes first: a full disk may also refuse
            // results.json.
            let message = format!("{err:#}");
            if let Err(also) = session.save_results(RunStatus::Failed, Some(message), None) {
                eprintln!("warning: {also:#}");
            }
            Err(err)
        }
    }
}

impl<'a> Session<'a> {
    /// Claims the run folder (new or resumed), builds the model and, for a
    /// resumed run, loads where its latest checkpoint stood.
    fn start(
        settings: &'a TrainSettings,
        plan: &'a TrainPlan,
        steps_per_epoch: usize,
    ) -> Result<Session<'a>> {
        let (placement, data) = (&plan.placement, &plan.data);
        let keep_best = settings.train.callbacks.keeps_best();
        // The run's config: the folder's own when resuming, else the one
        // written into the new folder.
        let (folder, config) = match &settings.outputs.resume {
            Some(dir) => {
                let folder = RunDir::resume(dir, settings.outputs.history.clone(), keep_best)?;
                let config = RunConfig::load(&folder)?;
                data.check_resumed(&config)?;
                (folder, config)
            }
            None => {
                let config = plan.run_config(settings);
                let files = RunFiles {
                    config: &config,
                    vocab: &data.dataset.vocab,
                    labels: data.texts.as_ref().map(|t| t.class_names.as_slice()),
                };
                (
                    RunDir::create(&settings.outputs, keep_best, &files)?,
                    config,
                )
            }
        };
        let started = Instant::now();
        let vs = nn::VarStore::new(placement.device);
        let model = SentimentModel::new(&vs.root(), plan.model, placement.gru, placement.threads)?;
        placement.share_threads();
        let optimizer = Adam::new(
            &model.parameters(),
            settings.train.adam,
            settings.train.optimizer,
            placement.threads,
        );
        let inputs = folder.inputs(&data.data_sha256)?;
        let hparams = match settings.outputs.no_tensorboard {
            true => None,
            false => Some(flat_values(&serde_json::to_value(&config)?)),
        };
        let mut session = Session {
            settings,
            plan,
            folder,
            vs,
            model,
            optimizer,
            state: FitState::default(),
            inputs,
            hparams,
            started,
        };
        session.restore_checkpoint(steps_per_epoch)?;
        session.say(format!(
            "Training on {} with the {:?} GRU, seed {}; run folder {}",
            placement.device_name(),
            placement.gru.train,
            settings.seed,
            session.folder.dir().display()
        ));
        session.say(
            model_summary(&plan.model, settings.data.maxlen)
                .trim_end()
                .to_owned(),
        );
        Ok(session)
    }

    fn say(&self, message: String) {
        if self.settings.verbosity != Verbosity::Silent {
            eprintln!("{message}");
        }
    }

    /// Continues from the latest checkpoint, if there is one: its weights,
    /// Adam's state and where the fit stood, once it is known to be this
    /// run's, on this data, and a state that a run of `steps_per_epoch`
    /// steps could have saved.
    fn restore_checkpoint(&mut self, steps_per_epoch: usize) -> Result<()> {
        let Some(current) = self.folder.current_checkpoint()? else {
            return Ok(());
        };
        let (dir, info) = (current.dir, current.info);
        if let Some(saved) = &current.inputs {
            if saved.data_sha256 != self.inputs.data_sha256 {
                bail!(
                    "the data changed since this run started (sha256 {}, then {}); \
                     restore it, or start a new run",
                    self.inputs.data_sha256,
                    saved.data_sha256
                );
            }
        }
        info.check(steps_per_epoch).with_context(|| {
            format!(
                "{} cannot be resumed from: restore it, or start a new run",
                dir.join("checkpoint.json").display()
            )
        })?;
        load_weights(&mut self.vs, &dir.join(&info.training_weights))?;
        let adam = read_optimizer(&dir, &info)?;
        self.optimizer.restore(&adam);
        self.state = info.fit;
        // A kill between a publication and its event files left them out.
        self.write_event_files()?;
        self.say(format!(
            "Resuming at epoch {}, step {}",
            self.state.epoch + 1,
            self.state.step
        ));
        Ok(())
    }

    /// The event files of the published checkpoint that `logs/` lacks.
    fn write_event_files(&self) -> Result<()> {
        write_event_files(&self.folder, self.hparams.as_ref(), &self.state)
    }

    fn fit(&mut self, data: FitData) -> Result<FitEnd> {
        let Session {
            settings,
            folder,
            vs,
            model,
            optimizer,
            state,
            inputs,
            hparams,
            ..
        } = self;
        let callbacks = settings.train.callbacks;
        let mut fit = Fit {
            model,
            optimizer,
            data,
            config: &settings.train,
            verbosity: settings.verbosity,
            stop_after_steps: settings.stop_after_steps,
        };
        fit.run(state, |state, optimizer, point| {
            let best = match point {
                _ if !callbacks.keeps_best() => BestWeights::NotKept,
                SavePoint::EpochEnd(decision) if decision.new_best => BestWeights::These,
                _ if state.callbacks.best.is_some() => BestWeights::Previous,
                _ => BestWeights::NotKept,
            };
            folder.save_checkpoint(&Checkpoint {
                weights: vs,
                optimizer: optimizer.state(),
                fit: state,
                best,
                inputs,
            })?;
            write_run_plot(folder.dir(), &state.history, &state.steps)?;
            write_event_files(folder, hparams.as_ref(), state)
        })
    }

    /// The final test evaluation, on the best epoch's weights when the run
    /// restores them (which then become the run's final weights); none
    /// without a test set (a user's texts with no --test-file).
    fn test(&mut self, test_data: &SplitTensors) -> Result<Option<TestResult>> {
        let last_epoch = self.state.epoch.saturating_sub(1);
        let best = self.state.callbacks.best;
        let (weights, epoch) = match best {
            Some(best)
                if self.settings.train.callbacks.restore_best_weights
                    && best.epoch != last_epoch =>
            {
                self.folder.checkpoints().publish_best_as_final()?;
                let path = self.folder.weights_path(WeightsChoice::Last);
                load_weights(&mut self.vs, &path).context("cannot restore the best weights")?;
                ("best", best.epoch)
            }
            _ => ("last", last_epoch),
        };
        if test_data.is_empty() {
            self.say(format!(
                "No test set (no --test-file): the history's val_accuracy is the held-out \
                 figure; run folder {}",
                self.folder.dir().display()
            ));
            return Ok(None);
        }
        let batch = self.settings.train.validation_batch_size;
        let result = evaluate(&self.model, test_data, batch);
        println!("Test loss: {:.4}", result.loss);
        println!("Test accuracy: {:.4}", result.accuracy);
        self.say(format!(
            "Tested the {weights} weights (epoch {}); trained in {:.1} s; run folder {}",
            epoch + 1,
            self.started.elapsed().as_secs_f64(),
            self.folder.dir().display()
        ));
        Ok(Some(TestResult {
            loss: result.loss,
            accuracy: result.accuracy,
            weights: weights.to_owned(),
            epoch,
        }))
    }

    fn save_results(
        &self,
        status: RunStatus,
        error: Option<String>,
        test: Option<TestResult>,
    ) -> Result<()> {
        let placement = &self.plan.placement;
        self.folder.save_results(&RunResults {
            status,
            error,
            epochs_completed: self.state.epoch,
            stopped_early_after: self.state.callbacks.stopped_early_after,
            monitor: self.settings.train.callbacks.monitor.name().to_owned(),
            best: self.state.callbacks.best,
            test,
            wall_seconds: self.started.elapsed().as_secs_f64(),
            device: placement.device_name(),
            gru_implementation: format!("{:?}", placement.gru.train),
            gru_imdb_version: env!("CARGO_PKG_VERSION").to_owned(),
            libtorch_version: env!("GRU_IMDB_LIBTORCH_VERSION").to_owned(),
        })
    }
}

/// The event files of the checkpoint `state` was published with, unless
/// the run writes none (`hparams` is `None`).
fn write_event_files(
    folder: &RunDir,
    hparams: Option<&BTreeMap<String, serde_json::Value>>,
    state: &FitState,
) -> Result<()> {
    let Some(hparams) = hparams else {
        return Ok(());
    };
    folder
        .write_event_files(hparams, &state.history, &state.steps)
        .with_context(|| {
            format!(
                "TensorBoard's event files could not be written (the checkpoint is saved); \
                 `gru-imdb train --resume {0}` writes them, or `--resume {0} --no-tensorboard` \
                 goes on without them",
                folder.dir().display()
            )
        })
}
