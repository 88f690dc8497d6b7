//! `gru-imdb predict`: one line per text, `probability<TAB>label<TAB>text`.
use anyhow::{bail, Result};

use crate::inference::TrainedModel;
use crate::run_folder::RunFolder;
use crate::settings::PredictSettings;

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
    for (text, p) in texts.iter().zip(trained.predict(texts)) {
        let label = if p > 0.5 { "positive" } else { "negative" };
        println!("{p:.4}\t{label}\t{text}");
    }
    Ok(())
}
