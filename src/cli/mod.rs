//! The command line: flags as clap parses them (raw), and their conversion
//! into the validated settings of `settings`, once, before any work.
//!
//! `gru-imdb [FLAGS]` with no subcommand trains, as `gru-imdb train
//! [FLAGS]` does, so the tutorial's `cargo run --release -- --epochs 5`
//! keeps working. `--resume RUN` takes the settings of an earlier run
//! (`resume.rs`).
mod config_file;
mod export;
mod reports;
mod resume;
mod serve;
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::{Args, FromArgMatches, Parser, Subcommand};

use crate::data::texts::{self, Column, EmptyTexts, Header, TableOptions, TextFiles};
use crate::data::TokenizerChoice;
use crate::data::{DataConfig, CANONICAL_URL};
use crate::device::{
    available_threads, DeviceAndThreads, DeviceChoice, GruChoice, PlacementChoice,
};
use crate::model::ModelConfig;
use crate::optim::{AdamConfig, Optimizer};
use crate::progress::Verbosity;
use crate::reports::OutputFormat;
use crate::run_dir::RunOutputs;
use crate::run_dir::WeightsChoice;
use crate::settings::{
    check_passes, check_sha256, check_texts_validation, check_threads, defaults, EvaluateData,
    EvaluateSettings, PredictSettings, TrainSettings,
};
use crate::train::{CallbackConfig, Monitor, ReduceLrOnPlateau, TrainConfig};
pub use export::ExportFlags;
pub use reports::{CompareFlags, PlotFlags, ReportFlags, SummaryFlags};
pub use serve::ServeFlags;

#[derive(Parser, Debug)]
#[command(
    name = "gru-imdb",
    version,
    about = "Train the Keras IMDB GRU sentiment model (Embedding -> GRU -> Dense) on libtorch",
    args_conflicts_with_subcommands = true,
    // So `--dropout -0.1` reaches our range check instead of being read as a flag.
    allow_negative_numbers = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub train: TrainFlags,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train the model (the default command): every Keras default is a flag.
    Train(Box<TrainFlags>),
    /// Download and prepare the IMDB arrays, print what Keras's load_data prints.
    Data(DataFlags),
    /// Print the label of review texts and its probability (for two classes,
    /// the positive class's), with a trained run's model.
    Predict(PredictFlags),
    /// Evaluate a trained run on the test set: loss, accuracy and reviews/s.
    Evaluate(EvaluateFlags),
    /// Draw the learning curves of one or more runs (SVG and PNG).
    Plot(PlotFlags),
    /// Print the settings that differ between runs and what each reached.
    Compare(CompareFlags),
    /// Print the model's layers and parameter counts, like Keras's model.summary().
    Summary(SummaryFlags),
    /// Write a self-contained HTML report of a run: curves, test metrics,
    /// calibration, accuracy by length, the most confident mistakes.
    Report(ReportFlags),
    /// Export a trained run's model for another stack: an ONNX graph or a
    /// Keras 3 .keras file, with tokenizer.json beside it.
    Export(ExportFlags),
    /// Serve a run over HTTP: TF Serving's REST API with dynamic batching,
    /// a page to try it, health and Prometheus metrics.
    Serve(ServeFlags),
    /// Print a completion script for a shell (see the README to install it).
    Completions(CompletionsFlags),
    /// Print a manual page (roff): `gru-imdb man > gru-imdb.1`, or one
    /// subcommand's, `gru-imdb man predict > gru-imdb-predict.1`.
    Man(ManFlags),
}

/// `man [SUBCOMMAND]`.
#[derive(Args, Debug)]
pub struct ManFlags {
    /// The subcommand whose page to print (the command's own if none).
    pub subcommand: Option<String>,
}

/// `completions SHELL`.
#[derive(Args, Debug)]
pub struct CompletionsFlags {
    /// The shell to complete for.
    pub shell: clap_complete::Shell,
}

/// Where the reviews come from.
#[derive(Args, Debug, Clone)]
pub struct DataSourceFlags {
    /// Download and cache folder.
    #[arg(long, default_value = defaults::DATA_DIR, value_parser = absolute_path)]
    pub data_dir: PathBuf,
    /// URL (http or https) or local path of aclImdb_v1.tar.gz
    /// [default: the canonical archive; for evaluate, the one the run trained on].
    #[arg(long, value_parser = url_or_absolute_path)]
    pub data_url: Option<String>,
    /// Expected sha256 of the archive (hex) [default: the canonical
    /// archive's for the canonical URL; for evaluate, the run's].
    #[arg(long)]
    pub data_sha256: Option<String>,
}

/// A user's own labelled texts instead of IMDB.
#[derive(Args, Debug, Clone)]
pub struct TextFileFlags {
    /// Train on this file instead of IMDB: .csv, .tsv, .jsonl, or a folder
    /// with one sub-folder of .txt files per class.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["data_url", "data_sha256"], value_parser = absolute_path)]
    pub train_file: Option<PathBuf>,
    /// Test on this file (same format as --train-file).
    #[arg(long, value_name = "FILE", requires = "train_file", value_parser = absolute_path)]
    pub test_file: Option<PathBuf>,
    /// Field delimiter of --train-file and --test-file (one character, or
    /// 'tab') [default: from the extension].
    #[arg(long, value_parser = texts::parse_delimiter, requires = "train_file")]
    pub delimiter: Option<u8>,
    /// The first row of a CSV/TSV file is a row, not the column names.
    #[arg(long, requires = "train_file")]
    pub no_header: bool,
    /// Column of the texts: header name (JSON key) or 0-based position
    /// [default: 'text', or the first of two columns].
    #[arg(long, requires = "train_file")]
    pub text_column: Option<Column>,
    /// Column of the labels: header name (JSON key) or 0-based position
    /// [default: 'label', or the second of two columns].
    #[arg(long, requires = "train_file")]
    pub label_column: Option<Column>,
    /// An empty text is an error instead of a counted warning.
    #[arg(long, requires = "train_file")]
    pub refuse_empty_texts: bool,
    /// How texts are cut into tokens: imdb (split at anything but letters,
    /// digits and '), unicode (Unicode words, each CJK character alone),
    /// chars (every character), jieba (Chinese words), or auto: unicode
    /// when many letters are of scripts written without spaces (Chinese,
    /// Japanese, Thai...), else imdb. Recorded in the run and used by every
    /// command that reads it.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "auto",
        requires = "train_file"
    )]
    pub tokenizer: TokenizerChoice,
}

impl TextFileFlags {
    /// The files and how to read them; `None` for IMDB.
    pub fn files(&self) -> Option<TextFiles> {
        Some(TextFiles {
            train_file: self.train_file.clone()?,
            test_file: self.test_file.clone(),
            table: TableOptions {
                delimiter: self.delimiter,
                header: match self.no_header {
                    true => Header::Absent,
                    false => Header::Present,
                },
                text_column: self.text_column.clone(),
                label_column: self.label_column.clone(),
            },
            empty_texts: match self.refuse_empty_texts {
                true => EmptyTexts::Refuse,
                false => EmptyTexts::Warn,
            },
            tokenizer: self.tokenizer,
        })
    }
}

/// How the reviews are shaped into ids.
#[derive(Args, Debug, Clone)]
pub struct DataShapeFlags {
    /// Keep the N most frequent words (Keras num_words); others become 2 (OOV).
    #[arg(long, default_value_t = defaults::MAX_FEATURES)]
    pub max_features: usize,
    /// Pad or truncate every review to this many ids (Keras pad_sequences maxlen).
    #[arg(long, default_value_t = defaults::MAXLEN)]
    pub maxlen: usize,
}

#[derive(Args, Debug, Clone)]
pub struct DeviceFlags {
    /// auto, cpu, cuda or cuda:N (auto takes a GPU when there is one).
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
}

#[derive(Args, Debug, Clone)]
pub struct ThreadsFlags {
    /// CPU threads [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Args, Debug, Clone)]
pub struct WeightsFlags {
    /// Which of the run's weights: what it ended with, or its best epoch's
    /// (runs trained with --save-best).
    #[arg(long, value_enum, default_value_t = WeightsChoice::Last)]
    pub weights: WeightsChoice,
}

#[derive(Args, Debug, Clone)]
pub struct TrainFlags {
    #[command(flatten)]
    pub source: DataSourceFlags,
    #[command(flatten)]
    pub texts: TextFileFlags,
    #[command(flatten)]
    pub shape: DataShapeFlags,
    #[command(flatten)]
    pub model: ModelFlags,
    #[command(flatten)]
    pub fit: FitFlags,
    #[command(flatten)]
    pub callbacks: CallbackFlags,
    /// Settings from a file, TOML or JSON: flag names as keys (`units = 32`,
    /// as --print-config prints them) or a run's config.json. Flags given on
    /// the command line win.
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    pub config: Option<PathBuf>,
    /// Print the resolved settings as a --config file, and exit.
    #[arg(long, conflicts_with = "resume")]
    pub print_config: bool,
    /// Go on training an earlier run from its latest checkpoint, with its
    /// settings: --epochs, --validation-batch-size, --data-dir, --device,
    /// --threads, --verbose and --no-tensorboard may change; the model, data and training
    /// flags, if given, must give the run's own values.
    #[arg(long, value_name = "RUN", conflicts_with = "run_dir")]
    pub resume: Option<PathBuf>,
    /// Seed of weights, dropout masks and shuffling; the same seed gives the
    /// same history on a CPU [default: random, recorded in config.json].
    #[arg(long)]
    pub seed: Option<u64>,
    #[command(flatten)]
    pub device: DeviceFlags,
    #[command(flatten)]
    pub threads: ThreadsFlags,
    /// The GRU implementation; all compute the same function, auto takes the
    /// fastest for the device. For benchmarks and checks.
    #[arg(long, value_enum, default_value_t = GruChoice::Auto, hide = true)]
    pub gru_implementation: GruChoice,
    /// Print, after each epoch, where its time went: GRU forward and
    /// backward, Adam, embedding, libtorch's ops, validation.
    #[arg(long)]
    pub profile: bool,
    /// Stop after N training steps in all, saving a checkpoint as an
    /// interrupt does (exit status 130); --resume goes on.
    #[arg(long, value_name = "N", hide = true)]
    pub stop_after_steps: Option<usize>,
    /// History CSV path [default: <run-dir>/history.csv].
    #[arg(long, value_parser = absolute_path)]
    pub history: Option<PathBuf>,
    /// Write no TensorBoard event files (<run-dir>/logs; may change on
    /// --resume).
    #[arg(long)]
    pub no_tensorboard: bool,
    /// Run folder for config, history, vocabulary and weights
    /// [default: runs/<start time>].
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// 0 = silent, 1 = progress bar (lines when stdout is not a terminal),
    /// 2 = one line per epoch.
    #[arg(long, default_value_t = defaults::VERBOSE, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub verbose: u8,
}

#[derive(Args, Debug, Clone)]
pub struct ModelFlags {
    /// Size of the word vectors.
    #[arg(long, default_value_t = defaults::EMBEDDING_DIM)]
    pub embedding_dim: usize,
    /// GRU units.
    #[arg(long, default_value_t = defaults::UNITS)]
    pub units: usize,
    /// Fraction of the GRU inputs dropped in training.
    #[arg(long, default_value_t = defaults::DROPOUT)]
    pub dropout: f64,
    /// Fraction of the GRU recurrent state dropped in training.
    #[arg(long, default_value_t = defaults::RECURRENT_DROPOUT)]
    pub recurrent_dropout: f64,
}

#[derive(Args, Debug, Clone)]
pub struct FitFlags {
    /// Passes over the training set.
    #[arg(long, default_value_t = defaults::EPOCHS)]
    pub epochs: usize,
    /// Samples per gradient step.
    #[arg(long, default_value_t = defaults::BATCH_SIZE)]
    pub batch_size: usize,
    /// Samples per batch when validating and testing (results do not depend on it)
    /// [default: --batch-size].
    #[arg(long)]
    pub validation_batch_size: Option<usize>,
    /// Adam learning rate.
    #[arg(long, default_value_t = defaults::LEARNING_RATE)]
    pub learning_rate: f64,
    /// Adam beta_1.
    #[arg(long, default_value_t = defaults::BETA_1)]
    pub beta_1: f64,
    /// Adam beta_2.
    #[arg(long, default_value_t = defaults::BETA_2)]
    pub beta_2: f64,
    /// Adam epsilon.
    #[arg(long, default_value_t = defaults::EPSILON)]
    pub epsilon: f64,
    /// adam: Keras's, every embedding row at every step; lazy-adam:
    /// TensorFlow Addons' LazyAdam, only the rows the batch looked up (an
    /// epoch that costs what the data costs at large --max-features; not
    /// Keras's numbers).
    #[arg(long, value_enum, default_value_t = Optimizer::Adam)]
    pub optimizer: Optimizer,
    /// Validate on this last fraction of the training reviews instead of on
    /// the test set, as Keras's validation_split does: of IMDB's in a fixed
    /// shuffled order (its arrays are sorted by label), of --train-file's
    /// in the file's order.
    #[arg(long, value_name = "FRACTION")]
    pub validation_split: Option<f64>,
    /// Record the running loss and accuracy in <run-dir>/steps.csv every N
    /// steps [default: about 40 points per epoch].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub history_every_steps: Option<u64>,
}

/// Keras's callbacks: the best epoch, early stopping, reduce-on-plateau.
#[derive(Args, Debug, Clone)]
pub struct CallbackFlags {
    /// The metric that picks the best epoch, stops early and reduces the
    /// learning rate (losses count down, accuracies up).
    #[arg(long, value_enum, default_value_t = Monitor::ValLoss)]
    pub monitor: Monitor,
    /// An epoch is a new best only if it beats the best by more than this.
    #[arg(long, default_value_t = 0.0)]
    pub min_delta: f64,
    /// Keep the best epoch's weights (model.best.safetensors) beside the last.
    #[arg(long)]
    pub save_best: bool,
    /// End the run with the best epoch's weights (tested, and saved as
    /// model.safetensors).
    #[arg(long)]
    pub restore_best_weights: bool,
    /// Stop after N epochs without a new best.
    #[arg(long, value_name = "N")]
    pub early_stopping_patience: Option<usize>,
    /// Multiply the learning rate by --reduce-lr-factor after
    /// --reduce-lr-patience epochs without improvement.
    #[arg(long)]
    pub reduce_lr_on_plateau: bool,
    #[arg(long, default_value_t = defaults::REDUCE_LR_FACTOR)]
    pub reduce_lr_factor: f64,
    #[arg(long, default_value_t = defaults::REDUCE_LR_PATIENCE)]
    pub reduce_lr_patience: usize,
    /// Improvement that resets reduce-on-plateau's patience.
    #[arg(long, default_value_t = defaults::REDUCE_LR_MIN_DELTA)]
    pub reduce_lr_min_delta: f64,
    /// Epochs to wait after a reduction before counting again.
    #[arg(long, default_value_t = defaults::REDUCE_LR_COOLDOWN)]
    pub reduce_lr_cooldown: usize,
    /// The learning rate is never reduced below this.
    #[arg(long, default_value_t = defaults::MIN_LR)]
    pub min_lr: f64,
}

impl ModelFlags {
    /// The model these flags and `shape` describe (not yet validated),
    /// with two classes (a user's texts may have more: training sets them
    /// from the data).
    fn config(&self, shape: &DataShapeFlags) -> ModelConfig {
        ModelConfig {
            max_features: shape.max_features,
            embedding_dim: self.embedding_dim,
            units: self.units,
            dropout: self.dropout,
            recurrent_dropout: self.recurrent_dropout,
            classes: 2,
        }
    }
}

impl CallbackFlags {
    fn config(&self) -> CallbackConfig {
        CallbackConfig {
            monitor: self.monitor,
            min_delta: self.min_delta,
            save_best: self.save_best,
            restore_best_weights: self.restore_best_weights,
            early_stopping_patience: self.early_stopping_patience,
            reduce_lr_on_plateau: self.reduce_lr_on_plateau.then_some(ReduceLrOnPlateau {
                factor: self.reduce_lr_factor,
                patience: self.reduce_lr_patience,
                min_lr: self.min_lr,
                min_delta: self.reduce_lr_min_delta,
                cooldown: self.reduce_lr_cooldown,
            }),
        }
    }
}

#[derive(Args, Debug)]
pub struct DataFlags {
    #[command(flatten)]
    pub source: DataSourceFlags,
    #[command(flatten)]
    pub texts: TextFileFlags,
    #[command(flatten)]
    pub shape: DataShapeFlags,
    /// Also write x_train.npy, y_train.npy, x_test.npy, y_test.npy (int32) here.
    #[arg(long, value_name = "DIR")]
    pub export: Option<PathBuf>,
    /// No progress bars.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct PredictFlags {
    /// Run folder of a finished training (holds config.json, vocab.txt, model.safetensors).
    #[arg(long)]
    pub run_dir: PathBuf,
    /// Read reviews from this file, one per line ('-' for stdin).
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub threads: ThreadsFlags,
    #[command(flatten)]
    pub weights: WeightsFlags,
    /// Print one JSON object per review ({"probability", "label", "text"}) instead.
    #[arg(long)]
    pub json: bool,
    /// Review texts; with none and no --file, reads stdin.
    pub texts: Vec<String>,
}

#[derive(Args, Debug)]
pub struct EvaluateFlags {
    /// Run folder of a finished training.
    #[arg(long)]
    pub run_dir: PathBuf,
    #[command(flatten)]
    pub source: DataSourceFlags,
    /// Batch sizes to evaluate at (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = defaults::EVALUATE_BATCH_SIZES)]
    pub batch_size: Vec<usize>,
    /// Timed passes per batch size, after one warm-up pass.
    #[arg(long, default_value_t = defaults::EVALUATE_REPEATS)]
    pub repeats: usize,
    #[command(flatten)]
    pub device: DeviceFlags,
    #[command(flatten)]
    pub threads: ThreadsFlags,
    #[command(flatten)]
    pub weights: WeightsFlags,
    /// Also write the figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

impl ThreadsFlags {
    fn resolve(&self) -> Result<usize> {
        let threads = self.threads.unwrap_or_else(available_threads);
        check_threads(threads)?;
        Ok(threads)
    }
}

impl DataSourceFlags {
    fn config(&self, shape: &DataShapeFlags, progress: bool) -> DataConfig {
        DataConfig {
            data_dir: self.data_dir.clone(),
            url: self
                .data_url
                .clone()
                .unwrap_or_else(|| CANONICAL_URL.to_owned()),
            sha256: self.data_sha256.clone(),
            max_features: shape.max_features,
            maxlen: shape.maxlen,
            progress,
        }
    }
}

impl DataFlags {
    /// The data settings, checked as for training.
    pub fn settings(&self) -> Result<DataConfig> {
        let config = self.source.config(&self.shape, !self.quiet);
        config.validate()?;
        Ok(config)
    }
}

/// A seed for a run that names none, recorded in its config.json.
/// A path flag made absolute, as `config.json` keeps it: a run resumed or
/// evaluated from another working folder finds the same files.
fn absolute_path(flag: &str) -> Result<PathBuf, String> {
    std::path::absolute(flag).map_err(|e| format!("cannot resolve the path {flag}: {e}"))
}

/// `--data-url`: a URL as given, a local path made absolute.
fn url_or_absolute_path(flag: &str) -> Result<String, String> {
    match flag.contains("://") {
        true => Ok(flag.to_owned()),
        false => Ok(absolute_path(flag)?.to_string_lossy().into_owned()),
    }
}

fn fresh_seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    (nanos as u64 ^ (u64::from(std::process::id()) << 32)) % (1 << 53)
}

impl TryFrom<&TrainFlags> for TrainSettings {
    type Error = anyhow::Error;

    fn try_from(flags: &TrainFlags) -> Result<TrainSettings> {
        let verbosity = Verbosity::from_keras(flags.verbose);
        let (model, train) = (flags.model_config(), flags.train_config());
        let data = flags
            .source
            .config(&flags.shape, verbosity != Verbosity::Silent);
        data.validate()?;
        model.validate()?;
        train.validate()?;
        let texts = flags.texts.files();
        if let Some(files) = &texts {
            check_texts_validation(files, &train)?;
        }
        let threads = flags.threads.resolve()?;
        Ok(TrainSettings {
            data,
            texts,
            model,
            train,
            seed: flags.seed.unwrap_or_else(fresh_seed),
            placement: PlacementChoice {
                device: flags.device.device,
                gru: flags.gru_implementation,
                threads,
            },
            outputs: RunOutputs {
                run_dir: flags.run_dir.clone(),
                history: flags.history.clone(),
                resume: None,
                no_tensorboard: flags.no_tensorboard,
            },
            verbosity,
            stop_after_steps: flags.stop_after_steps,
            profile: flags.profile,
        })
    }
}

impl TrainFlags {
    /// The model the flags ask for (unchecked).
    fn model_config(&self) -> ModelConfig {
        self.model.config(&self.shape)
    }

    /// How the flags ask to train (unchecked).
    fn train_config(&self) -> TrainConfig {
        let fit = &self.fit;
        TrainConfig {
            epochs: fit.epochs,
            batch_size: fit.batch_size,
            validation_batch_size: fit.validation_batch_size.unwrap_or(fit.batch_size),
            adam: AdamConfig {
                learning_rate: fit.learning_rate,
                beta_1: fit.beta_1,
                beta_2: fit.beta_2,
                epsilon: fit.epsilon,
            },
            optimizer: fit.optimizer,
            validation_split: fit.validation_split,
            callbacks: self.callbacks.config(),
            history_every_steps: fit.history_every_steps.map(|n| n as usize),
        }
    }
}

/// The command line, with a `--config` file's flags laid in front of the
/// given ones (`config_file.rs`): a flag given twice takes its last value.
/// A command line that lacks only what a flag needs beside it is read
/// leniently to find the file, so that a flag given there may lean on one
/// the file gives (`--tokenizer` on a file's `train_file`); the file and
/// the command line are then checked together.
pub fn parse() -> Result<(Cli, clap::ArgMatches)> {
    use clap::CommandFactory;
    let command = Cli::command()
        .args_override_self(true)
        .mut_subcommand("train", |train| train.args_override_self(true));
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // The command line alone: only a flag missing its companion may be
    // settled by the file; any other error is the command line's own.
    let first = match command.clone().try_get_matches_from(&argv) {
        Ok(matches) => Some(matches),
        Err(e) if e.kind() == clap::error::ErrorKind::MissingRequiredArgument => command
            .clone()
            .ignore_errors(true)
            .try_get_matches_from(&argv)
            .ok(),
        Err(e) => e.exit(),
    };
    let config = first.as_ref().and_then(|matches| {
        let in_train = matches.subcommand_name() == Some("train");
        let train_matches = matches.subcommand_matches("train").unwrap_or(matches);
        let path = train_matches.get_one::<PathBuf>("config")?;
        Some((path.clone(), in_train))
    });
    if let Some((path, in_train)) = config {
        let file_flags = config_file::flags_of_file(&path, &train_command())?;
        let at = if in_train { 2 } else { 1 };
        argv.splice(at..at, file_flags);
    }
    let matches = command.get_matches_from(argv);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    Ok((cli, matches))
}

/// The training flags alone, as a command.
fn train_command() -> clap::Command {
    TrainFlags::augment_args(clap::Command::new("train"))
}

/// `--print-config`: the training settings `matches` resolved, as a TOML
/// file that `--config` reads back.
pub fn print_config(matches: &clap::ArgMatches) -> String {
    config_file::print_config(&train_command(), matches)
}

/// The settings of a training command: from its flags, or, with
/// `--resume`, from the run it continues (`matches` tells which flags were
/// given).
pub fn train_settings(flags: &TrainFlags, matches: &clap::ArgMatches) -> Result<TrainSettings> {
    match flags.resume {
        Some(_) => resume::resumed_settings(flags, &resume::explicit_flags(matches)),
        None => flags.try_into(),
    }
}

impl TryFrom<&PredictFlags> for PredictSettings {
    type Error = anyhow::Error;

    fn try_from(flags: &PredictFlags) -> Result<PredictSettings> {
        let threads = flags.threads.resolve()?;
        Ok(PredictSettings {
            run_dir: flags.run_dir.clone(),
            texts: flags.texts()?,
            weights: flags.weights.weights,
            device: DeviceAndThreads::cpu(threads),
            format: OutputFormat::json_if(flags.json),
        })
    }
}

impl TryFrom<&EvaluateFlags> for EvaluateSettings {
    type Error = anyhow::Error;

    fn try_from(flags: &EvaluateFlags) -> Result<EvaluateSettings> {
        check_passes(flags.repeats, &flags.batch_size)?;
        if let Some(sha) = &flags.source.data_sha256 {
            check_sha256(sha)?;
        }
        let threads = flags.threads.resolve()?;
        Ok(EvaluateSettings {
            run_dir: flags.run_dir.clone(),
            data: EvaluateData {
                data_dir: flags.source.data_dir.clone(),
                url: flags.source.data_url.clone(),
                sha256: flags.source.data_sha256.clone(),
            },
            batch_sizes: flags.batch_size.clone(),
            repeats: flags.repeats,
            weights: flags.weights.weights,
            // The GRU is chosen for the saved layer's size on loading.
            device: DeviceAndThreads::resolve(flags.device.device, threads)?,
            json: flags.json.clone(),
        })
    }
}

impl PredictFlags {
    /// The reviews: the arguments, then `--file` (or stdin when neither),
    /// one per line. Every line is a review, an empty one too, so the
    /// output has one line per input line.
    fn texts(&self) -> Result<Vec<String>> {
        let mut texts = self.texts.clone();
        match &self.file {
            Some(path) if path.as_os_str() == "-" => {
                texts.extend(read_lines(&mut std::io::stdin().lock(), "stdin")?)
            }
            Some(path) => {
                let file = std::fs::File::open(path)
                    .with_context(|| format!("cannot open --file {}", path.display()))?;
                texts.extend(read_lines(
                    &mut std::io::BufReader::new(file),
                    &format!("--file {}", path.display()),
                )?)
            }
            None if texts.is_empty() => {
                if std::io::stdin().is_terminal() {
                    eprintln!("Reading reviews from stdin, one per line (Ctrl-D to end)...");
                }
                texts.extend(read_lines(&mut std::io::stdin().lock(), "stdin")?)
            }
            None => {}
        }
        Ok(texts)
    }
}

/// The lines of `reader`, without their line ends. Bytes that are not
/// UTF-8 are read as U+FFFD, as training reads reviews, with a warning
/// naming the line.
fn read_lines(reader: &mut dyn BufRead, name: &str) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    for (number, line) in reader.split(b'\n').enumerate() {
        let mut bytes = line.with_context(|| format!("cannot read {name}"))?;
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(err) => {
                eprintln!(
                    "warning: {name} line {} is not valid UTF-8; its invalid bytes are read as U+FFFD",
                    number + 1
                );
                String::from_utf8_lossy(err.as_bytes()).into_owned()
            }
        };
        lines.push(text);
    }
    Ok(lines)
}
