//! Scoring with an interest checkpoint: cached item embeddings, user vectors, cosine scores of
//! every item, calibrated probabilities and per-recommendation explanations.

use std::path::Path;

use longtail_data::PreparedItem;

use crate::error::Result;
use crate::model::{
    items_hash, load_item_embeddings, save_item_embeddings, InterestMeta, InterestModel,
    INTEREST_FILE, ITEM_EMBEDDINGS_FILE,
};

/// Where the item embeddings came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Loaded from a cache whose items hash matched.
    Hit,
    /// Computed and written to the cache file.
    Computed,
}

/// An interest checkpoint's settings and the embeddings of one catalogue.
pub struct InterestIndex {
    pub meta: InterestMeta,
    /// Row-major `(n_items, dim)`, unit rows, catalogue order.
    pub emb: Vec<f32>,
    pub dim: usize,
}

impl InterestIndex {
    /// Loads `interest.json` and the item embeddings of `items`: from `cache` (default
    /// `CKPT/item_embeddings.safetensors`) when its items hash matches, else computed with the
    /// checkpoint's encoder and written to `cache`.
    pub fn load(
        ckpt: &Path,
        items: &[PreparedItem],
        cache: Option<&Path>,
        batch_size: usize,
    ) -> Result<(Self, CacheStatus)> {
        let meta: InterestMeta = longtail_fs::read_json(&ckpt.join(INTEREST_FILE))?;
        let hash = items_hash(items, meta.max_len, &meta.template);
        let default_cache = ckpt.join(ITEM_EMBEDDINGS_FILE);
        let cache = cache.unwrap_or(&default_cache);
        if let Some((emb, dim)) = load_item_embeddings(cache, &hash)? {
            if emb.len() == dim * items.len() {
                return Ok((Self { meta, emb, dim }, CacheStatus::Hit));
            }
        }
        let model = InterestModel::load(&ckpt.to_string_lossy(), meta.max_len, &meta.template)?;
        let encoded = model.encode_items(items)?;
        let emb = model.embed_items(&encoded, batch_size)?;
        let dim = model.dim();
        save_item_embeddings(cache, &emb, dim, &hash)?;
        Ok((Self { meta, emb, dim }, CacheStatus::Computed))
    }

    pub fn num_items(&self) -> usize {
        self.emb.len() / self.dim.max(1)
    }

    pub fn user_vector(&self, history: &[usize]) -> Option<Vec<f32>> {
        self.meta.user.user_vector(&self.emb, self.dim, history)
    }

    /// Cosine similarity of the user to every item; `None` without history.
    pub fn scores(&self, history: &[usize]) -> Option<Vec<f32>> {
        self.user_vector(history)
            .map(|u| dot_all(&self.emb, self.dim, &u))
    }

    /// Calibrated `P(interest)` of a similarity, if the checkpoint has a calibration.
    pub fn probability(&self, score: f32) -> Option<f64> {
        self.meta.calibration.map(|p| p.prob(f64::from(score)))
    }

    /// The history item contributing most to the user's similarity with `item`.
    pub fn explain(&self, history: &[usize], item: usize) -> Option<usize> {
        let row = |i: usize| &self.emb[i * self.dim..(i + 1) * self.dim];
        let target = row(item);
        self.meta
            .user
            .weights(history)
            .into_iter()
            .map(|(h, w)| {
                let c: f32 = row(h).iter().zip(target).map(|(a, b)| a * b).sum();
                (h, w * f64::from(c))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(h, _)| h)
    }
}

/// `scores[j] = sum_d user[d] * items[j * dim + d]` for a row-major `(n, dim)` matrix.
pub fn dot_all(items: &[f32], dim: usize, user: &[f32]) -> Vec<f32> {
    items
        .chunks_exact(dim)
        .map(|row| row.iter().zip(user).map(|(a, b)| a * b).sum())
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::UserRepr;

    pub(crate) fn index(emb: Vec<f32>, dim: usize) -> InterestIndex {
        InterestIndex {
            meta: InterestMeta {
                format_version: 1,
                init_model: "x".into(),
                max_len: 8,
                template: "t".into(),
                pooling: "mean".into(),
                temperature: 0.05,
                logq_correction: true,
                user: UserRepr {
                    history_len: 10,
                    recency_decay: 1.0,
                },
                frozen_layers: 0,
                calibration: Some(crate::Platt { a: 2.0, b: -1.0 }),
                calibration_negatives: 1,
                global_step: 0,
            },
            emb,
            dim,
        }
    }

    #[test]
    fn explanation_is_the_closest_history_item() {
        // Items: 0 = x axis, 1 = y axis, 2 = close to x, 3 = close to y.
        let r = index(vec![1.0, 0.0, 0.0, 1.0, 0.99, 0.14, 0.14, 0.99], 2);
        assert_eq!(r.num_items(), 4);
        assert_eq!(r.explain(&[0, 1], 2), Some(0));
        assert_eq!(r.explain(&[0, 1], 3), Some(1));
        assert_eq!(r.explain(&[], 3), None);
        let s = r.scores(&[0]).unwrap();
        assert!((s[0] - 1.0).abs() < 1e-6 && s[1].abs() < 1e-6 && s[2] > s[3]);
        assert!(r.scores(&[]).is_none());
        let p = r.probability(0.5).unwrap();
        assert!((p - 0.5).abs() < 1e-12);
    }

    #[test]
    fn dot_all_is_matrix_vector_product() {
        let m = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(dot_all(&m, 2, &[1.0, -1.0]), vec![-1.0, -1.0, -1.0]);
    }
}
