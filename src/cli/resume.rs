//! `train --resume RUN`: the settings of an earlier run, with the few flags
//! that change neither its model nor its data nor what training computes.
use std::collections::HashSet;

use anyhow::{bail, Context, Result};
use clap::parser::ValueSource;
use clap::ArgMatches;

use super::TrainFlags;
use crate::data::DataConfig;
use crate::device::{DeviceChoice, Placement};
use crate::progress::Verbosity;
use crate::run_folder::{RunConfig, RunFolder};
use crate::settings::{ReduceLrOnPlateau, RunOutputs, TrainSettings};

/// The flags given on the command line (not defaulted).
pub fn explicit_flags(matches: &ArgMatches) -> HashSet<String> {
    matches
        .ids()
        .filter(|id| matches.value_source(id.as_str()) == Some(ValueSource::CommandLine))
        .map(|id| id.to_string())
        .collect()
}

/// Each flag that would change what the run computes, as given and as the
/// run was trained: (flag id, given, saved).
fn fixed_flags(flags: &TrainFlags, saved: &RunConfig) -> Vec<(&'static str, String, String)> {
    let (m, t, f, c) = (&saved.model, &saved.train, &flags.fit, &flags.callbacks);
    let saved_callbacks = t.callbacks;
    let pairs: Vec<(&'static str, String, String)> = vec![
        (
            "max_features",
            flags.shape.max_features.to_string(),
            m.max_features.to_string(),
        ),
        (
            "maxlen",
            flags.shape.maxlen.to_string(),
            saved.maxlen.to_string(),
        ),
        (
            "embedding_dim",
            flags.model.embedding_dim.to_string(),
            m.embedding_dim.to_string(),
        ),
        ("units", flags.model.units.to_string(), m.units.to_string()),
        (
            "dropout",
            flags.model.dropout.to_string(),
            m.dropout.to_string(),
        ),
        (
            "recurrent_dropout",
            flags.model.recurrent_dropout.to_string(),
            m.recurrent_dropout.to_string(),
        ),
        (
            "batch_size",
            f.batch_size.to_string(),
            t.batch_size.to_string(),
        ),
        (
            "learning_rate",
            f.learning_rate.to_string(),
            t.adam.learning_rate.to_string(),
        ),
        ("beta_1", f.beta_1.to_string(), t.adam.beta_1.to_string()),
        ("beta_2", f.beta_2.to_string(), t.adam.beta_2.to_string()),
        ("epsilon", f.epsilon.to_string(), t.adam.epsilon.to_string()),
        (
            "validation_split",
            format!("{:?}", f.validation_split),
            format!("{:?}", t.validation_split),
        ),
        (
            "history_every_steps",
            format!("{:?}", f.history_every_steps.map(|n| n as usize)),
            format!("{:?}", t.history_every_steps),
        ),
        (
            "seed",
            format!("{:?}", flags.seed),
            format!("{:?}", Some(saved.seed)),
        ),
        (
            "data_url",
            format!("{:?}", flags.source.data_url),
            format!("{:?}", Some(&saved.data_url)),
        ),
        (
            "data_sha256",
            format!("{:?}", flags.source.data_sha256),
            format!("{:?}", saved.data_sha256),
        ),
        (
            "history",
            format!("{:?}", flags.history),
            format!("{:?}", saved.history),
        ),
    ];
    let plateau = saved_callbacks.reduce_lr_on_plateau;
    let plateau_field = |field: fn(&ReduceLrOnPlateau) -> String, default: String| {
        plateau.as_ref().map_or(default, field)
    };
    let callbacks: Vec<(&'static str, String, String)> = vec![
        (
            "monitor",
            c.monitor.name().to_owned(),
            saved_callbacks.monitor.name().to_owned(),
        ),
        (
            "min_delta",
            c.min_delta.to_string(),
            saved_callbacks.min_delta.to_string(),
        ),
        (
            "save_best",
            c.save_best.to_string(),
            saved_callbacks.save_best.to_string(),
        ),
        (
            "restore_best_weights",
            c.restore_best_weights.to_string(),
            saved_callbacks.restore_best_weights.to_string(),
        ),
        (
            "early_stopping_patience",
            format!("{:?}", c.early_stopping_patience),
            format!("{:?}", saved_callbacks.early_stopping_patience),
        ),
        (
            "reduce_lr_on_plateau",
            c.reduce_lr_on_plateau.to_string(),
            plateau.is_some().to_string(),
        ),
        (
            "reduce_lr_factor",
            c.reduce_lr_factor.to_string(),
            plateau_field(|p| p.factor.to_string(), c.reduce_lr_factor.to_string()),
        ),
        (
            "reduce_lr_patience",
            c.reduce_lr_patience.to_string(),
            plateau_field(|p| p.patience.to_string(), c.reduce_lr_patience.to_string()),
        ),
        (
            "reduce_lr_min_delta",
            c.reduce_lr_min_delta.to_string(),
            plateau_field(
                |p| p.min_delta.to_string(),
                c.reduce_lr_min_delta.to_string(),
            ),
        ),
        (
            "reduce_lr_cooldown",
            c.reduce_lr_cooldown.to_string(),
            plateau_field(|p| p.cooldown.to_string(), c.reduce_lr_cooldown.to_string()),
        ),
        (
            "min_lr",
            c.min_lr.to_string(),
            plateau_field(|p| p.min_lr.to_string(), c.min_lr.to_string()),
        ),
    ];
    pairs.into_iter().chain(callbacks).collect()
}

/// Refuses every given flag that differs from the run's own setting.
fn refuse_changes(flags: &TrainFlags, saved: &RunConfig, given: &HashSet<String>) -> Result<()> {
    let changed: Vec<String> = fixed_flags(flags, saved)
        .into_iter()
        .filter(|(id, now, then)| given.contains(*id) && now != then)
        .map(|(id, _, _)| format!("--{}", id.replace('_', "-")))
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
    let saved = RunFolder::open_run(dir)
        .context("--resume: nothing to resume")?
        .load_config()?;
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
        model: saved.model,
        train,
        seed: saved.seed,
        placement: Placement::resolve(
            device,
            flags.gru_implementation,
            saved.model.recurrent_dropout,
            threads,
        )?,
        outputs: RunOutputs {
            run_dir: None,
            history: saved.history.clone(),
            resume: Some(dir.clone()),
        },
        verbosity,
        stop_after_steps: flags.stop_after_steps,
    })
}
