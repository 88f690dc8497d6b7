//! What a practitioner asks of a binary classifier's test predictions,
//! computed from plain probabilities and 0/1 labels: no tensors, so every
//! figure can be checked against an independent computation.
use anyhow::{ensure, Result};
use serde::Serialize;

/// Probabilities are clipped to `[EPSILON, 1 - EPSILON]` before the log
/// loss, as Keras's `binary_crossentropy` on probabilities does.
pub const LOG_LOSS_EPSILON: f64 = 1e-7;

/// The decision rule: positive when the probability is above the threshold
/// (0.5 is the same rule as a logit above 0, which training counts).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Threshold(pub f64);

impl Default for Threshold {
    fn default() -> Self {
        Threshold(0.5)
    }
}

impl Threshold {
    pub fn says_positive(self, probability: f64) -> bool {
        probability > self.0
    }
}

/// Counts of predicted against true labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Confusion {
    pub true_positives: usize,
    pub false_positives: usize,
    pub true_negatives: usize,
    pub false_negatives: usize,
}

/// The test metrics of one set of predictions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BinaryMetrics {
    pub threshold: Threshold,
    pub count: usize,
    pub accuracy: f64,
    /// 0 when nothing is predicted positive (scikit-learn's convention).
    pub precision: f64,
    /// 0 when there is no positive example.
    pub recall: f64,
    /// 0 when precision and recall are both 0.
    pub f1: f64,
    /// `None` when one class is missing: the AUC is then undefined.
    pub roc_auc: Option<f64>,
    pub log_loss: f64,
    pub confusion: Confusion,
}

/// Predictions and the truth they are measured against, of equal length.
#[derive(Debug, Clone, Copy)]
pub struct Predictions<'a> {
    pub probabilities: &'a [f64],
    pub labels: &'a [u8],
}

impl<'a> Predictions<'a> {
    /// Refuses empty or unequal inputs, labels other than 0/1 and
    /// probabilities outside [0, 1].
    pub fn new(probabilities: &'a [f64], labels: &'a [u8]) -> Result<Predictions<'a>> {
        ensure!(!labels.is_empty(), "no predictions to measure");
        ensure!(
            probabilities.len() == labels.len(),
            "{} probabilities for {} labels",
            probabilities.len(),
            labels.len()
        );
        ensure!(labels.iter().all(|&y| y <= 1), "labels must be 0 or 1");
        ensure!(
            probabilities.iter().all(|p| (0.0..=1.0).contains(p)),
            "probabilities must be in [0, 1]"
        );
        Ok(Predictions {
            probabilities,
            labels,
        })
    }

    fn pairs(&self) -> impl Iterator<Item = (f64, bool)> + '_ {
        self.probabilities
            .iter()
            .zip(self.labels)
            .map(|(&p, &y)| (p, y == 1))
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether example `i` is classified correctly at `threshold`.
    pub fn is_correct(&self, i: usize, threshold: Threshold) -> bool {
        threshold.says_positive(self.probabilities[i]) == (self.labels[i] == 1)
    }
}

fn ratio(numerator: usize, denominator: usize) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

impl BinaryMetrics {
    pub fn compute(predictions: &Predictions, threshold: Threshold) -> BinaryMetrics {
        let mut confusion = Confusion::default();
        for (p, positive) in predictions.pairs() {
            match (threshold.says_positive(p), positive) {
                (true, true) => confusion.true_positives += 1,
                (true, false) => confusion.false_positives += 1,
                (false, false) => confusion.true_negatives += 1,
                (false, true) => confusion.false_negatives += 1,
            }
        }
        let c = confusion;
        let precision = ratio(c.true_positives, c.true_positives + c.false_positives);
        let recall = ratio(c.true_positives, c.true_positives + c.false_negatives);
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        BinaryMetrics {
            threshold,
            count: predictions.len(),
            accuracy: ratio(c.true_positives + c.true_negatives, predictions.len()),
            precision,
            recall,
            f1,
            roc_auc: roc_auc(predictions),
            log_loss: log_loss(predictions),
            confusion,
        }
    }
}

/// Mean binary cross-entropy of the probabilities, clipped as Keras does.
pub fn log_loss(predictions: &Predictions) -> f64 {
    let total: f64 = predictions
        .pairs()
        .map(|(p, positive)| {
            let p = p.clamp(LOG_LOSS_EPSILON, 1.0 - LOG_LOSS_EPSILON);
            -if positive { p.ln() } else { (1.0 - p).ln() }
        })
        .sum();
    total / predictions.len() as f64
}

/// Area under the ROC curve: the probability that a random positive scores
/// above a random negative, ties counting one half (Mann-Whitney U from
/// average ranks, O(n log n)).
pub fn roc_auc(predictions: &Predictions) -> Option<f64> {
    let mut order: Vec<(f64, bool)> = predictions.pairs().collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0));
    let positives = order.iter().filter(|(_, positive)| *positive).count();
    let negatives = order.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut positive_rank_sum = 0.0;
    let mut start = 0;
    while start < order.len() {
        let end = start + order[start..].partition_point(|(p, _)| *p == order[start].0);
        // Ranks start..end (0-based) share their average, 1-based.
        let average_rank = (start + end + 1) as f64 / 2.0;
        let tied_positives = order[start..end].iter().filter(|(_, pos)| *pos).count();
        positive_rank_sum += average_rank * tied_positives as f64;
        start = end;
    }
    let p = positives as f64;
    Some((positive_rank_sum - p * (p + 1.0) / 2.0) / (p * negatives as f64))
}

/// One bin of a reliability diagram.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CalibrationBin {
    pub low: f64,
    pub high: f64,
    pub count: usize,
    /// Mean predicted probability of the bin's examples (NaN when empty).
    pub mean_probability: f64,
    /// Fraction of the bin's examples that are positive (NaN when empty).
    pub positive_fraction: f64,
}

/// `bins` equal-width bins of [0, 1]; the last one includes 1.
pub fn calibration(predictions: &Predictions, bins: usize) -> Vec<CalibrationBin> {
    let bins = bins.max(1);
    let mut sums = vec![(0usize, 0.0f64, 0usize); bins];
    for (p, positive) in predictions.pairs() {
        let bin = ((p * bins as f64) as usize).min(bins - 1);
        sums[bin].0 += 1;
        sums[bin].1 += p;
        sums[bin].2 += usize::from(positive);
    }
    sums.iter()
        .enumerate()
        .map(
            |(i, &(count, probability_sum, positive_count))| CalibrationBin {
                low: i as f64 / bins as f64,
                high: (i + 1) as f64 / bins as f64,
                count,
                mean_probability: probability_sum / count as f64,
                positive_fraction: positive_count as f64 / count as f64,
            },
        )
        .collect()
}

/// Accuracy over the reviews whose length (in words) is in `min..max`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LengthBucket {
    pub min_words: usize,
    /// Exclusive; `None` for the open last bucket.
    pub max_words: Option<usize>,
    /// Whether the model saw these reviews cut to `maxlen`.
    pub truncated: bool,
    pub count: usize,
    /// NaN when the bucket is empty.
    pub accuracy: f64,
}

/// Accuracy by review length, in buckets around `maxlen`: two of reviews
/// the model saw whole (below maxlen/2, below maxlen words) and three it
/// saw cut (below 2x, below 4x, 4x maxlen words and more). A review of
/// `words` words is `words + 1` ids with the start mark, so it is cut from
/// `maxlen` words on.
pub fn accuracy_by_length(
    predictions: &Predictions,
    words: &[usize],
    maxlen: usize,
    threshold: Threshold,
) -> Vec<LengthBucket> {
    let edges = [0, maxlen / 2, maxlen, 2 * maxlen, 4 * maxlen];
    let mut buckets: Vec<LengthBucket> = edges
        .iter()
        .enumerate()
        .filter(|&(i, &low)| i == 0 || low > edges[i - 1])
        .map(|(i, &low)| LengthBucket {
            min_words: low,
            max_words: edges.get(i + 1).copied(),
            truncated: low >= maxlen,
            count: 0,
            accuracy: 0.0,
        })
        .collect();
    for (i, &n) in words.iter().enumerate().take(predictions.len()) {
        let bucket = buckets
            .iter_mut()
            .rev()
            .find(|b| n >= b.min_words)
            .expect("the first bucket starts at 0");
        bucket.count += 1;
        bucket.accuracy += f64::from(u8::from(predictions.is_correct(i, threshold)));
    }
    for bucket in &mut buckets {
        bucket.accuracy /= bucket.count as f64;
    }
    buckets
}

/// Indices of the misclassified examples, most confident first (largest
/// distance between probability and true label), at most `limit`.
pub fn most_confidently_wrong(
    predictions: &Predictions,
    threshold: Threshold,
    limit: usize,
) -> Vec<usize> {
    let mut wrong: Vec<usize> = (0..predictions.len())
        .filter(|&i| !predictions.is_correct(i, threshold))
        .collect();
    let error = |i: usize| (predictions.probabilities[i] - f64::from(predictions.labels[i])).abs();
    wrong.sort_by(|&a, &b| error(b).total_cmp(&error(a)).then(a.cmp(&b)));
    wrong.truncate(limit);
    wrong
}

#[cfg(test)]
mod tests {
    use super::*;

    fn predictions<'a>(p: &'a [f64], y: &'a [u8]) -> Predictions<'a> {
        Predictions::new(p, y).unwrap()
    }

    /// AUC the slow way: every (positive, negative) pair, ties count 1/2.
    fn auc_by_pairs(p: &[f64], y: &[u8]) -> f64 {
        let mut score = 0.0;
        let mut pairs = 0.0;
        for (i, &yi) in y.iter().enumerate() {
            for (j, &yj) in y.iter().enumerate() {
                if yi == 1 && yj == 0 {
                    pairs += 1.0;
                    score += match p[i].total_cmp(&p[j]) {
                        std::cmp::Ordering::Greater => 1.0,
                        std::cmp::Ordering::Equal => 0.5,
                        std::cmp::Ordering::Less => 0.0,
                    };
                }
            }
        }
        score / pairs
    }

    #[test]
    fn auc_equals_pairwise_counting_with_ties() {
        let p = [0.1, 0.4, 0.35, 0.8, 0.4, 0.4, 0.9, 0.2, 0.8];
        let y = [0, 0, 1, 1, 1, 0, 1, 0, 0];
        let auc = roc_auc(&predictions(&p, &y)).unwrap();
        assert!((auc - auc_by_pairs(&p, &y)).abs() < 1e-12, "{auc}");
    }

    #[test]
    fn auc_is_undefined_with_one_class() {
        assert_eq!(roc_auc(&predictions(&[0.2, 0.9], &[1, 1])), None);
    }

    #[test]
    fn confusion_precision_recall_and_f1_follow_their_definitions() {
        // Predicted positive: 0.9 (true 1), 0.6 (true 0), 0.7 (true 1);
        // negative: 0.5 (true 1: the threshold itself is negative), 0.1 (true 0).
        let p = [0.9, 0.6, 0.7, 0.5, 0.1];
        let y = [1, 0, 1, 1, 0];
        let m = BinaryMetrics::compute(&predictions(&p, &y), Threshold::default());
        let expected = Confusion {
            true_positives: 2,
            false_positives: 1,
            true_negatives: 1,
            false_negatives: 1,
        };
        assert_eq!(m.confusion, expected);
        assert_eq!(m.accuracy, 3.0 / 5.0);
        assert_eq!(m.precision, 2.0 / 3.0);
        assert_eq!(m.recall, 2.0 / 3.0);
        assert!((m.f1 - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn nothing_predicted_positive_gives_zero_precision_not_nan() {
        let m = BinaryMetrics::compute(&predictions(&[0.1, 0.2], &[1, 0]), Threshold(0.5));
        assert_eq!((m.precision, m.recall, m.f1), (0.0, 0.0, 0.0));
    }

    #[test]
    fn log_loss_clips_certain_mistakes_like_keras() {
        let loss = log_loss(&predictions(&[0.0, 0.8], &[1, 1]));
        let expected = (-(1e-7f64).ln() - 0.8f64.ln()) / 2.0;
        assert!((loss - expected).abs() < 1e-12);
    }

    #[test]
    fn calibration_bins_hold_their_examples_and_one_goes_in_the_last() {
        let p = [0.05, 0.15, 0.12, 1.0, 0.95];
        let y = [0, 1, 0, 1, 0];
        let bins = calibration(&predictions(&p, &y), 10);
        assert_eq!(bins.len(), 10);
        assert_eq!(bins[1].count, 2);
        assert!((bins[1].mean_probability - 0.135).abs() < 1e-12);
        assert_eq!(bins[1].positive_fraction, 0.5);
        assert_eq!(bins[9].count, 2);
        assert_eq!(bins[5].count, 0);
    }

    #[test]
    fn length_buckets_split_at_maxlen_and_mark_the_cut_ones() {
        let p = [0.9, 0.9, 0.1, 0.9, 0.9];
        let y = [1, 0, 0, 1, 1];
        let words = [3, 10, 99, 100, 1000];
        let buckets = accuracy_by_length(&predictions(&p, &y), &words, 100, Threshold(0.5));
        let summary: Vec<(usize, Option<usize>, bool, usize)> = buckets
            .iter()
            .map(|b| (b.min_words, b.max_words, b.truncated, b.count))
            .collect();
        assert_eq!(
            summary,
            vec![
                (0, Some(50), false, 2),
                (50, Some(100), false, 1),
                (100, Some(200), true, 1),
                (200, Some(400), true, 0),
                (400, None, true, 1),
            ]
        );
        assert_eq!(buckets[0].accuracy, 0.5);
        assert_eq!(buckets[1].accuracy, 1.0);
    }

    #[test]
    fn most_confident_mistakes_come_first() {
        let p = [0.6, 0.99, 0.02, 0.2, 0.7];
        let y = [0, 0, 1, 0, 1];
        assert_eq!(
            most_confidently_wrong(&predictions(&p, &y), Threshold(0.5), 2),
            vec![1, 2]
        );
    }

    #[test]
    fn mismatched_or_out_of_range_inputs_are_refused() {
        assert!(Predictions::new(&[0.5], &[1, 0]).is_err());
        assert!(Predictions::new(&[1.5], &[1]).is_err());
        assert!(Predictions::new(&[0.5], &[2]).is_err());
        assert!(Predictions::new(&[], &[]).is_err());
    }
}
