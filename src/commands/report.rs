//! `gru-imdb report RUN`: runs the run's weights on the test set (IMDB's
//! test reviews, or the run's `--test-file`, read again) and writes one
//! self-contained HTML report, atomically: binary metrics for two classes,
//! per-class ones for more.
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};

use super::evaluate::{open_run_under_test, RunUnderTest};
use crate::atomic::write_atomically;
use crate::data::read_texts;
use crate::data::texts::read_run_texts;
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
    let (summary, test) = match &trained.config.texts {
        None => {
            let texts = read_texts(&data)?;
            let negative = texts.train_reviews - texts.train_positive;
            let summary = DataSummary {
                source: data.url.clone(),
                train_per_class: vec![negative, texts.train_positive],
                vocabulary_words: trained.vocab.len(),
            };
            (summary, texts.test)
        }
        Some(source) => {
            let files = &source.files;
            let texts = read_run_texts(files, &trained.class_names)?;
            let test_file = files.test_file.as_deref().unwrap_or(Path::new(""));
            let summary = DataSummary {
                source: format!("{} and {}", files.train_file.display(), test_file.display()),
                train_per_class: texts.train_per_class,
                vocabulary_words: trained.vocab.len(),
            };
            (summary, texts.test)
        }
    };
    ensure!(!test.is_empty(), "no test texts to report on");
    let predictions = predict_test_set(&trained, test);
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
