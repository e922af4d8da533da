//! `longtail train-interest`: raw arguments (+ the [train-interest] table of --config) ->
//! `TrainInterestConfig` -> the bi-encoder training loop of longtail-interest.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{ArgMatches, Args};
use longtail_interest::{train_interest, Event, TrainInterestConfig};
use serde::{Deserialize, Serialize};

use crate::config::merge_config;

#[derive(Args, Debug, Serialize, Deserialize)]
pub struct TrainInterestArgs {
    /// TOML file whose [train-interest] table supplies defaults (see configs/interest.toml).
    #[arg(long, env = "LONGTAIL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Prepared dataset directory (items.jsonl, interactions.csv).
    #[arg(long, env = "LONGTAIL_DATA")]
    pub data: Option<PathBuf>,
    /// Start model: directory (base MiniLM or a `longtail train` checkpoint) or hub id.
    #[arg(long, env = "LONGTAIL_MODEL")]
    pub model: Option<String>,
    /// Output checkpoint directory (written atomically).
    #[arg(long, env = "LONGTAIL_OUT")]
    pub out: Option<PathBuf>,
    /// Continue from an interest checkpoint on --data (weights, optimizer moments, user
    /// representation and frozen layers come from it; --model is ignored).
    #[arg(long, env = "LONGTAIL_RESUME_FROM")]
    pub resume_from: Option<PathBuf>,
    /// Maximum tokens per item.
    #[arg(long, env = "LONGTAIL_MAX_LEN", default_value_t = 64)]
    pub max_len: usize,
    /// Field template rendering an item.
    #[arg(
        long,
        env = "LONGTAIL_TEMPLATE",
        default_value = "{title} | {brand} | {categories} | {description}"
    )]
    pub template: String,
    /// Next-item pairs per step (the in-batch negatives are the other pairs' targets).
    #[arg(long, env = "LONGTAIL_BATCH_SIZE", default_value_t = 64)]
    pub batch_size: usize,
    /// Optimizer updates.
    #[arg(long, env = "LONGTAIL_MAX_STEPS", default_value_t = 300)]
    pub max_steps: u64,
    #[arg(long, env = "LONGTAIL_LEARNING_RATE", default_value_t = 1e-4)]
    pub learning_rate: f64,
    #[arg(long, env = "LONGTAIL_WEIGHT_DECAY", default_value_t = 0.01)]
    pub weight_decay: f64,
    #[arg(long, env = "LONGTAIL_WARMUP_RATIO", default_value_t = 0.1)]
    pub warmup_ratio: f64,
    /// linear, cosine or constant_with_warmup.
    #[arg(long, env = "LONGTAIL_LR_SCHEDULER_TYPE", default_value = "linear")]
    pub lr_scheduler_type: String,
    #[arg(long, env = "LONGTAIL_MAX_GRAD_NORM", default_value_t = 1.0)]
    pub max_grad_norm: f64,
    /// Softmax temperature of the InfoNCE logits (cosine / T).
    #[arg(long, env = "LONGTAIL_TEMPERATURE", default_value_t = 0.05)]
    pub temperature: f64,
    /// Disable the logQ popularity correction of the in-batch softmax.
    #[arg(long, env = "LONGTAIL_NO_LOGQ", default_value_t = false)]
    pub no_logq: bool,
    /// Most recent history items forming the user vector (1: the last item, the best of the
    /// validation comparison in docs/interest.md).
    #[arg(long, env = "LONGTAIL_HISTORY_LEN", default_value_t = 1)]
    pub history_len: usize,
    /// Weight decay per step back in the history (1 = plain mean).
    #[arg(long, env = "LONGTAIL_RECENCY_DECAY", default_value_t = 1.0)]
    pub recency_decay: f64,
    /// Embeddings and this many bottom layers are frozen (computed once and cached).
    #[arg(long, env = "LONGTAIL_FROZEN_LAYERS", default_value_t = 4)]
    pub frozen_layers: usize,
    /// Steps between recomputations of the item embeddings that form user vectors.
    #[arg(long, env = "LONGTAIL_REFRESH_EVERY", default_value_t = 100)]
    pub refresh_every: u64,
    /// Steps between validation Recall@10 measurements (0 = only the initial one).
    #[arg(long, env = "LONGTAIL_EVAL_EVERY", default_value_t = 100)]
    pub eval_every: u64,
    /// Validation users scored per measurement (0 = all).
    #[arg(long, env = "LONGTAIL_EVAL_USERS", default_value_t = 2000)]
    pub eval_users: usize,
    /// Sampled negatives per validation positive for the Platt calibration.
    #[arg(long, env = "LONGTAIL_CALIBRATION_NEGATIVES", default_value_t = 20)]
    pub calibration_negatives: usize,
    /// Train on every interaction (no leave-last-out hold-out; deployment re-fine-tuning).
    #[arg(long, env = "LONGTAIL_USE_ALL_INTERACTIONS", default_value_t = false)]
    pub use_all_interactions: bool,
    /// Items per inference batch.
    #[arg(long, env = "LONGTAIL_INFER_BATCH_SIZE", default_value_t = 64)]
    pub infer_batch_size: usize,
    #[arg(long, env = "LONGTAIL_SEED", default_value_t = 42)]
    pub seed: u64,
}

pub fn run(args: TrainInterestArgs, matches: &ArgMatches) -> Result<()> {
    let config = args.config.clone();
    let a = merge_config(args, matches, config.as_deref(), "train-interest")?;
    let required = |v: Option<String>, flag: &str| {
        v.with_context(|| format!("{flag} is required (on the command line or in the config file)"))
    };
    let resume_from = a.resume_from.clone();
    let model = match &resume_from {
        Some(_) => a.model.clone().unwrap_or_default(),
        None => required(a.model.clone(), "--model")?,
    };
    let cfg = TrainInterestConfig {
        data: required(a.data.map(|p| p.to_string_lossy().into_owned()), "--data")?.into(),
        model,
        out: required(a.out.map(|p| p.to_string_lossy().into_owned()), "--out")?.into(),
        resume_from,
        max_len: a.max_len,
        template: a.template,
        batch_size: a.batch_size,
        max_steps: a.max_steps,
        learning_rate: a.learning_rate,
        weight_decay: a.weight_decay,
        warmup_ratio: a.warmup_ratio,
        lr_scheduler_type: a.lr_scheduler_type,
        max_grad_norm: a.max_grad_norm,
        temperature: a.temperature,
        logq_correction: !a.no_logq,
        history_len: a.history_len,
        recency_decay: a.recency_decay,
        frozen_layers: a.frozen_layers,
        refresh_every: a.refresh_every,
        eval_every: a.eval_every,
        eval_users: a.eval_users,
        calibration_negatives: a.calibration_negatives,
        use_all_interactions: a.use_all_interactions,
        infer_batch_size: a.infer_batch_size,
        seed: a.seed,
    };
    let pb = crate::progress::bar(Some(cfg.max_steps), "train-interest");
    let outcome = train_interest(&cfg, &mut |e| match e {
        // eprintln, not pb.println: the bar is hidden off a terminal and logs must still show.
        Event::Message(m) => pb.suspend(|| eprintln!("{m}")),
        Event::Step { step, loss, .. } => {
            pb.set_position(step);
            pb.set_message(format!("loss {loss:.3}"));
        }
    })?;
    pb.finish_and_clear();
    println!(
        "trained {} steps on {} next-item pairs in {:.1}s",
        outcome.steps, outcome.train_pairs, outcome.seconds
    );
    if let (Some(a), Some(b)) = (&outcome.initial, &outcome.last) {
        println!(
            "validation Recall@10 {:.4} -> {:.4}, tail {:.4} -> {:.4} ({} users)",
            a.recall_at_10, b.recall_at_10, a.tail_recall_at_10, b.tail_recall_at_10, b.users
        );
    }
    match outcome.calibration {
        Some(p) => println!(
            "calibration: P(interest) = sigmoid({:.3} * cos + {:.3})",
            p.a, p.b
        ),
        None => println!("calibration: not fitted (no validation pairs)"),
    }
    println!("checkpoint: {}", outcome.out.display());
    Ok(())
}
