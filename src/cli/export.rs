//! `gru-imdb export`'s flags and their settings.
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::{ThreadsFlags, WeightsFlags};
use crate::commands::export::ExportSettings;
use crate::device::DeviceAndThreads;
use crate::export::ExportFormat;

#[derive(Args, Debug)]
pub struct ExportFlags {
    /// Run folder of a trained run.
    #[arg(value_name = "RUN")]
    pub run_dir: PathBuf,
    /// What to write: an ONNX graph, or a Keras 3 .keras file.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// The model file to write; tokenizer.json goes beside it
    /// [default: RUN/model.onnx or RUN/model.keras].
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub weights: WeightsFlags,
    /// Write over the model file and tokenizer.json if they exist.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub threads: ThreadsFlags,
}

impl TryFrom<&ExportFlags> for ExportSettings {
    type Error = anyhow::Error;

    fn try_from(flags: &ExportFlags) -> Result<ExportSettings> {
        Ok(ExportSettings {
            run_dir: flags.run_dir.clone(),
            format: flags.format,
            output: flags.output.clone(),
            weights: flags.weights.weights,
            force: flags.force,
            // The weights are read on the CPU, whatever trained them.
            device: DeviceAndThreads::cpu(flags.threads.resolve()?),
        })
    }
}
