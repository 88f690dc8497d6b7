//! `gru-imdb plot RUN...`: the learning curves of one or more runs, as SVG
//! and as PNG beside it; several runs overlay, named by what differs.
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};

use crate::reports::check_output_folder;
use crate::reports::comparison::run_labels;
use crate::reports::curves::{write_history_plot, ImageFormat, PlotRun};
use crate::reports::run_record::RunRecord;

/// What `plot` needs.
#[derive(Debug, Clone)]
pub struct PlotSettings {
    pub runs: Vec<PathBuf>,
    /// The SVG to write [default: RUN/history.svg for one run,
    /// history-compared.svg for several].
    pub output: Option<PathBuf>,
}

/// Where `plot` writes when no `--output` is given: beside the run's
/// history for one run, in the current folder for several.
fn default_plot_path(runs: &[PathBuf]) -> PathBuf {
    match runs {
        [one] => one.join(crate::run_dir::HISTORY_PLOT_FILE),
        _ => PathBuf::from("history-compared.svg"),
    }
}

/// Writes the SVG and the PNG, and prints their paths.
pub fn plot_command(settings: &PlotSettings) -> Result<()> {
    for path in write_plots(&settings.runs, settings.output.as_deref())? {
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// The learning curves as SVG at `output` (a `.svg` name) and as PNG
/// beside it; returns the two paths.
fn write_plots(runs: &[PathBuf], output: Option<&Path>) -> Result<[PathBuf; 2]> {
    ensure!(!runs.is_empty(), "plot needs at least one run folder");
    let svg = output.map_or_else(|| default_plot_path(runs), Path::to_path_buf);
    ensure!(
        ImageFormat::of(&svg)? == ImageFormat::Svg,
        "--output {}: give the .svg name; the PNG is written beside it",
        svg.display()
    );
    check_output_folder(&svg)?;
    let records = runs
        .iter()
        .map(|dir| RunRecord::load(dir))
        .collect::<Result<Vec<_>>>()?;
    let labels = run_labels(&records);
    let plotted: Vec<PlotRun> = records
        .iter()
        .zip(&labels)
        .map(|(r, label)| PlotRun {
            label,
            epochs: &r.epochs,
            steps: &r.steps,
        })
        .collect();
    let png = svg.with_extension("png");
    for path in [&svg, &png] {
        write_history_plot(path, &plotted)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok([svg, png])
}
