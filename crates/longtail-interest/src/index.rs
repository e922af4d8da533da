//! Scoring with an interest checkpoint: cached item embeddings, user vectors, cosine scores of
//! every item, calibrated probabilities and per-recommendation explanations.

use std::path::Path;

use longtail_data::PreparedItem;

use candle_core::{Device, Tensor};

use crate::error::Result;
use crate::model::{
    cached_item_embeddings, items_hash, InterestMeta, InterestModel, UserRepr, INTEREST_FILE,
    ITEM_EMBEDDINGS_FILE,
};
use crate::sequence::{l2_normalise, SequenceModel, SEQUENCE_WEIGHTS_FILE};

pub use crate::model::CacheStatus;

/// An interest checkpoint's settings and the embeddings of one catalogue.
pub struct InterestIndex {
    pub meta: InterestMeta,
    /// Row-major `(n_items, dim)`, unit rows, catalogue order: the encoder's text embeddings
    /// (empty for an ID-only sequence model).
    pub emb: Vec<f32>,
    pub dim: usize,
    n_items: usize,
    sequence: Option<SequenceIndex>,
}

/// A sequence model bound to the catalogue, with its item vectors computed once.
struct SequenceIndex {
    model: SequenceModel,
    /// `(n_items, hidden)` item vectors as the transformer reads them.
    items: Tensor,
    /// The same, unit rows, row-major (what user vectors are scored against).
    items_unit: Vec<f32>,
    hidden: usize,
}

impl InterestIndex {
    /// Loads `interest.json` and the item embeddings of `items`: from `cache` (default
    /// `CKPT/item_embeddings.safetensors`) when its items hash matches, else computed with the
    /// checkpoint's encoder and written to `cache`. A sequence checkpoint also loads its
    /// model and computes every item's vector (items it never saw get theirs from text).
    pub fn load(
        ckpt: &Path,
        items: &[PreparedItem],
        cache: Option<&Path>,
        batch_size: usize,
        device: &Device,
    ) -> Result<(Self, CacheStatus)> {
        let meta: InterestMeta = longtail_fs::read_json(&ckpt.join(INTEREST_FILE))?;
        let needs_text = meta
            .sequence
            .as_ref()
            .is_none_or(|s| s.item_features.uses_text());
        let (emb, dim, status) = if needs_text {
            Self::text_embeddings(ckpt, &meta, items, cache, batch_size, device)?
        } else {
            (Vec::new(), 0, CacheStatus::Hit)
        };
        let ids: Vec<String> = items.iter().map(|i| i.item_id.clone()).collect();
        let index = match meta.sequence.clone() {
            Some(seq) => {
                let model = SequenceModel::load(seq, &ckpt.join(SEQUENCE_WEIGHTS_FILE), device)?;
                Self::from_sequence(meta, model, &ids, emb, dim)?
            }
            None => Self::pooled(meta, emb, dim),
        };
        Ok((index, status))
    }

    /// A sequence model bound to the catalogue `item_ids` with text embeddings `emb`
    /// `(n, dim)` (empty for an ID-only model): every item's vector is computed once.
    pub fn from_sequence(
        meta: InterestMeta,
        model: SequenceModel,
        item_ids: &[String],
        emb: Vec<f32>,
        dim: usize,
    ) -> Result<Self> {
        let text = model
            .meta
            .item_features
            .uses_text()
            .then_some(emb.as_slice());
        let view = model.view(item_ids, text)?;
        let vectors = model.item_vectors(&view)?.detach();
        let items_unit = l2_normalise(&vectors)?
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let hidden = model.meta.hidden_size();
        Ok(Self {
            meta,
            emb,
            dim,
            n_items: item_ids.len(),
            sequence: Some(SequenceIndex {
                model,
                items: vectors,
                items_unit,
                hidden,
            }),
        })
    }

    fn text_embeddings(
        ckpt: &Path,
        meta: &InterestMeta,
        items: &[PreparedItem],
        cache: Option<&Path>,
        batch_size: usize,
        device: &Device,
    ) -> Result<(Vec<f32>, usize, CacheStatus)> {
        let hash = items_hash(items, meta.max_len, &meta.template, meta.precision);
        let default_cache = ckpt.join(ITEM_EMBEDDINGS_FILE);
        // The encoder is loaded only when the cache misses.
        let cache = cache.unwrap_or(&default_cache);
        cached_item_embeddings(Some(cache), Some(cache), &hash, items.len(), || {
            let model = InterestModel::load(
                &ckpt.to_string_lossy(),
                meta.max_len,
                &meta.template,
                device,
            )?
            .with_precision(meta.precision)?;
            let encoded = model.encode_items(items)?;
            Ok((model.embed_items(&encoded, batch_size)?, model.dim()))
        })
    }

    /// Appends items to the catalogue (their indices continue after the last one) with their
    /// text embeddings `emb` `(m, dim)`, unit rows. A sequence model gives them text-only
    /// vectors: they have no trained ID row, exactly as items it never saw in training.
    pub fn add_items(&mut self, item_ids: &[String], emb: &[f32]) -> Result<()> {
        let m = item_ids.len();
        if self.emb.is_empty() && self.n_items > 0 {
            return Err(crate::InterestError::invalid(
                "an ID-only model cannot place new items: it has no text embeddings",
            ));
        }
        if emb.len() != m * self.dim {
            return Err(crate::InterestError::invalid(format!(
                "{m} new items need {m}x{} text embeddings, got {} values",
                self.dim,
                emb.len()
            )));
        }
        if let Some(seq) = &mut self.sequence {
            let view = seq.model.view(item_ids, Some(emb))?;
            let vectors = seq.model.item_vectors(&view)?.detach();
            let unit = l2_normalise(&vectors)?
                .to_dtype(candle_core::DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            seq.items = Tensor::cat(&[&seq.items, &vectors], 0)?;
            seq.items_unit.extend_from_slice(&unit);
        }
        self.emb.extend_from_slice(emb);
        self.n_items += m;
        Ok(())
    }

    /// A pooled-embedding index (no learned user model) over unit rows `emb` `(n, dim)`.
    pub fn pooled(meta: InterestMeta, emb: Vec<f32>, dim: usize) -> Self {
        let n_items = emb.len() / dim.max(1);
        Self {
            meta,
            emb,
            dim,
            n_items,
            sequence: None,
        }
    }

    /// The frozen-text baseline of this checkpoint's text embeddings: the user is the text
    /// embedding of their last item. `None` without text embeddings.
    pub fn text_last_item(&self) -> Option<Self> {
        if self.emb.is_empty() {
            return None;
        }
        let mut meta = self.meta.clone();
        meta.architecture = crate::model::Architecture::BiEncoder;
        meta.sequence = None;
        meta.user = UserRepr {
            history_len: 1,
            recency_decay: 1.0,
        };
        meta.calibration = None;
        let mut index = Self::pooled(meta, self.emb.clone(), self.dim);
        index.n_items = self.n_items;
        Some(index)
    }

    pub fn num_items(&self) -> usize {
        self.n_items
    }

    /// Whether the user vector comes from the learned sequence model.
    pub fn is_sequence(&self) -> bool {
        self.sequence.is_some()
    }

    /// Unit-norm user vector; `None` without history.
    pub fn user_vector(&self, history: &[usize]) -> Option<Vec<f32>> {
        if history.is_empty() {
            return None;
        }
        match &self.sequence {
            None => self.meta.user.user_vector(&self.emb, self.dim, history),
            Some(seq) => seq
                .model
                .user_vectors(&seq.items, &[history])
                .and_then(|u| Ok(u.flatten_all()?.to_vec1::<f32>()?))
                .ok(),
        }
    }

    /// Unit-norm user vectors of several histories at once (one batched forward pass for a
    /// sequence model); `None` for an empty history.
    pub fn user_vectors(&self, histories: &[&[usize]]) -> Result<Vec<Option<Vec<f32>>>> {
        let Some(seq) = &self.sequence else {
            return Ok(histories.iter().map(|h| self.user_vector(h)).collect());
        };
        let non_empty: Vec<&[usize]> = histories
            .iter()
            .copied()
            .filter(|h| !h.is_empty())
            .collect();
        let mut rows = seq
            .model
            .user_vector_rows(&seq.items, &non_empty)?
            .into_iter();
        Ok(histories
            .iter()
            .map(|h| if h.is_empty() { None } else { rows.next() })
            .collect())
    }

    /// Unit item rows the user vector is scored against, and their width.
    fn item_rows(&self) -> (&[f32], usize) {
        match &self.sequence {
            None => (&self.emb, self.dim),
            Some(seq) => (&seq.items_unit, seq.hidden),
        }
    }

    /// Cosine similarity of a unit user vector to every item.
    pub fn scores_of(&self, user: &[f32]) -> Vec<f32> {
        let (rows, dim) = self.item_rows();
        dot_all(rows, dim, user)
    }

    /// Cosine similarity of a unit user vector to the given items only.
    pub fn score_items(&self, user: &[f32], items: &[usize]) -> Vec<f32> {
        let (rows, dim) = self.item_rows();
        items
            .iter()
            .map(|&i| {
                rows.get(i * dim..(i + 1) * dim)
                    .map_or(0.0, |r| r.iter().zip(user).map(|(a, b)| a * b).sum())
            })
            .collect()
    }

    /// Whether new items can be placed (the model has text embeddings).
    pub fn has_text(&self) -> bool {
        !self.emb.is_empty() || self.n_items == 0
    }

    /// Cosine similarity of the user to every item; `None` without history.
    pub fn scores(&self, history: &[usize]) -> Option<Vec<f32>> {
        self.user_vector(history).map(|u| self.scores_of(&u))
    }

    /// Calibrated `P(interest)` of a similarity, if the checkpoint has a calibration.
    pub fn probability(&self, score: f32) -> Option<f64> {
        self.meta.calibration.map(|p| p.prob(f64::from(score)))
    }

    /// The history item contributing most to the user's similarity with `item`.
    pub fn explain(&self, history: &[usize], item: usize) -> Option<usize> {
        self.explain_many(history, &[item]).ok()?.pop().flatten()
    }

    /// [`Self::explain`] for several items. Pooled users: the history item with the largest
    /// weighted cosine to the item (the user vector is that weighted sum, so this is its
    /// largest term). Sequence users: the item whose removal from the history lowers the
    /// item's score the most (leave-one-out over the items the model reads).
    pub fn explain_many(&self, history: &[usize], items: &[usize]) -> Result<Vec<Option<usize>>> {
        let Some(seq) = &self.sequence else {
            let row = |i: usize| &self.emb[i * self.dim..(i + 1) * self.dim];
            return Ok(items
                .iter()
                .map(|&item| {
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
                })
                .collect());
        };
        if history.is_empty() {
            return Ok(vec![None; items.len()]);
        }
        let read = &history[history.len() - history.len().min(seq.model.meta.max_history())..];
        if read.len() == 1 {
            return Ok(vec![Some(read[0]); items.len()]);
        }
        // Row 0: the full history; row 1 + j: without read[j].
        let mut variants: Vec<Vec<usize>> = vec![read.to_vec()];
        for j in 0..read.len() {
            let mut v = read.to_vec();
            v.remove(j);
            variants.push(v);
        }
        let refs: Vec<&[usize]> = variants.iter().map(|v| v.as_slice()).collect();
        let users = seq
            .model
            .user_vectors(&seq.items, &refs)?
            .to_vec2::<f32>()?;
        let score = |u: &[f32], item: usize| -> f32 {
            let row = &seq.items_unit[item * seq.hidden..(item + 1) * seq.hidden];
            row.iter().zip(u).map(|(a, b)| a * b).sum()
        };
        Ok(items
            .iter()
            .map(|&item| {
                let full = score(&users[0], item);
                (0..read.len())
                    .map(|j| (read[j], full - score(&users[1 + j], item)))
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(h, _)| h)
            })
            .collect())
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
        InterestIndex::pooled(
            InterestMeta {
                format_version: 1,
                architecture: crate::model::Architecture::BiEncoder,
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
                sequence: None,
                precision: Default::default(),
            },
            emb,
            dim,
        )
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
