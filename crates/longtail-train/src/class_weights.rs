//! Class weights for imbalanced classification.

use crate::error::{Result, TrainError};

/// scikit-learn's `compute_class_weight("balanced")`:
/// `n_samples / (n_classes * count_c)` for each class `c`.
///
/// Like scikit-learn, a class with no samples is an error (its weight would
/// be infinite); so is an empty `counts`.
pub fn class_weights_inverse_frequency(counts: &[u64]) -> Result<Vec<f32>> {
    if counts.is_empty() {
        return Err(TrainError::invalid("class counts are empty"));
    }
    if let Some(c) = counts.iter().position(|&n| n == 0) {
        return Err(TrainError::invalid(format!(
            "class {c} has no samples; balanced weights are undefined"
        )));
    }
    let n_samples: f64 = counts.iter().map(|&n| n as f64).sum();
    let n_classes = counts.len() as f64;
    Ok(counts
        .iter()
        .map(|&n| (n_samples / (n_classes * n as f64)) as f32)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_weights_match_sklearn_formula() {
        // sklearn: y = [0]*6 + [1]*3 + [2]*1 -> 10 / (3 * [6, 3, 1])
        let w = class_weights_inverse_frequency(&[6, 3, 1]).unwrap();
        let expected = [10.0 / 18.0, 10.0 / 9.0, 10.0 / 3.0];
        for (a, b) in w.iter().zip(expected) {
            assert!((*a as f64 - b).abs() < 1e-6, "{a} vs {b}");
        }
        // weighted counts sum to n_samples: sum_c w_c * count_c = n_samples
        let total: f64 = w
            .iter()
            .zip([6, 3, 1])
            .map(|(w, n)| *w as f64 * n as f64)
            .sum();
        assert!((total - 10.0).abs() < 1e-5);
    }

    #[test]
    fn balanced_classes_get_weight_one() {
        assert_eq!(
            class_weights_inverse_frequency(&[4, 4, 4, 4]).unwrap(),
            [1.0; 4]
        );
    }

    #[test]
    fn empty_or_zero_counts_are_errors() {
        assert!(class_weights_inverse_frequency(&[]).is_err());
        assert!(class_weights_inverse_frequency(&[3, 0, 2]).is_err());
    }
}
