//! `gru-imdb report RUN`: runs the run's weights on the test reviews and
//! writes one self-contained HTML report, atomically.
use std::path::PathBuf;

use anyhow::{ensure, Context, Result};

use super::evaluate::{open_run_under_test, RunUnderTest};
use crate::atomic::write_atomically;
use crate::data::read_texts;
use crate::device::DeviceAndThreads;
use crate::reports::check_output_folder;
use crate::reports::html::{render_report, DataSummary, ReportInput};
use crate::reports::metrics::Threshold;
use crate::reports::run_record::RunRecord;
use crate::reports::test_predictions::predict_test_set;
use crate::run_dir::WeightsChoice;
use crate::settings::EvaluateData;

/// The report's file in the run folder when no `--output` is given.
pub const REPORT_FILE: &str = "report.html";

/// What `report` needs.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    pub run_dir: PathBuf,
    /// Default `<run_dir>/report.html`.
    pub output: Option<PathBuf>,
    pub data: EvaluateData,
    pub weights: WeightsChoice,
    pub device: DeviceAndThreads,
}

pub fn report_command(settings: &ReportSettings) -> Result<()> {
    let output = settings
        .output
        .clone()
        .unwrap_or_else(|| settings.run_dir.join(REPORT_FILE));
    check_output_folder(&output)?;
    let run = RunRecord::load(&settings.run_dir)?;
    let RunUnderTest { trained, data } = open_run_under_test(
        &settings.run_dir,
        settings.weights,
        &settings.device,
        &settings.data,
    )?;
    // The report's metrics are binary ones, on IMDB's test reviews.
    ensure!(
        trained.config.texts.is_none(),
        "report covers runs on the IMDB reviews; {} trained on --train-file",
        settings.run_dir.display()
    );
    let texts = read_texts(&data)?;
    let summary = DataSummary {
        archive: data.url.clone(),
        train_reviews: texts.train_reviews,
        train_positive: texts.train_positive,
        vocabulary_words: trained.vocab.len(),
    };
    let predictions = predict_test_set(&trained, texts.test);
    let html = render_report(&ReportInput {
        run: &run,
        weights: &trained.weights,
        data: &summary,
        predictions: &predictions,
        threshold: Threshold::default(),
    })?;
    write_atomically(&output, |out| {
        std::io::Write::write_all(out, html.as_bytes())
    })
    .with_context(|| format!("cannot write {}", output.display()))?;
    println!("wrote {}", output.display());
    Ok(())
}
