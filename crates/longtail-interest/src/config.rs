//! The settings of `train-interest` ([`TrainInterestConfig`]), for both architectures, and
//! the optimizer side they set up.

use std::path::PathBuf;

use longtail_model::checkpoint::{OPTIMIZER_JSON_FILE, TRAINER_STATE_FILE};
use longtail_model::{DeviceSpec, Precision};
use longtail_train::{
    AdamW, AdamWConfig, LrSchedule, ParamGroupSpec, SchedulerType, StepDriver, TrainerState,
};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::Architecture;
use crate::sequence::ItemFeatures;

/// The training arguments, saved in every interest checkpoint.
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

/// AdamW over `named` parameters (grouped by `spec`), the learning-rate schedule and the
/// trainer state of a run that starts at `step0`: one schedule over the checkpoint's updates
/// and this run's, so a resumed run continues it (no second warmup from 0), with the optimizer
/// moments and the log history of `cfg.resume_from` when it has them.
pub(crate) fn optimizer_and_state(
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
