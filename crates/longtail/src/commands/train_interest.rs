//! `longtail train-interest`: typed arguments -> `TrainInterestConfig` -> the bi-encoder
//! training loop of longtail-interest.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use longtail_interest::tune::{self, TuneOptions, TuneSpace};
use longtail_interest::{
    train_interest, Architecture, ItemFeatures, TrainInterestConfig, TrainInterestOutcome,
};
use longtail_model::Precision;
use longtail_train::SchedulerType;

use crate::shared_args::{defaults, value_name};

#[derive(Args, Debug)]
pub struct TrainInterestArgs {
    /// TOML file whose [train-interest] table supplies defaults (see configs/interest.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Prepared dataset directory (items.jsonl, interactions.csv).
    #[arg(long)]
    pub data: PathBuf,
    /// User model: `sequence` (a causal transformer over item vectors made from frozen text
    /// embeddings, trained on next-item with a full-catalogue softmax) or `bi-encoder` (the
    /// encoder fine-tuned on next-item pairs; user = pooled item embeddings). A resumed run
    /// keeps its checkpoint's.
    #[arg(long, value_enum, default_value_t = defaults::train_interest().architecture)]
    pub architecture: Architecture,
    /// Start model: directory (base MiniLM or a `longtail train` checkpoint) or hub id.
    #[arg(long)]
    pub model: Option<String>,
    /// Output checkpoint directory (written atomically).
    #[arg(long)]
    pub out: PathBuf,
    /// Continue from an interest checkpoint on --data (weights, optimizer moments, user
    /// representation and frozen layers come from it; --model is ignored).
    #[arg(long)]
    pub resume_from: Option<PathBuf>,
    /// Maximum tokens per item.
    #[arg(long, default_value_t = defaults::train_interest().max_len)]
    pub max_len: usize,
    /// Field template rendering an item.
    #[arg(long, default_value_t = defaults::train_interest().template)]
    pub template: String,
    /// Per step: user sequences (sequence) or next-item pairs (bi-encoder, whose in-batch
    /// negatives are the other pairs' targets).
    #[arg(long, default_value_t = defaults::train_interest().batch_size)]
    pub batch_size: usize,
    /// Optimizer updates.
    #[arg(long, default_value_t = defaults::train_interest().max_steps)]
    pub max_steps: u64,
    /// Peak learning rate of AdamW.
    #[arg(long, default_value_t = defaults::train_interest().learning_rate)]
    pub learning_rate: f64,
    /// Decoupled weight decay (not applied to biases and LayerNorm weights).
    #[arg(long, default_value_t = defaults::train_interest().weight_decay)]
    pub weight_decay: f64,
    /// Share of --max-steps spent warming the learning rate up from 0.
    #[arg(long, default_value_t = defaults::train_interest().warmup_ratio)]
    pub warmup_ratio: f64,
    /// Learning-rate schedule after warmup.
    #[arg(long, value_enum, default_value_t = defaults::value(&defaults::train_interest().lr_scheduler_type))]
    pub lr_scheduler_type: SchedulerType,
    /// Clip the global gradient L2 norm to this value.
    #[arg(long, default_value_t = defaults::train_interest().max_grad_norm)]
    pub max_grad_norm: f64,
    /// Softmax temperature of the logits (cosine / T).
    #[arg(long, default_value_t = defaults::train_interest().temperature)]
    pub temperature: f64,
    /// Disable the logQ popularity correction of the in-batch softmax.
    #[arg(long, default_value_t = !defaults::train_interest().logq_correction)]
    pub no_logq: bool,
    /// Most recent history items forming the user vector (1: the last item, the best of the
    /// validation comparison in docs/interest.md).
    #[arg(long, default_value_t = defaults::train_interest().history_len)]
    pub history_len: usize,
    /// Weight decay per step back in the history (1 = plain mean).
    #[arg(long, default_value_t = defaults::train_interest().recency_decay)]
    pub recency_decay: f64,
    /// Embeddings and this many bottom layers are frozen (computed once and cached).
    #[arg(long, default_value_t = defaults::train_interest().frozen_layers)]
    pub frozen_layers: usize,
    /// Steps between recomputations of the item embeddings that form user vectors.
    #[arg(long, default_value_t = defaults::train_interest().refresh_every)]
    pub refresh_every: u64,
    /// Steps between validation measurements (NDCG@10 / Recall@10; 0 = only the initial one).
    #[arg(long, default_value_t = defaults::train_interest().eval_every)]
    pub eval_every: u64,
    /// Validation users scored per measurement (0 = all).
    #[arg(long, default_value_t = defaults::train_interest().eval_users)]
    pub eval_users: usize,
    /// Sampled negatives per validation positive for the Platt calibration.
    #[arg(long, default_value_t = defaults::train_interest().calibration_negatives)]
    pub calibration_negatives: usize,
    /// Train on every interaction (no leave-last-out hold-out; deployment re-fine-tuning).
    #[arg(long, default_value_t = defaults::train_interest().use_all_interactions)]
    pub use_all_interactions: bool,
    /// Items per inference batch.
    #[arg(long, default_value_t = defaults::train_interest().infer_batch_size)]
    pub infer_batch_size: usize,
    /// Seed of the data order, dropout and calibration sampling.
    #[arg(long, default_value_t = defaults::train_interest().seed)]
    pub seed: u64,
    /// [sequence] Item vector: `text` (adaptor over the text embedding), `id` (ID embeddings
    /// only: SASRec, the collaborative baseline) or `text-id` (text + an ID embedding for items
    /// with >= --id-min-count training interactions).
    #[arg(long, value_enum, default_value_t = defaults::train_interest().item_features, help_heading = "Sequence model")]
    pub item_features: ItemFeatures,
    /// [sequence] Training interactions an item needs for an ID embedding (`text-id`).
    #[arg(long, default_value_t = defaults::train_interest().id_min_count, help_heading = "Sequence model")]
    pub id_min_count: u64,
    /// [sequence] Projections in the text adaptor: 1 = one linear map; k > 1 = UniSRec's
    /// mixture of k maps, gated by the item's text (each can specialise in a product family).
    #[arg(long, default_value_t = defaults::train_interest().adaptor_experts, help_heading = "Sequence model")]
    pub adaptor_experts: usize,
    /// [sequence] Width of the item vectors and the transformer.
    #[arg(long, default_value_t = defaults::train_interest().hidden_size, help_heading = "Sequence model")]
    pub hidden_size: usize,
    /// [sequence] Transformer layers.
    #[arg(long, default_value_t = defaults::train_interest().num_hidden_layers, help_heading = "Sequence model")]
    pub num_hidden_layers: usize,
    /// [sequence] Attention heads per layer.
    #[arg(long, default_value_t = defaults::train_interest().num_attention_heads, help_heading = "Sequence model")]
    pub num_attention_heads: usize,
    /// [sequence] Most recent history items the transformer reads.
    #[arg(long, default_value_t = defaults::train_interest().max_history, help_heading = "Sequence model")]
    pub max_history: usize,
    /// [sequence] Dropout on the transformer's inputs and layer outputs.
    #[arg(long, default_value_t = defaults::train_interest().hidden_dropout_prob, help_heading = "Sequence model")]
    pub hidden_dropout_prob: f64,
    /// [sequence] Dropout on the attention probabilities.
    #[arg(long, default_value_t = defaults::train_interest().attention_probs_dropout_prob, help_heading = "Sequence model")]
    pub attention_probs_dropout_prob: f64,
    /// [sequence] Stop after this many evaluations without a better validation NDCG@10
    /// (0 = never); the checkpoint is the best evaluation's model.
    #[arg(long, default_value_t = defaults::train_interest().early_stopping_patience, help_heading = "Sequence model")]
    pub early_stopping_patience: u64,
    /// [sequence] Text embedding cache file: reused when its catalogue hash matches (same
    /// items, text, template, max_len), else computed and written.
    #[arg(long, help_heading = "Sequence model")]
    pub embedding_cache: Option<PathBuf>,
    /// [sequence] Popularity prior in the training softmax, `cos/T + b log q(item)` (q = the
    /// item's share of training targets; scoring uses the cosine alone): 0 learns raw
    /// next-item probabilities, 1 their lift over popularity (more tail items ranked high).
    #[arg(long, default_value_t = defaults::train_interest().logq_weight, help_heading = "Sequence model")]
    pub logq_weight: f64,
    /// [sequence] Per-target loss weights `(count + 1)^-a`, count = the item's training
    /// targets, normalised to mean 1 per batch: 0 = plain; larger values weight rare next items
    /// up (more tail items ranked high, at some NDCG cost; see docs/interest.md).
    #[arg(long, default_value_t = defaults::train_interest().tail_loss_alpha, help_heading = "Sequence model")]
    pub tail_loss_alpha: f64,
    /// [sequence] Head/tail group prior in the training softmax, `cos/T + g log q(group)`
    /// (q = the share of training targets in the item's group, tail or head by --tail-rule;
    /// scoring uses the cosine alone): like --logq-weight, but one shift for the whole tail, so
    /// the order within the head and within the tail is kept. 1 treats head and tail as
    /// equally likely; more tail items ranked high at a smaller NDCG cost than --logq-weight's
    /// (docs/interest.md).
    #[arg(long, default_value_t = defaults::train_interest().group_logq_weight, help_heading = "Sequence model")]
    pub group_logq_weight: f64,
    /// [sequence] Head/tail rule, applied to training interaction counts as `eval-rec` does
    /// (pareto:S, quantile:Q, min-count:N): --group-logq-weight's groups and the tail of the
    /// validation tail-item recall printed during training.
    #[arg(long, default_value_t = defaults::train_interest().tail_rule, help_heading = "Sequence model")]
    pub tail_rule: longtail_data::TailRule,
    /// [sequence] Arithmetic of the frozen encoder's item-embedding pass: fp32, bf16 (for a
    /// GPU) or int8 (faster on CPUs with integer dot products, at a small ranking cost measured
    /// in docs/interest.md). Saved in the checkpoint: `recommend`, `eval-rec` and `serve` embed
    /// new items the same way; a resumed run keeps its checkpoint's.
    #[arg(long, value_enum, default_value_t = defaults::train_interest().precision, help_heading = "Sequence model")]
    pub precision: Precision,

    /// Search the sequence recipe on your validation split first: N trials by successive
    /// halving (trial 0 is the recipe, the others drawn with --seed from the space in
    /// docs/interest.md: ID threshold, learning rate, dropout, temperature, layers, width);
    /// --out gets the winner, with tune.json and tune.md (the trials table). 0: train the
    /// recipe as given.
    #[arg(long, default_value_t = 0, help_heading = "Tuning")]
    pub tune: usize,
    /// Stop starting exploration trials after this many minutes (the last rung, the winner
    /// and the recipe at full --max-steps, always runs).
    #[arg(long, help_heading = "Tuning")]
    pub tune_minutes: Option<f64>,
    /// A trial replaces the recipe only if its validation NDCG@10 beats the recipe's by this
    /// many standard errors (validation noise is not evidence; 0: any gain).
    #[arg(long, default_value_t = 1.0, help_heading = "Tuning")]
    pub tune_margin: f64,
    /// Each rung keeps the best 1/ETA of its trials for ETA times the steps.
    #[arg(long, default_value_t = 3, help_heading = "Tuning")]
    pub tune_eta: usize,
    /// Trials directory (default: OUT.tune beside --out); rerunning the same search resumes
    /// it, skipping finished trials.
    #[arg(long, help_heading = "Tuning")]
    pub tune_dir: Option<PathBuf>,

    /// Print where an update's time goes (forward, backward, clip, AdamW per update), with the
    /// device synchronised after each phase; a little slower, for profiling a GPU run.
    #[arg(long, default_value_t = false)]
    pub phase_times: bool,

    #[command(flatten)]
    pub device: crate::shared_args::DeviceArg,
}

/// The library config of the parsed arguments (the tuning flags are not part of it).
fn config(a: TrainInterestArgs) -> Result<TrainInterestConfig> {
    let resume_from = a.resume_from.clone();
    // SASRec (`--item-features id`) reads no text, so it needs no encoder.
    let needs_model = resume_from.is_none()
        && !(a.architecture == Architecture::Sequence && a.item_features == ItemFeatures::Id);
    let model = match needs_model {
        false => a.model.clone().unwrap_or_default(),
        true => a.model.clone().context(
            "--model is required unless --resume-from is given or --item-features is id (on \
             the command line, in the environment or in the config file)",
        )?,
    };
    Ok(TrainInterestConfig {
        architecture: a.architecture,
        data: a.data,
        model,
        out: a.out,
        resume_from,
        max_len: a.max_len,
        template: a.template,
        batch_size: a.batch_size,
        max_steps: a.max_steps,
        learning_rate: a.learning_rate,
        weight_decay: a.weight_decay,
        warmup_ratio: a.warmup_ratio,
        lr_scheduler_type: value_name(&a.lr_scheduler_type),
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
        item_features: a.item_features,
        id_min_count: a.id_min_count,
        adaptor_experts: a.adaptor_experts,
        hidden_size: a.hidden_size,
        num_hidden_layers: a.num_hidden_layers,
        num_attention_heads: a.num_attention_heads,
        max_history: a.max_history,
        hidden_dropout_prob: a.hidden_dropout_prob,
        attention_probs_dropout_prob: a.attention_probs_dropout_prob,
        early_stopping_patience: a.early_stopping_patience,
        embedding_cache: a.embedding_cache,
        logq_weight: a.logq_weight,
        tail_loss_alpha: a.tail_loss_alpha,
        group_logq_weight: a.group_logq_weight,
        tail_rule: a.tail_rule,
        device: a.device.device,
        precision: a.precision,
        phase_times: a.phase_times,
    })
}

/// One training run with its progress bar.
fn train_once(cfg: &TrainInterestConfig, label: &'static str) -> Result<TrainInterestOutcome> {
    let unit = match cfg.architecture {
        Architecture::Sequence => "seq",
        Architecture::BiEncoder => "pairs",
    };
    let mut bar = crate::progress::TrainProgress::new(label, unit);
    let outcome = train_interest(cfg, &mut |e| bar.on_event(e))?;
    bar.finish();
    Ok(outcome)
}

pub fn run(a: TrainInterestArgs) -> Result<()> {
    let tune = TuneArgs {
        trials: a.tune,
        minutes: a.tune_minutes,
        eta: a.tune_eta,
        margin: a.tune_margin,
        dir: a.tune_dir.clone(),
    };
    let cfg = config(a)?;
    let outcome = if tune.trials > 0 {
        tune_then_train(&cfg, &tune)?
    } else {
        train_once(&cfg, "train-interest")?
    };
    if outcome.train_pairs > 0 {
        println!(
            "trained {} steps on {} next-item pairs in {:.1}s",
            outcome.steps, outcome.train_pairs, outcome.seconds
        );
    } else {
        println!(
            "the chosen trial was trained by an earlier run of this search ({} steps, {:.1}s)",
            outcome.steps, outcome.seconds
        );
    }
    if let Some(times) = outcome.phase_times {
        println!("phase times: {}", times.per_update());
    }
    if let (Some(a), Some(b)) = (&outcome.initial, &outcome.last) {
        if b.ndcg_at_10 > 0.0 {
            println!(
                "validation NDCG@10 {:.4} -> {:.4} (best), Recall@10 {:.4} -> {:.4}",
                a.ndcg_at_10, b.ndcg_at_10, a.recall_at_10, b.recall_at_10
            );
        }
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

struct TuneArgs {
    trials: usize,
    minutes: Option<f64>,
    eta: usize,
    margin: f64,
    dir: Option<PathBuf>,
}

/// `--tune N`: the search in the trials directory, then the winner's checkpoint copied to
/// --out with the search's record (one atomic directory write).
fn tune_then_train(cfg: &TrainInterestConfig, t: &TuneArgs) -> Result<TrainInterestOutcome> {
    anyhow::ensure!(
        cfg.architecture == Architecture::Sequence && cfg.resume_from.is_none(),
        "--tune searches the sequence recipe from scratch: it takes --architecture sequence \
         and no --resume-from"
    );
    anyhow::ensure!(t.eta >= 2, "--tune-eta must be at least 2, got {}", t.eta);
    if let Some(m) = t.minutes {
        anyhow::ensure!(
            m.is_finite() && m >= 0.0,
            "--tune-minutes must be a number of minutes >= 0, got {m}"
        );
    }
    let _lock = longtail_fs::OutputLock::acquire(&cfg.out)?;
    let dir = t
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.tune", cfg.out.display())));
    let mut base = cfg.clone();
    // every trial embeds the same catalogue text: once, into the trials directory
    base.embedding_cache
        .get_or_insert_with(|| dir.join("text-embeddings.safetensors"));
    let opts = TuneOptions {
        trials: t.trials,
        eta: t.eta,
        seed: cfg.seed,
        space: TuneSpace::default(),
        time_budget: t
            .minutes
            .map(|m| std::time::Duration::from_secs_f64(m * 60.0)),
        dir: dir.clone(),
        margin_se: t.margin,
    };
    let mut outcomes: Vec<(PathBuf, TrainInterestOutcome)> = Vec::new();
    let state = tune::successive_halving(
        &base,
        &opts,
        &mut |line| eprintln!("tune: {line}"),
        &mut |settings, out, steps| {
            let mut c = settings.apply(&base, steps);
            c.out = out.to_path_buf();
            let o = train_once(&c, "trial")
                .map_err(|e| longtail_interest::InterestError::invalid(format!("{e:#}")))?;
            let m = o.last.clone().unwrap_or_default();
            let r = tune::RunMetrics {
                steps: o.steps,
                ndcg_10: m.ndcg_at_10,
                tail_recall_10: m.tail_recall_at_10,
                users: m.users,
            };
            outcomes.push((out.to_path_buf(), o));
            Ok(r)
        },
    )?;
    let (winner, rung) = state
        .winner
        .zip(state.winner_rung)
        .context("the search finished without a winner")?;
    let src = tune::trial_dir(&dir, winner, rung);
    let table = tune::trials_table(&state);
    eprintln!("{table}");
    longtail_fs::write_dir_atomic(&cfg.out, |tmp| -> Result<()> {
        for entry in
            std::fs::read_dir(&src).with_context(|| format!("reading {}", src.display()))?
        {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                std::fs::copy(entry.path(), tmp.join(entry.file_name()))
                    .with_context(|| format!("copying {}", entry.path().display()))?;
            }
        }
        longtail_fs::write_json_atomic(&tmp.join(tune::TUNE_FILE), &state)?;
        std::fs::write(tmp.join(tune::TUNE_TABLE_FILE), &table)?;
        Ok(())
    })?;
    let r = state
        .results
        .iter()
        .find(|r| r.trial == winner && r.rung == rung)
        .context("the winner's result")?;
    eprintln!(
        "tune: trial {winner} ({}) at {} steps chosen: validation NDCG@10 {:.4}; checkpoint {}",
        state.trials[winner].describe(),
        r.max_steps,
        r.ndcg_10,
        cfg.out.display()
    );
    // The outcome printed below: the winner's own run when this process trained it.
    match outcomes.into_iter().rev().find(|(dir, _)| *dir == src) {
        Some((_, mut o)) => {
            o.out = cfg.out.clone();
            Ok(o)
        }
        None => Ok(TrainInterestOutcome {
            steps: r.steps,
            seconds: r.seconds,
            train_pairs: 0,
            initial: None,
            last: None,
            calibration: None,
            out: cfg.out.clone(),
            phase_times: None,
        }),
    }
}
