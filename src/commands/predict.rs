//! `gru-imdb predict`: one line per text, `probability<TAB>label<TAB>text`,
//! or with `--json` one JSON object per text (JSON Lines). With two classes
//! the probability is the second class's (IMDB's positive); with more,
//! that of the most probable class, which is named.
use anyhow::{bail, Result};
use serde::Serialize;

use crate::commands::shell::write_stdout;
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

/// What `predict` prints of one text's class probabilities: with two
/// classes the second's probability and the label the default threshold
/// gives; with more, the most probable class's probability and name.
pub fn labelled<'a>(probabilities: &[f64], class_names: &'a [String]) -> (f64, &'a str) {
    let (class, probability) = match probabilities {
        [_, positive] => (
            usize::from(Threshold::default().says_positive(*positive)),
            *positive,
        ),
        _ => {
            let class = predicted_class(probabilities);
            (class, probabilities[class])
        }
    };
    (probability, class_names[class].as_str())
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
    let mut lines = String::new();
    for (text, probabilities) in texts.iter().zip(trained.predict(texts)) {
        let (probability, label) = labelled(&probabilities, &trained.class_names);
        let line = match settings.format {
            OutputFormat::Text => format!("{probability:.4}\t{label}\t{text}"),
            OutputFormat::Json => serde_json::to_string(&PredictionLine {
                probability,
                label,
                text,
            })?,
        };
        lines.push_str(&line);
        lines.push('\n');
    }
    // `predict ... | head` closes the pipe early: not an error.
    write_stdout(lines.as_bytes())
}
