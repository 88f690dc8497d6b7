//! Command line of gru-imdb: parses flags, validates them into settings
//! (`gru_imdb::cli`), and runs the command.
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use gru_imdb::cli::{Cli, Command};
use gru_imdb::commands::{evaluate, predict, train};
use gru_imdb::data;

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
    match &cli.command {
        None => train::train_command(&(&cli.train).try_into()?),
        Some(Command::Train(flags)) => train::train_command(&flags.try_into()?),
        Some(Command::Data(flags)) => {
            data::run_data_command(&flags.settings()?, flags.export.as_deref())
        }
        Some(Command::Predict(flags)) => predict::predict_command(&flags.try_into()?),
        Some(Command::Evaluate(flags)) => evaluate::evaluate_command(&flags.try_into()?),
    }
}
