//! Expected calibration error.

/// Number of equal-width confidence bins, as in Guo et al. (2017).
pub const ECE_BINS: usize = 15;

/// Top-label expected calibration error (Guo et al., "On Calibration of
/// Modern Neural Networks", 2017): the predicted class is the argmax
/// (`p >= 0.5` is positive), its confidence is `max(p, 1 - p)`, examples are
/// binned by confidence into `bins` intervals `(i/bins, (i+1)/bins]`, and
/// `ECE = sum_b |B_b|/n * |accuracy(B_b) - mean confidence(B_b)|`.
///
/// `scores` are probabilities of the positive class in `[0, 1]`.
pub fn expected_calibration_error(scores: &[f64], labels: &[bool], bins: usize) -> f64 {
    let mut count = vec![0usize; bins];
    let mut correct = vec![0usize; bins];
    let mut confidence = vec![0.0f64; bins];
    for (&p, &label) in scores.iter().zip(labels) {
        let conf = p.max(1.0 - p);
        let b = bin_of(conf, bins);
        count[b] += 1;
        correct[b] += usize::from((p >= 0.5) == label);
        confidence[b] += conf;
    }
    let n = scores.len() as f64;
    (0..bins)
        .filter(|&b| count[b] > 0)
        .map(|b| {
            let m = count[b] as f64;
            (m / n) * (correct[b] as f64 / m - confidence[b] / m).abs()
        })
        .sum()
}

/// The bin `(lo, hi]` holding `conf`, with numpy.linspace edges (`i * step`,
/// last edge exactly 1) so a confidence on an edge lands where the usual
/// numpy implementation puts it. A scan: there are only 15 bins.
fn bin_of(conf: f64, bins: usize) -> usize {
    let step = 1.0 / bins as f64;
    (0..bins)
        .find(|&b| {
            let hi = if b + 1 == bins {
                1.0
            } else {
                (b + 1) as f64 * step
            };
            conf <= hi
        })
        .unwrap_or(bins - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::cases;

    #[test]
    fn ece_by_hand() {
        // p = 0.9 (+), 0.8 (-), 0.3 (-), 0.5 (+): confidences 0.9, 0.8, 0.7,
        // 0.5 in four different bins; correct: yes, no, yes, yes
        // ECE = 1/4 (|1-0.9| + |0-0.8| + |1-0.7| + |1-0.5|) = 1.7/4
        let got =
            expected_calibration_error(&[0.9, 0.8, 0.3, 0.5], &[true, false, false, true], 15);
        assert!((got - 1.7 / 4.0).abs() < 1e-12, "{got}");
        // two examples in one bin are averaged before the absolute value:
        // confidence 0.9 right and 0.9 wrong -> |0.5 - 0.9| = 0.4
        let got = expected_calibration_error(&[0.9, 0.1], &[true, true], 15);
        assert!((got - 0.4).abs() < 1e-12, "{got}");
        assert_eq!(
            expected_calibration_error(&[1.0, 0.0], &[true, false], 15),
            0.0
        );
    }

    #[test]
    fn bins_are_left_open_right_closed() {
        let step = 1.0 / 15.0;
        assert_eq!(bin_of(0.5, 15), 7); // (7/15, 8/15]
        assert_eq!(bin_of(1.0, 15), 14);
        // an edge belongs to the bin below it
        assert_eq!(bin_of(12.0 * step, 15), 11);
        assert_eq!(bin_of(12.0 * step + 1e-12, 15), 12);
    }

    #[test]
    fn match_numpy_reference() {
        for case in cases() {
            let got = expected_calibration_error(&case.scores, &case.labels, ECE_BINS);
            assert!(
                (got - case.ece).abs() < 1e-9,
                "{}: {got} vs {}",
                case.name,
                case.ece
            );
        }
    }
}
