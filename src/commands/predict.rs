//! `gru-imdb predict`: one line per text, `probability<TAB>label<TAB>text`,
//! or with `--json` one JSON object per text (JSON Lines). With two classes
//! the probability is the second class's (IMDB's positive); with more,
//! that of the most probable class, which is named.
use anyhow::{bail, Result};
use serde::Serialize;

use crate::reports::metrics::Threshold;
use crate::reports::multiclass::predicted_class;
use crate::reports::OutputFormat;
use crate::run_dir::RunDir;
use crate::settings::PredictSettings;
use crate::trained::TrainedModel;

/// One line of `predict --json`.
#[derive(Debug, Serialize)]
struct PredictionLine<'a> {
    probability: f64,
    label: &'a str,
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
        &RunDir::open(&settings.run_dir),
        settings.weights,
        &settings.device,
    )?;
    let threshold = Threshold::default();
    for (text, probabilities) in texts.iter().zip(trained.predict(texts)) {
        let (class, probability) = match probabilities.as_slice() {
            [_, positive] => (usize::from(threshold.says_positive(*positive)), *positive),
            _ => {
                let class = predicted_class(&probabilities);
                (class, probabilities[class])
            }
        };
        let label = trained.class_names[class].as_str();
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
