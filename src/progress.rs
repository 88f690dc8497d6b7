//! Progress output in the style of Keras `fit(verbose=...)`.
//!
//! - `Bar` (Keras `verbose=1`): a bar per epoch with step count, ETA, time
//!   per step and the running loss and accuracy, finished by the epoch's
//!   summary.
//! - `Line` (`verbose=2`): one summary line per epoch, for logs and CI.
//! - `Silent` (`verbose=0`).
//!
//! Everything goes to stdout, as Keras prints it; a bar is drawn only when
//! stdout is a terminal that can move its cursor (not `TERM=dumb`),
//! otherwise `Bar` falls back to `Line`. `NO_COLOR` (set and not empty,
//! no-color.org) draws the bar without colour.
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    Silent,
    Line,
    Bar,
}

impl Verbosity {
    /// Keras's `verbose` number, with the bar turned into lines where
    /// stdout cannot show one.
    pub fn from_keras(verbose: u8) -> Verbosity {
        Verbosity::from_keras_with(verbose, can_draw_bars(std::io::stdout().is_terminal()))
    }

    /// [`Verbosity::from_keras`] where stdout `bars` or not.
    fn from_keras_with(verbose: u8, bars: bool) -> Verbosity {
        match verbose {
            0 => Verbosity::Silent,
            1 if bars => Verbosity::Bar,
            _ => Verbosity::Line,
        }
    }
}

/// Whether a stream can show a redrawn bar: a terminal, and not one that
/// says it cannot move the cursor (`TERM=dumb`).
pub fn can_draw_bars(is_terminal: bool) -> bool {
    is_terminal && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

/// Whether output may be coloured: not when `no_color` (the `NO_COLOR`
/// variable) is set to anything but the empty string.
fn colour_allowed(no_color: Option<&std::ffi::OsStr>) -> bool {
    no_color.is_none_or(|value| value.is_empty())
}

/// The bar's template: `pos/len`, padded as Keras pads the step count to
/// the width of the total, the bar (green on white where `colour`), and
/// the message.
fn bar_template(steps: u64, colour: bool) -> String {
    let width = steps.to_string().len();
    let bar = if colour {
        "bar:20.green/white"
    } else {
        "bar:20"
    };
    format!("{{pos:>{width}}}/{{len}} {{{bar}}} {{msg}}")
}

/// Per-epoch progress reporter.
pub struct EpochProgress {
    verbosity: Verbosity,
    steps: u64,
    started: Instant,
    bar: Option<ProgressBar>,
    last_draw: Option<Instant>,
}

/// Formats seconds the way Keras does: `42s`, or `1:05` past a minute.
fn keras_duration(seconds: f64) -> String {
    if seconds >= 3600.0 {
        let s = seconds.round() as u64;
        format!("{}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
    } else if seconds >= 60.0 {
        let s = seconds.round() as u64;
        format!("{}:{:02}", s / 60, s % 60)
    } else {
        format!("{}s", seconds.round() as u64)
    }
}

fn per_step(elapsed: Duration, steps: u64) -> String {
    let ms = elapsed.as_secs_f64() * 1000.0 / steps.max(1) as f64;
    if ms >= 1.0 {
        format!("{}ms/step", ms.round() as u64)
    } else {
        format!("{}us/step", (ms * 1000.0).round() as u64)
    }
}

/// `name: value` pairs as Keras prints them: ` - accuracy: 0.8123 - loss: 0.4012`.
pub fn format_metrics(metrics: &[(&str, f64)]) -> String {
    metrics
        .iter()
        .map(|(name, value)| format!(" - {name}: {value:.4}"))
        .collect()
}

impl EpochProgress {
    /// Starts epoch `epoch` (1-based) of `epochs`, with `steps` batches.
    pub fn start(verbosity: Verbosity, epoch: usize, epochs: usize, steps: u64) -> EpochProgress {
        if verbosity != Verbosity::Silent {
            println!("Epoch {epoch}/{epochs}");
        }
        let bar = (verbosity == Verbosity::Bar).then(|| {
            let bar = ProgressBar::with_draw_target(Some(steps), ProgressDrawTarget::stdout());
            let colour = colour_allowed(std::env::var_os("NO_COLOR").as_deref());
            let template = bar_template(steps, colour);
            bar.set_style(
                ProgressStyle::with_template(&template)
                    .expect("the progress template is valid")
                    .progress_chars("━━━"),
            );
            bar
        });
        EpochProgress {
            verbosity,
            steps,
            started: Instant::now(),
            bar,
            last_draw: None,
        }
    }

    /// After each training step; `metrics` gives the running means and is
    /// called only when the bar is redrawn.
    pub fn step(&mut self, done: u64, metrics: impl FnOnce() -> Vec<(&'static str, f64)>) {
        let Some(bar) = &self.bar else { return };
        let now = Instant::now();
        // Formatting every step would cost more than the step on fast paths.
        if done < self.steps
            && self
                .last_draw
                .is_some_and(|t| now - t < Duration::from_millis(100))
        {
            return;
        }
        self.last_draw = Some(now);
        let elapsed = now - self.started;
        let remaining = elapsed.as_secs_f64() / done.max(1) as f64 * (self.steps - done) as f64;
        bar.set_position(done);
        bar.set_message(format!(
            "{} {}{}",
            keras_duration(remaining),
            per_step(elapsed, done),
            format_metrics(&metrics())
        ));
    }

    /// Ends the epoch with its summary: training and validation metrics.
    pub fn finish(self, metrics: &[(&str, f64)]) {
        let elapsed = self.started.elapsed();
        let timing = format!(
            "{} {}",
            keras_duration(elapsed.as_secs_f64()),
            per_step(elapsed, self.steps)
        );
        match (self.verbosity, self.bar) {
            (Verbosity::Silent, _) => {}
            (_, Some(bar)) => {
                bar.set_position(self.steps);
                bar.finish_with_message(format!("{timing}{}", format_metrics(metrics)));
            }
            (_, None) => {
                println!(
                    "{}/{} - {timing}{}",
                    self.steps,
                    self.steps,
                    format_metrics(metrics)
                );
                let _ = std::io::stdout().flush();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn a_bar_is_drawn_only_where_stdout_can_show_one() {
        assert_eq!(Verbosity::from_keras_with(1, true), Verbosity::Bar);
        assert_eq!(Verbosity::from_keras_with(1, false), Verbosity::Line);
        assert_eq!(Verbosity::from_keras_with(2, true), Verbosity::Line);
        assert_eq!(Verbosity::from_keras_with(0, true), Verbosity::Silent);
    }

    #[test]
    fn no_color_set_and_not_empty_draws_the_bar_without_colour() {
        assert!(colour_allowed(None));
        assert!(colour_allowed(Some(OsStr::new(""))));
        assert!(!colour_allowed(Some(OsStr::new("1"))));
        assert_eq!(
            bar_template(782, true),
            "{pos:>3}/{len} {bar:20.green/white} {msg}"
        );
        assert_eq!(bar_template(782, false), "{pos:>3}/{len} {bar:20} {msg}");
        for colour in [true, false] {
            assert!(ProgressStyle::with_template(&bar_template(9, colour)).is_ok());
        }
    }
}
