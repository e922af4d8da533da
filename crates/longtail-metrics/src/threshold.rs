//! Metrics at a decision threshold, and choosing that threshold.
//!
//! An example is predicted positive (tail) when `score >= threshold`.
//! Per-class numbers follow `sklearn.metrics.precision_recall_fscore_support`
//! with `zero_division=0`.

use serde::{Deserialize, Serialize};

/// Confusion counts of a binary prediction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub tn: u64,
    pub fp: u64,
    pub fn_: u64,
    pub tp: u64,
}

impl Counts {
    pub fn at(scores: &[f64], labels: &[bool], threshold: f64) -> Self {
        let mut c = Counts::default();
        for (&s, &l) in scores.iter().zip(labels) {
            match (l, s >= threshold) {
                (false, false) => c.tn += 1,
                (false, true) => c.fp += 1,
                (true, false) => c.fn_ += 1,
                (true, true) => c.tp += 1,
            }
        }
        c
    }

    pub fn n(&self) -> u64 {
        self.tn + self.fp + self.fn_ + self.tp
    }

    pub fn accuracy(&self) -> f64 {
        (self.tn + self.tp) as f64 / self.n() as f64
    }

    /// `[negative class, positive class]`.
    pub fn per_class(&self) -> [ClassMetrics; 2] {
        [
            ClassMetrics::new(self.tn, self.fn_, self.fp),
            ClassMetrics::new(self.tp, self.fp, self.fn_),
        ]
    }

    pub fn macro_f1(&self) -> f64 {
        let [neg, pos] = self.per_class();
        (neg.f1 + pos.f1) / 2.0
    }
}

/// Precision, recall and F1 of one class, treating it as the positive one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Examples whose true label is this class.
    pub support: u64,
}

impl ClassMetrics {
    /// From true positives, false positives and false negatives for this
    /// class. An empty denominator gives 0 (sklearn's `zero_division=0`).
    fn new(tp: u64, fp: u64, fn_: u64) -> Self {
        let ratio = |num: u64, den: u64| {
            if den == 0 {
                0.0
            } else {
                num as f64 / den as f64
            }
        };
        Self {
            precision: ratio(tp, tp + fp),
            recall: ratio(tp, tp + fn_),
            // 2tp / (2tp + fp + fn): same as 2PR/(P+R), defined when P+R = 0
            f1: ratio(2 * tp, 2 * tp + fp + fn_),
            support: tp + fn_,
        }
    }
}

/// The threshold that maximises macro-F1 on `(scores, labels)`.
///
/// Candidates are the midpoints between adjacent distinct scores (a new
/// score falling between two validation scores is not decided by which one
/// it is nearer to), the lowest score (everything positive) and the float
/// just above the highest score (everything negative). Equal macro-F1 is
/// broken towards the threshold nearest 0.5, then the lower one.
///
/// `scores` must be non-empty ([`crate::evaluate_scores`] checks its input).
pub fn select_threshold(scores: &[f64], labels: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let positives = labels.iter().filter(|&&l| l).count() as u64;
    let negatives = labels.len() as u64 - positives;

    // start with everything negative, then admit one tied group at a time
    let highest = scores[order[0]];
    let mut counts = Counts {
        tn: negatives,
        fp: 0,
        fn_: positives,
        tp: 0,
    };
    let mut best = (counts.macro_f1(), next_up(highest));
    for (k, &i) in order.iter().enumerate() {
        if labels[i] {
            counts.tp += 1;
            counts.fn_ -= 1;
        } else {
            counts.fp += 1;
            counts.tn -= 1;
        }
        let threshold = match order.get(k + 1) {
            Some(&next) if scores[next] == scores[i] => continue,
            Some(&next) => (scores[i] + scores[next]) / 2.0,
            None => scores[i],
        };
        let f1 = counts.macro_f1();
        if better((f1, threshold), best) {
            best = (f1, threshold);
        }
    }
    best.1
}

fn better((f1, t): (f64, f64), (best_f1, best_t): (f64, f64)) -> bool {
    if f1 != best_f1 {
        return f1 > best_f1;
    }
    let (d, best_d) = ((t - 0.5).abs(), (best_t - 0.5).abs());
    d < best_d || (d == best_d && t < best_t)
}

/// The smallest float greater than `x` (`f64::next_up` needs Rust 1.86).
fn next_up(x: f64) -> f64 {
    if x.is_nan() || x == f64::INFINITY {
        x
    } else if x == 0.0 {
        f64::from_bits(1)
    } else if x > 0.0 {
        f64::from_bits(x.to_bits() + 1)
    } else {
        f64::from_bits(x.to_bits() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::cases;

    #[test]
    fn counts_and_scores_by_hand() {
        // predictions at 0.5: -, -, -, +  against labels -, -, +, +
        let s = [0.1, 0.4, 0.35, 0.8];
        let l = [false, false, true, true];
        let c = Counts::at(&s, &l, 0.5);
        assert_eq!(
            c,
            Counts {
                tn: 2,
                fp: 0,
                fn_: 1,
                tp: 1
            }
        );
        assert_eq!(c.accuracy(), 0.75);
        let [neg, pos] = c.per_class();
        assert_eq!(
            (neg.precision, neg.recall, neg.support),
            (2.0 / 3.0, 1.0, 2)
        );
        assert!((neg.f1 - 0.8).abs() < 1e-15);
        assert_eq!((pos.precision, pos.recall, pos.support), (1.0, 0.5, 2));
        assert!((pos.f1 - 2.0 / 3.0).abs() < 1e-15);
        assert!((c.macro_f1() - (0.8 + 2.0 / 3.0) / 2.0).abs() < 1e-15);
        // the threshold itself counts as positive
        assert_eq!(Counts::at(&[0.5], &[true], 0.5).tp, 1);
    }

    #[test]
    fn match_sklearn_fixtures() {
        for case in cases() {
            let c = Counts::at(&case.scores, &case.labels, case.threshold);
            let name = &case.name;
            assert_eq!(
                [[c.tn, c.fp], [c.fn_, c.tp]],
                case.confusion,
                "{name}: confusion"
            );
            assert!((c.accuracy() - case.accuracy).abs() < 1e-12, "{name}");
            assert!((c.macro_f1() - case.macro_f1).abs() < 1e-12, "{name}");
            for (k, m) in c.per_class().iter().enumerate() {
                assert!(
                    (m.precision - case.precision[k]).abs() < 1e-12,
                    "{name} P[{k}]"
                );
                assert!((m.recall - case.recall[k]).abs() < 1e-12, "{name} R[{k}]");
                assert!((m.f1 - case.f1[k]).abs() < 1e-12, "{name} F1[{k}]");
                assert_eq!(m.support, case.support[k], "{name} support[{k}]");
            }
        }
    }

    #[test]
    fn threshold_by_hand() {
        // sorted: 0.8+ 0.4- 0.35+ 0.1-. Admitting 0.8 only (t = 0.6) gives
        // macro-F1 (0.8 + 2/3)/2 = 0.733; admitting down to 0.35 (t = 0.225)
        // gives tn=1 fp=1 fn=0 tp=2: (2/3 + 0.8)/2, the same. Tie: nearer 0.5.
        let s = [0.1, 0.4, 0.35, 0.8];
        let l = [false, false, true, true];
        assert_eq!(select_threshold(&s, &l), (0.8 + 0.4) / 2.0);
        // separable: the midpoint of the gap
        let t = select_threshold(&[0.1, 0.2, 0.7, 0.9], &[false, false, true, true]);
        assert_eq!(t, (0.7 + 0.2) / 2.0);
    }

    #[test]
    fn threshold_handles_ties_and_extremes() {
        // one tied group: all-positive or all-negative. 3 positives of 4:
        // all-positive gives (0 + 6/7)/2 = 0.43, all-negative (2/5 + 0)/2 = 0.2
        let t = select_threshold(&[0.3; 4], &[true, true, true, false]);
        assert_eq!(t, 0.3);
        // mostly negatives: all-negative wins, threshold just above the max
        let t = select_threshold(&[0.3; 4], &[false, false, false, true]);
        assert!(t > 0.3 && Counts::at(&[0.3], &[true], t).tp == 0);
    }

    /// Brute force: evaluate macro-F1 at every candidate directly.
    #[test]
    fn sweep_matches_brute_force() {
        for case in cases() {
            let (s, l) = (&case.scores, &case.labels);
            let t = select_threshold(s, l);
            let got = Counts::at(s, l, t).macro_f1();
            let mut distinct = s.clone();
            distinct.sort_by(f64::total_cmp);
            distinct.dedup();
            let mut candidates = vec![distinct[0], next_up(*distinct.last().unwrap())];
            candidates.extend(distinct.windows(2).map(|w| (w[0] + w[1]) / 2.0));
            let best = candidates
                .iter()
                .map(|&c| Counts::at(s, l, c).macro_f1())
                .fold(f64::MIN, f64::max);
            assert_eq!(got, best, "{}", case.name);
        }
    }
}
