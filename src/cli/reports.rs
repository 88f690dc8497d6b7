//! The flags of the commands that show what runs learned (`plot`,
//! `compare`, `summary`, `report`), and their validated settings.
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::{DataShapeFlags, DataSourceFlags, ModelFlags, ThreadsFlags, WeightsFlags};
use crate::commands::compare::CompareSettings;
use crate::commands::plot::PlotSettings;
use crate::commands::report::ReportSettings;
use crate::commands::summary::SummarySettings;
use crate::device::DeviceAndThreads;
use crate::reports::OutputFormat;
use crate::settings::{check_sha256, EvaluateData};

#[derive(Args, Debug)]
pub struct PlotFlags {
    /// Run folders; several are drawn in one figure, named by what differs.
    #[arg(required = true, value_name = "RUN")]
    pub runs: Vec<PathBuf>,
    /// SVG file to write; the PNG goes beside it [default: RUN/history.svg
    /// for one run, history-compared.svg for several].
    #[arg(long, short, value_name = "FILE.svg")]
    pub output: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct CompareFlags {
    /// Run folders.
    #[arg(required = true, value_name = "RUN")]
    pub runs: Vec<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct SummaryFlags {
    /// Summarise this run's model instead of the one the flags describe.
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    #[command(flatten)]
    pub shape: DataShapeFlags,
    #[command(flatten)]
    pub model: ModelFlags,
}

#[derive(Args, Debug)]
pub struct ReportFlags {
    /// Run folder of a trained run.
    #[arg(value_name = "RUN")]
    pub run_dir: PathBuf,
    /// HTML file to write [default: RUN/report.html].
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub source: DataSourceFlags,
    #[command(flatten)]
    pub threads: ThreadsFlags,
    #[command(flatten)]
    pub weights: WeightsFlags,
}

impl From<&PlotFlags> for PlotSettings {
    fn from(flags: &PlotFlags) -> PlotSettings {
        PlotSettings {
            runs: flags.runs.clone(),
            output: flags.output.clone(),
        }
    }
}

impl From<&CompareFlags> for CompareSettings {
    fn from(flags: &CompareFlags) -> CompareSettings {
        CompareSettings {
            runs: flags.runs.clone(),
            format: OutputFormat::json_if(flags.json),
        }
    }
}

impl TryFrom<&SummaryFlags> for SummarySettings {
    type Error = anyhow::Error;

    fn try_from(flags: &SummaryFlags) -> Result<SummarySettings> {
        if let Some(dir) = &flags.run_dir {
            return Ok(SummarySettings::Run(dir.clone()));
        }
        let model = flags.model.config(&flags.shape);
        model.validate()?;
        Ok(SummarySettings::Model {
            model,
            maxlen: flags.shape.maxlen,
        })
    }
}

impl TryFrom<&ReportFlags> for ReportSettings {
    type Error = anyhow::Error;

    fn try_from(flags: &ReportFlags) -> Result<ReportSettings> {
        if let Some(sha) = &flags.source.data_sha256 {
            check_sha256(sha)?;
        }
        let threads = flags.threads.resolve()?;
        Ok(ReportSettings {
            run_dir: flags.run_dir.clone(),
            output: flags.output.clone(),
            data: EvaluateData {
                data_dir: flags.source.data_dir.clone(),
                url: flags.source.data_url.clone(),
                sha256: flags.source.data_sha256.clone(),
            },
            weights: flags.weights.weights,
            // The report predicts on the CPU, as predict does.
            device: DeviceAndThreads::cpu(threads),
        })
    }
}
