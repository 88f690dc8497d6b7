//! A trained model's predictions on the test texts, kept with what the
//! report needs beside them: labels, lengths and the texts.
use crate::data::LabeledText;
use crate::trained::TrainedModel;

/// Texts per inference batch: large enough to be fast, small enough that
/// the embedded batch stays well under a gigabyte.
const BATCH: usize = 1024;

/// Parallel arrays, one entry per test text, in the test set's order.
#[derive(Debug, Clone, PartialEq)]
pub struct TestPredictions {
    /// The second class's (IMDB's positive) probability of each text.
    pub probabilities: Vec<f64>,
    /// Every class's probability of each text, by class.
    pub class_probabilities: Vec<Vec<f64>>,
    /// The true class of each text.
    pub labels: Vec<u8>,
    /// Tokens per text, as the run's tokenizer counts them (before `maxlen`).
    pub words: Vec<usize>,
    pub texts: Vec<String>,
    /// By class.
    pub class_names: Vec<String>,
}

/// Runs `trained` on every text of `test`.
pub fn predict_test_set(trained: &TrainedModel, test: Vec<LabeledText>) -> TestPredictions {
    let tokenizer = trained.tokenizer();
    let mut predictions = TestPredictions {
        probabilities: Vec::with_capacity(test.len()),
        class_probabilities: Vec::with_capacity(test.len()),
        labels: test.iter().map(|r| r.label).collect(),
        words: test.iter().map(|r| r.words(tokenizer)).collect(),
        texts: test.into_iter().map(|r| r.text).collect(),
        class_names: trained.class_names.clone(),
    };
    let inference = trained.model.inference();
    for chunk in predictions.texts.chunks(BATCH) {
        let chunk = trained.predict_with(&inference, chunk);
        predictions.probabilities.extend(chunk.iter().map(|p| p[1]));
        predictions.class_probabilities.extend(chunk);
    }
    predictions
}
