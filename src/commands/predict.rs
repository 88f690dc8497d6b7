//! `gru-imdb predict`: one line per text, `probability<TAB>label<TAB>text`.
//! With two classes the probability is the second class's (IMDB's
//! positive); with more, that of the most probable class, which is named.
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
    for (text, probabilities) in texts.iter().zip(trained.predict(texts)) {
        let (class, p) = match probabilities.as_slice() {
            [_, positive] => (usize::from(*positive > 0.5), *positive),
            _ => probabilities
                .iter()
                .copied()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .expect("a model has at least two classes"),
        };
        println!("{p:.4}\t{}\t{text}", trained.class_names[class]);
    }
    Ok(())
}
