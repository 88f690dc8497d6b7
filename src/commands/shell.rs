//! What a shell and `man` know about the command line, generated from the
//! same clap command that parses it, so they never disagree with it.
use std::io::Write;

use anyhow::{bail, Context, Result};
use clap::Command;
use clap_complete::Shell;

/// `completions SHELL`: the completion script of `command` (the parser's
/// own, `Cli::command()`) for `shell`, on stdout.
pub fn completions_command(mut command: Command, shell: Shell) -> Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "gru-imdb", &mut script);
    write_stdout(&script)
}

/// `man [SUBCOMMAND]`: the manual page of `command`, as roff, on stdout:
/// `gru-imdb(1)` (training's flags are the command's own), or
/// `gru-imdb-SUBCOMMAND(1)`.
pub fn man_command(command: Command, subcommand: Option<&str>) -> Result<()> {
    let page = match subcommand {
        None => command,
        Some(name) => {
            let Some(sub) = command.find_subcommand(name) else {
                let names: Vec<&str> = command.get_subcommands().map(|s| s.get_name()).collect();
                bail!("no subcommand {name:?}; there are {}", names.join(", "));
            };
            sub.clone()
                .display_name(format!("gru-imdb-{name}"))
                .bin_name(format!("gru-imdb {name}"))
                .version(env!("CARGO_PKG_VERSION"))
        }
    };
    let mut roff = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut roff)
        .context("cannot render the manual page")?;
    write_stdout(&roff)
}

/// Writes `bytes` to stdout; a closed pipe (`| head`) is not an error.
pub fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write to stdout"),
    }
}
