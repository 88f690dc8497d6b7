//! `gru-imdb train`: data -> model -> fit -> test, leaving a run folder
//! that a killed or interrupted run can be resumed from.
use std::time::Instant;

use anyhow::{Context, Result};
use tch::nn;

use super::train_data::TrainingData;
use crate::evaluation::{evaluate, SplitTensors};
use crate::model::SentimentModel;
use crate::optim::Adam;
use crate::profile;
use crate::progress::Verbosity;
use crate::results::live::write_run_plot;
use crate::results::summary::model_summary;
use crate::run_folder::{
    load_weights, read_optimizer, BestWeights, Checkpoint, RunConfig, RunFolder, RunResults,
    RunStatus, TestResult, WeightsChoice,
};
use crate::settings::TrainSettings;
use crate::train::{interrupt, Fit, FitData, FitEnd, FitState, SavePoint};

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
    folder: RunFolder,
    vs: nn::VarStore,
    model: SentimentModel,
    optimizer: Adam,
    state: FitState,
    inputs_sha256: (String, String),
    started: Instant,
}

pub fn train_command(settings: &TrainSettings) -> Result<TrainOutcome> {
    interrupt::install();
    let placement = &settings.placement;
    if settings.profile {
        profile::enable();
        if let tch::Device::Cuda(ordinal) = placement.device {
            profile::synchronize_gpu(ordinal);
        }
    }
    tch::manual_seed(settings.seed as i64);

    // The data first, so a run folder is made only for a run that can start.
    let data = TrainingData::load(settings)?;
    let settings = &data.settings(settings);
    let (train, validation) = data.split_validation(settings)?;
    let mut session = Session::start(settings, &data)?;
    let test = &data.dataset.test;
    data.report_classes(
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
    fn start(settings: &'a TrainSettings, data: &TrainingData) -> Result<Session<'a>> {
        let placement = &settings.placement;
        let keep_best = settings.train.callbacks.keeps_best();
        let folder = match &settings.outputs.resume {
            Some(dir) => {
                let folder = RunFolder::resume(dir, settings.outputs.history.clone(), keep_best)?;
                data.check_resumed(&folder.load_config()?)?;
                folder
            }
            None => {
                let folder = RunFolder::create(&settings.outputs, keep_best)?;
                let texts_sha256 = data.texts.as_ref().map(|t| t.source.sha256.clone());
                folder.save_config(&RunConfig::new(settings, texts_sha256))?;
                folder.save_vocabulary(&data.dataset.vocab)?;
                if let Some(texts) = &data.texts {
                    folder.save_labels(&texts.class_names)?;
                }
                folder
            }
        };
        let started = Instant::now();
        let vs = nn::VarStore::new(placement.device);
        let model =
            SentimentModel::new(&vs.root(), settings.model, placement.gru, placement.threads);
        placement.share_threads();
        let optimizer = Adam::new(&model.parameters(), settings.train.adam, placement.threads);
        let inputs_sha256 = folder.inputs_sha256()?;
        let mut session = Session {
            settings,
            folder,
            vs,
            model,
            optimizer,
            state: FitState::default(),
            inputs_sha256,
            started,
        };
        session.restore_checkpoint()?;
        session.say(format!(
            "Training on {} with the {:?} GRU, seed {}; run folder {}",
            placement.device_name(),
            placement.gru.train,
            settings.seed,
            session.folder.dir().display()
        ));
        session.say(
            model_summary(&settings.model, settings.data.maxlen)
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
    /// Adam's state and where the fit stood.
    fn restore_checkpoint(&mut self) -> Result<()> {
        let Some((dir, info)) = self.folder.checkpoints().latest_info()? else {
            return Ok(());
        };
        self.folder.check_inputs(&info)?;
        load_weights(&mut self.vs, &dir.join(&info.training_weights))?;
        let adam = read_optimizer(&dir, &info)?;
        self.optimizer.restore(&adam);
        self.state = info.fit;
        self.say(format!(
            "Resuming at epoch {}, step {}",
            self.state.epoch + 1,
            self.state.step
        ));
        Ok(())
    }

    fn fit(&mut self, data: FitData) -> Result<FitEnd> {
        let Session {
            settings,
            folder,
            vs,
            model,
            optimizer,
            state,
            inputs_sha256,
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
                config_sha256: inputs_sha256.0.clone(),
                vocab_sha256: inputs_sha256.1.clone(),
            })?;
            write_run_plot(folder.dir(), &state.history, &state.steps)
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
        let placement = &self.settings.placement;
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
