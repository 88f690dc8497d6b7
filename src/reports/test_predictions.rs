//! A trained model's predictions on the test reviews, kept with what the
//! report needs beside them: labels, lengths and the texts.
use crate::data::LabeledText;
use crate::trained::TrainedModel;

/// Reviews per inference batch: large enough to be fast, small enough that
/// the embedded batch stays well under a gigabyte.
const BATCH: usize = 1024;

/// Parallel arrays, one entry per test review, in the archive's test order.
#[derive(Debug, Clone, PartialEq)]
pub struct TestPredictions {
    pub probabilities: Vec<f64>,
    pub labels: Vec<u8>,
    /// Words per review, as the tokeniser counts them (before `maxlen`).
    pub words: Vec<usize>,
    pub texts: Vec<String>,
}

/// Runs `trained` on every review of `test`.
pub fn predict_test_set(trained: &TrainedModel, test: Vec<LabeledText>) -> TestPredictions {
    let mut predictions = TestPredictions {
        probabilities: Vec::with_capacity(test.len()),
        labels: test.iter().map(|r| r.label).collect(),
        words: test.iter().map(|r| r.words(trained.tokenizer())).collect(),
        texts: test.into_iter().map(|r| r.text).collect(),
    };
    // A two-class model: the second class's (positive's) probability.
    for chunk in predictions.texts.chunks(BATCH) {
        let chunk = trained.predict(chunk);
        predictions.probabilities.extend(chunk.iter().map(|p| p[1]));
    }
    predictions
}
