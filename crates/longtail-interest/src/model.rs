//! The bi-encoder: one shared BERT encoder (mean pooling + L2 normalisation) embeds item text;
//! a user is the recency-weighted mean of the embeddings of their last `history_len` items.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use longtail_data::PreparedItem;
use longtail_model::checkpoint::{CONFIG_FILE, WEIGHTS_FILE};
use longtail_model::{
    mean_pool, save_varmap_safetensors, BertConfig, BertModel, Checkpoint, HubOptions, Precision,
    PretrainedBert,
};
use longtail_tokenize::{Encoded, ItemTokenizer};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::calibrate::Platt;
use crate::error::{InterestError, Result};

pub use crate::checkpoint::{INTEREST_FILE, ITEM_EMBEDDINGS_FILE, TOKENIZER_FILE};

/// How a user is represented (stored in `interest.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRepr {
    /// Number of most recent history items used.
    pub history_len: usize,
    /// Weight of the item `k` steps before the most recent one is `recency_decay^k`.
    pub recency_decay: f64,
}

impl UserRepr {
    /// Normalised weights of the last `history_len` items of `history` (oldest first), with
    /// the item indices they apply to.
    pub fn weights(&self, history: &[usize]) -> Vec<(usize, f64)> {
        let n = history.len().min(self.history_len.max(1));
        let recent = &history[history.len() - n..];
        let mut out: Vec<(usize, f64)> = recent
            .iter()
            .enumerate()
            .map(|(i, &item)| (item, self.recency_decay.powi((n - 1 - i) as i32)))
            .collect();
        let total: f64 = out.iter().map(|(_, w)| w).sum();
        for (_, w) in &mut out {
            *w /= total;
        }
        out
    }

    /// Unit-norm user vector from row-major item embeddings `(n, dim)`; `None` without
    /// history.
    pub fn user_vector(&self, emb: &[f32], dim: usize, history: &[usize]) -> Option<Vec<f32>> {
        if history.is_empty() {
            return None;
        }
        let mut u = vec![0f32; dim];
        for (item, w) in self.weights(history) {
            for (d, x) in u.iter_mut().zip(&emb[item * dim..(item + 1) * dim]) {
                *d += (w as f32) * x;
            }
        }
        let norm = u.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        u.iter_mut().for_each(|x| *x /= norm);
        Some(u)
    }
}

/// Which user model a checkpoint holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Architecture {
    /// Item text encoder; user = pooled embeddings of the last items (no learned user model).
    #[default]
    BiEncoder,
    /// Frozen text embeddings through a learned adaptor (+ ID embeddings) and a causal
    /// transformer over the history (see [`crate::sequence`]).
    Sequence,
}

impl std::fmt::Display for Architecture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::BiEncoder => "bi-encoder",
            Self::Sequence => "sequence",
        })
    }
}

/// `interest.json`: everything needed to score with a checkpoint besides the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InterestMeta {
    pub format_version: u32,
    /// Absent in checkpoints written before the sequence model: a bi-encoder.
    #[serde(default)]
    pub architecture: Architecture,
    /// Model the run started from (path or hub id).
    pub init_model: String,
    pub max_len: usize,
    pub template: String,
    /// Always `mean` (+ L2 normalisation): what all-MiniLM-L6-v2 was trained with.
    pub pooling: String,
    pub temperature: f64,
    pub logq_correction: bool,
    pub user: UserRepr,
    /// Embeddings + this many bottom layers were frozen.
    pub frozen_layers: usize,
    /// `P(interest) = sigmoid(a * cos + b)`; `None` before calibration.
    pub calibration: Option<Platt>,
    /// Negatives sampled per validation positive when fitting the calibration.
    pub calibration_negatives: usize,
    pub global_step: u64,
    /// The sequence model's settings (`architecture = "sequence"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<crate::sequence::SequenceMeta>,
    /// Arithmetic of the frozen encoder's item-embedding pass (catalogue and new items alike).
    /// Absent: fp32.
    #[serde(default, skip_serializing_if = "is_fp32")]
    pub precision: Precision,
}

fn is_fp32(p: &Precision) -> bool {
    *p == Precision::Fp32
}

/// The trainable encoder plus its tokenizer.
pub struct InterestModel {
    pub bert: BertModel,
    pub varmap: VarMap,
    pub config: BertConfig,
    pub tokenizer: ItemTokenizer,
    pub tokenizer_path: PathBuf,
}

/// A mean-pooled, L2-normalised batch `(b, d)`.
pub fn pool_normalise(hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let pooled = mean_pool(hidden, Some(mask))?;
    let norm = pooled
        .sqr()?
        .sum_keepdim(1)?
        .sqrt()?
        .clamp(1e-12, f64::MAX)?;
    Ok(pooled.broadcast_div(&norm)?)
}

impl InterestModel {
    /// Loads the encoder weights of a model directory or hub id (a `train` checkpoint's
    /// `bert.*` weights load too; a classifier head is ignored) and the tokenizer next to it.
    pub fn load(model: &str, max_len: usize, template: &str, device: &Device) -> Result<Self> {
        let checkpoint = Checkpoint::resolve(model, &HubOptions::default())?;
        let loaded = PretrainedBert::load(checkpoint.files(), false, DType::F32, device)?;
        let tokenizer = checkpoint.item_tokenizer(template, max_len, None)?;
        Ok(Self {
            bert: loaded.model,
            varmap: loaded.varmap,
            config: checkpoint.config().clone(),
            tokenizer,
            tokenizer_path: checkpoint.tokenizer_path()?,
        })
    }

    /// The item-embedding pass in `precision` ([`BertModel::set_precision`]): for a frozen
    /// encoder only (int8 has no gradient).
    pub fn with_precision(mut self, precision: Precision) -> Result<Self> {
        self.bert.set_precision(precision)?;
        Ok(self)
    }

    /// Where the encoder's weights live.
    pub fn device(&self) -> &Device {
        self.bert.device()
    }

    pub fn num_layers(&self) -> usize {
        self.config.num_hidden_layers
    }

    pub fn dim(&self) -> usize {
        self.config.hidden_size
    }

    /// Tokenizes the catalogue (item order).
    pub fn encode_items(&self, items: &[PreparedItem]) -> Result<Vec<Encoded>> {
        Ok(self.tokenizer.encode_batch_parallel(items)?)
    }

    fn batch(&self, encoded: &[Encoded], idx: &[usize]) -> Result<(Tensor, Tensor, Tensor)> {
        let b = self.tokenizer.pad_batch(encoded, idx)?;
        let shape = b.shape();
        Ok((
            Tensor::from_vec(b.input_ids, shape, self.device())?,
            Tensor::from_vec(b.token_type_ids, shape, self.device())?,
            Tensor::from_vec(b.attention_mask, shape, self.device())?,
        ))
    }

    /// Batches of indices with similar lengths (less padding).
    fn length_batches(encoded: &[Encoded], batch_size: usize) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..encoded.len()).collect();
        order.sort_by_key(|&i| encoded[i].len());
        order
            .chunks(batch_size.max(1))
            .map(|c| c.to_vec())
            .collect()
    }

    /// Unit-norm embeddings of every item, row-major `(n, dim)`, with the fused inference
    /// kernels (no gradient).
    pub fn embed_items(&self, encoded: &[Encoded], batch_size: usize) -> Result<Vec<f32>> {
        let dim = self.dim();
        let mut out = vec![0f32; encoded.len() * dim];
        for idx in Self::length_batches(encoded, batch_size) {
            let (ids, types, mask) = self.batch(encoded, &idx)?;
            let h = self
                .bert
                .forward_inference(&ids, Some(&types), Some(&mask))?;
            let e = pool_normalise(&h, &mask)?.to_vec2::<f32>()?;
            for (row, &i) in e.iter().zip(&idx) {
                out[i * dim..(i + 1) * dim].copy_from_slice(row);
            }
        }
        Ok(out)
    }

    /// Frozen-bottom hidden states of every item after the embeddings and `layers` layers,
    /// each `(len_i, hidden)` (padding stripped).
    pub fn bottom_states(
        &self,
        encoded: &[Encoded],
        layers: usize,
        batch_size: usize,
    ) -> Result<Vec<Tensor>> {
        let mut out: Vec<Option<Tensor>> = vec![None; encoded.len()];
        for idx in Self::length_batches(encoded, batch_size) {
            let (ids, types, mask) = self.batch(encoded, &idx)?;
            let h = self
                .bert
                .forward_bottom_inference(&ids, Some(&types), Some(&mask), layers)?;
            for (r, &i) in idx.iter().enumerate() {
                out[i] = Some(h.get(r)?.narrow(0, 0, encoded[i].len())?.contiguous()?);
            }
        }
        Ok(out
            .into_iter()
            .map(|t| t.expect("every item batched"))
            .collect())
    }

    /// Unit-norm embeddings `(m, d)` of the items `idx` from their cached bottom states,
    /// through the trainable top layers (`train` = dropout on). Differentiable.
    pub fn embed_from_bottom(
        &self,
        bottom: &[Tensor],
        idx: &[usize],
        from_layer: usize,
        train: bool,
    ) -> Result<Tensor> {
        let max = idx
            .iter()
            .map(|&i| bottom[i].dim(0))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let s = max.iter().copied().max().unwrap_or(1);
        let h = self.dim();
        let mut rows = Vec::with_capacity(idx.len());
        let mut mask = Vec::with_capacity(idx.len() * s);
        for (&i, &len) in idx.iter().zip(&max) {
            let t = &bottom[i];
            let t = if len < s {
                Tensor::cat(
                    &[t, &Tensor::zeros((s - len, h), t.dtype(), t.device())?],
                    0,
                )?
            } else {
                t.clone()
            };
            rows.push(t);
            mask.extend((0..s).map(|p| u32::from(p < len)));
        }
        let hidden = Tensor::stack(&rows, 0)?;
        let mask = Tensor::from_vec(mask, (idx.len(), s), self.device())?;
        let out = self
            .bert
            .forward_layers_t(&hidden, Some(&mask), from_layer, train)?;
        pool_normalise(&out, &mask)
    }

    /// All item embeddings `(n, dim)` row-major from bottom states (no dropout, detached).
    pub fn embed_all_from_bottom(
        &self,
        bottom: &[Tensor],
        from_layer: usize,
        batch_size: usize,
    ) -> Result<Vec<f32>> {
        let dim = self.dim();
        let mut order: Vec<usize> = (0..bottom.len()).collect();
        order.sort_by_key(|&i| bottom[i].dim(0).unwrap_or(0));
        let mut out = vec![0f32; bottom.len() * dim];
        for idx in order.chunks(batch_size.max(1)) {
            let e = self
                .embed_from_bottom(bottom, idx, from_layer, false)?
                .detach()
                .to_vec2::<f32>()?;
            for (row, &i) in e.iter().zip(idx) {
                out[i * dim..(i + 1) * dim].copy_from_slice(row);
            }
        }
        Ok(out)
    }

    /// Writes `model.safetensors` (HF `BertModel` names), `config.json` and `tokenizer.json`.
    pub fn save_weights(&self, dir: &Path) -> Result<()> {
        save_varmap_safetensors(&self.varmap, &dir.join(WEIGHTS_FILE))?;
        let mut config = self.config.clone();
        config.architectures = Some(vec!["BertModel".into()]);
        config
            .extra
            .insert("torch_dtype".into(), serde_json::Value::from("float32"));
        config.save(dir.join(CONFIG_FILE))?;
        std::fs::copy(&self.tokenizer_path, dir.join(TOKENIZER_FILE))
            .map_err(|e| InterestError::io(dir.join(TOKENIZER_FILE), e))?;
        Ok(())
    }
}

/// Hash of the catalogue as the encoder sees it (ids, texts, tokenization settings and, when
/// not fp32, the precision): the key of the item embedding cache.
pub fn items_hash(
    items: &[PreparedItem],
    max_len: usize,
    template: &str,
    precision: Precision,
) -> String {
    let mut h = Sha256::new();
    h.update(format!("{max_len}\0{template}\0").as_bytes());
    if precision != Precision::Fp32 {
        // fp32 keys stay what they were, so existing caches still hit.
        h.update(format!("precision={precision}\0").as_bytes());
    }
    for it in items {
        h.update(it.item_id.as_bytes());
        h.update([0]);
        for (k, v) in &it.fields {
            h.update(k.as_bytes());
            h.update([1]);
            h.update(v.as_bytes());
            h.update([2]);
        }
        h.update(it.text.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

/// Saves item embeddings `(n, dim)` with the items hash in the safetensors metadata.
pub fn save_item_embeddings(path: &Path, emb: &[f32], dim: usize, hash: &str) -> Result<()> {
    let n = emb.len() / dim.max(1);
    let bytes: Vec<u8> = emb.iter().flat_map(|x| x.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![n, dim], &bytes)
        .map_err(|e| InterestError::invalid(format!("item embeddings: {e}")))?;
    let meta = std::collections::HashMap::from([("items_hash".to_string(), hash.to_string())]);
    let data = safetensors::serialize([("embeddings", view)], Some(meta))
        .map_err(|e| InterestError::invalid(format!("item embeddings: {e}")))?;
    longtail_fs::write_atomic(path, &data)?;
    Ok(())
}

/// Where item embeddings came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Loaded from a cache whose items hash matched.
    Hit,
    /// Computed (and written to the cache file, when there is one).
    Computed,
}

/// The embeddings of `n_items` items: from `read` when its items hash is `hash` and it has
/// `n_items` rows, else from `compute`, then written to `write` (when given). The one
/// cache-or-encode rule of training and serving.
pub fn cached_item_embeddings(
    read: Option<&Path>,
    write: Option<&Path>,
    hash: &str,
    n_items: usize,
    compute: impl FnOnce() -> Result<(Vec<f32>, usize)>,
) -> Result<(Vec<f32>, usize, CacheStatus)> {
    if let Some(path) = read {
        if let Some((emb, dim)) = load_item_embeddings(path, hash)? {
            if emb.len() == dim * n_items {
                return Ok((emb, dim, CacheStatus::Hit));
            }
        }
    }
    let (emb, dim) = compute()?;
    if let Some(path) = write {
        save_item_embeddings(path, &emb, dim, hash)?;
    }
    Ok((emb, dim, CacheStatus::Computed))
}

/// Loads cached item embeddings if the file exists and its hash matches.
pub fn load_item_embeddings(path: &Path, hash: &str) -> Result<Option<(Vec<f32>, usize)>> {
    if !path.is_file() {
        return Ok(None);
    }
    let data = std::fs::read(path).map_err(|e| InterestError::io(path, e))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&data)
        .map_err(|e| InterestError::invalid(format!("{}: {e}", path.display())))?;
    let stored = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("items_hash").cloned());
    if stored.as_deref() != Some(hash) {
        return Ok(None);
    }
    let st = safetensors::SafeTensors::deserialize(&data)
        .map_err(|e| InterestError::invalid(format!("{}: {e}", path.display())))?;
    let t = st
        .tensor("embeddings")
        .map_err(|e| InterestError::invalid(format!("{}: {e}", path.display())))?;
    let dim = *t.shape().get(1).unwrap_or(&0);
    let emb = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(Some((emb, dim)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recency_weights_and_user_vector() {
        let r = UserRepr {
            history_len: 2,
            recency_decay: 0.5,
        };
        let w = r.weights(&[7, 1, 2]);
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].0, 1);
        assert!((w[0].1 - 1.0 / 3.0).abs() < 1e-12 && (w[1].1 - 2.0 / 3.0).abs() < 1e-12);
        let emb = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let u = r.user_vector(&emb, 2, &[0, 1]).unwrap();
        // (1/3, 2/3) normalised.
        assert!((u[0] - 1.0 / 5f32.sqrt()).abs() < 1e-6);
        assert!(r.user_vector(&emb, 2, &[]).is_none());
    }

    #[test]
    fn embeddings_round_trip_keyed_by_hash() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e.safetensors");
        let emb = vec![0.5f32, -1.0, 2.0, 3.0];
        save_item_embeddings(&p, &emb, 2, "abc").unwrap();
        assert_eq!(load_item_embeddings(&p, "abc").unwrap(), Some((emb, 2)));
        assert_eq!(load_item_embeddings(&p, "other").unwrap(), None);
    }
}
