//! Command line of gru-imdb: parses flags, validates them into settings
//! (`gru_imdb::cli`), and runs the command.
use std::process::ExitCode;

use anyhow::Result;
use clap::{ArgMatches, CommandFactory};
use gru_imdb::cli::{print_config, train_settings, Cli, Command, TrainFlags};
use gru_imdb::commands::train::TrainOutcome;
use gru_imdb::commands::{
    compare, evaluate, export, plot, predict, report, serve, shell, summary, train,
};
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
    let (cli, matches) = gru_imdb::cli::parse()?;
    let done = |result: Result<()>| result.map(|()| TrainOutcome::Finished);
    match &cli.command {
        None => train(&cli.train, &matches),
        Some(Command::Train(flags)) => train(
            flags,
            matches.subcommand_matches("train").unwrap_or(&matches),
        ),
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
        Some(Command::Export(flags)) => done(export::export_command(&flags.try_into()?)),
        Some(Command::Serve(flags)) => done(serve::serve_command(&flags.try_into()?)),
        Some(Command::Completions(flags)) => {
            done(shell::completions_command(Cli::command(), flags.shell))
        }
        Some(Command::Man(flags)) => done(shell::man_command(
            Cli::command(),
            flags.subcommand.as_deref(),
        )),
    }
}

/// `train`, or with `--print-config` its settings, checked, without
/// training.
fn train(flags: &TrainFlags, matches: &ArgMatches) -> Result<TrainOutcome> {
    let settings = train_settings(flags, matches)?;
    if flags.print_config {
        shell::write_stdout(print_config(matches).as_bytes())?;
        return Ok(TrainOutcome::Finished);
    }
    train::train_command(&settings)
}
