//! `gru-imdb compare RUN...`: the settings that differ between runs and
//! what each reached, as a table or as JSON.
use std::path::PathBuf;

use anyhow::{ensure, Result};

use crate::reports::comparison::{compare, comparison_table};
use crate::reports::run_record::RunRecord;
use crate::reports::OutputFormat;

/// What `compare` needs.
#[derive(Debug, Clone)]
pub struct CompareSettings {
    pub runs: Vec<PathBuf>,
    pub format: OutputFormat,
}

pub fn compare_command(settings: &CompareSettings) -> Result<()> {
    ensure!(
        !settings.runs.is_empty(),
        "compare needs at least one run folder"
    );
    let records = settings
        .runs
        .iter()
        .map(|dir| RunRecord::load(dir))
        .collect::<Result<Vec<_>>>()?;
    let rows = compare(&records);
    match settings.format {
        OutputFormat::Text => print!("{}", comparison_table(&rows)),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
    }
    Ok(())
}
