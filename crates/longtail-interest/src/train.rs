//! `train-interest`: fine-tunes the top layers of the encoder as a bi-encoder on next-item
//! pairs with in-batch negatives (InfoNCE + logQ), then fits the Platt calibration on
//! validation pairs and writes a checkpoint directory.
//!
//! Cost model (CPU): the embeddings and the bottom `frozen_layers` layers are computed once for
//! every item (inference kernels) and cached; a training step runs only the top layers on the
//! batch's distinct target items, forward and backward. User vectors come from a cache of all
//! item embeddings (no gradient), recomputed from the bottom cache every `refresh_every` steps.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use longtail_data::{Label, PreparedDataset};
use longtail_model::checkpoint::{OPTIMIZER_JSON_FILE, TRAINER_STATE_FILE};
use longtail_model::{DeviceSpec, ModelError, Precision};
use longtail_rec::{top_k_excluding as top_k, Interactions};
use longtail_train::{
    epoch_permutation, AdamW, AdamWConfig, LogEntry, LrSchedule, ParamGroupSpec, PhaseTimes,
    SchedulerType, StepDriver, TrainerState,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::calibrate::Platt;
use crate::error::{InterestError, Result};
use crate::index::dot_all;
use crate::loss::info_nce_logq;
use crate::model::{
    items_hash, save_item_embeddings, Architecture, InterestMeta, InterestModel, UserRepr,
    INTEREST_FILE, ITEM_EMBEDDINGS_FILE,
};
use crate::sequence::ItemFeatures;

pub const TRAIN_ARGS_FILE: &str = "train_interest_args.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainInterestConfig {
    /// `sequence` (learned user model over frozen text embeddings) or `bi-encoder`.
    pub architecture: Architecture,
    pub data: PathBuf,
    /// Start model: a model directory / hub id (e.g. base MiniLM or a `train` checkpoint).
    pub model: String,
    pub out: PathBuf,
    /// Continue from an interest checkpoint (weights, optimizer moments, step count, user
    /// representation); `model` is then ignored.
    pub resume_from: Option<PathBuf>,
    pub max_len: usize,
    pub template: String,
    pub batch_size: usize,
    pub max_steps: u64,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub warmup_ratio: f64,
    pub lr_scheduler_type: String,
    pub max_grad_norm: f64,
    pub temperature: f64,
    pub logq_correction: bool,
    pub history_len: usize,
    pub recency_decay: f64,
    /// Embeddings + this many bottom layers are frozen (and cached).
    pub frozen_layers: usize,
    pub refresh_every: u64,
    pub eval_every: u64,
    /// Validation users scored at each evaluation (0 = all).
    pub eval_users: usize,
    pub calibration_negatives: usize,
    /// Train on every interaction (no held-out targets; for deployment re-fine-tuning).
    pub use_all_interactions: bool,
    pub infer_batch_size: usize,
    pub seed: u64,
    // --- sequence architecture ---
    /// What an item vector is made of (text, ID, or both).
    pub item_features: ItemFeatures,
    /// Items with at least this many training interactions get an ID embedding (`text-id`).
    pub id_min_count: u64,
    /// Projections in the text adaptor: 1 = one linear map, k > 1 = a mixture of k maps gated
    /// on the text (UniSRec's MoE adaptor).
    #[serde(default = "crate::sequence::one_expert")]
    pub adaptor_experts: usize,
    /// Width of the item vectors and the causal transformer.
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    /// Most recent history items the transformer reads.
    pub max_history: usize,
    pub hidden_dropout_prob: f64,
    pub attention_probs_dropout_prob: f64,
    /// Stop after this many evaluations without a better validation NDCG@10 (0 = never).
    pub early_stopping_patience: u64,
    /// Text embedding cache file: used when its catalogue hash matches, else written.
    pub embedding_cache: Option<PathBuf>,
    /// Arithmetic of the frozen encoder's item-embedding pass (sequence architecture only; a
    /// resumed run keeps its checkpoint's).
    pub precision: Precision,
    /// Weight `b` of the popularity prior of the training softmax:
    /// `logits = cos / T + b log q` with `q` the item's share of training targets; 0 = plain.
    pub logq_weight: f64,
    /// Exponent `a` of per-target loss weights `(count + 1)^-a` (count: the item's training
    /// targets), normalised to mean 1 per batch: 0 = every target counts the same; larger
    /// values weight rare next items up.
    #[serde(default)]
    pub tail_loss_alpha: f64,
    /// Weight `g` of a head/tail group prior in the training softmax: `logits += g log
    /// q(group)`, `q` the share of training targets in the item's group (tail or head by
    /// `tail_rule` on training counts). Like `logq_weight` but one shift per group, so the
    /// order within the head and within the tail is kept; 1 = the group-balanced posterior.
    #[serde(default)]
    pub group_logq_weight: f64,
    /// Head/tail rule on training interaction counts, as `eval-rec` applies it (default
    /// `pareto:0.8`): the groups of `group_logq_weight` and the tail of the validation
    /// tail-item recall the sequence trainer prints.
    #[serde(default)]
    pub tail_rule: longtail_data::TailRule,
    /// Where the models run (`auto`, `cpu`, `cuda:N`); a resume may use another device.
    #[serde(default)]
    pub device: DeviceSpec,
    /// Time each phase of the updates (forward, backward, clip, AdamW), synchronising the
    /// device after each; reported in [`TrainInterestOutcome::phase_times`]. A diagnostic.
    #[serde(default)]
    pub phase_times: bool,
}

impl Default for TrainInterestConfig {
    fn default() -> Self {
        Self {
            architecture: Architecture::Sequence,
            data: PathBuf::new(),
            model: String::new(),
            out: PathBuf::new(),
            resume_from: None,
            max_len: 48,
            template: longtail_tokenize::CATALOGUE_TEMPLATE.into(),
            batch_size: 128,
            max_steps: 2000,
            learning_rate: 1e-3,
            weight_decay: 0.01,
            warmup_ratio: 0.02,
            lr_scheduler_type: "linear".into(),
            max_grad_norm: 1.0,
            temperature: 0.07,
            logq_correction: true,
            history_len: 1,
            recency_decay: 1.0,
            frozen_layers: 4,
            refresh_every: 100,
            eval_every: 40,
            eval_users: 0,
            calibration_negatives: 20,
            use_all_interactions: false,
            infer_batch_size: 64,
            seed: 42,
            item_features: ItemFeatures::TextId,
            id_min_count: 10,
            adaptor_experts: 1,
            hidden_size: 128,
            num_hidden_layers: 1,
            num_attention_heads: 2,
            max_history: 50,
            hidden_dropout_prob: 0.2,
            attention_probs_dropout_prob: 0.2,
            early_stopping_patience: 5,
            embedding_cache: None,
            precision: Precision::Fp32,
            logq_weight: 0.0,
            tail_loss_alpha: 0.0,
            group_logq_weight: 0.0,
            tail_rule: longtail_data::TailRule::default(),
            device: DeviceSpec::default(),
            phase_times: false,
        }
    }
}

/// Progress events for the command's display.
pub enum Event<'a> {
    Message(&'a str),
    /// `samples`: training examples (pairs or sequences) seen by this run so far.
    Step {
        step: u64,
        max: u64,
        loss: f64,
        samples: u64,
    },
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ValMetrics {
    pub users: usize,
    pub recall_at_10: f64,
    pub tail_recall_at_10: f64,
    pub tail_targets: usize,
    /// Measured by the sequence trainer only (0 for the bi-encoder).
    pub ndcg_at_10: f64,
    pub head_recall_at_10: f64,
}

#[derive(Debug, Clone)]
pub struct TrainInterestOutcome {
    pub steps: u64,
    pub seconds: f64,
    pub train_pairs: usize,
    pub initial: Option<ValMetrics>,
    pub last: Option<ValMetrics>,
    pub calibration: Option<Platt>,
    pub out: PathBuf,
    /// Per-phase wall time of this run's updates, with `phase_times` on.
    pub phase_times: Option<PhaseTimes>,
}

/// Validation Recall@10 (full ranking, training items excluded) for up to `limit` users.
pub fn validation_recall(
    inter: &Interactions,
    emb: &[f32],
    dim: usize,
    repr: &UserRepr,
    tail: &[bool],
    limit: usize,
) -> Option<ValMetrics> {
    let mut m = ValMetrics::default();
    let mut tail_hits = 0usize;
    let mut hits = 0usize;
    for u in 0..inter.seqs.len() {
        if limit > 0 && m.users >= limit {
            break;
        }
        let Some(t) = inter.targets(u) else { continue };
        let hist = inter.train_prefix(u);
        let Some(uv) = repr.user_vector(emb, dim, hist) else {
            continue;
        };
        let scores = dot_all(emb, dim, &uv);
        let hit = top_k(&scores, 10, hist)
            .iter()
            .any(|&(i, _)| i == t.validation);
        m.users += 1;
        hits += usize::from(hit);
        if tail[t.validation] {
            m.tail_targets += 1;
            tail_hits += usize::from(hit);
        }
    }
    if m.users == 0 {
        return None;
    }
    m.recall_at_10 = hits as f64 / m.users as f64;
    m.tail_recall_at_10 = tail_hits as f64 / m.tail_targets.max(1) as f64;
    Some(m)
}

fn frozen_rule(frozen_layers: usize) -> impl Fn(&str) -> bool + 'static {
    move |name: &str| {
        if name.starts_with("embeddings.") || name.starts_with("pooler.") {
            return true;
        }
        name.strip_prefix("encoder.layer.")
            .and_then(|rest| rest.split('.').next())
            .and_then(|i| i.parse::<usize>().ok())
            .is_some_and(|i| i < frozen_layers)
    }
}

/// Fits the Platt calibration on validation positives vs `negatives` sampled unseen items per
/// user.
pub fn fit_calibration(
    inter: &Interactions,
    emb: &[f32],
    dim: usize,
    repr: &UserRepr,
    negatives: usize,
    seed: u64,
) -> Option<Platt> {
    let mut users = Vec::new();
    let mut vectors = Vec::new();
    for u in 0..inter.seqs.len() {
        if inter.targets(u).is_none() {
            continue;
        }
        if let Some(uv) = repr.user_vector(emb, dim, inter.train_prefix(u)) {
            users.push(u);
            vectors.push(uv);
        }
    }
    let score = |k: usize, i: usize| -> f64 {
        emb[i * dim..(i + 1) * dim]
            .iter()
            .zip(&vectors[k])
            .map(|(a, b)| f64::from(a * b))
            .sum()
    };
    fit_calibration_with(inter, emb.len() / dim, &score, &users, negatives, seed)
}

/// Platt calibration of `score(k, item)` (the similarity of `users[k]` to `item`): each user's
/// validation item is a positive, `negatives` random items they never interacted with are
/// negatives.
pub fn fit_calibration_with(
    inter: &Interactions,
    n_items: usize,
    score: &dyn Fn(usize, usize) -> f64,
    users: &[usize],
    negatives: usize,
    seed: u64,
) -> Option<Platt> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xca11b);
    let (mut scores, mut labels) = (Vec::new(), Vec::new());
    for (k, &u) in users.iter().enumerate() {
        let Some(t) = inter.targets(u) else { continue };
        scores.push(score(k, t.validation));
        labels.push(true);
        let seen = &inter.seqs[u];
        let mut drawn = 0;
        let mut tries = 0;
        while drawn < negatives && tries < negatives * 20 {
            tries += 1;
            let j = rng.random_range(0..n_items);
            if seen.contains(&j) {
                continue;
            }
            scores.push(score(k, j));
            labels.push(false);
            drawn += 1;
        }
    }
    Platt::fit(&scores, &labels).ok()
}

/// Trains the architecture `cfg.architecture` (a resumed run keeps its checkpoint's).
pub fn train_interest(
    cfg: &TrainInterestConfig,
    progress: &mut dyn FnMut(Event<'_>),
) -> Result<TrainInterestOutcome> {
    // One run per --out: two would replace each other's checkpoints.
    let _lock = longtail_fs::OutputLock::acquire(&cfg.out)?;
    let architecture = match &cfg.resume_from {
        Some(dir) => longtail_fs::read_json::<InterestMeta>(&dir.join(INTEREST_FILE))?.architecture,
        None => cfg.architecture,
    };
    let device = cfg.device.resolve().map_err(ModelError::from)?;
    match architecture {
        Architecture::Sequence => crate::train_sequence::train_sequence(cfg, &device, progress),
        Architecture::BiEncoder => train_bi_encoder(cfg, &device, progress),
    }
}

fn train_bi_encoder(
    cfg: &TrainInterestConfig,
    device: &Device,
    progress: &mut dyn FnMut(Event<'_>),
) -> Result<TrainInterestOutcome> {
    if cfg.precision != Precision::Fp32 {
        return Err(InterestError::invalid(
            "--precision int8 / bf16 is for the sequence architecture's frozen item pass; the \
             bi-encoder trains in fp32",
        ));
    }
    let start = Instant::now();
    if cfg.batch_size < 2 {
        return Err(InterestError::invalid(
            "batch_size must be >= 2 (in-batch negatives)",
        ));
    }
    let data = PreparedDataset::load(&cfg.data)?;
    let item_index: HashMap<String, usize> = data
        .items
        .iter()
        .enumerate()
        .map(|(i, it)| (it.item_id.clone(), i))
        .collect();
    let inter_path = cfg.data.join(longtail_data::INTERACTIONS_FILE);
    let inter = Interactions::load(&inter_path, &item_index)?;
    progress(Event::Message(&format!(
        "{} items, {} users, {} interactions ({} rows with unknown items, {} repeats skipped)",
        data.items.len(),
        inter.users.len(),
        inter.rows - inter.rejected - inter.duplicates,
        inter.rejected,
        inter.duplicates
    )));
    let tail: Vec<bool> = data.items.iter().map(|i| i.label == Label::Tail).collect();

    // Model, and what a resumed run inherits from its checkpoint.
    let prev: Option<InterestMeta> = match &cfg.resume_from {
        Some(dir) => Some(longtail_fs::read_json(&dir.join(INTEREST_FILE))?),
        None => None,
    };
    let (model_src, max_len, template, repr, frozen_layers, step0) = match (&cfg.resume_from, &prev)
    {
        (Some(dir), Some(p)) => (
            dir.to_string_lossy().into_owned(),
            p.max_len,
            p.template.clone(),
            p.user.clone(),
            p.frozen_layers,
            p.global_step,
        ),
        _ => (
            cfg.model.clone(),
            cfg.max_len,
            cfg.template.clone(),
            UserRepr {
                history_len: cfg.history_len,
                recency_decay: cfg.recency_decay,
            },
            cfg.frozen_layers,
            0,
        ),
    };
    let model = InterestModel::load(&model_src, max_len, &template, device)?;
    let n_layers = model.num_layers();
    if frozen_layers >= n_layers {
        return Err(InterestError::invalid(format!(
            "frozen_layers {frozen_layers} leaves nothing to train in a {n_layers}-layer model"
        )));
    }
    let dim = model.dim();

    let t0 = Instant::now();
    let encoded = model.encode_items(&data.items)?;
    let bottom = model.bottom_states(&encoded, frozen_layers, cfg.infer_batch_size)?;
    let mut emb = model.embed_all_from_bottom(&bottom, frozen_layers, cfg.infer_batch_size)?;
    progress(Event::Message(&format!(
        "encoded {} items (frozen bottom: embeddings + {frozen_layers} layers) in {:.1}s",
        data.items.len(),
        t0.elapsed().as_secs_f64()
    )));
    let initial = if cfg.use_all_interactions {
        None
    } else {
        validation_recall(&inter, &emb, dim, &repr, &tail, cfg.eval_users)
    };
    if let Some(m) = &initial {
        progress(Event::Message(&format!(
            "step {step0}: validation Recall@10 {:.4} (tail {:.4}, {} users)",
            m.recall_at_10, m.tail_recall_at_10, m.users
        )));
    }

    // Training pairs and the in-batch sampling distribution q (targets' frequencies).
    let pairs = inter.next_item_pairs(cfg.use_all_interactions);
    if pairs.is_empty() {
        return Err(InterestError::invalid(
            "no next-item training pairs (every user needs >= 2 training interactions)",
        ));
    }
    let mut counts = vec![0f64; data.items.len()];
    for &(u, p) in &pairs {
        counts[inter.seqs[u][p]] += 1.0;
    }
    let total: f64 = counts.iter().sum();
    let log_q: Vec<f32> = counts
        .iter()
        .map(|&c| {
            if cfg.logq_correction {
                ((c.max(0.5)) / total).ln() as f32
            } else {
                0.0
            }
        })
        .collect();

    // Optimizer over the top layers.
    let spec = ParamGroupSpec::new(cfg.weight_decay).frozen(frozen_rule(frozen_layers));
    let (mut driver, mut state) =
        driver_and_state(cfg, longtail_model::named_vars(&model.varmap), &spec, step0)?;

    let mut last = initial.clone();
    let per_epoch = pairs.len() / cfg.batch_size;
    let mut step = 0u64;
    let t_train = Instant::now();
    'outer: for epoch in 0.. {
        let perm = epoch_permutation(pairs.len(), cfg.seed, epoch);
        for b in 0..per_epoch.max(1) {
            if step >= cfg.max_steps {
                break 'outer;
            }
            let chunk = &perm[b * cfg.batch_size..((b + 1) * cfg.batch_size).min(perm.len())];
            // Users (no gradient) and the distinct targets (one column each).
            let mut user_rows = Vec::with_capacity(chunk.len() * dim);
            let mut cols: Vec<usize> = Vec::new();
            let mut col_of: HashMap<usize, u32> = HashMap::new();
            let mut targets = Vec::with_capacity(chunk.len());
            for &pi in chunk {
                let (u, p) = pairs[pi];
                let hist = &inter.seqs[u][..p];
                let uv = repr
                    .user_vector(&emb, dim, hist)
                    .expect("p >= 1 so the history is non-empty");
                user_rows.extend(uv);
                let item = inter.seqs[u][p];
                let c = *col_of.entry(item).or_insert_with(|| {
                    cols.push(item);
                    (cols.len() - 1) as u32
                });
                targets.push(c);
            }
            let users = Tensor::from_vec(user_rows, (chunk.len(), dim), device)?;
            let lq: Vec<f32> = cols.iter().map(|&i| log_q[i]).collect();
            let lq = Tensor::from_vec(lq, cols.len(), device)?;
            let report = driver.step(1, |_| -> Result<Tensor> {
                let items = model.embed_from_bottom(&bottom, &cols, frozen_layers, true)?;
                info_nce_logq(&users, &items, &targets, &lq, cfg.temperature)
            })?;
            let value = report.loss;
            step += 1;
            state.global_step = report.step;
            state.num_samples_seen += chunk.len() as u64;
            state.epoch = epoch as f64 + (b + 1) as f64 / per_epoch.max(1) as f64;
            progress(Event::Step {
                step,
                max: cfg.max_steps,
                loss: value,
                samples: step * cfg.batch_size as u64,
            });
            if step.is_multiple_of(10) {
                progress(Event::Message(&format!(
                    "step {}: loss {value:.4}, {:.1}s/step",
                    state.global_step,
                    t_train.elapsed().as_secs_f64() / step as f64
                )));
            }
            let mut entry = LogEntry::new(state.global_step, state.epoch)
                .with("loss", value)
                .with("learning_rate", report.learning_rate);
            let refresh = step.is_multiple_of(cfg.refresh_every.max(1)) || step == cfg.max_steps;
            if refresh {
                emb = model.embed_all_from_bottom(&bottom, frozen_layers, cfg.infer_batch_size)?;
            }
            let eval_now = cfg.eval_every > 0
                && (step.is_multiple_of(cfg.eval_every) || step == cfg.max_steps);
            if eval_now && !cfg.use_all_interactions {
                if !refresh {
                    emb = model.embed_all_from_bottom(
                        &bottom,
                        frozen_layers,
                        cfg.infer_batch_size,
                    )?;
                }
                last = validation_recall(&inter, &emb, dim, &repr, &tail, cfg.eval_users);
                if let Some(m) = &last {
                    entry = entry
                        .with("eval_recall_at_10", m.recall_at_10)
                        .with("eval_tail_recall_at_10", m.tail_recall_at_10);
                    progress(Event::Message(&format!(
                        "step {}: loss {value:.4}, validation Recall@10 {:.4} (tail {:.4}), {:.0}s",
                        state.global_step,
                        m.recall_at_10,
                        m.tail_recall_at_10,
                        t_train.elapsed().as_secs_f64()
                    )));
                }
            }
            state.log(entry);
        }
    }
    // Final embeddings: the last step always refreshes `emb` from the bottom cache, which is
    // what `recommend` would compute with the fused kernels (equal to ~1e-5), so no second
    // full encoding pass is needed. Without any step, `emb` is the initial encoding.
    let _ = &encoded;
    let calibration = if cfg.use_all_interactions {
        prev.as_ref().and_then(|p| p.calibration)
    } else {
        fit_calibration(
            &inter,
            &emb,
            dim,
            &repr,
            cfg.calibration_negatives,
            cfg.seed,
        )
    };
    let meta = InterestMeta {
        format_version: 1,
        architecture: Architecture::BiEncoder,
        init_model: prev
            .as_ref()
            .map_or(cfg.model.clone(), |p| p.init_model.clone()),
        max_len: model.tokenizer.max_len(),
        template: template.clone(),
        pooling: "mean".into(),
        temperature: cfg.temperature,
        logq_correction: cfg.logq_correction,
        user: repr.clone(),
        frozen_layers,
        calibration,
        calibration_negatives: cfg.calibration_negatives,
        global_step: state.global_step,
        sequence: None,
        precision: Precision::Fp32,
    };
    let hash = items_hash(&data.items, meta.max_len, &meta.template, meta.precision);
    write_checkpoint(
        &cfg.out, &model, &driver, &state, &meta, cfg, &emb, dim, &hash,
    )?;
    Ok(TrainInterestOutcome {
        steps: step,
        seconds: start.elapsed().as_secs_f64(),
        train_pairs: pairs.len(),
        initial,
        last,
        calibration,
        out: cfg.out.clone(),
        phase_times: driver.phase_times(),
    })
}

/// AdamW over `named` parameters (grouped by `spec`), the learning-rate schedule and the
/// trainer state of a run that starts at `step0`: one schedule over the checkpoint's updates
/// and this run's, so a resumed run continues it (no second warmup from 0), with the optimizer
/// moments and the log history of `cfg.resume_from` when it has them.
pub(crate) fn driver_and_state(
    cfg: &TrainInterestConfig,
    named: Vec<(String, candle_core::Var)>,
    spec: &ParamGroupSpec,
    step0: u64,
) -> Result<(StepDriver, TrainerState)> {
    let adam_cfg = AdamWConfig {
        learning_rate: cfg.learning_rate,
        weight_decay: cfg.weight_decay,
        ..Default::default()
    };
    let opt = AdamW::with_spec(named, adam_cfg, spec)?;
    let scheduler: SchedulerType = cfg.lr_scheduler_type.parse()?;
    let schedule = LrSchedule::from_args(
        scheduler,
        cfg.learning_rate,
        step0 + cfg.max_steps,
        0,
        cfg.warmup_ratio,
    )?;
    let mut driver = StepDriver::new(opt, schedule, cfg.max_grad_norm);
    match &cfg.resume_from {
        Some(dir) if dir.join(OPTIMIZER_JSON_FILE).is_file() => driver.restore(dir, step0)?,
        _ => driver = driver.starting_at(step0),
    }
    if cfg.phase_times {
        driver = driver.time_phases();
    }
    let mut state = TrainerState {
        max_steps: step0 + cfg.max_steps,
        train_batch_size: Some(cfg.batch_size as u64),
        logging_steps: cfg.eval_every,
        eval_steps: cfg.eval_every,
        ..Default::default()
    };
    if let Some(dir) = &cfg.resume_from {
        if let Ok(prev_state) = TrainerState::load(&dir.join(TRAINER_STATE_FILE)) {
            state.log_history = prev_state.log_history;
            state.num_samples_seen = prev_state.num_samples_seen;
        }
    }
    state.global_step = step0;
    Ok((driver, state))
}

#[allow(clippy::too_many_arguments)]
fn write_checkpoint(
    out: &Path,
    model: &InterestModel,
    driver: &StepDriver,
    state: &TrainerState,
    meta: &InterestMeta,
    cfg: &TrainInterestConfig,
    emb: &[f32],
    dim: usize,
    hash: &str,
) -> Result<()> {
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| InterestError::io(parent, e))?;
    }
    longtail_fs::write_dir_atomic(out, |tmp| -> Result<()> {
        model.save_weights(tmp)?;
        longtail_fs::write_json_atomic(&tmp.join(INTEREST_FILE), meta)?;
        longtail_fs::write_json_atomic(&tmp.join(TRAIN_ARGS_FILE), cfg)?;
        driver.save_state(tmp)?;
        state.save(&tmp.join(TRAINER_STATE_FILE))?;
        save_item_embeddings(&tmp.join(ITEM_EMBEDDINGS_FILE), emb, dim, hash)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frozen_rule_keeps_top_layers_trainable() {
        let f = frozen_rule(4);
        assert!(f("embeddings.word_embeddings.weight"));
        assert!(f("encoder.layer.3.output.dense.weight"));
        assert!(!f("encoder.layer.4.output.dense.weight"));
        assert!(!f("encoder.layer.5.attention.self.query.bias"));
    }
}
