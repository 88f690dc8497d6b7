//! `gru-imdb summary`: Keras's `model.summary()` table, of the model the
//! flags describe or of a run's.
use std::path::PathBuf;

use anyhow::Result;

use crate::model::ModelConfig;
use crate::reports::model_summary::try_model_summary;
use crate::run_config::RunConfig;
use crate::run_dir::RunDir;

/// Which model to summarise.
#[derive(Debug, Clone)]
pub enum SummarySettings {
    /// The model of these (validated) flags.
    Model { model: ModelConfig, maxlen: usize },
    /// The model of this run folder.
    Run(PathBuf),
}

pub fn summary_command(settings: &SummarySettings) -> Result<()> {
    let (model, maxlen) = match settings {
        SummarySettings::Model { model, maxlen } => (*model, *maxlen),
        SummarySettings::Run(dir) => {
            let config = RunConfig::load(&RunDir::open_run(dir)?)?;
            (config.model, config.maxlen)
        }
    };
    print!("{}", try_model_summary(&model, maxlen)?);
    Ok(())
}
