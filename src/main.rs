//! Command line of gru-imdb: parses flags, validates them into settings
//! (`gru_imdb::cli`), and runs the command.
use std::process::ExitCode;

use anyhow::Result;
use clap::{CommandFactory, FromArgMatches};
use gru_imdb::cli::{train_settings, Cli, Command};
use gru_imdb::commands::train::TrainOutcome;
use gru_imdb::commands::{compare, evaluate, plot, predict, report, shell, summary, train};
use gru_imdb::data;

/// Errors are printed with their causes, one per line, like ripgrep does,
/// and exit with status 1; a training run stopped by an interrupt exits
/// with 130, as a shell reports a Ctrl-C.
fn main() -> ExitCode {
    match run() {
        Ok(TrainOutcome::Finished) => ExitCode::SUCCESS,
        Ok(TrainOutcome::Interrupted { run_dir }) => {
            eprintln!(
                "Stopped; a checkpoint is saved. To go on: gru-imdb train --resume {}",
                run_dir.display()
            );
            ExitCode::from(130)
        }
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<TrainOutcome> {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let done = |result: Result<()>| result.map(|()| TrainOutcome::Finished);
    match &cli.command {
        None => train::train_command(&train_settings(&cli.train, &matches)?),
        Some(Command::Train(flags)) => {
            let matches = matches.subcommand_matches("train").unwrap_or(&matches);
            train::train_command(&train_settings(flags, matches)?)
        }
        Some(Command::Data(flags)) => done(data::run_data_command(
            &flags.settings()?,
            flags.texts.files(),
            flags.export.as_deref(),
        )),
        Some(Command::Predict(flags)) => done(predict::predict_command(&flags.try_into()?)),
        Some(Command::Evaluate(flags)) => done(evaluate::evaluate_command(&flags.try_into()?)),
        Some(Command::Plot(flags)) => done(plot::plot_command(&flags.into())),
        Some(Command::Compare(flags)) => done(compare::compare_command(&flags.into())),
        Some(Command::Summary(flags)) => done(summary::summary_command(&flags.try_into()?)),
        Some(Command::Report(flags)) => done(report::report_command(&flags.try_into()?)),
        Some(Command::Completions(flags)) => {
            done(shell::completions_command(Cli::command(), flags.shell))
        }
        Some(Command::Man(flags)) => done(shell::man_command(
            Cli::command(),
            flags.subcommand.as_deref(),
        )),
    }
}
