//! `results.json`: how a run ended, written when it ends (finished,
//! interrupted or failed), so a run folder tells its own state.
use serde::{Deserialize, Serialize};

use super::records::BestEpoch;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Finished,
    Interrupted,
    Failed,
}

/// The test set's figures and which weights gave them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestResult {
    pub loss: f64,
    pub accuracy: f64,
    /// "last" or "best".
    pub weights: String,
    /// The epoch (from 0) those weights come from.
    pub epoch: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResults {
    pub status: RunStatus,
    /// What went wrong, for a failed run.
    pub error: Option<String>,
    pub epochs_completed: usize,
    /// Set when early stopping ended the run after this epoch.
    pub stopped_early_after: Option<usize>,
    pub monitor: String,
    pub best: Option<BestEpoch>,
    pub test: Option<TestResult>,
    /// Wall time of this process (a resumed run counts its own part).
    pub wall_seconds: f64,
    pub device: String,
    pub gru_implementation: String,
    pub gru_imdb_version: String,
    pub libtorch_version: String,
}
