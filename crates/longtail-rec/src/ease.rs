//! EASE (Steck 2019): `B = I - P·diag(1/diag(P))`, `P = (XᵀX + λI)⁻¹`, with `X` the binary
//! training user-item matrix; `diag(B) = 0`. A user's scores are `sum over history items h of
//! B[h, :]`.
//!
//! The inverse is faer's Cholesky (f64, blocked and parallel): a few seconds for a catalogue of
//! a few thousand items, where the hand-written one it replaced took one to two minutes.
//!
//! Protocol choice (`eval-rec`): the model is fitted on training interactions only, for every
//! λ of the grid; λ is the one with the best overall validation NDCG@10 (ties: smaller λ); the
//! same fit then ranks test targets with the train + validation history (no refit), exactly
//! like any other model.

use faer::linalg::solvers::DenseSolveCore;
use faer::Mat;
use faer::Side;

use crate::itemknn::{add_history_rows, cooccurrence, cooccurrence_of};
use crate::scorer::Scorer;
use crate::{ItemIdx, RecError, RecSplit, UserIdx};

/// Default λ grid searched on validation.
pub const LAMBDA_GRID: [f64; 8] = [10.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0];

pub struct Ease {
    n: usize,
    pub lambda: f64,
    /// Row-major item x item weights.
    b: Vec<f32>,
}

/// `a⁻¹` for a symmetric positive-definite `a` (row-major, n x n), by Cholesky.
pub fn spd_inverse(a: &[f64], n: usize) -> Result<Vec<f64>, RecError> {
    assert_eq!(a.len(), n * n);
    let m = Mat::from_fn(n, n, |i, j| a[i * n + j]);
    let llt = m.llt(Side::Lower).map_err(|e| match e {
        faer::linalg::solvers::LltError::NonPositivePivot { index } => {
            RecError::NotPositiveDefinite { row: index }
        }
    })?;
    let inv = llt.inverse();
    let mut out = vec![0f64; n * n];
    for (i, row) in out.chunks_exact_mut(n.max(1)).enumerate() {
        for (j, x) in row.iter_mut().enumerate() {
            *x = inv[(i, j)];
        }
    }
    Ok(out)
}

impl Ease {
    /// Fits on the given Gram matrix `XᵀX` (see [`cooccurrence`]).
    pub fn fit_gram(gram: &[f64], n: usize, lambda: f64) -> Result<Self, RecError> {
        let mut g = gram.to_vec();
        for i in 0..n {
            g[i * n + i] += lambda;
        }
        let p = spd_inverse(&g, n)?;
        let mut b = vec![0f32; n * n];
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    b[i * n + j] = (-p[i * n + j] / p[j * n + j]) as f32;
                }
            }
        }
        Ok(Self { n, lambda, b })
    }

    pub fn fit(split: &RecSplit, lambda: f64) -> Result<Self, RecError> {
        Self::fit_gram(&cooccurrence(split), split.n_items(), lambda)
    }

    /// Fits on arbitrary per-user item sets (e.g. every interaction, for serving).
    pub fn fit_lists(lists: &[Vec<ItemIdx>], n: usize, lambda: f64) -> Result<Self, RecError> {
        Self::fit_gram(&cooccurrence_of(lists, n), n, lambda)
    }

    /// The fitted weights as a stand-alone item-item scorer (what a plan saves).
    pub fn into_item_item(self) -> crate::ItemItem {
        crate::ItemItem::new("ease", self.n, self.b).expect("n x n by construction")
    }

    /// Weight `B[i, j]`.
    pub fn weight(&self, i: usize, j: usize) -> f32 {
        self.b[i * self.n + j]
    }
}

impl Scorer for Ease {
    fn name(&self) -> &str {
        "ease"
    }

    fn scores(&self, _user: UserIdx, history: &[ItemIdx], out: &mut [f32]) {
        add_history_rows(&self.b, self.n, history, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ease_weights_match_a_direct_inverse() {
        // X: 3 users x 3 items; XᵀX = [[2,1,1],[1,2,0],[1,0,1]] ; λ = 1
        let gram = [2.0, 1.0, 1.0, 1.0, 2.0, 0.0, 1.0, 0.0, 1.0];
        let ease = Ease::fit_gram(&gram, 3, 1.0).unwrap();
        // G = [[3,1,1],[1,3,0],[1,0,2]], det = 3*6 - 1*2 + 1*(-3) = 13
        // G⁻¹ = adj/13 = [[6,-2,-3],[-2,5,1],[-3,1,8]]/13
        let p = [[6.0, -2.0, -3.0], [-2.0, 5.0, 1.0], [-3.0, 1.0, 8.0]];
        let diag = [p[0][0], p[1][1], p[2][2]];
        for (i, row) in p.iter().enumerate() {
            for (j, &pij) in row.iter().enumerate() {
                let want = if i == j { 0.0 } else { -pij / diag[j] };
                assert!((ease.weight(i, j) as f64 - want).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn fit_lists_builds_the_same_gram() {
        // users {0,1}, {0,2}, {1}: XᵀX = [[2,1,1],[1,2,0],[1,0,1]] as above
        let lists = vec![vec![0, 1], vec![2, 0], vec![1]];
        let a = Ease::fit_lists(&lists, 3, 1.0).unwrap();
        let gram = [2.0, 1.0, 1.0, 1.0, 2.0, 0.0, 1.0, 0.0, 1.0];
        let b = Ease::fit_gram(&gram, 3, 1.0).unwrap();
        assert_eq!(a.b, b.b);
    }

    #[test]
    fn inverse_of_a_known_spd_matrix() {
        // [[4,2,0],[2,5,1],[0,1,3]], inverse by cofactors / det(=44)
        let a = [4.0, 2.0, 0.0, 2.0, 5.0, 1.0, 0.0, 1.0, 3.0];
        let inv = spd_inverse(&a, 3).unwrap();
        let want = [14.0, -6.0, 2.0, -6.0, 12.0, -4.0, 2.0, -4.0, 16.0].map(|v| v / 44.0);
        for (g, w) in inv.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{g} vs {w}");
        }
    }

    #[test]
    fn product_with_inverse_is_identity_on_a_larger_matrix() {
        // large enough for faer's blocked, parallel code paths
        let n = 300;
        // B Bᵀ + I from a deterministic pseudo-random B
        let b: Vec<f64> = (0..n * n)
            .map(|k| ((k * 7919 % 101) as f64 / 50.0) - 1.0)
            .collect();
        let mut a = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = (0..n).map(|k| b[i * n + k] * b[j * n + k]).sum::<f64>()
                    + if i == j { 1.0 } else { 0.0 };
            }
        }
        let inv = spd_inverse(&a, n).unwrap();
        for i in 0..n {
            for j in 0..n {
                let v: f64 = (0..n).map(|k| a[i * n + k] * inv[k * n + j]).sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((v - want).abs() < 1e-8, "({i},{j}) = {v}");
            }
        }
    }

    #[test]
    fn indefinite_matrix_is_an_error() {
        let a = [1.0, 2.0, 2.0, 1.0];
        assert!(matches!(
            spd_inverse(&a, 2),
            Err(RecError::NotPositiveDefinite { row: 1 })
        ));
    }
}
