//! `train --resume RUN`: the settings of an earlier run, with the flags
//! given on the command line laid over them.
//!
//! Each flag group says, flag by flag, how it lays over the run's
//! `config.json` (the `resume` methods below): a flag that may change
//! (how long to train, where and how to run) replaces the run's setting
//! when given; a flag that fixes the run (its model, data and what
//! training computes) must, when given, give the run's own value, or the
//! resume is refused naming it. Flags not given keep the run's settings,
//! whatever their defaults.
use std::collections::HashSet;
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::parser::ValueSource;
use clap::ArgMatches;

use super::{
    CallbackFlags, DataShapeFlags, DataSourceFlags, FitFlags, ModelFlags, TextFileFlags, TrainFlags,
};
use crate::data::texts::{EmptyTexts, Header, TextFiles};
use crate::data::{DataConfig, CANONICAL_URL};
use crate::device::{DeviceChoice, PlacementChoice};
use crate::model::ModelConfig;
use crate::progress::Verbosity;
use crate::run_config::RunConfig;
use crate::run_dir::{RunDir, RunOutputs};
use crate::settings::TrainSettings;
use crate::train::{CallbackConfig, TrainConfig};

/// The flags given on the command line (not defaulted).
pub fn explicit_flags(matches: &ArgMatches) -> HashSet<String> {
    matches
        .ids()
        .filter(|id| matches.value_source(id.as_str()) == Some(ValueSource::CommandLine))
        .map(|id| id.to_string())
        .collect()
}

/// The command line's flags being laid over a resumed run.
struct Resumed<'a> {
    given: &'a HashSet<String>,
    /// The given flags that fix the run and differ from it, as typed.
    changed: Vec<String>,
    /// Every flag laid over the run, given or not: a test checks that none
    /// of `train`'s is left out.
    seen: Vec<&'static str>,
}

impl<'a> Resumed<'a> {
    fn new(given: &'a HashSet<String>) -> Resumed<'a> {
        Resumed {
            given,
            changed: Vec::new(),
            seen: Vec::new(),
        }
    }

    fn given(&mut self, id: &'static str) -> bool {
        self.seen.push(id);
        self.given.contains(id)
    }

    /// A flag that fixes the run: given, its `value` must be the run's
    /// `setting`.
    fn fixed<T: PartialEq>(&mut self, id: &'static str, setting: &T, value: &T) {
        if self.given(id) && setting != value {
            self.changed.push(format!("--{}", id.replace('_', "-")));
        }
    }

    /// A flag a resumed run may change: given, its `value` replaces the
    /// run's `setting`.
    fn may_change<T>(&mut self, id: &'static str, setting: &mut T, value: T) {
        if self.given(id) {
            *setting = value;
        }
    }

    /// A flag of this command only, which the run does not record.
    fn not_recorded(&mut self, id: &'static str) {
        self.seen.push(id);
    }
}

impl DataSourceFlags {
    /// The cache folder may move; the archive is the run's.
    fn resume(&self, saved: &RunConfig, data_dir: &mut PathBuf, r: &mut Resumed) {
        r.may_change("data_dir", data_dir, self.data_dir.clone());
        let url = self.data_url.as_deref().unwrap_or(CANONICAL_URL);
        r.fixed("data_url", &saved.data_url.as_str(), &url);
        r.fixed("data_sha256", &saved.data_sha256, &self.data_sha256);
    }
}

impl TextFileFlags {
    /// A user's texts, and how they are read, are the run's (`saved` is
    /// `None` for an IMDB run).
    fn resume(&self, saved: Option<&TextFiles>, r: &mut Resumed) {
        let table = saved.map(|files| &files.table);
        r.fixed(
            "train_file",
            &saved.map(|files| &files.train_file),
            &self.train_file.as_ref(),
        );
        r.fixed(
            "test_file",
            &saved.and_then(|files| files.test_file.as_ref()),
            &self.test_file.as_ref(),
        );
        r.fixed(
            "delimiter",
            &table.and_then(|t| t.delimiter),
            &self.delimiter,
        );
        r.fixed(
            "no_header",
            &table.is_some_and(|t| t.header == Header::Absent),
            &self.no_header,
        );
        r.fixed(
            "text_column",
            &table.and_then(|t| t.text_column.as_ref()),
            &self.text_column.as_ref(),
        );
        r.fixed(
            "label_column",
            &table.and_then(|t| t.label_column.as_ref()),
            &self.label_column.as_ref(),
        );
        r.fixed(
            "refuse_empty_texts",
            &saved.is_some_and(|files| files.empty_texts == EmptyTexts::Refuse),
            &self.refuse_empty_texts,
        );
        r.fixed(
            "tokenizer",
            &saved.map(|files| files.tokenizer),
            &Some(self.tokenizer),
        );
    }
}

impl DataShapeFlags {
    fn resume(&self, saved: &RunConfig, r: &mut Resumed) {
        r.fixed(
            "max_features",
            &saved.model.max_features,
            &self.max_features,
        );
        r.fixed("maxlen", &saved.maxlen, &self.maxlen);
    }
}

impl ModelFlags {
    fn resume(&self, saved: &ModelConfig, r: &mut Resumed) {
        r.fixed("embedding_dim", &saved.embedding_dim, &self.embedding_dim);
        r.fixed("units", &saved.units, &self.units);
        r.fixed("dropout", &saved.dropout, &self.dropout);
        r.fixed(
            "recurrent_dropout",
            &saved.recurrent_dropout,
            &self.recurrent_dropout,
        );
    }
}

impl FitFlags {
    /// A resumed run may train for more (or fewer) epochs and validate in
    /// other batches (results do not depend on them); the rest is fixed.
    fn resume(&self, train: &mut TrainConfig, r: &mut Resumed) {
        r.may_change("epochs", &mut train.epochs, self.epochs);
        let validation_batch_size = self.validation_batch_size.unwrap_or(train.batch_size);
        r.may_change(
            "validation_batch_size",
            &mut train.validation_batch_size,
            validation_batch_size,
        );
        r.fixed("batch_size", &train.batch_size, &self.batch_size);
        let adam = &train.adam;
        r.fixed("learning_rate", &adam.learning_rate, &self.learning_rate);
        r.fixed("beta_1", &adam.beta_1, &self.beta_1);
        r.fixed("beta_2", &adam.beta_2, &self.beta_2);
        r.fixed("epsilon", &adam.epsilon, &self.epsilon);
        r.fixed("optimizer", &train.optimizer, &self.optimizer);
        r.fixed(
            "validation_split",
            &train.validation_split,
            &self.validation_split,
        );
        r.fixed(
            "history_every_steps",
            &train.history_every_steps,
            &self.history_every_steps.map(|n| n as usize),
        );
    }
}

impl CallbackFlags {
    fn resume(&self, saved: &CallbackConfig, r: &mut Resumed) {
        r.fixed("monitor", &saved.monitor, &self.monitor);
        r.fixed("min_delta", &saved.min_delta, &self.min_delta);
        r.fixed("save_best", &saved.save_best, &self.save_best);
        r.fixed(
            "restore_best_weights",
            &saved.restore_best_weights,
            &self.restore_best_weights,
        );
        r.fixed(
            "early_stopping_patience",
            &saved.early_stopping_patience,
            &self.early_stopping_patience,
        );
        let plateau = saved.reduce_lr_on_plateau;
        r.fixed(
            "reduce_lr_on_plateau",
            &plateau.is_some(),
            &self.reduce_lr_on_plateau,
        );
        // Without reduce-on-plateau in the run its settings do nothing
        // (as in a new run): compared only where the run has it.
        let mut setting = |id, saved: Option<f64>, value: f64| {
            r.fixed(id, &saved, &saved.map(|_| value));
        };
        setting(
            "reduce_lr_factor",
            plateau.map(|p| p.factor),
            self.reduce_lr_factor,
        );
        setting(
            "reduce_lr_min_delta",
            plateau.map(|p| p.min_delta),
            self.reduce_lr_min_delta,
        );
        setting("min_lr", plateau.map(|p| p.min_lr), self.min_lr);
        let counts = [
            (
                "reduce_lr_patience",
                plateau.map(|p| p.patience),
                self.reduce_lr_patience,
            ),
            (
                "reduce_lr_cooldown",
                plateau.map(|p| p.cooldown),
                self.reduce_lr_cooldown,
            ),
        ];
        for (id, saved, value) in counts {
            r.fixed(id, &saved, &saved.map(|_| value));
        }
    }
}

/// The settings of the run in `--resume`, with the flags laid over them.
pub fn resumed_settings(flags: &TrainFlags, given: &HashSet<String>) -> Result<TrainSettings> {
    let Some(dir) = &flags.resume else {
        bail!("resumed_settings needs --resume");
    };
    let saved = RunConfig::load(&RunDir::open_to_resume(dir)?)?;
    let mut r = Resumed::new(given);
    let resumed = lay_over(flags, &saved, &mut r)?;
    if !r.changed.is_empty() {
        bail!(
            "--resume keeps the run's model, data and training settings; {} would change them \
             (leave them out, or start a new run)",
            r.changed.join(", ")
        );
    }
    resumed.train.validate()?;
    Ok(resumed)
}

/// The run's settings with every flag group laid over them.
fn lay_over(flags: &TrainFlags, saved: &RunConfig, r: &mut Resumed) -> Result<TrainSettings> {
    let verbosity = Verbosity::from_keras(flags.verbose);
    let mut data = DataConfig {
        data_dir: saved.data_dir.clone(),
        url: saved.data_url.clone(),
        sha256: saved.data_sha256.clone(),
        max_features: saved.model.max_features,
        maxlen: saved.maxlen,
        progress: verbosity != Verbosity::Silent,
    };
    flags.source.resume(saved, &mut data.data_dir, r);
    let files = saved.texts.as_ref().map(|texts| &texts.files);
    flags.texts.resume(files, r);
    flags.shape.resume(saved, r);
    flags.model.resume(&saved.model, r);
    let mut train = saved.train;
    flags.fit.resume(&mut train, r);
    flags.callbacks.resume(&saved.train.callbacks, r);
    r.fixed("seed", &Some(saved.seed), &flags.seed);
    r.fixed("history", &saved.history, &flags.history);
    let mut device = saved.device.parse().unwrap_or(DeviceChoice::Auto);
    r.may_change("device", &mut device, flags.device.device);
    let mut threads = saved.threads;
    r.may_change("threads", &mut threads, flags.threads.resolve()?);
    let this_command = [
        "config",
        "print_config",
        "resume",
        "run_dir",
        "gru_implementation",
        "profile",
        "stop_after_steps",
        "verbose",
        "no_tensorboard",
    ];
    for id in this_command {
        r.not_recorded(id);
    }
    Ok(TrainSettings {
        data,
        texts: files.cloned(),
        model: saved.model,
        train,
        seed: saved.seed,
        placement: PlacementChoice {
            device,
            gru: flags.gru_implementation,
            threads,
        },
        outputs: RunOutputs {
            run_dir: None,
            history: saved.history.clone(),
            resume: flags.resume.clone(),
            no_tensorboard: flags.no_tensorboard,
        },
        verbosity,
        stop_after_steps: flags.stop_after_steps,
        profile: flags.profile,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::{Args, CommandFactory, Parser};

    /// A run's config.json: the tutorial's settings, with reduce-on-plateau
    /// and a user's texts, so that every flag has a setting to lay over.
    fn saved() -> RunConfig {
        serde_json::from_value(serde_json::json!({
            "model": {"max_features": 10000, "embedding_dim": 128, "units": 16,
                      "dropout": 0.5, "recurrent_dropout": 0.2, "classes": 3},
            "train": {"epochs": 2, "batch_size": 32, "validation_batch_size": 32,
                      "adam": {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999,
                               "epsilon": 1e-7},
                      "validation_split": null,
                      "callbacks": {"monitor": "val_loss", "min_delta": 0.0,
                                    "save_best": false, "restore_best_weights": false,
                                    "early_stopping_patience": null,
                                    "reduce_lr_on_plateau": {"factor": 0.5, "patience": 2,
                                        "min_lr": 0.0, "min_delta": 0.0001, "cooldown": 0}},
                      "history_every_steps": null},
            "maxlen": 100, "data_dir": "/data", "data_url": CANONICAL_URL,
            "data_sha256": null,
            "texts": {"files": {"train_file": "/t.csv", "test_file": null,
                                "table": {"delimiter": null, "header": "Present",
                                          "text_column": null, "label_column": null},
                                "empty_texts": "Warn"},
                      "sha256": "00"},
            "seed": 7, "device": "cpu", "gru_implementation": "CpuKernel", "threads": 1,
            "history": null, "gru_imdb_version": "0.1.0"
        }))
        .unwrap()
    }

    /// What laying `args` over [`saved`] lists as changed, and the flags
    /// it laid over the run.
    fn lay(args: &[&str]) -> (Vec<String>, HashSet<&'static str>) {
        let argv = ["gru-imdb", "--resume", "/run", "--threads", "1"];
        let matches = Cli::command().get_matches_from(argv.iter().chain(args));
        let cli = Cli::parse_from(argv.iter().chain(args));
        let given = explicit_flags(&matches);
        let mut r = Resumed::new(&given);
        lay_over(&cli.train, &saved(), &mut r).unwrap();
        (r.changed, r.seen.into_iter().collect())
    }

    #[test]
    fn every_flag_of_train_either_may_change_or_fixes_the_run() {
        let (_, seen) = lay(&[]);
        let command = TrainFlags::augment_args(clap::Command::new("train"));
        let ids: HashSet<&str> = command
            .get_arguments()
            .map(|a| a.get_id().as_str())
            .collect();
        assert_eq!(seen, ids);
    }

    #[test]
    fn only_the_given_flags_that_differ_from_the_run_are_named() {
        // The run's own --units and the default --dropout (not the run's).
        let (changed, _) = lay(&["--units", "16", "--dropout", "0.2"]);
        assert_eq!(changed, ["--dropout"]);
        // Flags left out keep the run's settings, whatever their defaults.
        assert!(lay(&["--epochs", "9", "--data-dir", "/elsewhere"])
            .0
            .is_empty());
        let texts = ["--train-file", "/t.csv", "--no-header"];
        let (changed, _) =
            lay(&[&texts[..], &["--reduce-lr-factor", "0.1", "--seed", "7"]].concat());
        assert_eq!(changed, ["--no-header", "--reduce-lr-factor"]);
    }
}
