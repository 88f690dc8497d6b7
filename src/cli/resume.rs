//! `train --resume RUN`: the settings of an earlier run, with the few flags
//! that change neither its model nor its data nor what training computes.
use std::collections::HashSet;

use anyhow::{bail, Result};
use clap::parser::ValueSource;
use clap::ArgMatches;

use super::TrainFlags;
use crate::data::DataConfig;
use crate::device::{DeviceChoice, PlacementChoice};
use crate::model::ModelConfig;
use crate::progress::Verbosity;
use crate::run_config::{RunConfig, TextsSource};
use crate::run_folder::RunFolder;
use crate::run_folder::RunOutputs;
use crate::settings::TrainSettings;

/// The flags given on the command line (not defaulted).
pub fn explicit_flags(matches: &ArgMatches) -> HashSet<String> {
    matches
        .ids()
        .filter(|id| matches.value_source(id.as_str()) == Some(ValueSource::CommandLine))
        .map(|id| id.to_string())
        .collect()
}

/// The flags that would change the model, the data or what training
/// computes, and where `config.json` keeps each.
const FIXED_FLAGS: [(&str, &str); 30] = [
    ("max_features", "/model/max_features"),
    ("embedding_dim", "/model/embedding_dim"),
    ("units", "/model/units"),
    ("dropout", "/model/dropout"),
    ("recurrent_dropout", "/model/recurrent_dropout"),
    ("maxlen", "/maxlen"),
    ("data_url", "/data_url"),
    ("data_sha256", "/data_sha256"),
    ("seed", "/seed"),
    ("history", "/history"),
    ("batch_size", "/train/batch_size"),
    ("learning_rate", "/train/adam/learning_rate"),
    ("beta_1", "/train/adam/beta_1"),
    ("beta_2", "/train/adam/beta_2"),
    ("epsilon", "/train/adam/epsilon"),
    ("validation_split", "/train/validation_split"),
    ("history_every_steps", "/train/history_every_steps"),
    ("monitor", "/train/callbacks/monitor"),
    ("min_delta", "/train/callbacks/min_delta"),
    ("save_best", "/train/callbacks/save_best"),
    (
        "restore_best_weights",
        "/train/callbacks/restore_best_weights",
    ),
    (
        "early_stopping_patience",
        "/train/callbacks/early_stopping_patience",
    ),
    (
        "reduce_lr_on_plateau",
        "/train/callbacks/reduce_lr_on_plateau",
    ),
    ("train_file", "/texts/files/train_file"),
    ("test_file", "/texts/files/test_file"),
    ("delimiter", "/texts/files/table/delimiter"),
    ("no_header", "/texts/files/table/header"),
    ("text_column", "/texts/files/table/text_column"),
    ("label_column", "/texts/files/table/label_column"),
    ("refuse_empty_texts", "/texts/files/empty_texts"),
];

/// Refuses every given flag whose setting differs from the run's own: the
/// config is made again with the flags' values in it, and compared with the
/// saved one setting by setting.
fn refuse_changes(flags: &TrainFlags, saved: &RunConfig, given: &HashSet<String>) -> Result<()> {
    let reduce_lr = [
        "reduce_lr_factor",
        "reduce_lr_patience",
        "reduce_lr_min_delta",
        "reduce_lr_cooldown",
        "min_lr",
    ];
    let given_fixed = |id: &str| {
        given.contains(id)
            || (id == "reduce_lr_on_plateau" && reduce_lr.iter().any(|r| given.contains(*r)))
    };
    if !FIXED_FLAGS.iter().any(|(id, _)| given_fixed(id)) {
        return Ok(());
    }
    let data = flags.source.config(&flags.shape, false);
    let fresh = RunConfig {
        model: ModelConfig {
            classes: saved.model.classes,
            ..flags.model_config()
        },
        train: flags.train_config(),
        maxlen: data.maxlen,
        data_url: data.url,
        data_sha256: data.sha256,
        // The texts' sha256 plays no part: it is compared when they are read.
        texts: flags.texts.files().map(|files| TextsSource {
            files,
            sha256: String::new(),
        }),
        seed: flags.seed.unwrap_or(saved.seed),
        history: flags.history.clone(),
        ..saved.clone()
    };
    let fresh = serde_json::to_value(fresh)?;
    let saved = serde_json::to_value(saved)?;
    let changed: Vec<String> = FIXED_FLAGS
        .iter()
        .filter(|(id, at)| given_fixed(id) && fresh.pointer(at) != saved.pointer(at))
        .map(|(id, _)| format!("--{}", id.replace('_', "-")))
        .collect();
    if !changed.is_empty() {
        bail!(
            "--resume keeps the run's model, data and training settings; {} would change them \
             (leave them out, or start a new run)",
            changed.join(", ")
        );
    }
    Ok(())
}

/// The settings of the run in `--resume`, with the flags that may change.
pub fn resumed_settings(flags: &TrainFlags, given: &HashSet<String>) -> Result<TrainSettings> {
    let Some(dir) = &flags.resume else {
        bail!("resumed_settings needs --resume");
    };
    let saved = RunConfig::load(&RunFolder::open_to_resume(dir)?)?;
    refuse_changes(flags, &saved, given)?;
    let verbosity = Verbosity::from_keras(flags.verbose);
    let mut train = saved.train;
    if given.contains("epochs") {
        train.epochs = flags.fit.epochs;
    }
    if given.contains("validation_batch_size") {
        train.validation_batch_size = flags.fit.validation_batch_size.unwrap_or(train.batch_size);
    }
    train.validate()?;
    let data = DataConfig {
        data_dir: match given.contains("data_dir") {
            true => flags.source.data_dir.clone(),
            false => saved.data_dir.clone(),
        },
        url: saved.data_url.clone(),
        sha256: saved.data_sha256.clone(),
        max_features: saved.model.max_features,
        maxlen: saved.maxlen,
        progress: verbosity != Verbosity::Silent,
    };
    let device = match given.contains("device") {
        true => flags.device.device,
        false => saved
            .device
            .parse::<DeviceChoice>()
            .unwrap_or(DeviceChoice::Auto),
    };
    let threads = match given.contains("threads") {
        true => flags.threads.resolve()?,
        false => saved.threads,
    };
    Ok(TrainSettings {
        data,
        texts: saved.texts.map(|t| t.files),
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
            resume: Some(dir.clone()),
        },
        verbosity,
        stop_after_steps: flags.stop_after_steps,
        profile: flags.profile,
    })
}
