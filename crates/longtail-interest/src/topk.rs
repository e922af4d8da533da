//! Exact top-K over a score vector with excluded (already seen) items.

use std::cmp::Ordering;

/// Highest-scoring `k` indices of `scores` not in `exclude`, best first; ties by lower index.
/// Linear-time selection then a sort of the `k` winners. NaN scores rank last.
pub fn top_k(scores: &[f32], k: usize, exclude: &[usize]) -> Vec<(usize, f32)> {
    let mut banned = vec![false; scores.len()];
    for &e in exclude {
        if e < banned.len() {
            banned[e] = true;
        }
    }
    let mut cand: Vec<(usize, f32)> = scores
        .iter()
        .enumerate()
        .filter(|(i, _)| !banned[*i])
        .map(|(i, &s)| (i, if s.is_nan() { f32::NEG_INFINITY } else { s }))
        .collect();
    let cmp = |a: &(usize, f32), b: &(usize, f32)| {
        b.1.partial_cmp(&a.1)
            .unwrap_or(Ordering::Equal)
            .then(a.0.cmp(&b.0))
    };
    let k = k.min(cand.len());
    if k == 0 {
        return Vec::new();
    }
    if k < cand.len() {
        cand.select_nth_unstable_by(k - 1, cmp);
        cand.truncate(k);
    }
    cand.sort_by(cmp);
    cand
}

/// `scores[j] = sum_d user[d] * items[j * dim + d]` for a row-major `(n, dim)` matrix.
pub fn dot_all(items: &[f32], dim: usize, user: &[f32]) -> Vec<f32> {
    items
        .chunks_exact(dim)
        .map(|row| row.iter().zip(user).map(|(a, b)| a * b).sum())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_excludes_seen_and_orders() {
        let s = [0.1, 0.9, 0.5, 0.9, -1.0, 0.7];
        assert_eq!(top_k(&s, 3, &[]), vec![(1, 0.9), (3, 0.9), (5, 0.7)]);
        assert_eq!(top_k(&s, 3, &[1, 5]), vec![(3, 0.9), (2, 0.5), (0, 0.1)]);
        assert_eq!(top_k(&s, 10, &[0, 1, 2, 3]).len(), 2);
        assert!(top_k(&s, 0, &[]).is_empty());
        // Brute force agreement on a larger vector.
        let big: Vec<f32> = (0..500).map(|i| ((i * 7919) % 1000) as f32 / 7.0).collect();
        let excl: Vec<usize> = (0..500).step_by(3).collect();
        let mut brute: Vec<(usize, f32)> = big
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 != 0)
            .map(|(i, &v)| (i, v))
            .collect();
        brute.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap().then(a.0.cmp(&b.0)));
        brute.truncate(20);
        assert_eq!(top_k(&big, 20, &excl), brute);
    }

    #[test]
    fn dot_all_is_matrix_vector_product() {
        let m = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(dot_all(&m, 2, &[1.0, -1.0]), vec![-1.0, -1.0, -1.0]);
    }
}
