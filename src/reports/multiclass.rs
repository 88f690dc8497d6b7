//! Test metrics of a model of more than two classes: the confusion matrix,
//! each class's precision, recall, F1 and support, their macro and
//! weighted averages (as scikit-learn's `classification_report`), top-2
//! accuracy, the most confused pairs and each class's worst errors.
use anyhow::{ensure, Result};

/// A class's figures; precision is 0 for a class never predicted (as
/// scikit-learn's `zero_division=0`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassFigures {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

/// The figures of one set of predictions.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassMetrics {
    /// `confusion[true][predicted]`.
    pub confusion: Vec<Vec<usize>>,
    pub per_class: Vec<ClassFigures>,
    pub accuracy: f64,
    pub top2_accuracy: f64,
    pub macro_avg: ClassFigures,
    pub weighted_avg: ClassFigures,
    /// The mean of −ln p(true class), p clipped to [1e-7, 1] (Keras's).
    pub log_loss: f64,
    pub count: usize,
}

/// The predicted class: the most probable, the first of equals.
pub fn predicted_class(probabilities: &[f64]) -> usize {
    let mut best = 0;
    for (c, &p) in probabilities.iter().enumerate() {
        if p > probabilities[best] {
            best = c;
        }
    }
    best
}

/// Whether `label` is among the two most probable classes.
fn in_top2(probabilities: &[f64], label: usize) -> bool {
    let above = probabilities
        .iter()
        .filter(|&&p| p > probabilities[label])
        .count();
    above < 2
}

fn ratio(part: f64, whole: f64) -> f64 {
    if whole == 0.0 {
        0.0
    } else {
        part / whole
    }
}

impl ClassMetrics {
    pub fn compute(probabilities: &[Vec<f64>], labels: &[u8], classes: usize) -> Result<Self> {
        ensure!(
            probabilities.len() == labels.len() && !labels.is_empty(),
            "{} predictions for {} labels",
            probabilities.len(),
            labels.len()
        );
        let mut confusion = vec![vec![0usize; classes]; classes];
        let (mut top2, mut loss) = (0usize, 0.0f64);
        for (p, &y) in probabilities.iter().zip(labels) {
            let y = usize::from(y);
            ensure!(
                p.len() == classes && y < classes,
                "a prediction of the wrong shape"
            );
            confusion[y][predicted_class(p)] += 1;
            top2 += usize::from(in_top2(p, y));
            loss -= p[y].clamp(1e-7, 1.0).ln();
        }
        let count = labels.len();
        let per_class: Vec<ClassFigures> = (0..classes)
            .map(|c| {
                let hits = confusion[c][c] as f64;
                let predicted: usize = confusion.iter().map(|row| row[c]).sum();
                let support: usize = confusion[c].iter().sum();
                let precision = ratio(hits, predicted as f64);
                let recall = ratio(hits, support as f64);
                ClassFigures {
                    precision,
                    recall,
                    f1: ratio(2.0 * precision * recall, precision + recall),
                    support,
                }
            })
            .collect();
        let average = |weight: &dyn Fn(&ClassFigures) -> f64| {
            let total: f64 = per_class.iter().map(weight).sum();
            let mean = |f: fn(&ClassFigures) -> f64| {
                ratio(per_class.iter().map(|c| weight(c) * f(c)).sum(), total)
            };
            ClassFigures {
                precision: mean(|c| c.precision),
                recall: mean(|c| c.recall),
                f1: mean(|c| c.f1),
                support: count,
            }
        };
        let hits: usize = (0..classes).map(|c| confusion[c][c]).sum();
        Ok(ClassMetrics {
            macro_avg: average(&|_| 1.0),
            weighted_avg: average(&|c| c.support as f64),
            per_class,
            accuracy: hits as f64 / count as f64,
            top2_accuracy: top2 as f64 / count as f64,
            log_loss: loss / count as f64,
            confusion,
            count,
        })
    }

    /// The `n` largest off-diagonal cells as (true, predicted, count),
    /// largest first, then by class.
    pub fn most_confused(&self, n: usize) -> Vec<(usize, usize, usize)> {
        let mut pairs: Vec<(usize, usize, usize)> = self
            .confusion
            .iter()
            .enumerate()
            .flat_map(|(t, row)| row.iter().enumerate().map(move |(p, &k)| (t, p, k)))
            .filter(|&(t, p, k)| t != p && k > 0)
            .collect();
        pairs.sort_by_key(|&(t, p, k)| (std::cmp::Reverse(k), t, p));
        pairs.truncate(n);
        pairs
    }
}

/// The indices of class `class`'s `n` worst errors: its texts predicted as
/// another class, least probability of the true class first.
pub fn worst_errors(
    probabilities: &[Vec<f64>],
    labels: &[u8],
    class: usize,
    n: usize,
) -> Vec<usize> {
    let mut wrong: Vec<usize> = (0..labels.len())
        .filter(|&i| usize::from(labels[i]) == class && predicted_class(&probabilities[i]) != class)
        .collect();
    wrong.sort_by(|&a, &b| {
        probabilities[a][class]
            .total_cmp(&probabilities[b][class])
            .then(a.cmp(&b))
    });
    wrong.truncate(n);
    wrong
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_equal_a_hand_count() {
        // True 0,0,1,1,2,2; predicted 0,1,1,1,0,2 (by the largest).
        let p = [
            vec![0.7, 0.2, 0.1],
            vec![0.3, 0.6, 0.1],
            vec![0.1, 0.8, 0.1],
            vec![0.2, 0.5, 0.3],
            vec![0.5, 0.1, 0.4],
            vec![0.1, 0.1, 0.8],
        ];
        let y = [0, 0, 1, 1, 2, 2];
        let m = ClassMetrics::compute(&p, &y, 3).unwrap();
        assert_eq!(m.confusion, [[1, 1, 0], [0, 2, 0], [1, 0, 1]]);
        assert_eq!(m.accuracy, 4.0 / 6.0);
        // Text 1's class 0 (0.3) is second; text 4's class 2 (0.4) is second.
        assert_eq!(m.top2_accuracy, 1.0);
        let c0 = m.per_class[0];
        assert_eq!((c0.precision, c0.recall, c0.support), (0.5, 0.5, 2));
        let c1 = m.per_class[1];
        assert_eq!((c1.precision, c1.recall), (2.0 / 3.0, 1.0));
        assert!((c1.f1 - 0.8).abs() < 1e-12);
        let c2 = m.per_class[2];
        assert_eq!((c2.precision, c2.recall), (1.0, 0.5));
        let macro_p = (0.5 + 2.0 / 3.0 + 1.0) / 3.0;
        assert!((m.macro_avg.precision - macro_p).abs() < 1e-12);
        // Equal supports: weighted equals macro.
        assert!((m.weighted_avg.f1 - m.macro_avg.f1).abs() < 1e-12);
        let loss = -[0.7f64, 0.3, 0.8, 0.5, 0.4, 0.8]
            .iter()
            .map(|p| p.ln())
            .sum::<f64>()
            / 6.0;
        assert!((m.log_loss - loss).abs() < 1e-12);
        assert_eq!(m.most_confused(5), [(0, 1, 1), (2, 0, 1)]);
        assert_eq!(worst_errors(&p, &y, 2, 3), [4]);
        assert_eq!(worst_errors(&p, &y, 1, 3), Vec::<usize>::new());
    }
}
