//! The sequence interest model (UniSRec / SASRec-text style): every catalogue item gets a
//! vector from its frozen text embedding through a learned adaptor (plus an ID embedding for
//! items with enough training interactions), and a causal transformer over the user's last
//! `max_history` item vectors gives the user vector (its output at the last position).
//! Scores are cosines; training divides them by a temperature and takes a softmax over the
//! whole catalogue.
//!
//! Items without an ID row (new items, tail items under `id_min_count`) are scored from text
//! alone, so an item added to the catalogue is recommendable as soon as its text is embedded.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarMap;
use longtail_model::{ops, BertConfig, CausalEncoder, Init, ParamBuilder};
use serde::{Deserialize, Serialize};

use crate::error::{InterestError, Result};

pub use crate::checkpoint::SEQUENCE_WEIGHTS_FILE;

/// What an item vector is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum ItemFeatures {
    /// Adaptor(text embedding) only: every item, seen or not, the same way.
    Text,
    /// ID embeddings only (SASRec): items never trained on have no vector (score 0).
    Id,
    /// Adaptor(text) + an ID embedding for items with >= `id_min_count` training interactions.
    TextId,
}

impl ItemFeatures {
    pub fn uses_text(self) -> bool {
        matches!(self, Self::Text | Self::TextId)
    }
    pub fn uses_id(self) -> bool {
        matches!(self, Self::Id | Self::TextId)
    }
}

impl std::fmt::Display for ItemFeatures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Text => "text",
            Self::Id => "id",
            Self::TextId => "text-id",
        })
    }
}

/// Settings of a sequence model, stored in `interest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequenceMeta {
    pub item_features: ItemFeatures,
    /// Width of the text embeddings the adaptor reads (0 without text).
    pub text_dim: usize,
    /// The causal transformer (`hidden_size`, layers, heads, dropouts;
    /// `max_position_embeddings` = `max_history`).
    pub encoder: BertConfig,
    pub temperature: f64,
    pub id_min_count: u64,
    /// Catalogue ids of the items with an ID embedding, in row order.
    pub id_items: Vec<String>,
    /// Projections in the text adaptor: 1 = one linear map; k > 1 = UniSRec's mixture of k
    /// maps with a softmax gate on the text (checkpoints before it have 1).
    #[serde(default = "one_expert")]
    pub adaptor_experts: usize,
}

/// The adaptor of checkpoints and configs that do not say: one linear map.
pub(crate) fn one_expert() -> usize {
    1
}

impl SequenceMeta {
    pub fn max_history(&self) -> usize {
        self.encoder.max_position_embeddings
    }
    pub fn hidden_size(&self) -> usize {
        self.encoder.hidden_size
    }
}

/// The trainable parts; the catalogue binding lives in [`CatalogueView`].
pub struct SequenceModel {
    pub meta: SequenceMeta,
    pub varmap: VarMap,
    dtype: DType,
    device: Device,
    encoder: CausalEncoder,
    adaptor: Option<Adaptor>,
    id_embeddings: Option<Tensor>,
}

/// `LayerNorm(P(t))`: projects the text space onto the model's width. When the width is the
/// text's, a residual path makes it `LayerNorm(t + P(t))`: the model starts from the text
/// geometry (fine-grained similarity among rarely bought items) and learns a correction.
struct Adaptor {
    projection: Projection,
    norm_weight: Tensor,
    norm_bias: Tensor,
    eps: f64,
    residual: bool,
}

enum Projection {
    /// `W t + b`.
    Linear { weight: Tensor, bias: Tensor },
    /// UniSRec's mixture of adaptors: `sum_k softmax(G t + g)_k W_k (t - c_k)`. Each expert
    /// can specialise in a region of the text space (a product family), which one map shared
    /// by the whole catalogue cannot.
    Mixture {
        /// `(k, hidden, text_dim)`.
        experts: Tensor,
        /// `(k, text_dim)`: each expert's learned origin of the text space.
        centres: Tensor,
        /// `(k, text_dim)` and `(k,)`.
        gate_weight: Tensor,
        gate_bias: Tensor,
    },
}

impl Projection {
    fn forward(&self, text: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Self::Linear { weight, bias } => text.matmul(&weight.t()?)?.broadcast_add(bias)?,
            Self::Mixture {
                experts,
                centres,
                gate_weight,
                gate_bias,
            } => {
                let (k, h, d) = experts.dims3()?;
                let n = text.dim(0)?;
                // W_k (t - c_k) = W_k t - W_k c_k: one (n, d) x (d, k h) product for all experts.
                let wt = text
                    .matmul(&experts.reshape((k * h, d))?.t()?)?
                    .reshape((n, k, h))?;
                let wc = centres
                    .unsqueeze(1)?
                    .matmul(&experts.transpose(1, 2)?)?
                    .squeeze(1)?;
                let y = wt.broadcast_sub(&wc.unsqueeze(0)?)?;
                let gate = ops::softmax_last_dim(
                    &text.matmul(&gate_weight.t()?)?.broadcast_add(gate_bias)?,
                )?;
                gate.unsqueeze(2)?.broadcast_mul(&y)?.sum(1)?
            }
        })
    }
}

impl Adaptor {
    fn forward(&self, text: &Tensor) -> Result<Tensor> {
        let mut h = self.projection.forward(text)?;
        if self.residual {
            h = (h + text)?;
        }
        Ok(ops::layer_norm(
            &h,
            &self.norm_weight,
            &self.norm_bias,
            self.eps,
        )?)
    }
}

/// The model bound to one catalogue: its (constant) text embeddings and ID rows.
pub struct CatalogueView {
    /// `(n_items, text_dim)` text embeddings (no gradient); `None` without text.
    text: Option<Tensor>,
    /// Per item, its ID row or `n_id` (the zero row) for items without one.
    id_rows: Tensor,
    pub n_items: usize,
}

impl SequenceModel {
    /// A freshly initialised model (seeded), f32, on `device`.
    pub fn new(meta: SequenceMeta, seed: u64, device: &Device) -> Result<Self> {
        Self::new_with_dtype(meta, seed, DType::F32, device)
    }

    /// [`Self::new`] in `dtype` (f64 for the finite-difference tests).
    pub fn new_with_dtype(
        meta: SequenceMeta,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let varmap = VarMap::new();
        let pb = ParamBuilder::new(&varmap, dtype, device, seed);
        let h = meta.hidden_size();
        let std = meta.encoder.initializer_range;
        let adaptor = if meta.item_features.uses_text() {
            if meta.text_dim == 0 {
                return Err(InterestError::invalid("text features need text_dim > 0"));
            }
            let a = pb.pp("adaptor");
            let k = meta.adaptor_experts;
            if k == 0 {
                return Err(InterestError::invalid("adaptor_experts must be >= 1"));
            }
            let d = meta.text_dim;
            let normal = Init::Normal { std };
            let projection = if k == 1 {
                let dense = a.pp("dense");
                Projection::Linear {
                    weight: dense.get(&[h, d], "weight", normal)?,
                    bias: dense.get(&[h], "bias", Init::Zeros)?,
                }
            } else {
                let (experts, gate) = (a.pp("experts"), a.pp("gate"));
                Projection::Mixture {
                    experts: experts.get(&[k, h, d], "weight", normal)?,
                    centres: experts.get(&[k, d], "centres", Init::Zeros)?,
                    gate_weight: gate.get(&[k, d], "weight", normal)?,
                    gate_bias: gate.get(&[k], "bias", Init::Zeros)?,
                }
            };
            Some(Adaptor {
                projection,
                norm_weight: a.pp("LayerNorm").get(&[h], "weight", Init::Ones)?,
                norm_bias: a.pp("LayerNorm").get(&[h], "bias", Init::Zeros)?,
                eps: meta.encoder.layer_norm_eps,
                residual: h == meta.text_dim,
            })
        } else {
            None
        };
        let id_embeddings = if meta.item_features.uses_id() && !meta.id_items.is_empty() {
            Some(pb.pp("item_id_embeddings").get(
                &[meta.id_items.len(), h],
                "weight",
                Init::Normal { std },
            )?)
        } else {
            None
        };
        let encoder = CausalEncoder::new(&meta.encoder, &pb.pp("encoder"), seed ^ 0x5e9)?;
        Ok(Self {
            meta,
            varmap,
            dtype,
            device: device.clone(),
            encoder,
            adaptor,
            id_embeddings,
        })
    }

    /// A model with the weights of `path` (`sequence.safetensors`).
    pub fn load(meta: SequenceMeta, path: &Path, device: &Device) -> Result<Self> {
        let mut model = Self::new(meta, 0, device)?;
        model
            .varmap
            .load(path)
            .map_err(|e| InterestError::invalid(format!("{}: {e}", path.display())))?;
        Ok(model)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        Ok(longtail_model::save_varmap_safetensors(&self.varmap, path)?)
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn encoder(&self) -> &CausalEncoder {
        &self.encoder
    }

    /// Binds the model to a catalogue: `item_ids` in catalogue order and their text embeddings
    /// `(n, text_dim)` row-major (ignored without text features).
    pub fn view(&self, item_ids: &[String], text: Option<&[f32]>) -> Result<CatalogueView> {
        let n = item_ids.len();
        let text = match (self.meta.item_features.uses_text(), text) {
            (false, _) => None,
            (true, Some(t)) if t.len() == n * self.meta.text_dim => Some(
                Tensor::from_slice(t, (n, self.meta.text_dim), &self.device)?
                    .to_dtype(self.dtype)?,
            ),
            (true, _) => {
                return Err(InterestError::invalid(format!(
                    "the model reads {}-d text embeddings of all {n} items",
                    self.meta.text_dim
                )))
            }
        };
        let row_of: HashMap<&str, u32> = self
            .meta
            .id_items
            .iter()
            .enumerate()
            .map(|(r, id)| (id.as_str(), r as u32))
            .collect();
        let none = self.meta.id_items.len() as u32;
        let rows: Vec<u32> = item_ids
            .iter()
            .map(|id| row_of.get(id.as_str()).copied().unwrap_or(none))
            .collect();
        Ok(CatalogueView {
            text,
            id_rows: Tensor::from_vec(rows, n, &self.device)?,
            n_items: n,
        })
    }

    /// Item vectors `(n_items, hidden)` of a catalogue (differentiable).
    pub fn item_vectors(&self, view: &CatalogueView) -> Result<Tensor> {
        let h = self.meta.hidden_size();
        let mut out: Option<Tensor> = None;
        if let (Some(adaptor), Some(text)) = (&self.adaptor, &view.text) {
            out = Some(adaptor.forward(text)?);
        }
        if let Some(ids) = &self.id_embeddings {
            // Row `n_id` is a constant zero: items without an ID embedding.
            let table = Tensor::cat(&[ids, &Tensor::zeros((1, h), self.dtype, ids.device())?], 0)?;
            let v = table.index_select(&view.id_rows, 0)?;
            out = Some(match out {
                Some(t) => (t + v)?,
                None => v,
            });
        }
        match out {
            Some(t) => Ok(t),
            None => Ok(Tensor::zeros((view.n_items, h), self.dtype, &self.device)?),
        }
    }

    /// Hidden states `(b, s, hidden)` of left-padded histories `idx` `(b, s)` (catalogue
    /// indices; padded positions have `mask` 0 and any valid index).
    pub fn sequence_states(
        &self,
        items: &Tensor,
        idx: &Tensor,
        mask: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        let (b, s) = idx.dims2()?;
        let h = self.meta.hidden_size();
        let x = items
            .index_select(&idx.flatten_all()?, 0)?
            .reshape((b, s, h))?;
        // The inference kernels are f32; other dtypes (the f64 tests) take the training path
        // without dropout.
        Ok(if train || self.dtype != DType::F32 {
            self.encoder.forward_t(&x, mask, train)?
        } else {
            self.encoder.forward_inference(&x, mask)?
        })
    }

    /// Unit-norm user vectors `(b, hidden)` of histories (each oldest first, non-empty; the
    /// last `max_history` items are used), no gradient, f32.
    pub fn user_vectors(&self, items: &Tensor, histories: &[&[usize]]) -> Result<Tensor> {
        let (idx, mask) = left_pad(histories, self.meta.max_history(), &self.device)?;
        let s = idx.dim(1)?;
        let states = self.sequence_states(items, &idx, &mask, false)?;
        let last = states.narrow(1, s - 1, 1)?.squeeze(1)?;
        Ok(l2_normalise(&last)?.to_dtype(DType::F32)?)
    }

    /// [`Self::user_vectors`] of many histories as rows, in the given order: batched by
    /// similar length (a batch is padded to its longest history), 256 at a time.
    pub fn user_vector_rows(
        &self,
        items: &Tensor,
        histories: &[&[usize]],
    ) -> Result<Vec<Vec<f32>>> {
        let max = self.meta.max_history();
        let mut order: Vec<usize> = (0..histories.len()).collect();
        order.sort_by_key(|&i| histories[i].len().min(max));
        let mut out = vec![Vec::new(); histories.len()];
        for chunk in order.chunks(256) {
            let batch: Vec<&[usize]> = chunk.iter().map(|&i| histories[i]).collect();
            let rows = self.user_vectors(items, &batch)?.to_vec2::<f32>()?;
            for (&i, row) in chunk.iter().zip(rows) {
                out[i] = row;
            }
        }
        Ok(out)
    }
}

/// Rows divided by their L2 norm (zero rows stay zero).
pub fn l2_normalise(x: &Tensor) -> Result<Tensor> {
    let norm = x
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12, f64::MAX)?;
    Ok(x.broadcast_div(&norm)?)
}

/// Left-padded index and mask tensors `(b, s)` of the last `max_len` items of each history,
/// `s` the longest kept length. Padding uses index 0 with mask 0.
pub fn left_pad(
    histories: &[&[usize]],
    max_len: usize,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let s = histories
        .iter()
        .map(|h| h.len().min(max_len))
        .max()
        .unwrap_or(0)
        .max(1);
    let b = histories.len();
    let mut idx = vec![0u32; b * s];
    let mut mask = vec![0u32; b * s];
    for (r, h) in histories.iter().enumerate() {
        let kept = &h[h.len() - h.len().min(max_len)..];
        let start = s - kept.len();
        for (j, &item) in kept.iter().enumerate() {
            idx[r * s + start + j] = item as u32;
            mask[r * s + start + j] = 1;
        }
    }
    Ok((
        Tensor::from_vec(idx, (b, s), device)?,
        Tensor::from_vec(mask, (b, s), device)?,
    ))
}

/// Next-item loss of a batch of sequences: every position whose next item is known predicts
/// it with a softmax over the whole catalogue of `cos(state, item) / temperature`.
///
/// `seqs` are the training sequences (oldest first, at least 2 items); each keeps its last
/// `max_history + 1` items: inputs are all but the last, targets all but the first.
/// `log_q` `(n_items,)`, when given, is added to every row of logits: the popularity prior
/// `b log q`. The softmax then explains part of each item's frequency by the prior, so the
/// cosine (all that scoring uses) learns the lift over popularity and ranks rare items higher.
/// `target_weights` (per catalogue item), when given, weight each target's cross-entropy
/// (normalised to mean 1 over the batch): rare targets weighted up pull the model towards
/// the tail.
pub fn next_item_loss(
    model: &SequenceModel,
    view: &CatalogueView,
    seqs: &[&[usize]],
    log_q: Option<&Tensor>,
    target_weights: Option<&[f32]>,
    train: bool,
) -> Result<Tensor> {
    let max_history = model.meta.max_history();
    let inputs: Vec<&[usize]> = seqs
        .iter()
        .map(|s| {
            let s = &s[s.len() - s.len().min(max_history + 1)..];
            &s[..s.len() - 1]
        })
        .collect();
    let (idx, mask) = left_pad(&inputs, max_history, model.device())?;
    let (b, s) = idx.dims2()?;
    // Position (r, c) of the padded batch predicts the item after it.
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    for (r, seq) in seqs.iter().enumerate() {
        let seq = &seq[seq.len() - seq.len().min(max_history + 1)..];
        let n_in = seq.len() - 1;
        for j in 0..n_in {
            rows.push((r * s + (s - n_in + j)) as u32);
            targets.push(seq[j + 1] as u32);
        }
    }
    if rows.is_empty() {
        return Err(InterestError::invalid(
            "no next-item targets in the batch (sequences need >= 2 items)",
        ));
    }
    let items = model.item_vectors(view)?;
    let states = model.sequence_states(&items, &idx, &mask, train)?;
    let h = model.meta.hidden_size();
    let rows = Tensor::from_vec(rows.clone(), rows.len(), model.device())?;
    let users = states.reshape((b * s, h))?.index_select(&rows, 0)?;
    let mut logits =
        (l2_normalise(&users)?.matmul(&l2_normalise(&items)?.t()?)? / model.meta.temperature)?;
    if let Some(lq) = log_q {
        logits = logits.broadcast_add(&lq.to_dtype(logits.dtype())?.unsqueeze(0)?)?;
    }
    match target_weights {
        None => softmax_cross_entropy(&logits, &targets),
        Some(w) => {
            let w: Vec<f32> = targets.iter().map(|&t| w[t as usize]).collect();
            weighted_softmax_cross_entropy(&logits, &targets, &w)
        }
    }
}

/// Per-row `logsumexp(row) - row[target]` `(m,)`.
fn cross_entropy_rows(logits: &Tensor, targets: &[u32]) -> Result<Tensor> {
    let m = targets.len();
    let t = Tensor::from_slice(targets, (m, 1), logits.device())?;
    let picked = logits.gather(&t, 1)?.squeeze(1)?;
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let lse = (logits
        .broadcast_sub(&max)?
        .exp()?
        .sum_keepdim(D::Minus1)?
        .log()?
        + max)?
        .squeeze(1)?;
    Ok((lse - picked)?)
}

/// `sum_j w_j CE_j / sum_j w_j`: the cross-entropy with row weights normalised to mean 1.
pub fn weighted_softmax_cross_entropy(
    logits: &Tensor,
    targets: &[u32],
    weights: &[f32],
) -> Result<Tensor> {
    let total: f32 = weights.iter().sum();
    if weights.len() != targets.len() || !(total.is_finite() && total > 0.0) {
        return Err(InterestError::invalid(
            "target weights must be one positive number per target",
        ));
    }
    let w: Vec<f32> = weights.iter().map(|x| x / total).collect();
    let w = Tensor::from_vec(w, targets.len(), logits.device())?.to_dtype(logits.dtype())?;
    Ok((cross_entropy_rows(logits, targets)? * w)?.sum_all()?)
}

/// Mean of `logsumexp(row) - row[target]`: cross-entropy without materialising one-hot
/// targets (the rows are as wide as the catalogue).
pub fn softmax_cross_entropy(logits: &Tensor, targets: &[u32]) -> Result<Tensor> {
    Ok(cross_entropy_rows(logits, targets)?.mean_all()?)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn tiny_meta(features: ItemFeatures, id_items: usize) -> SequenceMeta {
        let mut enc = BertConfig::tiny(1, 8, 1, 2);
        enc.intermediate_size = 16;
        enc.max_position_embeddings = 4;
        enc.hidden_dropout_prob = 0.0;
        enc.attention_probs_dropout_prob = 0.0;
        enc.initializer_range = 0.3;
        SequenceMeta {
            item_features: features,
            text_dim: if features.uses_text() { 6 } else { 0 },
            encoder: enc,
            temperature: 0.5,
            id_min_count: 1,
            id_items: (0..id_items).map(|i| format!("i{i}")).collect(),
            adaptor_experts: 1,
        }
    }

    #[test]
    fn weighted_cross_entropy_is_the_weighted_mean_of_row_losses() {
        let logits =
            Tensor::from_vec(vec![1.0f64, 2.0, 0.5, -1.0, 0.0, 3.0], (2, 3), &Device::Cpu).unwrap();
        let row = |r: [f64; 3], t: usize| r.iter().map(|x| x.exp()).sum::<f64>().ln() - r[t];
        let (a, b) = (row([1.0, 2.0, 0.5], 2), row([-1.0, 0.0, 3.0], 0));
        let got = weighted_softmax_cross_entropy(&logits, &[2, 0], &[1.0, 3.0])
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!((got - (a + 3.0 * b) / 4.0).abs() < 1e-12, "{got}");
        let plain = softmax_cross_entropy(&logits, &[2, 0]).unwrap();
        let equal = weighted_softmax_cross_entropy(&logits, &[2, 0], &[2.0, 2.0]).unwrap();
        assert_eq!(
            plain.to_scalar::<f64>().unwrap(),
            equal.to_scalar::<f64>().unwrap()
        );
        assert!(weighted_softmax_cross_entropy(&logits, &[2, 0], &[0.0, 0.0]).is_err());
    }

    /// With every expert the same map `W` around the same centre `c`, the gate's weights sum
    /// to 1 and the mixture is the single map `W (t - c)`, whatever the gate says.
    #[test]
    fn a_mixture_of_equal_experts_is_one_linear_map() {
        let dev = Device::Cpu;
        let (k, h, d, n) = (3, 4, 5, 6);
        let seq = |len: usize, a: f64| -> Vec<f64> {
            (0..len).map(|i| ((i as f64 + 1.0) * a).sin()).collect()
        };
        let w = Tensor::from_vec(seq(h * d, 0.7), (h, d), &dev).unwrap();
        let c = Tensor::from_vec(seq(d, 1.3), d, &dev).unwrap();
        let text = Tensor::from_vec(seq(n * d, 0.37), (n, d), &dev).unwrap();
        let mixture = Projection::Mixture {
            experts: Tensor::stack(&[&w, &w, &w], 0).unwrap(),
            centres: Tensor::stack(&[&c, &c, &c], 0).unwrap(),
            gate_weight: Tensor::from_vec(seq(k * d, 2.1), (k, d), &dev).unwrap(),
            gate_bias: Tensor::from_vec(seq(k, 0.5), k, &dev).unwrap(),
        };
        let bias = c
            .unsqueeze(0)
            .unwrap()
            .matmul(&w.t().unwrap())
            .unwrap()
            .squeeze(0)
            .unwrap();
        let linear = Projection::Linear {
            weight: w.clone(),
            bias: bias.neg().unwrap(),
        };
        let got = mixture.forward(&text).unwrap().to_vec2::<f64>().unwrap();
        let want = linear.forward(&text).unwrap().to_vec2::<f64>().unwrap();
        for (g, w) in got.iter().flatten().zip(want.iter().flatten()) {
            assert!((g - w).abs() < 1e-12, "{g} vs {w}");
        }
        // Different experts: the gate now matters, and each row mixes them by its own text.
        let experts = Tensor::from_vec(seq(k * h * d, 0.9), (k, h, d), &dev).unwrap();
        let two = Projection::Mixture {
            experts: experts.clone(),
            centres: Tensor::zeros((k, d), DType::F64, &dev).unwrap(),
            gate_weight: Tensor::from_vec(seq(k * d, 2.1), (k, d), &dev).unwrap(),
            gate_bias: Tensor::zeros(k, DType::F64, &dev).unwrap(),
        };
        let row0 = two.forward(&text).unwrap().to_vec2::<f64>().unwrap()[0].clone();
        let t0 = text.get(0).unwrap().to_vec1::<f64>().unwrap();
        let g = seq(k * d, 2.1);
        let logits: Vec<f64> = (0..k)
            .map(|e| (0..d).map(|j| g[e * d + j] * t0[j]).sum())
            .collect();
        let z: f64 = logits.iter().map(|l| l.exp()).sum();
        let ex = experts.to_vec3::<f64>().unwrap();
        for o in 0..h {
            let want: f64 = (0..k)
                .map(|e| logits[e].exp() / z * (0..d).map(|j| ex[e][o][j] * t0[j]).sum::<f64>())
                .sum();
            assert!((row0[o] - want).abs() < 1e-12, "{o}: {} vs {want}", row0[o]);
        }
    }

    #[test]
    fn left_padding_keeps_the_last_items() {
        let (idx, mask) = left_pad(&[&[1, 2, 3, 4, 5], &[7]], 3, &Device::Cpu).unwrap();
        assert_eq!(
            idx.to_vec2::<u32>().unwrap(),
            vec![vec![3, 4, 5], vec![0, 0, 7]]
        );
        assert_eq!(
            mask.to_vec2::<u32>().unwrap(),
            vec![vec![1, 1, 1], vec![0, 0, 1]]
        );
    }

    #[test]
    fn items_without_an_id_row_get_text_only() {
        let meta = tiny_meta(ItemFeatures::TextId, 2);
        let m = SequenceModel::new(meta, 1, &Device::Cpu).unwrap();
        let ids: Vec<String> = ["i0", "new", "i1"].iter().map(|s| s.to_string()).collect();
        let text: Vec<f32> = (0..18).map(|i| (i as f32 * 0.37).sin()).collect();
        let with_ids = m.item_vectors(&m.view(&ids, Some(&text)).unwrap()).unwrap();
        let text_only = m
            .adaptor
            .as_ref()
            .unwrap()
            .forward(&Tensor::from_slice(&text, (3, 6), &Device::Cpu).unwrap())
            .unwrap();
        let d = (with_ids - text_only)
            .unwrap()
            .abs()
            .unwrap()
            .sum(1)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(d[1], 0.0, "the new item is text only");
        assert!(d[0] > 0.0 && d[2] > 0.0, "{d:?}");
        assert!(m.view(&ids, None).is_err(), "text features need text");
    }
}
