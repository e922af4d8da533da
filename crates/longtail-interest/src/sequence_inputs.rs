//! What the sequence trainer reads and decides before its first update: the training
//! sequences and head/tail labels, what a resumed run inherits, the frozen text embeddings,
//! a new model's settings, the batches of an epoch and the priors of the training softmax.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use candle_core::{Device, Tensor};
use longtail_data::{Label, PreparedDataset};
use longtail_model::Precision;
use longtail_rec::Interactions;
use longtail_train::{epoch_permutation, Event};

use crate::config::TrainInterestConfig;
use crate::error::{InterestError, Result};
use crate::model::{
    cached_item_embeddings, items_hash, CacheStatus, InterestMeta, InterestModel, INTEREST_FILE,
    ITEM_EMBEDDINGS_FILE,
};
use crate::sequence::{ItemFeatures, SequenceMeta};

/// The encoder of `encoder_src` and the catalogue's text embeddings: from the cache `read`
/// when its items hash matches, else computed (and written to `write`).
pub(crate) fn text_embeddings(
    encoder_src: &str,
    items: &[longtail_data::PreparedItem],
    (max_len, template, precision): (usize, &str, Precision),
    (read, write): (Option<&Path>, Option<&Path>),
    batch_size: usize,
    device: &Device,
) -> Result<(InterestModel, Vec<f32>, usize, String, CacheStatus)> {
    let model =
        InterestModel::load(encoder_src, max_len, template, device)?.with_precision(precision)?;
    let hash = items_hash(items, model.tokenizer.max_len(), template, precision);
    let (emb, dim, status) = cached_item_embeddings(read, write, &hash, items.len(), || {
        let encoded = model.encode_items(items)?;
        Ok((model.embed_items(&encoded, batch_size)?, model.dim()))
    })?;
    Ok((model, emb, dim, hash, status))
}

/// The batches of `epoch`, in the order the steps take them: a seeded shuffle, stably sorted
/// by length so a batch holds sequences of similar length (little padding; the median user
/// has 5 training items and the longest 50), cut into batches whose order is shuffled again.
/// A function of `(seed, epoch)` only, so a resumed run picks up the same batches.
pub fn epoch_batches(lens: &[usize], batch_size: usize, seed: u64, epoch: u64) -> Vec<Vec<usize>> {
    let mut order = epoch_permutation(lens.len(), seed, epoch);
    order.sort_by_key(|&i| lens[i]);
    let batches: Vec<&[usize]> = order.chunks(batch_size).collect();
    epoch_permutation(batches.len(), seed ^ 0xba7c4, epoch)
        .into_iter()
        .map(|k| batches[k].to_vec())
        .collect()
}

/// The prior added to the training logits, per item: `b ln q_i` with `q_i` the item's share
/// of the training targets (`counts`), plus, with `groups = (is_tail, g)`, `g ln q(group)` with
/// `q(group)` the share of the targets whose item is in the same group (tail or head). `None`
/// when both weights are 0. Scoring leaves it out, so the served model ranks by the lift over
/// the prior: `g = 1` treats head and tail as equally likely, keeping the order within each.
pub fn training_prior(
    counts: &[f64],
    logq_weight: f64,
    groups: Option<(&[bool], f64)>,
) -> Option<Vec<f32>> {
    let group_weight = groups.map_or(0.0, |(_, g)| g);
    if logq_weight == 0.0 && group_weight == 0.0 {
        return None;
    }
    // Half a target for an empty item or group, so that its log share stays finite.
    let total: f64 = counts.iter().sum::<f64>().max(1.0);
    let group_log = |tail: bool| -> f64 {
        let Some((is_tail, _)) = groups else {
            return 0.0;
        };
        let n: f64 = counts
            .iter()
            .zip(is_tail)
            .filter(|&(_, &t)| t == tail)
            .map(|(&c, _)| c)
            .sum();
        (n.max(0.5) / total).ln()
    };
    let (tail_log, head_log) = (group_log(true), group_log(false));
    Some(
        counts
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let item = if logq_weight != 0.0 {
                    logq_weight * (c.max(0.5) / total).ln()
                } else {
                    0.0
                };
                let group = match groups {
                    Some((is_tail, g)) => g * if is_tail[i] { tail_log } else { head_log },
                    None => 0.0,
                };
                (item + group) as f32
            })
            .collect(),
    )
}

/// The validation split's users, their training sequences and each item's head/tail label.
pub(crate) struct TrainingData {
    pub(crate) items: Vec<longtail_data::PreparedItem>,
    pub(crate) item_ids: Vec<String>,
    pub(crate) inter: Interactions,
    /// Items in the tail by `tail_rule` on training counts, as `eval-rec` labels them (the
    /// prepared labels count validation and test events too).
    pub(crate) tail: Vec<bool>,
    /// Each item's training interactions.
    pub(crate) train_counts: Vec<u64>,
    use_all_interactions: bool,
}

impl TrainingData {
    pub(crate) fn load(cfg: &TrainInterestConfig, device: &Device) -> Result<(Self, String)> {
        let data = PreparedDataset::load(&cfg.data)?;
        let item_ids: Vec<String> = data.items.iter().map(|i| i.item_id.clone()).collect();
        let item_index: HashMap<String, usize> = longtail_rec::interactions::index_of(&item_ids);
        let inter = Interactions::load(
            &cfg.data.join(longtail_data::INTERACTIONS_FILE),
            &item_index,
        )?;
        let summary = format!(
            "on {}: {} items, {} users, {} interactions ({} rows with unknown items, {} repeats \
             skipped)",
            longtail_model::device_name(device),
            data.items.len(),
            inter.users.len(),
            inter.kept(),
            inter.rejected,
            inter.duplicates
        );
        let mut d = Self {
            items: data.items,
            item_ids,
            inter,
            tail: Vec::new(),
            train_counts: Vec::new(),
            use_all_interactions: cfg.use_all_interactions,
        };
        let mut train_counts = vec![0u64; d.item_ids.len()];
        for u in 0..d.inter.seqs.len() {
            for &i in d.sequence(u) {
                train_counts[i] += 1;
            }
        }
        d.tail = longtail_data::label::assign_labels(&d.item_ids, &train_counts, &cfg.tail_rule, 2)
            .labels
            .iter()
            .map(|&l| l == Label::Tail)
            .collect();
        d.train_counts = train_counts;
        Ok((d, summary))
    }

    /// User `u`'s training sequence: the prefix before the held-out targets, or everything
    /// with `use_all_interactions`.
    pub(crate) fn sequence(&self, u: usize) -> &[usize] {
        if self.use_all_interactions {
            &self.inter.seqs[u]
        } else {
            self.inter.train_prefix(u)
        }
    }
}

/// What a resumed run inherits from its checkpoint: the settings, the ID rows and the encoder.
pub(crate) struct Inherited {
    pub(crate) prev: Option<InterestMeta>,
    pub(crate) sequence: Option<SequenceMeta>,
    pub(crate) max_len: usize,
    pub(crate) template: String,
    pub(crate) features: ItemFeatures,
    /// New items of a resumed run must get vectors from the same arithmetic as the old ones.
    pub(crate) precision: Precision,
}

impl Inherited {
    pub(crate) fn read(cfg: &TrainInterestConfig) -> Result<Self> {
        let prev: Option<InterestMeta> = match &cfg.resume_from {
            Some(dir) => Some(longtail_fs::read_json(&dir.join(INTEREST_FILE))?),
            None => None,
        };
        let sequence = match &prev {
            Some(p) => Some(p.sequence.clone().ok_or_else(|| {
                InterestError::invalid(
                    "--resume-from: the checkpoint is a bi-encoder; resume it with \
                     --architecture bi-encoder",
                )
            })?),
            None => None,
        };
        let (max_len, template) = match &prev {
            Some(p) => (p.max_len, p.template.clone()),
            None => (cfg.max_len, cfg.template.clone()),
        };
        Ok(Self {
            features: sequence
                .as_ref()
                .map_or(cfg.item_features, |s| s.item_features),
            precision: prev.as_ref().map_or(cfg.precision, |p| p.precision),
            prev,
            sequence,
            max_len,
            template,
        })
    }

    pub(crate) fn global_step(&self) -> u64 {
        self.prev.as_ref().map_or(0, |p| p.global_step)
    }
}

pub(crate) fn check_settings(cfg: &TrainInterestConfig) -> Result<()> {
    for (ok, what) in [
        (cfg.batch_size >= 1, "batch_size must be >= 1"),
        (cfg.max_history >= 1, "max_history must be >= 1"),
        (cfg.adaptor_experts >= 1, "adaptor_experts must be >= 1"),
        (
            cfg.temperature.is_finite() && cfg.temperature > 0.0,
            "temperature must be a positive number",
        ),
        (
            cfg.logq_weight.is_finite(),
            "logq_weight must be a finite number",
        ),
        (
            cfg.tail_loss_alpha.is_finite() && cfg.tail_loss_alpha >= 0.0,
            "tail_loss_alpha must be a number >= 0",
        ),
        (
            cfg.group_logq_weight.is_finite(),
            "group_logq_weight must be a finite number",
        ),
    ] {
        if !ok {
            return Err(InterestError::invalid(what));
        }
    }
    cfg.tail_rule
        .validate(2)
        .map_err(|e| InterestError::invalid(format!("tail_rule: {e}")))?;
    Ok(())
}

/// The frozen encoder's embedding of every item (`None` for ID-only models), from the cache
/// when it matches.
pub(crate) fn text_of_items(
    cfg: &TrainInterestConfig,
    items: &[longtail_data::PreparedItem],
    inherited: &Inherited,
    device: &Device,
    progress: &mut dyn FnMut(Event<'_>),
) -> Result<Option<TextEmbeddings>> {
    if !inherited.features.uses_text() {
        return Ok(None);
    }
    let t0 = Instant::now();
    let (max_len, template, precision) = (
        inherited.max_len,
        inherited.template.as_str(),
        inherited.precision,
    );
    // A resumed run reads its checkpoint's cache but never writes into that checkpoint.
    let explicit = cfg.embedding_cache.as_deref();
    let resume_cache = cfg
        .resume_from
        .as_ref()
        .map(|d| d.join(ITEM_EMBEDDINGS_FILE));
    let src = match &cfg.resume_from {
        Some(dir) => dir.to_string_lossy().into_owned(),
        None => cfg.model.clone(),
    };
    let cache = (explicit.or(resume_cache.as_deref()), explicit);
    let (encoder, emb, dim, hash, status) = text_embeddings(
        &src,
        items,
        (max_len, template, precision),
        cache,
        cfg.infer_batch_size,
        device,
    )?;
    progress(Event::Message(&format!(
        "text embeddings of {} items ({dim}-d, {precision}{}) in {:.1}s",
        items.len(),
        if status == CacheStatus::Hit {
            ", cached"
        } else {
            ""
        },
        t0.elapsed().as_secs_f64()
    )));
    Ok(Some((encoder, emb, dim, hash)))
}

/// A new model's settings: the encoder shape of the configuration and the items that get an ID
/// embedding (fixed at the first run).
pub(crate) fn new_sequence_meta(
    cfg: &TrainInterestConfig,
    features: ItemFeatures,
    text_dim: usize,
    data: &TrainingData,
) -> SequenceMeta {
    let (item_ids, train_counts) = (&data.item_ids, &data.train_counts);
    // SASRec gives every trained item an ID; text + ID only the frequent ones.
    let min = match features {
        ItemFeatures::Id => 1,
        _ => cfg.id_min_count.max(1),
    };
    let id_items: Vec<String> = if features.uses_id() {
        (0..item_ids.len())
            .filter(|&i| train_counts[i] >= min)
            .map(|i| item_ids[i].clone())
            .collect()
    } else {
        Vec::new()
    };
    let mut enc = longtail_model::BertConfig::tiny(
        1,
        cfg.hidden_size,
        cfg.num_hidden_layers,
        cfg.num_attention_heads,
    );
    enc.intermediate_size = cfg.hidden_size * 4;
    enc.max_position_embeddings = cfg.max_history;
    enc.hidden_dropout_prob = cfg.hidden_dropout_prob;
    enc.attention_probs_dropout_prob = cfg.attention_probs_dropout_prob;
    enc.initializer_range = 0.02;
    enc.layer_norm_eps = 1e-12;
    enc.model_type = None;
    SequenceMeta {
        item_features: features,
        text_dim,
        encoder: enc,
        temperature: cfg.temperature,
        id_min_count: min,
        id_items,
        adaptor_experts: cfg.adaptor_experts,
    }
}

/// The popularity and group priors of the training logits and the per-target loss weights,
/// from each item's count as a training target.
pub(crate) fn target_priors(
    cfg: &TrainInterestConfig,
    data: &TrainingData,
    seqs: &[usize],
    device: &Device,
) -> Result<(Option<Tensor>, Option<Vec<f32>>)> {
    let (item_ids, tail) = (&data.item_ids, &data.tail);
    let mut counts = vec![0f64; item_ids.len()];
    for &u in seqs {
        for &i in &data.sequence(u)[1..] {
            counts[i] += 1.0;
        }
    }
    let target_weights: Option<Vec<f32>> = (cfg.tail_loss_alpha != 0.0).then(|| {
        counts
            .iter()
            .map(|&c| (c + 1.0).powf(-cfg.tail_loss_alpha) as f32)
            .collect()
    });
    let log_q = match training_prior(
        &counts,
        cfg.logq_weight,
        (cfg.group_logq_weight != 0.0).then_some((tail.as_slice(), cfg.group_logq_weight)),
    ) {
        Some(v) => Some(Tensor::from_vec(v, item_ids.len(), device)?),
        None => None,
    };
    Ok((log_q, target_weights))
}

/// The text encoder, the catalogue's embeddings of it, their dimension and hash.
pub(crate) type TextEmbeddings = (InterestModel, Vec<f32>, usize, String);

#[cfg(test)]
mod tests {
    use super::training_prior;

    #[test]
    fn no_prior_without_a_weight() {
        assert!(training_prior(&[3.0, 1.0], 0.0, None).is_none());
        assert!(training_prior(&[3.0, 1.0], 0.0, Some((&[false, true], 0.0))).is_none());
    }

    #[test]
    fn the_item_prior_is_b_log_share_with_half_a_target_for_unseen_items() {
        let p = training_prior(&[6.0, 2.0, 2.0, 0.0], 0.5, None).unwrap();
        let want = [0.6f64, 0.2, 0.2, 0.05].map(|q| (0.5 * q.ln()) as f32);
        assert_eq!(p, want);
    }

    /// One shift per group: the order within each group is untouched, and the tail moves up
    /// against the head by `g ln(q_head / q_tail)`.
    #[test]
    fn the_group_prior_is_one_shift_per_group() {
        let counts = [6.0, 2.0, 1.0, 1.0, 0.0];
        let is_tail = [false, false, true, true, true];
        let p = training_prior(&counts, 0.0, Some((&is_tail, 2.0))).unwrap();
        let head = (2.0 * 0.8f64.ln()) as f32;
        let tail = (2.0 * 0.2f64.ln()) as f32;
        assert_eq!(p, [head, head, tail, tail, tail]);

        // Both priors add up; a group without targets gets half a target's share.
        let both = training_prior(&counts, 1.0, Some((&is_tail, 1.0))).unwrap();
        let item = training_prior(&counts, 1.0, None).unwrap();
        let group = training_prior(&counts, 0.0, Some((&is_tail, 1.0))).unwrap();
        for i in 0..5 {
            assert!((both[i] - item[i] - group[i]).abs() < 1e-6);
        }
        let empty = training_prior(&[3.0, 1.0], 0.0, Some((&[false, false], 1.0))).unwrap();
        assert_eq!(empty, [0.0, 0.0]);
        let no_tail_targets =
            training_prior(&[3.0, 1.0, 0.0], 0.0, Some((&[false, false, true], 1.0))).unwrap();
        assert_eq!(no_tail_targets[2], (0.5f64 / 4.0).ln() as f32);
    }
}
