//! Dense symmetric positive-definite inverse via Cholesky, in f64.
//!
//! Enough for EASE on catalogues of a few thousand items (n^3/2 multiply-adds;
//! 2,420 items take seconds). Rows/columns are processed in parallel.

use rayon::prelude::*;

use crate::EvalError;

/// Lower-triangular `L` (row-major, n x n) with `a = L Lᵀ`.
pub fn cholesky(a: &[f64], n: usize) -> Result<Vec<f64>, EvalError> {
    assert_eq!(a.len(), n * n);
    let mut l = vec![0f64; n * n];
    for j in 0..n {
        let (top, bottom) = l.split_at_mut((j + 1) * n);
        let row_j = &mut top[j * n..];
        let d = a[j * n + j] - dot(&row_j[..j], &row_j[..j]);
        if !(d > 0.0) || !d.is_finite() {
            return Err(EvalError::NotPositiveDefinite { row: j, pivot: d });
        }
        let ljj = d.sqrt();
        row_j[j] = ljj;
        let row_j = &*row_j;
        bottom
            .par_chunks_mut(n)
            .enumerate()
            .for_each(|(off, row_i)| {
                let i = j + 1 + off;
                row_i[j] = (a[i * n + j] - dot(&row_i[..j], &row_j[..j])) / ljj;
            });
    }
    Ok(l)
}

#[inline]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    // four accumulators so the loop vectorises
    let mut acc = [0f64; 4];
    let chunks = a.len() / 4;
    for c in 0..chunks {
        for k in 0..4 {
            acc[k] += a[4 * c + k] * b[4 * c + k];
        }
    }
    let mut s = acc[0] + acc[1] + acc[2] + acc[3];
    for k in 4 * chunks..a.len() {
        s += a[k] * b[k];
    }
    s
}

/// `a⁻¹` for symmetric positive-definite `a` (row-major, n x n).
pub fn spd_inverse(a: &[f64], n: usize) -> Result<Vec<f64>, EvalError> {
    let l = cholesky(a, n)?;
    // columns of M = L⁻¹, stored contiguously; column c is zero above row c
    let cols: Vec<Vec<f64>> = (0..n)
        .into_par_iter()
        .map(|c| {
            let mut m = vec![0f64; n];
            m[c] = 1.0 / l[c * n + c];
            for i in c + 1..n {
                let row = &l[i * n..i * n + i];
                m[i] = -dot(&row[c..i], &m[c..i]) / l[i * n + i];
            }
            m
        })
        .collect();
    // a⁻¹ = Mᵀ M: entry (p, q) = column p · column q, nonzero from max(p, q)
    let mut inv = vec![0f64; n * n];
    inv.par_chunks_mut(n).enumerate().for_each(|(p, row)| {
        for q in 0..n {
            let from = p.max(q);
            row[q] = dot(&cols[p][from..], &cols[q][from..]);
        }
    });
    Ok(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let n = 37;
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
            Err(EvalError::NotPositiveDefinite { row: 1, .. })
        ));
    }
}
