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

pub use crate::checkpoint::TRAIN_ARGS_FILE;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct TrainInterestConfig {
    /// User model: `sequence` (a causal transformer over item vectors made from frozen text
    /// embeddings, trained on next-item with a full-catalogue softmax) or `bi-encoder` (the
    /// encoder fine-tuned on next-item pairs; user = pooled item embeddings). A resumed run
    /// keeps its checkpoint's.
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value_t = Self::default().architecture))]
    pub architecture: Architecture,
    /// Prepared dataset directory (items.jsonl, interactions.csv).
    #[cfg_attr(feature = "clap", arg(long))]
    pub data: PathBuf,
    /// Start model: directory (base MiniLM or a `longtail train` checkpoint) or hub id.
    #[cfg_attr(
        feature = "clap",
        arg(long, default_value = "", hide_default_value = true)
    )]
    pub model: String,
    /// Output checkpoint directory (written atomically).
    #[cfg_attr(feature = "clap", arg(long))]
    pub out: PathBuf,
    /// Continue from an interest checkpoint on --data (weights, optimizer moments, user
    /// representation and frozen layers come from it; --model is ignored).
    #[cfg_attr(feature = "clap", arg(long))]
    pub resume_from: Option<PathBuf>,
    /// Maximum tokens per item.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().max_len))]
    pub max_len: usize,
    /// Field template rendering an item.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().template))]
    pub template: String,
    /// Per step: user sequences (sequence) or next-item pairs (bi-encoder, whose in-batch
    /// negatives are the other pairs' targets).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().batch_size))]
    pub batch_size: usize,
    /// Optimizer updates.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().max_steps))]
    pub max_steps: u64,
    /// Peak learning rate of AdamW.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().learning_rate))]
    pub learning_rate: f64,
    /// Decoupled weight decay (not applied to biases and LayerNorm weights).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().weight_decay))]
    pub weight_decay: f64,
    /// Share of --max-steps spent warming the learning rate up from 0.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().warmup_ratio))]
    pub warmup_ratio: f64,
    /// Learning-rate schedule after warmup.
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value_t = Self::default().lr_scheduler_type))]
    pub lr_scheduler_type: SchedulerType,
    /// Clip the global gradient L2 norm to this value.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().max_grad_norm))]
    pub max_grad_norm: f64,
    /// Softmax temperature of the logits (cosine / T).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().temperature))]
    pub temperature: f64,
    /// Disable the logQ popularity correction of the in-batch softmax (bi-encoder; the
    /// library field is the positive `logq_correction`).
    #[cfg_attr(feature = "clap", arg(long = "no-logq", id = "no_logq", num_args = 0..=1, default_value = "false", default_missing_value = "true", value_parser = clap::builder::TypedValueParser::map(clap::builder::BoolishValueParser::new(), |no: bool| !no)))]
    pub logq_correction: bool,
    /// Most recent history items forming the user vector (1: the last item, the best of the
    /// validation comparison in docs/interest.md).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().history_len))]
    pub history_len: usize,
    /// Weight decay per step back in the history (1 = plain mean).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().recency_decay))]
    pub recency_decay: f64,
    /// Embeddings and this many bottom layers are frozen (computed once and cached).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().frozen_layers))]
    pub frozen_layers: usize,
    /// Steps between recomputations of the item embeddings that form user vectors.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().refresh_every))]
    pub refresh_every: u64,
    /// Steps between validation measurements (NDCG@10 / Recall@10; 0 = only the initial one).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().eval_every))]
    pub eval_every: u64,
    /// Validation users scored per measurement (0 = all).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().eval_users))]
    pub eval_users: usize,
    /// Sampled negatives per validation positive for the Platt calibration.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().calibration_negatives))]
    pub calibration_negatives: usize,
    /// Train on every interaction (no leave-last-out hold-out; deployment re-fine-tuning).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().use_all_interactions))]
    pub use_all_interactions: bool,
    /// Items per inference batch.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().infer_batch_size))]
    pub infer_batch_size: usize,
    /// Seed of the data order, dropout and calibration sampling.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().seed))]
    pub seed: u64,
    // --- sequence architecture ---
    /// [sequence] Item vector: `text` (adaptor over the text embedding), `id` (ID embeddings
    /// only: SASRec, the collaborative baseline) or `text-id` (text + an ID embedding for items
    /// with >= --id-min-count training interactions).
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value_t = Self::default().item_features, help_heading = "Sequence model"))]
    pub item_features: ItemFeatures,
    /// [sequence] Training interactions an item needs for an ID embedding (`text-id`).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().id_min_count, help_heading = "Sequence model"))]
    pub id_min_count: u64,
    /// [sequence] Projections in the text adaptor: 1 = one linear map; k > 1 = UniSRec's
    /// mixture of k maps, gated by the item's text (each can specialise in a product family).
    #[serde(default = "crate::sequence::one_expert")]
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().adaptor_experts, help_heading = "Sequence model"))]
    pub adaptor_experts: usize,
    /// [sequence] Width of the item vectors and the transformer.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().hidden_size, help_heading = "Sequence model"))]
    pub hidden_size: usize,
    /// [sequence] Transformer layers.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().num_hidden_layers, help_heading = "Sequence model"))]
    pub num_hidden_layers: usize,
    /// [sequence] Attention heads per layer.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().num_attention_heads, help_heading = "Sequence model"))]
    pub num_attention_heads: usize,
    /// [sequence] Most recent history items the transformer reads.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().max_history, help_heading = "Sequence model"))]
    pub max_history: usize,
    /// [sequence] Dropout on the transformer's inputs and layer outputs.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().hidden_dropout_prob, help_heading = "Sequence model"))]
    pub hidden_dropout_prob: f64,
    /// [sequence] Dropout on the attention probabilities.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().attention_probs_dropout_prob, help_heading = "Sequence model"))]
    pub attention_probs_dropout_prob: f64,
    /// [sequence] Stop after this many evaluations without a better validation NDCG@10
    /// (0 = never); the checkpoint is the best evaluation's model.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().early_stopping_patience, help_heading = "Sequence model"))]
    pub early_stopping_patience: u64,
    /// [sequence] Text embedding cache file: reused when its catalogue hash matches (same
    /// items, text, template, max_len), else computed and written.
    #[cfg_attr(feature = "clap", arg(long, help_heading = "Sequence model"))]
    pub embedding_cache: Option<PathBuf>,
    /// [sequence] Arithmetic of the frozen encoder's item-embedding pass: fp32, bf16 (for a
    /// GPU) or int8 (faster on CPUs with integer dot products, at a small ranking cost measured
    /// in docs/interest.md). Saved in the checkpoint: `recommend`, `eval-rec` and `serve` embed
    /// new items the same way; a resumed run keeps its checkpoint's.
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value_t = Self::default().precision, help_heading = "Sequence model"))]
    pub precision: Precision,
    /// [sequence] Popularity prior in the training softmax, `cos/T + b log q(item)` (q = the
    /// item's share of training targets; scoring uses the cosine alone): 0 learns raw
    /// next-item probabilities, 1 their lift over popularity (more tail items ranked high).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().logq_weight, help_heading = "Sequence model"))]
    pub logq_weight: f64,
    /// [sequence] Per-target loss weights `(count + 1)^-a`, count = the item's training
    /// targets, normalised to mean 1 per batch: 0 = plain; larger values weight rare next items
    /// up (more tail items ranked high, at some NDCG cost; see docs/interest.md).
    #[serde(default)]
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().tail_loss_alpha, help_heading = "Sequence model"))]
    pub tail_loss_alpha: f64,
    /// [sequence] Head/tail group prior in the training softmax, `cos/T + g log q(group)`
    /// (q = the share of training targets in the item's group, tail or head by --tail-rule;
    /// scoring uses the cosine alone): like --logq-weight, but one shift for the whole tail, so
    /// the order within the head and within the tail is kept. 1 treats head and tail as
    /// equally likely; more tail items ranked high at a smaller NDCG cost than --logq-weight's
    /// (docs/interest.md).
    #[serde(default)]
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().group_logq_weight, help_heading = "Sequence model"))]
    pub group_logq_weight: f64,
    /// [sequence] Head/tail rule, applied to training interaction counts as `eval-rec` does
    /// (pareto:S, quantile:Q, min-count:N): --group-logq-weight's groups and the tail of the
    /// validation tail-item recall printed during training.
    #[serde(default)]
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().tail_rule, help_heading = "Sequence model"))]
    pub tail_rule: longtail_data::TailRule,
    /// Where the models run: auto (a CUDA GPU when this binary was built with CUDA and one
    /// answers, else the CPU), cpu, cuda (GPU 0) or cuda:N. LONGTAIL_DEVICE sets it for every
    /// command; a resume may use another device.
    #[serde(default)]
    #[cfg_attr(
        feature = "clap",
        arg(long, value_name = "DEVICE", default_value_t = DeviceSpec::Auto)
    )]
    pub device: DeviceSpec,
    /// Print where an update's time goes (forward, backward, clip, AdamW per update), with the
    /// device synchronised after each phase; a little slower, for profiling a GPU run.
    #[serde(default)]
    #[cfg_attr(feature = "clap", arg(long, default_value_t = false))]
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
            lr_scheduler_type: SchedulerType::Linear,
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
    let scheduler = cfg.lr_scheduler_type;
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
