//! L2-regularised binary logistic regression on sparse features, the model of
//! `sklearn.linear_model.LogisticRegression(C=C)`: minimises
//! `C * sum_i logloss_i + ||w||^2 / 2` with an unpenalised intercept.

use crate::lbfgs::{minimize, LbfgsOptions};
use crate::sparse::CsrMatrix;
use crate::EvalError;

/// A fitted model.
#[derive(Debug, Clone, PartialEq)]
pub struct LogisticRegression {
    pub coef: Vec<f64>,
    pub intercept: f64,
    pub c: f64,
    pub iterations: usize,
    pub converged: bool,
}

/// `ln(1 + e^z)` without overflow.
fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

impl LogisticRegression {
    /// Fits on rows of `x` with labels `y` (`true` = positive class).
    pub fn fit(
        x: &CsrMatrix,
        y: &[bool],
        c: f64,
        solver: &LbfgsOptions,
    ) -> Result<Self, EvalError> {
        if x.n_rows() != y.len() {
            return Err(EvalError::LengthMismatch {
                what: "logistic regression".into(),
                scores: x.n_rows(),
                labels: y.len(),
            });
        }
        if y.is_empty() {
            return Err(EvalError::Empty {
                what: "logistic regression training set".into(),
            });
        }
        if !(c > 0.0 && c.is_finite()) {
            return Err(EvalError::Option(format!(
                "C must be positive and finite, got {c}"
            )));
        }
        let d = x.n_cols;
        let n = y.len() as f64;
        // the objective divided by C*n: same minimiser, values of order 1
        let penalty = 1.0 / (c * n);
        let objective = |theta: &[f64], grad: &mut [f64]| {
            let (w, b) = theta.split_at(d);
            let z = x.mul_vec(w);
            let mut loss = 0.0;
            let mut residual = vec![0.0; z.len()];
            for (i, (&zi, &yi)) in z.iter().zip(y).enumerate() {
                let zi = zi + b[0];
                let t = f64::from(u8::from(yi));
                loss += softplus(zi) - t * zi;
                residual[i] = (sigmoid(zi) - t) / n;
            }
            let gw = x.mul_transpose_vec(&residual);
            for j in 0..d {
                grad[j] = gw[j] + penalty * w[j];
            }
            grad[d] = residual.iter().sum();
            loss / n + 0.5 * penalty * w.iter().map(|v| v * v).sum::<f64>()
        };
        let r = minimize(objective, vec![0.0; d + 1], solver);
        let mut coef = r.x;
        let intercept = coef.pop().expect("d + 1 parameters");
        Ok(Self {
            coef,
            intercept,
            c,
            iterations: r.iterations,
            converged: r.converged,
        })
    }

    /// Probability of the positive class for each row.
    pub fn predict_proba(&self, x: &CsrMatrix) -> Vec<f64> {
        x.mul_vec(&self.coef)
            .into_iter()
            .map(|z| sigmoid(z + self.intercept))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::{TfidfOptions, TfidfVectorizer};
    use serde::Deserialize;

    #[test]
    fn stable_helpers() {
        assert_eq!(softplus(1000.0), 1000.0);
        assert_eq!(softplus(-1000.0), 0.0);
        assert!((softplus(0.0) - 2f64.ln()).abs() < 1e-15);
        assert_eq!(sigmoid(0.0), 0.5);
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(1000.0), 1.0);
    }

    /// One feature, two points: with x = +1 (positive) and x = -1 (negative)
    /// symmetry gives b = 0, and the optimum solves C * sigmoid(-w) * 2 = w,
    /// i.e. w = 2C / (1 + e^w).
    #[test]
    fn symmetric_problem_by_hand() {
        let mut x = CsrMatrix::new(1);
        x.push_row([(0, 1.0)]);
        x.push_row([(0, -1.0)]);
        let m = LogisticRegression::fit(&x, &[true, false], 1.0, &LbfgsOptions::default()).unwrap();
        assert!(m.converged);
        assert!(m.intercept.abs() < 1e-9, "{}", m.intercept);
        let w = m.coef[0];
        assert!((w - 2.0 / (1.0 + w.exp())).abs() < 1e-9, "w = {w}");
    }

    /// `coef`/`intercept`/`test_proba`: sklearn's fit polished to the exact
    /// optimum by Newton steps; `sklearn_*`: sklearn's own output (its lbfgs
    /// stops with a ~1e-6 gradient left at C = 16).
    #[derive(Deserialize)]
    struct Fit {
        c: f64,
        coef: Vec<f64>,
        intercept: f64,
        test_proba: Vec<f64>,
        sklearn_coef: Vec<f64>,
        sklearn_test_proba: Vec<f64>,
    }

    fn max_diff(a: &[f64], b: &[f64]) -> f64 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    }

    #[derive(Deserialize)]
    struct Fixture {
        train_labels: Vec<bool>,
        fits: Vec<Fit>,
    }

    #[derive(Deserialize)]
    struct Texts {
        train_texts: Vec<String>,
        test_texts: Vec<String>,
    }

    #[test]
    fn matches_sklearn_logistic_regression() {
        let texts: Texts = serde_json::from_str(include_str!("../fixtures/tfidf.json")).unwrap();
        let f: Fixture = serde_json::from_str(include_str!("../fixtures/logreg.json")).unwrap();
        let v = TfidfVectorizer::fit(&texts.train_texts, TfidfOptions::default()).unwrap();
        let (xtr, xte) = (
            v.transform(&texts.train_texts),
            v.transform(&texts.test_texts),
        );
        assert_eq!(f.fits.len(), 3);
        for fit in &f.fits {
            let m = LogisticRegression::fit(&xtr, &f.train_labels, fit.c, &LbfgsOptions::default())
                .unwrap();
            assert!(m.converged, "C={}", fit.c);
            let c = fit.c;
            let d = max_diff(&m.coef, &fit.coef);
            assert!(d < 1e-7, "C={c}: coef off the optimum by {d}");
            assert!((m.intercept - fit.intercept).abs() < 1e-7, "C={c}");
            let proba = m.predict_proba(&xte);
            let d = max_diff(&proba, &fit.test_proba);
            assert!(d < 1e-8, "C={c}: probabilities off by {d}");
            // and sklearn's unpolished output, to its own accuracy
            assert!(max_diff(&m.coef, &fit.sklearn_coef) < 1e-5, "C={c}");
            assert!(max_diff(&proba, &fit.sklearn_test_proba) < 1e-6, "C={c}");
        }
    }

    #[test]
    fn rejects_bad_input() {
        let x = CsrMatrix::new(1);
        let opts = LbfgsOptions::default();
        assert!(matches!(
            LogisticRegression::fit(&x, &[], 1.0, &opts),
            Err(EvalError::Empty { .. })
        ));
        let mut x1 = CsrMatrix::new(1);
        x1.push_row([(0, 1.0)]);
        assert!(matches!(
            LogisticRegression::fit(&x1, &[true, false], 1.0, &opts),
            Err(EvalError::LengthMismatch { .. })
        ));
        assert!(matches!(
            LogisticRegression::fit(&x1, &[true], 0.0, &opts),
            Err(EvalError::Option(_))
        ));
    }
}
