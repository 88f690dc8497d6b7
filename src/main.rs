//! Command line of gru-imdb: parses flags and calls the library.
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use gru_imdb::data::{self, DataConfig};
use gru_imdb::model::{GruImpl, ModelConfig};
use gru_imdb::optim::AdamConfig;
use gru_imdb::run::{self, DeviceChoice, TrainOptions};
use gru_imdb::train::TrainConfig;

#[derive(Parser, Debug)]
#[command(
    name = "gru-imdb",
    version,
    about = "Train the Keras IMDB GRU sentiment model (Embedding -> GRU -> Dense) on libtorch",
    args_conflicts_with_subcommands = true,
    // So `--dropout -0.1` reaches our range check instead of being read as a flag.
    allow_negative_numbers = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    train: TrainFlags,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Download and prepare the IMDB arrays, print what Keras's load_data prints.
    Data(DataCommand),
    /// Print the positive-class probability and label of review texts, with a
    /// trained run's model.
    Predict(PredictCommand),
    /// Evaluate a trained run on the test set: loss, accuracy and reviews/s.
    Evaluate(EvaluateCommand),
}

#[derive(Args, Debug)]
struct EvaluateCommand {
    /// Run folder of a finished training.
    #[arg(long)]
    run_dir: PathBuf,
    /// Download and cache folder.
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    /// URL or local path of the archive [default: the one the run trained on].
    #[arg(long)]
    data_url: Option<String>,
    /// Expected sha256 of --data-url [default: the run's, when --data-url is too].
    #[arg(long)]
    data_sha256: Option<String>,
    /// Batch sizes to evaluate at (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "32,1024")]
    batch_size: Vec<usize>,
    /// Timed passes per batch size, after one warm-up pass.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    /// CPU threads [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Also write the figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Training (the default command): every Keras default is a flag.
#[derive(Args, Debug)]
struct TrainFlags {
    #[command(flatten)]
    source: DataSourceFlags,
    #[command(flatten)]
    shape: DataShapeFlags,
    /// Passes over the training set.
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    /// Samples per gradient step.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Samples per batch when validating and testing (results do not depend on it)
    /// [default: --batch-size].
    #[arg(long)]
    validation_batch_size: Option<usize>,
    /// Size of the word vectors.
    #[arg(long, default_value_t = 128)]
    embedding_dim: usize,
    /// GRU units.
    #[arg(long, default_value_t = 64)]
    units: usize,
    /// Fraction of the GRU inputs dropped in training.
    #[arg(long, default_value_t = 0.2)]
    dropout: f64,
    /// Fraction of the GRU recurrent state dropped in training.
    #[arg(long, default_value_t = 0.2)]
    recurrent_dropout: f64,
    /// Adam learning rate.
    #[arg(long, default_value_t = 0.001)]
    learning_rate: f64,
    /// Adam beta_1.
    #[arg(long, default_value_t = 0.9)]
    beta_1: f64,
    /// Adam beta_2.
    #[arg(long, default_value_t = 0.999)]
    beta_2: f64,
    /// Adam epsilon.
    #[arg(long, default_value_t = 1e-7)]
    epsilon: f64,
    /// Seed of weights, dropout masks and shuffling; the same seed gives the
    /// same history on a CPU [default: random, recorded in config.json].
    #[arg(long)]
    seed: Option<u64>,
    /// auto, cpu, cuda or cuda:N (auto takes a GPU when there is one).
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    /// CPU threads [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// History CSV path [default: <run-dir>/history.csv].
    #[arg(long)]
    history: Option<PathBuf>,
    /// Run folder for config, history, vocabulary and weights
    /// [default: runs/<start time>].
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// 0 = silent, 1 = progress bar (lines when stdout is not a terminal),
    /// 2 = one line per epoch.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=2))]
    verbose: u8,
    /// The GRU implementation (auto, cpu-kernel, op-by-op, fused); all compute
    /// the same function, auto takes the fastest for the device. For
    /// benchmarks and checks.
    #[arg(long, default_value = "auto", hide = true)]
    gru_implementation: GruImpl,
}

impl TrainFlags {
    fn options(&self) -> TrainOptions {
        TrainOptions {
            data: self
                .source
                .config(self.shape.max_features, self.shape.maxlen, self.verbose > 0),
            model: ModelConfig {
                max_features: self.shape.max_features,
                embedding_dim: self.embedding_dim,
                units: self.units,
                dropout: self.dropout,
                recurrent_dropout: self.recurrent_dropout,
            },
            train: TrainConfig {
                epochs: self.epochs,
                batch_size: self.batch_size,
                validation_batch_size: self.validation_batch_size.unwrap_or(self.batch_size),
                adam: AdamConfig {
                    learning_rate: self.learning_rate,
                    beta_1: self.beta_1,
                    beta_2: self.beta_2,
                    epsilon: self.epsilon,
                },
            },
            seed: self.seed,
            device: self.device,
            threads: self.threads.unwrap_or_else(default_threads),
            history: self.history.clone(),
            run_dir: self.run_dir.clone(),
            verbose: self.verbose,
            gru_impl: self.gru_implementation,
        }
    }
}

#[derive(Args, Debug)]
struct PredictCommand {
    /// Run folder of a finished training (holds config.json, vocab.txt, model.safetensors).
    #[arg(long)]
    run_dir: PathBuf,
    /// Read reviews from this file, one per line ('-' for stdin).
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// CPU threads [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Review texts; with none and no --file, reads stdin.
    texts: Vec<String>,
}

impl PredictCommand {
    fn texts(&self) -> Result<Vec<String>> {
        let mut texts = self.texts.clone();
        let read_lines = |reader: &mut dyn BufRead, name: &str| -> Result<Vec<String>> {
            reader
                .lines()
                .map(|line| line.with_context(|| format!("cannot read {name}")))
                .filter(|line| !matches!(line, Ok(l) if l.trim().is_empty()))
                .collect()
        };
        match &self.file {
            Some(path) if path.as_os_str() == "-" => {
                texts.extend(read_lines(&mut std::io::stdin().lock(), "stdin")?)
            }
            Some(path) => {
                let file = std::fs::File::open(path)
                    .with_context(|| format!("cannot open --file {}", path.display()))?;
                texts.extend(read_lines(
                    &mut std::io::BufReader::new(file),
                    &path.display().to_string(),
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

/// Where the reviews come from.
#[derive(Args, Debug, Clone)]
struct DataSourceFlags {
    /// Download and cache folder.
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    /// URL (http or https) or local path of aclImdb_v1.tar.gz.
    #[arg(long, default_value = data::CANONICAL_URL)]
    data_url: String,
    /// Expected sha256 of the archive (hex); defaults to the canonical
    /// archive's when --data-url is the canonical URL.
    #[arg(long)]
    data_sha256: Option<String>,
}

/// How the reviews are shaped into ids (Keras defaults).
#[derive(Args, Debug, Clone)]
struct DataShapeFlags {
    /// Keep the N most frequent words (Keras num_words); others become 2 (OOV).
    #[arg(long, default_value_t = 10_000)]
    max_features: usize,
    /// Pad or truncate every review to this many ids (Keras pad_sequences maxlen).
    #[arg(long, default_value_t = 100)]
    maxlen: usize,
}

impl DataSourceFlags {
    fn config(&self, max_features: usize, maxlen: usize, progress: bool) -> DataConfig {
        DataConfig {
            data_dir: self.data_dir.clone(),
            url: self.data_url.clone(),
            sha256: self.data_sha256.clone(),
            max_features,
            maxlen,
            progress,
        }
    }
}

#[derive(Args, Debug)]
struct DataCommand {
    #[command(flatten)]
    source: DataSourceFlags,
    #[command(flatten)]
    shape: DataShapeFlags,
    /// Also write x_train.npy, y_train.npy, x_test.npy, y_test.npy (int32) here.
    #[arg(long, value_name = "DIR")]
    export: Option<PathBuf>,
    /// No progress bars.
    #[arg(long, short)]
    quiet: bool,
}

/// Errors are printed with their causes, one per line, like ripgrep does,
/// and exit with status 1.
fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Some(Command::Data(cmd)) => {
            let cfg = cmd
                .source
                .config(cmd.shape.max_features, cmd.shape.maxlen, !cmd.quiet);
            data::run_data_command(&cfg, cmd.export.as_deref())
        }
        Some(Command::Predict(cmd)) => run::predict_command(
            &cmd.run_dir,
            &cmd.texts()?,
            cmd.threads.unwrap_or_else(default_threads),
        ),
        Some(Command::Evaluate(cmd)) => run::evaluate_command(&run::EvaluateOptions {
            run_dir: cmd.run_dir.clone(),
            data_dir: cmd.data_dir.clone(),
            data_url: cmd.data_url.clone(),
            data_sha256: cmd.data_sha256.clone(),
            batch_sizes: cmd.batch_size.clone(),
            repeats: cmd.repeats,
            device: cmd.device,
            threads: cmd.threads.unwrap_or_else(default_threads),
            json: cmd.json.clone(),
        }),
        None => run::train_command(&cli.train.options()),
    }
}
