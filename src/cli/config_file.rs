//! `train --config FILE` and `train --print-config`: the training flags
//! as a file, as Lightning's CLI keeps an experiment's settings.
//!
//! A file is one of two shapes, TOML or JSON: flat, its keys the flags'
//! names (`units = 32`, `recurrent-dropout = 0.5`; a switch is `true` or
//! `false`), as `--print-config` prints them; or a run's own `config.json`,
//! read as the flags that give that run's settings. Either way the file
//! becomes flags laid in front of the command line's, so a flag given
//! there wins and every value passes the same checks as a typed one. A key
//! that is no training flag is an error naming it and the file.
//!
//! From a run's config the flags leave out where its outputs went
//! (`--run-dir`, `--history`): a new run writes its own.
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use anyhow::{bail, Context, Result};
use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command};
use serde_json::Value;

use crate::data::texts::{Column, EmptyTexts, Header};
use crate::run_config::RunConfig;

/// A flag's value in a file.
#[derive(Debug, Clone, PartialEq)]
enum FlagValue {
    /// A switch (`--save-best`): given or not.
    Switch(bool),
    /// A value, as typed after the flag.
    Text(String),
}

/// Flags of this command only, never read from a file or printed.
const NOT_SETTINGS: [&str; 6] = [
    "config",
    "print_config",
    "resume",
    "stop_after_steps",
    "help",
    "version",
];

/// The flags `path` holds, as command-line arguments for `train`
/// (`command`, whose flags name the keys a file may have).
pub(super) fn flags_of_file(path: &Path, command: &Command) -> Result<Vec<OsString>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    let values = parse(&text, path).with_context(|| format!("in {}", path.display()))?;
    let mut args = Vec::new();
    for (key, value) in values {
        let id = key.replace('-', "_");
        let arg = command
            .get_arguments()
            .find(|a| a.get_id() == id.as_str() && !NOT_SETTINGS.contains(&id.as_str()));
        let Some(arg) = arg else {
            bail!(
                "{}: {key:?} is not a training setting (`gru-imdb --print-config` lists them)",
                path.display()
            );
        };
        let flag = format!("--{}", arg.get_long().unwrap_or(&id));
        let switch = matches!(arg.get_action(), ArgAction::SetTrue);
        match (value, switch) {
            (FlagValue::Switch(true), true) => args.push(flag.into()),
            (FlagValue::Switch(false), true) => {}
            (FlagValue::Text(text), false) => args.extend([flag.into(), text.into()]),
            (_, true) => bail!("{}: {key} is a switch: true or false", path.display()),
            (_, false) => bail!("{}: {key} takes a value, not true or false", path.display()),
        }
    }
    // The file's flags alone, so that a bad value names the file; how flags
    // go together (one needing another) is checked with the command line's.
    let alone = std::iter::once(OsString::from("train")).chain(args.iter().cloned());
    let refused = command.clone().try_get_matches_from(alone).err();
    if let Some(e) = refused.filter(|e| !is_about_other_flags(e.kind())) {
        let message = e.render().to_string();
        let message = message.trim().trim_start_matches("error: ");
        bail!(
            "{}: {}",
            path.display(),
            message.lines().next().unwrap_or("")
        );
    }
    Ok(args)
}

/// Whether clap refused flags for what they need of others (a missing
/// companion, a conflict), which the command line may settle.
fn is_about_other_flags(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::MissingRequiredArgument | ErrorKind::ArgumentConflict
    )
}

/// The file's flags: a run's config, or a flat table.
fn parse(text: &str, path: &Path) -> Result<BTreeMap<String, FlagValue>> {
    let is_toml = path.extension().is_some_and(|e| e == "toml");
    let document: Value = if is_toml {
        let table: toml::Table = toml::from_str(text).context("not valid TOML")?;
        serde_json::to_value(table)?
    } else {
        serde_json::from_str(text).context("not valid JSON (a TOML file's name ends in .toml)")?
    };
    let Value::Object(table) = document else {
        bail!("expected a table of settings");
    };
    if table.contains_key("gru_imdb_version") {
        let config: RunConfig =
            serde_json::from_value(Value::Object(table)).context("not a gru-imdb run config")?;
        return Ok(run_flags(&config));
    }
    table
        .into_iter()
        .map(|(key, value)| {
            let value = match value {
                Value::Bool(on) => FlagValue::Switch(on),
                Value::Number(n) => FlagValue::Text(n.to_string()),
                Value::String(s) => FlagValue::Text(s),
                _ => bail!("{key}: expected a number, a string, true or false"),
            };
            Ok((key, value))
        })
        .collect()
}

/// The flags that give the run of `config` its settings.
fn run_flags(config: &RunConfig) -> BTreeMap<String, FlagValue> {
    let mut flags = BTreeMap::new();
    let mut text = |id: &str, value: String| flags.insert(id.to_owned(), FlagValue::Text(value));
    let (model, train) = (&config.model, &config.train);
    text("max_features", model.max_features.to_string());
    text("maxlen", config.maxlen.to_string());
    text("embedding_dim", model.embedding_dim.to_string());
    text("units", model.units.to_string());
    text("dropout", model.dropout.to_string());
    text("recurrent_dropout", model.recurrent_dropout.to_string());
    text("epochs", train.epochs.to_string());
    text("batch_size", train.batch_size.to_string());
    let validation_batch_size = train.validation_batch_size.to_string();
    text("validation_batch_size", validation_batch_size);
    text("learning_rate", train.adam.learning_rate.to_string());
    text("beta_1", train.adam.beta_1.to_string());
    text("beta_2", train.adam.beta_2.to_string());
    text("epsilon", train.adam.epsilon.to_string());
    text("optimizer", train.optimizer.name().to_owned());
    if let Some(split) = train.validation_split {
        text("validation_split", split.to_string());
    }
    if let Some(every) = train.history_every_steps {
        text("history_every_steps", every.to_string());
    }
    text("seed", config.seed.to_string());
    text("threads", config.threads.to_string());
    if config.device.parse::<crate::device::DeviceChoice>().is_ok() {
        text("device", config.device.clone());
    }
    text("data_dir", config.data_dir.display().to_string());
    flags.extend(callback_flags(config));
    flags.extend(source_flags(config));
    flags
}

/// The callbacks' flags of a run.
fn callback_flags(config: &RunConfig) -> BTreeMap<String, FlagValue> {
    let callbacks = &config.train.callbacks;
    let mut flags = BTreeMap::new();
    let mut text = |id: &str, value: String| flags.insert(id.to_owned(), FlagValue::Text(value));
    text("monitor", callbacks.monitor.name().to_owned());
    text("min_delta", callbacks.min_delta.to_string());
    if let Some(patience) = callbacks.early_stopping_patience {
        text("early_stopping_patience", patience.to_string());
    }
    if let Some(plateau) = callbacks.reduce_lr_on_plateau {
        text("reduce_lr_factor", plateau.factor.to_string());
        text("reduce_lr_patience", plateau.patience.to_string());
        text("reduce_lr_min_delta", plateau.min_delta.to_string());
        text("reduce_lr_cooldown", plateau.cooldown.to_string());
        text("min_lr", plateau.min_lr.to_string());
    }
    let switches = [
        ("save_best", callbacks.save_best),
        ("restore_best_weights", callbacks.restore_best_weights),
        (
            "reduce_lr_on_plateau",
            callbacks.reduce_lr_on_plateau.is_some(),
        ),
    ];
    for (id, on) in switches {
        flags.insert(id.to_owned(), FlagValue::Switch(on));
    }
    flags
}

/// Where a run's texts came from: the archive, or the user's files and how
/// they were read.
fn source_flags(config: &RunConfig) -> BTreeMap<String, FlagValue> {
    let mut flags = BTreeMap::new();
    let mut text = |id: &str, value: String| flags.insert(id.to_owned(), FlagValue::Text(value));
    let Some(texts) = &config.texts else {
        text("data_url", config.data_url.clone());
        if let Some(sha256) = &config.data_sha256 {
            text("data_sha256", sha256.clone());
        }
        return flags;
    };
    let files = &texts.files;
    text("train_file", files.train_file.display().to_string());
    if let Some(test_file) = &files.test_file {
        text("test_file", test_file.display().to_string());
    }
    if let Some(delimiter) = files.table.delimiter {
        text("delimiter", char::from(delimiter).to_string());
    }
    let column = |column: &Column| match column {
        Column::Name(name) => name.clone(),
        Column::Position(position) => position.to_string(),
    };
    if let Some(c) = &files.table.text_column {
        text("text_column", column(c));
    }
    if let Some(c) = &files.table.label_column {
        text("label_column", column(c));
    }
    text("tokenizer", files.tokenizer.to_string());
    let switches = [
        ("no_header", files.table.header == Header::Absent),
        (
            "refuse_empty_texts",
            files.empty_texts == EmptyTexts::Refuse,
        ),
    ];
    for (id, on) in switches {
        flags.insert(id.to_owned(), FlagValue::Switch(on));
    }
    flags
}

/// `--print-config`: the settings `matches` resolved (given, from a file,
/// or defaulted) as a TOML file that `--config` reads back. Flags without
/// a value (no `--seed`: a random one) are left out.
pub(super) fn print_config(command: &Command, matches: &ArgMatches) -> String {
    let mut out = String::from("# gru-imdb training settings: gru-imdb train --config FILE\n");
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        if NOT_SETTINGS.contains(&id) || arg.is_hide_set() {
            continue;
        }
        let value = match arg.get_action() {
            ArgAction::SetTrue => matches.get_flag(id).to_string(),
            _ => match matches.get_raw(id).and_then(|mut raw| raw.next()) {
                Some(raw) => raw.to_string_lossy().into_owned(),
                None => continue,
            },
        };
        let defaulted = matches.value_source(id) == Some(ValueSource::DefaultValue);
        if defaulted && !stands_alone(command, arg, &value) {
            continue;
        }
        let value = match arg.get_action() {
            ArgAction::SetTrue => value,
            _ => toml_value(&value),
        };
        out += &format!("{id} = {value}\n");
    }
    out
}

/// Whether `arg` with `value` is a command line of its own: a default
/// that needs another flag (`--tokenizer` needs `--train-file`) is not a
/// setting of a run without it.
fn stands_alone(command: &Command, arg: &clap::Arg, value: &str) -> bool {
    let flag = format!("--{}", arg.get_long().unwrap_or(arg.get_id().as_str()));
    let line: Vec<&str> = match arg.get_action() {
        ArgAction::SetTrue if value == "false" => return true,
        ArgAction::SetTrue => vec!["train", &flag],
        _ => vec!["train", &flag, value],
    };
    command.clone().try_get_matches_from(line).is_ok()
}

/// A number as TOML writes it, anything else as a TOML string.
fn toml_value(raw: &str) -> String {
    // Short, so that a digest of digits and e's stays a string.
    let number = raw.len() < 24
        && (raw.parse::<i64>().is_ok()
            || raw
                .parse::<f64>()
                .is_ok_and(|x| x.is_finite() && raw.contains(['.', 'e'])));
    if number {
        raw.to_owned()
    } else {
        toml::Value::String(raw.to_owned()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use clap::{Args, FromArgMatches};

    use super::*;
    use crate::cli::TrainFlags;
    use crate::settings::TrainSettings;

    /// A run's config with every optional setting set; on the user's texts
    /// or on the archive.
    fn run_config(on_texts: bool) -> RunConfig {
        let texts = serde_json::json!({
            "files": {"train_file": "/t.tsv", "test_file": "/u.tsv",
                      "table": {"delimiter": 9, "header": "Absent",
                                "text_column": {"Position": 1}, "label_column": {"Name": "y"}},
                      "empty_texts": "Refuse", "tokenizer": "jieba"},
            "sha256": "00", "tokenizer": "jieba"});
        serde_json::from_value(serde_json::json!({
            "model": {"max_features": 2000, "embedding_dim": 16, "units": 8,
                      "dropout": 0.25, "recurrent_dropout": 0.1, "classes": 2},
            "train": {"epochs": 3, "batch_size": 16, "validation_batch_size": 64,
                      "adam": {"learning_rate": 0.002, "beta_1": 0.8, "beta_2": 0.99,
                               "epsilon": 1e-8},
                      "optimizer": "lazy-adam",
                      "validation_split": 0.2,
                      "callbacks": {"monitor": "val_accuracy", "min_delta": 0.01,
                                    "save_best": true, "restore_best_weights": true,
                                    "early_stopping_patience": 2,
                                    "reduce_lr_on_plateau": {"factor": 0.5, "patience": 2,
                                        "min_lr": 1e-5, "min_delta": 0.001, "cooldown": 1}},
                      "history_every_steps": 5},
            "maxlen": 40, "data_dir": "/data", "data_url": "/a.tar.gz",
            "data_sha256": if on_texts { serde_json::Value::Null } else { "ab".repeat(32).into() },
            "texts": if on_texts { texts } else { serde_json::Value::Null },
            "seed": 7, "device": "cpu", "gru_implementation": "CpuKernel", "threads": 1,
            "history": "/h.csv", "gru_imdb_version": "0.1.0"
        }))
        .unwrap()
    }

    /// The settings that `flags` give as a command line.
    fn settings_of(flags: &BTreeMap<String, FlagValue>) -> TrainSettings {
        let mut argv = vec!["train".to_owned()];
        for (id, value) in flags {
            let flag = format!("--{}", id.replace('_', "-"));
            match value {
                FlagValue::Switch(true) => argv.push(flag),
                FlagValue::Switch(false) => {}
                FlagValue::Text(text) => argv.extend([flag, text.clone()]),
            }
        }
        let command = TrainFlags::augment_args(Command::new("train"));
        let matches = command.try_get_matches_from(argv).unwrap();
        let flags = TrainFlags::from_arg_matches(&matches).unwrap();
        (&flags).try_into().unwrap()
    }

    #[test]
    fn a_runs_config_gives_back_every_setting_it_records() {
        for on_texts in [false, true] {
            let config = run_config(on_texts);
            let settings = settings_of(&run_flags(&config));
            assert_eq!(settings.model.units, config.model.units);
            assert_eq!(settings.model.dropout, config.model.dropout);
            assert_eq!(settings.data.maxlen, config.maxlen);
            assert_eq!(settings.data.max_features, config.model.max_features);
            assert_eq!(
                format!("{:?}", settings.train),
                format!("{:?}", config.train)
            );
            assert_eq!(settings.seed, config.seed);
            assert_eq!(settings.data.data_dir, config.data_dir);
            match &config.texts {
                Some(texts) => assert_eq!(settings.texts.as_ref(), Some(&texts.files)),
                None => {
                    assert_eq!(settings.data.url, config.data_url);
                    assert_eq!(settings.data.sha256, config.data_sha256);
                }
            }
        }
    }

    #[test]
    fn every_training_flag_is_read_from_a_runs_config_or_is_not_a_setting_it_repeats() {
        let command = TrainFlags::augment_args(Command::new("train"));
        let ids: HashSet<&str> = command
            .get_arguments()
            .map(|a| a.get_id().as_str())
            .collect();
        let mut covered: HashSet<String> = [false, true]
            .into_iter()
            .flat_map(|on_texts| run_flags(&run_config(on_texts)).into_keys())
            .collect();
        // Where the outputs go and how the run is shown: a new run's own.
        let outputs = [
            "run_dir",
            "history",
            "verbose",
            "profile",
            "gru_implementation",
            "no_tensorboard",
        ];
        covered.extend(NOT_SETTINGS.iter().chain(&outputs).map(|id| id.to_string()));
        // clap adds these two when the command is built.
        let built = ["help", "version"];
        let covered: HashSet<&str> = covered
            .iter()
            .map(String::as_str)
            .filter(|id| !built.contains(id))
            .collect();
        assert_eq!(covered, ids);
    }
}
