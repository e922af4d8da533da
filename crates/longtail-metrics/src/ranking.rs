//! Threshold-free metrics: ROC-AUC, average precision, ROC curve points.
//!
//! All three follow scikit-learn: ties in the score form one threshold step
//! (never split by input order), which is what makes tied scores count half
//! in the AUC.

use serde::{Deserialize, Serialize};

/// Points of a ROC curve, from (0, 0) to (1, 1): one point per distinct score,
/// taken in decreasing order, like `sklearn.metrics.roc_curve(...,
/// drop_intermediate=False)`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RocCurve {
    /// `(false positive rate, true positive rate)`.
    pub points: Vec<(f64, f64)>,
}

/// Cumulative (false positives, true positives) after each group of tied
/// scores, taken from the highest score down (sklearn's `_binary_clf_curve`).
fn cumulative_counts(scores: &[f64], labels: &[bool]) -> Vec<(usize, usize)> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut steps = Vec::new();
    let (mut fp, mut tp) = (0, 0);
    for (k, &i) in order.iter().enumerate() {
        if labels[i] {
            tp += 1;
        } else {
            fp += 1;
        }
        let group_ends = order
            .get(k + 1)
            .is_none_or(|&next| scores[next] != scores[i]);
        if group_ends {
            steps.push((fp, tp));
        }
    }
    steps
}

fn class_counts(labels: &[bool]) -> (usize, usize) {
    let positives = labels.iter().filter(|&&l| l).count();
    (labels.len() - positives, positives)
}

/// ROC-AUC as the Mann-Whitney statistic with average ranks for ties (equal
/// to `sklearn.metrics.roc_auc_score`). NaN unless both classes occur;
/// [`crate::evaluate_scores`] checks that first.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> f64 {
    let (negatives, positives) = class_counts(labels);
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // sum of 1-based ranks of the positives; tied groups share their mean rank
    let mut rank_sum = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && scores[order[end]] == scores[order[start]] {
            end += 1;
        }
        let mean_rank = (start + 1 + end) as f64 / 2.0;
        let tied_positives = order[start..end].iter().filter(|&&i| labels[i]).count();
        rank_sum += mean_rank * tied_positives as f64;
        start = end;
    }
    let p = positives as f64;
    (rank_sum - p * (p + 1.0) / 2.0) / (p * negatives as f64)
}

/// Average precision, `sum_k (R_k - R_{k-1}) P_k` over decreasing thresholds
/// (equal to `sklearn.metrics.average_precision_score`; no interpolation).
pub fn average_precision(scores: &[f64], labels: &[bool]) -> f64 {
    let (_, positives) = class_counts(labels);
    let mut ap = 0.0;
    let mut previous_recall = 0.0;
    for (fp, tp) in cumulative_counts(scores, labels) {
        let recall = tp as f64 / positives as f64;
        let precision = tp as f64 / (tp + fp) as f64;
        ap += (recall - previous_recall) * precision;
        previous_recall = recall;
    }
    ap
}

/// The full ROC curve (see [`RocCurve`]).
pub fn roc_curve(scores: &[f64], labels: &[bool]) -> RocCurve {
    let (negatives, positives) = class_counts(labels);
    let mut points = vec![(0.0, 0.0)];
    points.extend(
        cumulative_counts(scores, labels)
            .into_iter()
            .map(|(fp, tp)| (fp as f64 / negatives as f64, tp as f64 / positives as f64)),
    );
    RocCurve { points }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::cases;

    #[test]
    fn auc_by_hand() {
        // positives 0.35, 0.8; negatives 0.1, 0.4: pairs won 3 of 4
        let s = [0.1, 0.4, 0.35, 0.8];
        let l = [false, false, true, true];
        assert_eq!(roc_auc(&s, &l), 0.75);
        // a tie between a positive and a negative counts half
        assert_eq!(roc_auc(&[0.5, 0.5], &[false, true]), 0.5);
        assert_eq!(roc_auc(&[0.2, 0.5, 0.5], &[false, false, true]), 0.75);
        // perfect and inverted rankings
        assert_eq!(roc_auc(&[0.1, 0.9], &[false, true]), 1.0);
        assert_eq!(roc_auc(&[0.9, 0.1], &[false, true]), 0.0);
    }

    #[test]
    fn average_precision_by_hand() {
        // ranking: 0.8(+) 0.4(-) 0.35(+) 0.1(-): AP = 0.5*1 + 0.5*(2/3)
        let s = [0.1, 0.4, 0.35, 0.8];
        let l = [false, false, true, true];
        let want = 0.5 + 0.5 * 2.0 / 3.0;
        assert!((average_precision(&s, &l) - want).abs() < 1e-15);
        // one tied group: a single step at precision = prevalence
        assert_eq!(
            average_precision(&[0.3; 4], &[true, false, false, false]),
            0.25
        );
    }

    #[test]
    fn roc_curve_by_hand() {
        let s = [0.1, 0.4, 0.35, 0.8];
        let l = [false, false, true, true];
        let c = roc_curve(&s, &l);
        let want = [(0.0, 0.0), (0.0, 0.5), (0.5, 0.5), (0.5, 1.0), (1.0, 1.0)];
        assert_eq!(c.points, want);
    }

    #[test]
    fn match_sklearn_fixtures() {
        for case in cases() {
            let auc = roc_auc(&case.scores, &case.labels);
            assert!(
                (auc - case.auc).abs() < 1e-9,
                "{}: auc {auc} vs {}",
                case.name,
                case.auc
            );
            let ap = average_precision(&case.scores, &case.labels);
            assert!(
                (ap - case.average_precision).abs() < 1e-9,
                "{}: ap {ap} vs {}",
                case.name,
                case.average_precision
            );
            let roc = roc_curve(&case.scores, &case.labels);
            assert_eq!(roc.points.len(), case.roc_fpr.len(), "{}", case.name);
            for (k, &(fpr, tpr)) in roc.points.iter().enumerate() {
                assert!(
                    (fpr - case.roc_fpr[k]).abs() < 1e-12,
                    "{} fpr[{k}]",
                    case.name
                );
                assert!(
                    (tpr - case.roc_tpr[k]).abs() < 1e-12,
                    "{} tpr[{k}]",
                    case.name
                );
            }
        }
    }

    #[test]
    fn auc_ignores_input_order() {
        let case = &cases()[1];
        let mut pairs: Vec<(f64, bool)> = case
            .scores
            .iter()
            .copied()
            .zip(case.labels.iter().copied())
            .collect();
        pairs.reverse();
        let (s, l): (Vec<f64>, Vec<bool>) = pairs.into_iter().unzip();
        assert!((roc_auc(&s, &l) - case.auc).abs() < 1e-12);
        assert!((average_precision(&s, &l) - case.average_precision).abs() < 1e-12);
    }
}
