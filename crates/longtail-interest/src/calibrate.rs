//! Platt scaling: `P(interest | user, item) = sigmoid(a * s + b)` for a similarity `s`, with
//! `(a, b)` fitted by maximum likelihood (Newton's method) on validation pairs: each user's
//! validation target as a positive and sampled non-interacted items as negatives.
//!
//! The probability is therefore "calibrated against the sampling ratio used": with `r`
//! negatives per positive the base rate is `1 / (1 + r)`, recorded in `interest.json`.

use longtail_rec::Interactions;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{InterestError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Platt {
    pub a: f64,
    pub b: f64,
}

impl Platt {
    pub fn prob(&self, s: f64) -> f64 {
        1.0 / (1.0 + (-(self.a * s + self.b)).exp())
    }

    /// Fits `(a, b)` to scores and 0/1 labels (both classes required).
    pub fn fit(scores: &[f64], labels: &[bool]) -> Result<Self> {
        if scores.len() != labels.len() || scores.is_empty() {
            return Err(InterestError::invalid(
                "calibration needs equal, non-empty inputs",
            ));
        }
        let pos = labels.iter().filter(|&&l| l).count();
        if pos == 0 || pos == labels.len() {
            return Err(InterestError::invalid(
                "calibration needs both positive and negative pairs",
            ));
        }
        // Tiny ridge keeps Newton well-posed on separable data.
        let ridge = 1e-6;
        let nll = |a: f64, b: f64| -> f64 {
            let mut l = 0.5 * ridge * a * a;
            for (&s, &y) in scores.iter().zip(labels) {
                let z = a * s + b;
                // log(1 + e^z) - y z, stably.
                l += z.max(0.0) + (-z.abs()).exp().ln_1p() - if y { z } else { 0.0 };
            }
            l
        };
        let (mut a, mut b) = (1.0, 0.0);
        let mut cur = nll(a, b);
        for _ in 0..100 {
            let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (ridge * a, 0.0, ridge, 0.0, 0.0);
            for (&s, &y) in scores.iter().zip(labels) {
                let p = 1.0 / (1.0 + (-(a * s + b)).exp());
                let r = p - f64::from(u8::from(y));
                let w = (p * (1.0 - p)).max(1e-12);
                ga += r * s;
                gb += r;
                haa += w * s * s;
                hab += w * s;
                hbb += w;
            }
            let det = haa * hbb - hab * hab;
            if det.abs() < 1e-300 {
                break;
            }
            let da = (hbb * ga - hab * gb) / det;
            let db = (haa * gb - hab * ga) / det;
            let mut t = 1.0;
            let mut improved = false;
            while t > 1e-10 {
                let (na, nb) = (a - t * da, b - t * db);
                let n = nll(na, nb);
                if n <= cur {
                    improved = cur - n > 1e-12 * cur.abs().max(1.0);
                    a = na;
                    b = nb;
                    cur = n;
                    break;
                }
                t *= 0.5;
            }
            if !improved {
                break;
            }
        }
        Ok(Self { a, b })
    }
}

/// Platt calibration of `score(k, item)` (the similarity of `users[k]` to `item`): each user's
/// validation item is a positive, `negatives` random items they never interacted with are
/// negatives.
pub fn fit_calibration_with(
    inter: &Interactions,
    n_items: usize,
    score: &dyn Fn(usize, usize) -> f64,
    users: &[usize],
    negatives: usize,
    seed: u64,
) -> Option<Platt> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xca11b);
    let (mut scores, mut labels) = (Vec::new(), Vec::new());
    for (k, &u) in users.iter().enumerate() {
        let Some(t) = inter.targets(u) else { continue };
        scores.push(score(k, t.validation));
        labels.push(true);
        let seen = &inter.seqs[u];
        let mut drawn = 0;
        let mut tries = 0;
        while drawn < negatives && tries < negatives * 20 {
            tries += 1;
            let j = rng.random_range(0..n_items);
            if seen.contains(&j) {
                continue;
            }
            scores.push(score(k, j));
            labels.push(false);
            drawn += 1;
        }
    }
    Platt::fit(&scores, &labels).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_known_logistic_model() {
        // Deterministic data from P(y|s) = sigmoid(4 s - 1): per score bucket, the expected
        // fraction of positives is used as the label frequency.
        let mut scores = Vec::new();
        let mut labels = Vec::new();
        for i in 0..200 {
            let s = -1.0 + i as f64 / 100.0;
            let p = 1.0 / (1.0 + (-(4.0 * s - 1.0)).exp());
            let n_pos = (p * 100.0).round() as usize;
            for j in 0..100 {
                scores.push(s);
                labels.push(j < n_pos);
            }
        }
        let fit = Platt::fit(&scores, &labels).unwrap();
        assert!((fit.a - 4.0).abs() < 0.05, "{fit:?}");
        assert!((fit.b + 1.0).abs() < 0.05, "{fit:?}");
        assert!(fit.prob(0.25) > 0.49 && fit.prob(0.25) < 0.51);
    }

    #[test]
    fn needs_both_classes() {
        assert!(Platt::fit(&[0.1, 0.2], &[true, true]).is_err());
        assert!(Platt::fit(&[], &[]).is_err());
    }
}
