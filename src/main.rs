//! Command line of gru-imdb: parses flags and calls the library.
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use gru_imdb::data::{self, DataConfig};

#[derive(Parser, Debug)]
#[command(
    name = "gru-imdb",
    version,
    about = "Train the Keras IMDB GRU sentiment model (Embedding -> GRU -> Dense) on libtorch",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Download and prepare the IMDB arrays, print what Keras's load_data prints.
    Data(DataCommand),
}

/// Where the reviews come from and how they are shaped (Keras defaults).
#[derive(Args, Debug, Clone)]
struct DataFlags {
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
    /// Keep the N most frequent words (Keras num_words); others become 2 (OOV).
    #[arg(long, default_value_t = 10_000)]
    max_features: usize,
    /// Pad or truncate every review to this many ids (Keras pad_sequences maxlen).
    #[arg(long, default_value_t = 100)]
    maxlen: usize,
}

impl DataFlags {
    fn config(&self, progress: bool) -> DataConfig {
        DataConfig {
            data_dir: self.data_dir.clone(),
            url: self.data_url.clone(),
            sha256: self.data_sha256.clone(),
            max_features: self.max_features,
            maxlen: self.maxlen,
            progress,
        }
    }
}

#[derive(Args, Debug)]
struct DataCommand {
    #[command(flatten)]
    data: DataFlags,
    /// Also write x_train.npy, y_train.npy, x_test.npy, y_test.npy (int32) here.
    #[arg(long, value_name = "DIR")]
    export: Option<PathBuf>,
    /// No progress bars.
    #[arg(long, short)]
    quiet: bool,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Data(cmd)) => {
            data::run_data_command(&cmd.data.config(!cmd.quiet), cmd.export.as_deref())
        }
        None => anyhow::bail!("training is not wired yet"),
    }
}
