//! `longtail train`: typed arguments -> `TrainConfig` -> the training loop of
//! longtail-classify, with a progress bar (samples/s, loss, ETA).

use crate::progress::TrainProgress;
use crate::shared_args::value_name;
use anyhow::Result;
use longtail_classify::TrainConfig;

pub fn run(args: TrainArgs) -> Result<()> {
    let cfg = to_config(args);
    if cfg.pooling != "cls_pooler" {
        // transformers' BertForSequenceClassification always pools with the [CLS] pooler.
        eprintln!(
            "note: --pooling {}: longtail scores this checkpoint with {} pooling, but \
             transformers' AutoModelForSequenceClassification would use the [CLS] pooler and \
             give other logits; train with --pooling cls_pooler for a checkpoint both score alike",
            cfg.pooling, cfg.pooling
        );
    }
    let mut bar = TrainProgress::new("train", "samples");
    let outcome = longtail_classify::train(&cfg, &mut |e| bar.on_event(e))?;
    bar.finish();
    println!(
        "trained {} of {} steps in {:.1}s ({:.1} samples/s; {:.1} samples/s in the updates \
         alone, {:.1}s; {} train items){}",
        outcome.global_step,
        outcome.max_steps,
        outcome.seconds,
        outcome.samples_per_second(),
        outcome.loop_samples_per_second(),
        outcome.loop_seconds,
        outcome.train_samples,
        if outcome.early_stopped {
            ", stopped early"
        } else if outcome.interrupted {
            ", interrupted (--stop-after-steps)"
        } else {
            ""
        }
    );
    if let Some(times) = outcome.phase_times {
        println!("phase times: {}", times.per_update());
    }
    if let Some(best) = outcome.best_metric {
        println!(
            "best validation {}: {best:.4} at {}",
            cfg.metric_for_best_model,
            outcome
                .best_checkpoint
                .as_ref()
                .map_or("?".into(), |p| p.display().to_string())
        );
    }
    if let Some(last) = &outcome.last_checkpoint {
        println!("last checkpoint: {}", last.display());
    }
    if !outcome.interrupted {
        println!("model: {}", cfg.out.display());
    }
    Ok(())
}

fn to_config(a: TrainArgs) -> TrainConfig {
    TrainConfig {
        data: a.data,
        model: a.model,
        out: a.out,
        learning_rate: a.learning_rate,
        weight_decay: a.weight_decay,
        warmup_ratio: a.warmup_ratio,
        lr_scheduler_type: value_name(&a.lr_scheduler_type),
        max_grad_norm: a.max_grad_norm,
        gradient_accumulation_steps: a.gradient_accumulation_steps,
        per_device_train_batch_size: a.per_device_train_batch_size,
        per_device_eval_batch_size: a.per_device_eval_batch_size,
        num_train_epochs: a.num_train_epochs,
        max_steps: a.max_steps,
        eval_strategy: value_name(&a.eval_strategy),
        eval_steps: a.eval_steps,
        logging_steps: a.logging_steps,
        save_total_limit: a.save_total_limit,
        early_stopping_patience: a.early_stopping_patience,
        metric_for_best_model: value_name(&a.metric_for_best_model),
        seed: a.seed,
        max_len: a.max_len,
        pooling: value_name(&a.pooling),
        class_weights: value_name(&a.class_weights),
        label_smoothing: a.label_smoothing,
        freeze_layers: a.freeze_layers,
        freeze_encoder: a.freeze_encoder,
        resume: a.resume,
        template: a.template,
        stop_after_steps: a.stop_after_steps,
        device: a.device.device,
        precision: a.precision,
        phase_times: a.phase_times,
    }
}

// The command's arguments (raw flags -> typed values; defaults from the library).
use clap::{Args, ValueEnum};
use longtail_model::{Pooling, Precision};
use longtail_train::SchedulerType;
use std::path::PathBuf;

use crate::shared_args::{defaults, DeviceArg};

/// When `train` evaluates on validation (and saves a checkpoint), as in `transformers`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
#[value(rename_all = "snake_case")]
pub enum EvalStrategy {
    /// After every epoch.
    Epoch,
    /// Every --eval-steps updates.
    Steps,
    /// Never (the last checkpoint is the model).
    No,
}

/// The validation metric that picks the best checkpoint.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
#[value(rename_all = "snake_case")]
pub enum MetricForBestModel {
    /// ROC-AUC of p_tail (higher is better).
    #[value(alias = "roc_auc")]
    Auc,
    /// Validation cross-entropy (lower is better).
    Loss,
}

/// Per-class weights of the cross-entropy.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
#[value(rename_all = "snake_case")]
pub enum ClassWeights {
    /// Every class weighs 1.
    None,
    /// Inverse class frequency on the train split.
    Auto,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Prepared dataset directory (the --out of `longtail prepare`).
    #[arg(long)]
    pub data: PathBuf,

    /// Base model: a local directory (config.json, model.safetensors, tokenizer.json) or a hub id.
    #[arg(long)]
    pub model: String,

    /// Output directory for checkpoints and the final model.
    #[arg(long)]
    pub out: PathBuf,

    /// TOML file whose [train] table supplies defaults for any flag (see configs/train.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,

    /// Peak learning rate of AdamW.
    #[arg(long, default_value_t = defaults::train().learning_rate)]
    pub learning_rate: f64,

    /// Decoupled weight decay (not applied to biases and LayerNorm weights).
    #[arg(long, default_value_t = defaults::train().weight_decay)]
    pub weight_decay: f64,

    /// Share of the total updates spent warming the learning rate up from 0.
    #[arg(long, default_value_t = defaults::train().warmup_ratio)]
    pub warmup_ratio: f64,

    /// Learning-rate schedule after warmup.
    #[arg(long, value_enum, default_value_t = defaults::value(&defaults::train().lr_scheduler_type))]
    pub lr_scheduler_type: SchedulerType,

    /// Clip the global gradient L2 norm to this value.
    #[arg(long, default_value_t = defaults::train().max_grad_norm)]
    pub max_grad_norm: f64,

    /// Micro-batches per optimizer update.
    #[arg(long, default_value_t = defaults::train().gradient_accumulation_steps)]
    pub gradient_accumulation_steps: usize,

    /// Items per micro-batch.
    #[arg(long, default_value_t = defaults::train().per_device_train_batch_size)]
    pub per_device_train_batch_size: usize,

    /// Items per batch when scoring validation.
    #[arg(long, default_value_t = defaults::train().per_device_eval_batch_size)]
    pub per_device_eval_batch_size: usize,

    /// Passes over the train split.
    #[arg(long, default_value_t = defaults::train().num_train_epochs)]
    pub num_train_epochs: u64,

    /// If > 0: total optimizer updates, overriding --num-train-epochs.
    #[arg(long, default_value_t = defaults::train().max_steps, allow_negative_numbers = true)]
    pub max_steps: i64,

    /// When to evaluate on validation (and save a checkpoint).
    #[arg(long, value_enum, default_value_t = defaults::value(&defaults::train().eval_strategy))]
    pub eval_strategy: EvalStrategy,

    /// Updates between evaluations with --eval-strategy steps.
    #[arg(long, default_value_t = defaults::train().eval_steps)]
    pub eval_steps: u64,

    /// Updates between metrics.jsonl lines.
    #[arg(long, default_value_t = defaults::train().logging_steps)]
    pub logging_steps: u64,

    /// Keep at most this many checkpoints (plus the best); 0 keeps all.
    #[arg(long, default_value_t = defaults::train().save_total_limit)]
    pub save_total_limit: usize,

    /// Stop after this many evaluations without improvement; 0 disables early stopping.
    #[arg(long, default_value_t = defaults::train().early_stopping_patience)]
    pub early_stopping_patience: u32,

    /// Validation metric choosing the best checkpoint.
    #[arg(long, value_enum, default_value_t = defaults::value(&defaults::train().metric_for_best_model))]
    pub metric_for_best_model: MetricForBestModel,

    /// Seed of the classifier initialisation, data order and dropout.
    #[arg(long, default_value_t = defaults::train().seed)]
    pub seed: u64,

    /// Maximum tokens per item (fields cut description first, title last).
    #[arg(long, default_value_t = defaults::train().max_len)]
    pub max_len: usize,

    /// Sentence representation fed to the classifier. cls_pooler is the head of transformers'
    /// BertForSequenceClassification, so only it gives the same logits there.
    #[arg(long, value_enum, default_value_t = defaults::value(&defaults::train().pooling))]
    pub pooling: Pooling,

    /// Class weights of the cross-entropy.
    #[arg(long, value_enum, default_value_t = defaults::value(&defaults::train().class_weights))]
    pub class_weights: ClassWeights,

    /// Label smoothing of the cross-entropy, in [0, 1).
    #[arg(long, default_value_t = defaults::train().label_smoothing)]
    pub label_smoothing: f64,

    /// Freeze the embeddings and the lowest N encoder layers.
    #[arg(long, default_value_t = defaults::train().freeze_layers)]
    pub freeze_layers: usize,

    /// Train only the classification head (and pooler).
    #[arg(long, default_value_t = defaults::train().freeze_encoder)]
    pub freeze_encoder: bool,

    /// Continue from the last checkpoint in --out (same arguments as the interrupted run).
    #[arg(long, default_value_t = false)]
    pub resume: bool,

    /// Field template rendering an item.
    #[arg(long, default_value_t = defaults::train().template)]
    pub template: String,

    /// Testing aid: stop as if interrupted after N updates of this invocation (0 = never).
    #[arg(long, default_value_t = 0, hide = true)]
    pub stop_after_steps: u64,

    /// fp32 (default) or bf16: mixed precision for a GPU, the encoder's matmuls on bf16 copies
    /// (f32 accumulation) while weights and AdamW moments stay f32. Slower on a CPU.
    #[arg(long, value_enum, default_value_t = Precision::Fp32)]
    pub precision: Precision,

    /// Print where an update's time goes (forward, backward, clip, AdamW per update), with the
    /// device synchronised after each phase; a little slower, for profiling a GPU run.
    #[arg(long, default_value_t = false)]
    pub phase_times: bool,

    #[command(flatten)]
    pub device: DeviceArg,
}
