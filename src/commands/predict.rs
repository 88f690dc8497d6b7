//! `gru-imdb predict`: one line per text, `probability<TAB>label<TAB>text`,
//! or with `--json` one JSON object per text (JSON Lines).
use anyhow::{bail, Result};
use serde::Serialize;

use crate::inference::TrainedModel;
use crate::results::metrics::Threshold;
use crate::results::OutputFormat;
use crate::run_folder::RunFolder;
use crate::settings::PredictSettings;

/// One line of `predict --json`.
#[derive(Debug, Serialize)]
struct PredictionLine<'a> {
    probability: f64,
    label: &'static str,
    text: &'a str,
}

pub fn predict_command(settings: &PredictSettings) -> Result<()> {
    let texts = &settings.texts;
    if texts.is_empty() {
        bail!(
            "no reviews to predict: give them as arguments, with --file, or on stdin, one per line"
        );
    }
    let trained = TrainedModel::load(
        &RunFolder::open(&settings.run_dir),
        settings.weights,
        &settings.placement,
    )?;
    let threshold = Threshold::default();
    for (text, probability) in texts.iter().zip(trained.predict(texts)) {
        let label = if threshold.says_positive(probability) {
            "positive"
        } else {
            "negative"
        };
        match settings.format {
            OutputFormat::Text => println!("{probability:.4}\t{label}\t{text}"),
            OutputFormat::Json => println!(
                "{}",
                serde_json::to_string(&PredictionLine {
                    probability,
                    label,
                    text,
                })?
            ),
        }
    }
    Ok(())
}
