//! What a run learned, for people: learning curves (`plot`, and `live` for
//! the `history.svg` training keeps current), the test metrics and the
//! self-contained HTML report (`metrics`, `report`), runs side by side
//! (`compare`), Keras's `model.summary()` table (`summary`), and readers
//! of a run folder's histories (`history`, `run_record`).
//!
//! Entry points take plain data (history rows, configs, probabilities and
//! labels, texts); the commands above call them.
pub mod charts;
pub mod comparison;
pub mod curves;
pub mod history_reader;
pub mod html;
mod html_classes;
pub mod live;
pub mod metrics;
pub mod model_summary;
pub mod multiclass;
pub mod run_record;
pub mod test_predictions;

use std::path::Path;

use anyhow::{ensure, Result};

/// How a command prints: for people, or JSON for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Json,
}

impl OutputFormat {
    /// From a `--json` flag.
    pub fn json_if(json: bool) -> OutputFormat {
        if json {
            OutputFormat::Json
        } else {
            OutputFormat::Text
        }
    }
}

/// Refuses an output whose folder is missing, naming the file, before any
/// work is done.
pub fn check_output_folder(path: &Path) -> Result<()> {
    crate::run_dir::refuse_run_file(path, "--output")?;
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(folder) = folder {
        ensure!(
            folder.is_dir(),
            "cannot write {}: the folder {} does not exist",
            path.display(),
            folder.display()
        );
    }
    Ok(())
}
