//! Item-kNN baseline: cosine similarity of items' binary training user
//! vectors, full neighbourhood (no top-k pruning), self-similarity 0.
//! A user's score for item j is `sum over history items h of sim(h, j)`.
//! The similarity matrix is dense (n² f32), fine for catalogues of a few
//! thousand items.

use crate::scorer::Scorer;
use crate::{ItemIdx, RecSplit, UserIdx};

pub struct ItemKnn {
    n: usize,
    sim: Vec<f32>,
}

/// Item co-occurrence counts over training histories (diagonal = item count).
pub fn cooccurrence(split: &RecSplit) -> Vec<f64> {
    cooccurrence_of(&split.train, split.n_items())
}

/// Co-occurrence counts `XᵀX` of binary item sets over `n` items (each list without repeats).
pub fn cooccurrence_of(lists: &[Vec<ItemIdx>], n: usize) -> Vec<f64> {
    let mut g = vec![0f64; n * n];
    for items in lists {
        for &a in items {
            let row = &mut g[a as usize * n..(a as usize + 1) * n];
            for &b in items {
                row[b as usize] += 1.0;
            }
        }
    }
    g
}

/// `out += sum over h in history of row h` of a row-major `n x n` item-item matrix: the
/// scores of item-item models (item-kNN, EASE). Items past `n` (listed after the fit: no
/// interactions yet) neither add a row nor receive a score.
pub(crate) fn add_history_rows(m: &[f32], n: usize, history: &[ItemIdx], out: &mut [f32]) {
    for &h in history.iter().filter(|&&h| (h as usize) < n) {
        let row = &m[h as usize * n..(h as usize + 1) * n];
        for (o, &s) in out.iter_mut().zip(row) {
            *o += s;
        }
    }
}

impl ItemKnn {
    pub fn fit(split: &RecSplit) -> Self {
        let n = split.n_items();
        let g = cooccurrence(split);
        let norm: Vec<f64> = (0..n).map(|i| g[i * n + i].sqrt()).collect();
        let mut sim = vec![0f32; n * n];
        for i in 0..n {
            for j in 0..n {
                if i != j && norm[i] > 0.0 && norm[j] > 0.0 {
                    sim[i * n + j] = (g[i * n + j] / (norm[i] * norm[j])) as f32;
                }
            }
        }
        Self { n, sim }
    }
}

impl ItemKnn {
    /// The fitted similarities as a stand-alone item-item scorer (what a plan saves).
    pub fn into_item_item(self) -> crate::ItemItem {
        crate::ItemItem::new("item_knn", self.n, self.sim).expect("n x n by construction")
    }
}

impl Scorer for ItemKnn {
    fn name(&self) -> &str {
        "item_knn"
    }

    fn scores(&self, _user: UserIdx, history: &[ItemIdx], out: &mut [f32]) {
        add_history_rows(&self.sim, self.n, history, out);
    }
}
