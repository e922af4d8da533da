use rayon::prelude::*;
// (temporary copy of the replaced code, for timing only) Dense symmetric positive-definite inverse via Cholesky, in f64.
//
// Enough for EASE on catalogues of a few thousand items (n^3/2 multiply-adds;
// 2,420 items take seconds). Rows/columns are processed in parallel.

use rayon::prelude::*;


/// Lower-triangular `L` (row-major, n x n) with `a = L Lᵀ`.
pub fn cholesky(a: &[f64], n: usize) -> Result<Vec<f64>, String> {
    assert_eq!(a.len(), n * n);
    let mut l = vec![0f64; n * n];
    for j in 0..n {
        let (top, bottom) = l.split_at_mut((j + 1) * n);
        let row_j = &mut top[j * n..];
        let d = a[j * n + j] - dot(&row_j[..j], &row_j[..j]);
        if d <= 0.0 || !d.is_finite() {
            return Err(format!("not pd at {j}"));
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
pub fn spd_inverse(a: &[f64], n: usize) -> Result<Vec<f64>, String> {
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


use std::path::PathBuf;
use std::time::Instant;
use longtail_rec::itemknn::cooccurrence;
use longtail_rec::{Ease, RecSplit};

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap());
    let lambda = 50.0;
    let split = RecSplit::load(&dir).unwrap();
    let n = split.n_items();
    let gram = cooccurrence(&split);
    let t = Instant::now();
    let ease = Ease::fit_gram(&gram, n, lambda).unwrap();
    let new_s = t.elapsed().as_secs_f64();
    let mut g = gram.clone();
    for i in 0..n { g[i * n + i] += lambda; }
    let t = Instant::now();
    let p = spd_inverse(&g, n).unwrap();
    let old_s = t.elapsed().as_secs_f64();
    let (mut max_abs, mut max_b) = (0f64, 0f64);
    for i in 0..n { for j in 0..n { if i != j {
        let old_b = (-p[i * n + j] / p[j * n + j]) as f32;
        max_abs = max_abs.max((old_b - ease.weight(i, j)).abs() as f64);
        max_b = max_b.max(old_b.abs() as f64);
    }}}
    println!("n={n}: faer fit {new_s:.2}s, hand-written inverse {old_s:.2}s; max |B_old - B_new| = {max_abs:e} (max |B| = {max_b:e})");
}
