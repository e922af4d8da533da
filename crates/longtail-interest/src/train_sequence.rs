//! `train-interest --architecture sequence`: trains [`SequenceModel`] on next-item prediction
//! with a softmax over the whole catalogue, early-stopped on validation NDCG@10.
//!
//! * Item text embeddings: the encoder's mean-pooled, L2-normalised embedding of every item,
//!   computed once with the inference kernels (cached in the checkpoint, keyed by a hash of
//!   the catalogue text). The encoder is frozen.
//! * Data: each user's training prefix under leave-last-out (or the whole sequence with
//!   `use_all_interactions`); its last `max_history + 1` items form one training sequence in
//!   which every position predicts the next item.
//! * The checkpoint is written at every validation improvement (weights, optimizer moments,
//!   step, dropout stream, calibration): it is the best model, and resuming from it continues
//!   exactly where that model was.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use longtail_data::{Label, PreparedDataset};
use longtail_model::checkpoint::TRAINER_STATE_FILE;
use longtail_model::{DropoutRngState, Precision};
use longtail_rec::{top_k_excluding, Interactions};
use longtail_train::{
    epoch_permutation, BestMetricConfig, EarlyStopping, EvalCadence, Event, FitSettings, Learner,
    Objective, ParamGroupSpec, SavePolicy, StepDriver, TrainerState,
};
use serde::{Deserialize, Serialize};

use crate::calibrate::Platt;
use crate::config::{optimizer_and_state, TrainInterestConfig, TRAIN_ARGS_FILE};
use crate::error::{InterestError, Result};
use crate::model::{
    cached_item_embeddings, items_hash, save_item_embeddings, CacheStatus, InterestMeta,
    InterestModel, UserRepr, INTEREST_FILE, ITEM_EMBEDDINGS_FILE,
};
use crate::outcome::{TrainInterestOutcome, ValMetrics};
use crate::sequence::{
    next_item_loss, CatalogueView, ItemFeatures, SequenceMeta, SequenceModel, SEQUENCE_WEIGHTS_FILE,
};

/// The dropout stream's state, saved with the checkpoint for an exact resume.
const DROPOUT_STATE_FILE: &str = "sequence_dropout_state.json";

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct DropoutState {
    encoder: DropoutRngState,
}

/// Validation ranking metrics of a sequence model (full ranking, training items excluded).
pub fn validate(
    model: &SequenceModel,
    items: &Tensor,
    inter: &Interactions,
    tail: &[bool],
    limit: usize,
) -> Result<Option<ValMetrics>> {
    let mut users = Vec::new();
    for u in 0..inter.seqs.len() {
        if limit > 0 && users.len() >= limit {
            break;
        }
        if inter.targets(u).is_some() {
            users.push(u);
        }
    }
    if users.is_empty() {
        return Ok(None);
    }
    let items_n = crate::sequence::l2_normalise(items)?;
    let mut m = ValMetrics::default();
    let (mut tail_hits, mut head_hits, mut hits, mut ndcg) = (0usize, 0usize, 0usize, 0f64);
    for chunk in users.chunks(1024) {
        let hists: Vec<&[usize]> = chunk.iter().map(|&u| inter.train_prefix(u)).collect();
        let rows = model.user_vector_rows(items, &hists)?;
        let uv = Tensor::from_vec(rows.concat(), (rows.len(), items_n.dim(1)?), items.device())?;
        let scores = uv
            .matmul(&items_n.to_dtype(candle_core::DType::F32)?.t()?)?
            .to_vec2::<f32>()?;
        for ((&u, hist), s) in chunk.iter().zip(&hists).zip(&scores) {
            let t = inter
                .targets(u)
                .expect("evaluated users have targets")
                .validation;
            let top = top_k_excluding(s, 10, hist);
            let rank = top.iter().position(|&(i, _)| i == t);
            m.users += 1;
            if let Some(r) = rank {
                hits += 1;
                ndcg += 1.0 / (r as f64 + 2.0).log2();
            }
            if tail[t] {
                m.tail_targets += 1;
                tail_hits += usize::from(rank.is_some());
            } else {
                head_hits += usize::from(rank.is_some());
            }
        }
    }
    m.recall_at_10 = hits as f64 / m.users as f64;
    m.ndcg_at_10 = ndcg / m.users as f64;
    m.tail_recall_at_10 = tail_hits as f64 / m.tail_targets.max(1) as f64;
    m.head_recall_at_10 = head_hits as f64 / (m.users - m.tail_targets).max(1) as f64;
    Ok(Some(m))
}

/// Platt calibration of `P(interest)` on validation positives vs sampled unseen items.
fn calibrate(
    model: &SequenceModel,
    items: &Tensor,
    inter: &Interactions,
    negatives: usize,
    seed: u64,
) -> Result<Option<Platt>> {
    let users: Vec<usize> = (0..inter.seqs.len())
        .filter(|&u| inter.targets(u).is_some())
        .collect();
    if users.is_empty() {
        return Ok(None);
    }
    let items_n = crate::sequence::l2_normalise(items)?;
    let hists: Vec<&[usize]> = users.iter().map(|&u| inter.train_prefix(u)).collect();
    let user_rows = model.user_vector_rows(items, &hists)?;
    let item_rows = items_n.to_vec2::<f32>()?;
    Ok(crate::calibrate::fit_calibration_with(
        inter,
        item_rows.len(),
        &|u_pos: usize, item: usize| {
            user_rows[u_pos]
                .iter()
                .zip(&item_rows[item])
                .map(|(a, b)| f64::from(a * b))
                .sum()
        },
        &users,
        negatives,
        seed,
    ))
}

/// The encoder of `encoder_src` and the catalogue's text embeddings: from the cache `read`
/// when its items hash matches, else computed (and written to `write`).
fn text_embeddings(
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
struct TrainingData {
    items: Vec<longtail_data::PreparedItem>,
    item_ids: Vec<String>,
    inter: Interactions,
    /// Items in the tail by `tail_rule` on training counts, as `eval-rec` labels them (the
    /// prepared labels count validation and test events too).
    tail: Vec<bool>,
    /// Each item's training interactions.
    train_counts: Vec<u64>,
    use_all_interactions: bool,
}

impl TrainingData {
    fn load(cfg: &TrainInterestConfig, device: &Device) -> Result<(Self, String)> {
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
    fn sequence(&self, u: usize) -> &[usize] {
        if self.use_all_interactions {
            &self.inter.seqs[u]
        } else {
            self.inter.train_prefix(u)
        }
    }
}

/// What a resumed run inherits from its checkpoint: the settings, the ID rows and the encoder.
struct Inherited {
    prev: Option<InterestMeta>,
    sequence: Option<SequenceMeta>,
    max_len: usize,
    template: String,
    features: ItemFeatures,
    /// New items of a resumed run must get vectors from the same arithmetic as the old ones.
    precision: Precision,
}

impl Inherited {
    fn read(cfg: &TrainInterestConfig) -> Result<Self> {
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

    fn global_step(&self) -> u64 {
        self.prev.as_ref().map_or(0, |p| p.global_step)
    }
}

fn check_settings(cfg: &TrainInterestConfig) -> Result<()> {
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
fn text_of_items(
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
fn new_sequence_meta(
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
fn target_priors(
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

pub(crate) fn train_sequence(
    cfg: &TrainInterestConfig,
    device: &Device,
    progress: &mut dyn FnMut(Event<'_>),
) -> Result<TrainInterestOutcome> {
    let start = Instant::now();
    check_settings(cfg)?;
    let (data, summary) = TrainingData::load(cfg, device)?;
    progress(Event::Message(&summary));
    let inherited = Inherited::read(cfg)?;
    let text = text_of_items(cfg, &data.items, &inherited, device, progress)?;
    let meta = match &inherited.sequence {
        Some(s) => s.clone(),
        None => new_sequence_meta(
            cfg,
            inherited.features,
            text.as_ref().map_or(0, |t| t.2),
            &data,
        ),
    };
    progress(Event::Message(&format!(
        "sequence model: item features {}, {} items with an ID embedding, width {}, {} layers, \
         {} heads, history {}",
        meta.item_features,
        meta.id_items.len(),
        meta.hidden_size(),
        meta.encoder.num_hidden_layers,
        meta.encoder.num_attention_heads,
        meta.max_history()
    )));
    let model = match &cfg.resume_from {
        Some(dir) => SequenceModel::load(meta.clone(), &dir.join(SEQUENCE_WEIGHTS_FILE), device)?,
        None => SequenceModel::new(meta.clone(), cfg.seed, device)?,
    };
    let view = model.view(&data.item_ids, text.as_ref().map(|t| t.1.as_slice()))?;
    let step0 = inherited.global_step();
    if let Some(dir) = &cfg.resume_from {
        if let Ok(s) = longtail_fs::read_json::<DropoutState>(&dir.join(DROPOUT_STATE_FILE)) {
            model.encoder().set_dropout_rng_state(s.encoder);
        }
    }

    // Training sequences.
    let seqs: Vec<usize> = (0..data.inter.seqs.len())
        .filter(|&u| data.sequence(u).len() >= 2)
        .collect();
    if seqs.is_empty() {
        return Err(InterestError::invalid(
            "no training sequences (every user needs >= 2 training interactions)",
        ));
    }
    let (driver, state) = optimizer_and_state(
        cfg,
        longtail_model::named_vars(&model.varmap),
        &ParamGroupSpec::new(cfg.weight_decay),
        step0,
    )?;

    let evaluate = !cfg.use_all_interactions && cfg.eval_every > 0;
    let initial = if evaluate {
        let items = model.item_vectors(&view)?;
        validate(&model, &items, &data.inter, &data.tail, cfg.eval_users)?
    } else {
        None
    };
    if let Some(m) = &initial {
        progress(Event::Message(&format!(
            "step {step0}: validation NDCG@10 {:.4}, Recall@10 {:.4} (tail {:.4}, head {:.4})",
            m.ndcg_at_10, m.recall_at_10, m.tail_recall_at_10, m.head_recall_at_10
        )));
    }

    let prev = inherited.prev.as_ref();
    let calibration_prev = prev.and_then(|p| p.calibration);
    let base_meta = InterestMeta {
        format_version: 1,
        architecture: crate::model::Architecture::Sequence,
        init_model: prev.map_or(cfg.model.clone(), |p| p.init_model.clone()),
        max_len: text
            .as_ref()
            .map_or(inherited.max_len, |t| t.0.tokenizer.max_len()),
        template: inherited.template.clone(),
        pooling: "mean".into(),
        temperature: meta.temperature,
        logq_correction: false,
        user: UserRepr {
            history_len: meta.max_history(),
            recency_decay: 1.0,
        },
        frozen_layers: 0,
        calibration: calibration_prev,
        calibration_negatives: cfg.calibration_negatives,
        global_step: step0,
        sequence: Some(meta.clone()),
        precision: inherited.precision,
    };
    let (log_q, target_weights) = target_priors(cfg, &data, &seqs, device)?;
    let sequences: Vec<&[usize]> = seqs.iter().map(|&u| data.sequence(u)).collect();
    let seq_lens: Vec<usize> = sequences
        .iter()
        .map(|s| s.len().min(meta.max_history() + 1))
        .collect();
    let mut objective = NextItem {
        cfg,
        model: &model,
        view: &view,
        inter: &data.inter,
        tail: &data.tail,
        sequences,
        seq_lens,
        log_q,
        target_weights,
        evaluations: Vec::new(),
        evaluated_items: None,
        text: text.as_ref(),
        base_meta,
        calibration_prev,
    };
    // The first evaluation always counts as an improvement: a fresh model's starting point is
    // random, and a resumed run trains on new data, where the old score is no bar.
    let settings = FitSettings {
        max_steps: step0 + cfg.max_steps,
        eval: if evaluate {
            EvalCadence::Steps(cfg.eval_every)
        } else {
            EvalCadence::No
        },
        save: SavePolicy::Best,
        best_metric: Some(BestMetricConfig::new("ndcg_at_10")),
        early_stopping: if cfg.early_stopping_patience > 0 {
            let patience = u32::try_from(cfg.early_stopping_patience)
                .map_err(|_| InterestError::invalid("early_stopping_patience is too large"))?;
            Some(EarlyStopping::new(patience, 0.0)?)
        } else {
            None
        },
        ..Default::default()
    };
    let mut learner = Learner::new(driver, state, settings)?;
    let fit = learner.fit(&mut objective, progress)?;
    let best_step = learner.state().best_global_step;
    let best = objective
        .evaluations
        .iter()
        .find(|(step, _)| Some(*step) == best_step)
        .map(|(_, m)| m.clone());
    let calibration =
        longtail_fs::read_json::<InterestMeta>(&cfg.out.join(INTEREST_FILE))?.calibration;
    progress(Event::Message(&format!(
        "checkpoint: step {} ({:.0}s of training)",
        fit.last_checkpoint.as_ref().map_or(step0, |(s, _)| *s),
        fit.time.as_secs_f64()
    )));
    Ok(TrainInterestOutcome {
        steps: fit.updates,
        seconds: start.elapsed().as_secs_f64(),
        train_pairs: objective.sequences.iter().map(|s| s.len() - 1).sum(),
        initial,
        last: best,
        calibration,
        out: cfg.out.clone(),
        phase_times: learner.driver().phase_times(),
    })
}

/// The text encoder, the catalogue's embeddings of it, their dimension and hash.
type TextEmbeddings = (InterestModel, Vec<f32>, usize, String);

/// The sequence model as the `Learner`'s objective: a batch is a set of users' sequences
/// (every position predicts the next item), the evaluation full-ranking NDCG@10 on
/// validation, the checkpoint the best model so far.
struct NextItem<'a> {
    cfg: &'a TrainInterestConfig,
    model: &'a SequenceModel,
    view: &'a CatalogueView,
    inter: &'a Interactions,
    tail: &'a [bool],
    /// The training sequences, and their lengths as the model reads them.
    sequences: Vec<&'a [usize]>,
    seq_lens: Vec<usize>,
    log_q: Option<Tensor>,
    target_weights: Option<Vec<f32>>,
    /// Every evaluation of this run, by step.
    evaluations: Vec<(u64, ValMetrics)>,
    /// The item vectors of the latest evaluation and its step: the calibration of a checkpoint
    /// written right after it reuses them.
    evaluated_items: Option<(u64, Tensor)>,
    text: Option<&'a TextEmbeddings>,
    base_meta: InterestMeta,
    calibration_prev: Option<Platt>,
}

impl Objective for NextItem<'_> {
    type Batch = Vec<usize>;
    type Error = InterestError;

    fn num_batches(&self) -> usize {
        self.sequences.len().div_ceil(self.cfg.batch_size)
    }

    fn epoch_batches(&mut self, epoch: u64) -> Result<Vec<Vec<usize>>> {
        Ok(epoch_batches(
            &self.seq_lens,
            self.cfg.batch_size,
            self.cfg.seed,
            epoch,
        ))
    }

    fn loss(&mut self, chunk: &Vec<usize>) -> Result<Tensor> {
        let batch: Vec<&[usize]> = chunk.iter().map(|&i| self.sequences[i]).collect();
        next_item_loss(
            self.model,
            self.view,
            &batch,
            self.log_q.as_ref(),
            self.target_weights.as_deref(),
            true,
        )
    }

    fn count(&self, chunk: &Vec<usize>) -> (u64, u64) {
        (chunk.len() as u64, 0)
    }

    fn evaluate(&mut self, state: &TrainerState) -> Result<Option<BTreeMap<String, f64>>> {
        let items = self.model.item_vectors(self.view)?;
        let Some(m) = validate(
            self.model,
            &items,
            self.inter,
            self.tail,
            self.cfg.eval_users,
        )?
        else {
            return Ok(None);
        };
        let map = m.to_eval_map(true);
        self.evaluated_items = Some((state.global_step, items));
        self.evaluations.push((state.global_step, m));
        Ok(Some(map))
    }

    fn save(&mut self, driver: &StepDriver, state: &mut TrainerState) -> Result<PathBuf> {
        let cfg = self.cfg;
        let calibration = if cfg.use_all_interactions {
            self.calibration_prev
        } else {
            let items = match self.evaluated_items.take() {
                Some((step, items)) if step == state.global_step => items,
                _ => self.model.item_vectors(self.view)?,
            };
            calibrate(
                self.model,
                &items,
                self.inter,
                cfg.calibration_negatives,
                cfg.seed,
            )?
        };
        let mut m = self.base_meta.clone();
        m.global_step = state.global_step;
        m.calibration = calibration;
        let dropout = DropoutState {
            encoder: self.model.encoder().dropout_rng_state(),
        };
        if let Some(parent) = cfg.out.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| InterestError::io(parent, e))?;
        }
        let (model, text) = (self.model, self.text);
        longtail_fs::write_dir_atomic(&cfg.out, |tmp| -> Result<()> {
            if let Some((encoder, emb, dim, hash)) = text {
                encoder.save_weights(tmp)?;
                save_item_embeddings(&tmp.join(ITEM_EMBEDDINGS_FILE), emb, *dim, hash)?;
            }
            model.save(&tmp.join(SEQUENCE_WEIGHTS_FILE))?;
            longtail_fs::write_json_atomic(&tmp.join(INTEREST_FILE), &m)?;
            longtail_fs::write_json_atomic(&tmp.join(TRAIN_ARGS_FILE), cfg)?;
            longtail_fs::write_json_atomic(&tmp.join(DROPOUT_STATE_FILE), &dropout)?;
            driver.save_state(tmp)?;
            state.save(&tmp.join(TRAINER_STATE_FILE))?;
            Ok(())
        })?;
        Ok(cfg.out.clone())
    }
}

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
