//! What a cheaper arithmetic costs: the same rows scored twice (e.g. fp32 and int8).

use serde::Serialize;

use crate::ranking::roc_auc;

/// One split scored at two precisions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrecisionDiff {
    pub rows: usize,
    pub auc_reference: f64,
    pub auc_candidate: f64,
    pub max_abs_diff: f64,
    pub mean_abs_diff: f64,
}

/// `reference` and `candidate` are `(score, is_positive)` for the same rows in the same order.
pub fn compare_precision(reference: &[(f64, bool)], candidate: &[(f64, bool)]) -> PrecisionDiff {
    assert_eq!(reference.len(), candidate.len(), "different row counts");
    let split = |v: &[(f64, bool)]| -> (Vec<f64>, Vec<bool>) { v.iter().copied().unzip() };
    let (rs, rl) = split(reference);
    let (cs, cl) = split(candidate);
    assert_eq!(rl, cl, "the two runs disagree on labels: not the same rows");
    let diffs: Vec<f64> = rs.iter().zip(&cs).map(|(a, b)| (a - b).abs()).collect();
    PrecisionDiff {
        rows: diffs.len(),
        auc_reference: roc_auc(&rs, &rl),
        auc_candidate: roc_auc(&cs, &cl),
        max_abs_diff: diffs.iter().copied().fold(0.0, f64::max),
        mean_abs_diff: diffs.iter().sum::<f64>() / diffs.len().max(1) as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_and_both_aucs() {
        let a = [(0.9, true), (0.2, false), (0.6, true), (0.4, false)];
        let b = [(0.8, true), (0.25, false), (0.3, true), (0.4, false)];
        let d = compare_precision(&a, &b);
        assert_eq!(d.rows, 4);
        assert!((d.max_abs_diff - 0.3).abs() < 1e-12);
        assert!((d.mean_abs_diff - 0.45 / 4.0).abs() < 1e-12);
        assert_eq!(d.auc_reference, 1.0);
        assert_eq!(d.auc_candidate, 0.75);
    }
}
