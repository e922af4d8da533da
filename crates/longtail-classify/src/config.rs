//! The settings of a fine-tuning run ([`TrainConfig`]), typed, with `TrainingArguments` names
//! where Hugging Face has one. With the `clap` feature the struct is the `longtail train`
//! command line itself (each field's doc is its `--help` line and `Default` its default), so
//! the CLI and the library cannot drift apart.

use std::path::PathBuf;

use longtail_model::checkpoint::DEFAULT_MAX_LEN;
use longtail_model::{DeviceSpec, Pooling, Precision};
use longtail_train::{EvalCadence, SchedulerType};
use serde::{Deserialize, Serialize};

use crate::error::{ensure, Result};

/// When `train` evaluates on validation (and saves a checkpoint), as in `transformers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(
    feature = "clap",
    derive(clap::ValueEnum),
    value(rename_all = "snake_case")
)]
pub enum EvalStrategy {
    /// After every epoch.
    #[default]
    Epoch,
    /// Every --eval-steps updates.
    Steps,
    /// Never (the last checkpoint is the model).
    No,
}

/// The validation metric that picks the best checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(
    feature = "clap",
    derive(clap::ValueEnum),
    value(rename_all = "snake_case")
)]
pub enum MetricForBestModel {
    /// ROC-AUC of p_tail (higher is better).
    #[default]
    #[serde(alias = "roc_auc", alias = "eval_auc")]
    #[cfg_attr(feature = "clap", value(alias = "roc_auc"))]
    Auc,
    /// Validation cross-entropy (lower is better).
    #[serde(alias = "eval_loss")]
    Loss,
}

impl MetricForBestModel {
    /// The name the trainer logs it under (without the `eval_` prefix).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auc => "auc",
            Self::Loss => "loss",
        }
    }
}

/// Per-class weights of the cross-entropy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(
    feature = "clap",
    derive(clap::ValueEnum),
    value(rename_all = "snake_case")
)]
pub enum ClassWeights {
    /// Every class weighs 1.
    #[default]
    None,
    /// Inverse class frequency on the train split.
    Auto,
}

/// Everything a training run needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct TrainConfig {
    /// Prepared dataset directory (the --out of `longtail prepare`).
    #[cfg_attr(feature = "clap", arg(long))]
    pub data: PathBuf,
    /// Base model: a local directory (config.json, model.safetensors, tokenizer.json) or a hub id.
    #[cfg_attr(feature = "clap", arg(long))]
    pub model: String,
    /// Output directory for checkpoints and the final model.
    #[cfg_attr(feature = "clap", arg(long))]
    pub out: PathBuf,
    /// Peak learning rate of AdamW.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().learning_rate))]
    pub learning_rate: f64,
    /// Decoupled weight decay (not applied to biases and LayerNorm weights).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().weight_decay))]
    pub weight_decay: f64,
    /// Share of the total updates spent warming the learning rate up from 0.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().warmup_ratio))]
    pub warmup_ratio: f64,
    /// Learning-rate schedule after warmup.
    #[cfg_attr(
        feature = "clap",
        arg(long, value_enum, default_value_t = Self::default().lr_scheduler_type)
    )]
    pub lr_scheduler_type: SchedulerType,
    /// Clip the global gradient L2 norm to this value.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().max_grad_norm))]
    pub max_grad_norm: f64,
    /// Micro-batches per optimizer update.
    #[cfg_attr(
        feature = "clap",
        arg(long, default_value_t = Self::default().gradient_accumulation_steps)
    )]
    pub gradient_accumulation_steps: usize,
    /// Items per micro-batch.
    #[cfg_attr(
        feature = "clap",
        arg(long, default_value_t = Self::default().per_device_train_batch_size)
    )]
    pub per_device_train_batch_size: usize,
    /// Items per batch when scoring validation.
    #[cfg_attr(
        feature = "clap",
        arg(long, default_value_t = Self::default().per_device_eval_batch_size)
    )]
    pub per_device_eval_batch_size: usize,
    /// Passes over the train split.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().num_train_epochs))]
    pub num_train_epochs: u64,
    /// If > 0: total optimizer updates, overriding --num-train-epochs.
    #[cfg_attr(
        feature = "clap",
        arg(long, default_value_t = Self::default().max_steps, allow_negative_numbers = true)
    )]
    pub max_steps: i64,
    /// When to evaluate on validation (and save a checkpoint).
    #[cfg_attr(
        feature = "clap",
        arg(long, value_enum, default_value_t = Self::default().eval_strategy)
    )]
    pub eval_strategy: EvalStrategy,
    /// Updates between evaluations with --eval-strategy steps.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().eval_steps))]
    pub eval_steps: u64,
    /// Updates between metrics.jsonl lines.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().logging_steps))]
    pub logging_steps: u64,
    /// Keep at most this many checkpoints (plus the best); 0 keeps all.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().save_total_limit))]
    pub save_total_limit: usize,
    /// Stop after this many evaluations without improvement; 0 disables early stopping.
    #[cfg_attr(
        feature = "clap",
        arg(long, default_value_t = Self::default().early_stopping_patience)
    )]
    pub early_stopping_patience: u32,
    /// Validation metric choosing the best checkpoint.
    #[cfg_attr(
        feature = "clap",
        arg(long, value_enum, default_value_t = Self::default().metric_for_best_model)
    )]
    pub metric_for_best_model: MetricForBestModel,
    /// Seed of the classifier initialisation, data order and dropout.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().seed))]
    pub seed: u64,
    /// Maximum tokens per item (fields cut description first, title last).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().max_len))]
    pub max_len: usize,
    /// Sentence representation fed to the classifier. cls_pooler is the head of transformers'
    /// BertForSequenceClassification, so only it gives the same logits there.
    #[cfg_attr(
        feature = "clap",
        arg(long, value_enum, default_value_t = Self::default().pooling)
    )]
    pub pooling: Pooling,
    /// Class weights of the cross-entropy.
    #[cfg_attr(
        feature = "clap",
        arg(long, value_enum, default_value_t = Self::default().class_weights)
    )]
    pub class_weights: ClassWeights,
    /// Label smoothing of the cross-entropy, in [0, 1).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().label_smoothing))]
    pub label_smoothing: f64,
    /// Freeze the embeddings and the lowest N encoder layers.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().freeze_layers))]
    pub freeze_layers: usize,
    /// Train only the classification head (and pooler).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().freeze_encoder))]
    pub freeze_encoder: bool,
    /// Continue from the last checkpoint in --out (same arguments as the interrupted run).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = false))]
    pub resume: bool,
    /// Field template rendering an item.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Self::default().template))]
    pub template: String,
    /// Testing aid: stop as if interrupted after N updates of this invocation (0 = never).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0, hide = true))]
    pub stop_after_steps: u64,
    /// Where the model trains: auto (a CUDA GPU when this binary was built with CUDA and one
    /// answers, else the CPU), cpu, cuda (GPU 0) or cuda:N. LONGTAIL_DEVICE sets it for every
    /// command. Not part of what a resume must match: a run may continue on another device.
    #[serde(default)]
    #[cfg_attr(
        feature = "clap",
        arg(long, value_name = "DEVICE", default_value_t = DeviceSpec::Auto)
    )]
    pub device: DeviceSpec,
    /// fp32 (default) or bf16: mixed precision for a GPU, the encoder's matmuls on bf16 copies
    /// (f32 accumulation) while weights and AdamW moments stay f32. Slower on a CPU.
    #[serde(default)]
    #[cfg_attr(
        feature = "clap",
        arg(long, value_parser = training_precision(), default_value = "fp32")
    )]
    pub precision: Precision,
    /// Print where an update's time goes (forward, backward, clip, AdamW per update), with the
    /// device synchronised after each phase; a little slower, for profiling a GPU run.
    #[serde(default)]
    #[cfg_attr(feature = "clap", arg(long, default_value_t = false))]
    pub phase_times: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            data: PathBuf::new(),
            model: String::new(),
            out: PathBuf::new(),
            learning_rate: 5e-5,
            weight_decay: 0.01,
            warmup_ratio: 0.1,
            lr_scheduler_type: SchedulerType::Linear,
            max_grad_norm: 1.0,
            gradient_accumulation_steps: 1,
            per_device_train_batch_size: 16,
            per_device_eval_batch_size: 64,
            num_train_epochs: 2,
            max_steps: -1,
            eval_strategy: EvalStrategy::Epoch,
            eval_steps: 100,
            logging_steps: 10,
            save_total_limit: 2,
            early_stopping_patience: 0,
            metric_for_best_model: MetricForBestModel::Auc,
            seed: 42,
            max_len: DEFAULT_MAX_LEN,
            pooling: Pooling::ClsPooler,
            class_weights: ClassWeights::None,
            label_smoothing: 0.0,
            freeze_layers: 0,
            freeze_encoder: false,
            resume: false,
            template: longtail_tokenize::CATALOGUE_TEMPLATE.into(),
            stop_after_steps: 0,
            device: DeviceSpec::default(),
            precision: Precision::Fp32,
            phase_times: false,
        }
    }
}

impl TrainConfig {
    /// When the training loop evaluates.
    pub fn eval_cadence(&self) -> EvalCadence {
        match self.eval_strategy {
            EvalStrategy::No => EvalCadence::No,
            EvalStrategy::Epoch => EvalCadence::Epoch,
            EvalStrategy::Steps => EvalCadence::Steps(self.eval_steps),
        }
    }

    /// Ranges the types cannot express.
    pub fn validate(&self) -> Result<()> {
        ensure(self.per_device_train_batch_size > 0, || {
            "per_device_train_batch_size must be >= 1".into()
        })?;
        ensure(self.per_device_eval_batch_size > 0, || {
            "per_device_eval_batch_size must be >= 1".into()
        })?;
        ensure(self.gradient_accumulation_steps > 0, || {
            "gradient_accumulation_steps must be >= 1".into()
        })?;
        ensure(self.max_len >= 8, || "max_len must be >= 8".into())?;
        ensure(self.logging_steps > 0, || {
            "logging_steps must be >= 1".into()
        })?;
        ensure(self.num_train_epochs > 0 || self.max_steps > 0, || {
            "num_train_epochs or max_steps must be >= 1".into()
        })?;
        ensure((0.0..1.0).contains(&self.label_smoothing), || {
            "label_smoothing must be in [0, 1)".into()
        })?;
        ensure(
            self.eval_strategy != EvalStrategy::Steps || self.eval_steps > 0,
            || "eval_steps must be >= 1 with eval_strategy steps".into(),
        )?;
        ensure(self.precision != Precision::Int8, || {
            "precision int8 is for scoring (integer layers have no gradient); train in fp32 or \
             bf16"
                .into()
        })?;
        Ok(())
    }
}

/// `--precision` of `train`: fp32 or bf16. int8 is parsed but hidden from `--help`, so the
/// validation can say why it is refused (integer layers have no gradient).
#[cfg(feature = "clap")]
fn training_precision() -> impl clap::builder::TypedValueParser<Value = Precision> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
    PossibleValuesParser::new([
        PossibleValue::new("fp32"),
        PossibleValue::new("bf16"),
        PossibleValue::new("int8").hide(true),
    ])
    .map(|s| match s.as_str() {
        "bf16" => Precision::Bf16,
        "int8" => Precision::Int8,
        _ => Precision::Fp32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// train_args.toml keeps the strings it always had, so old checkpoints' arguments load.
    #[test]
    fn config_round_trips_through_toml_with_the_hf_spellings() {
        let cfg = TrainConfig::default();
        let text = toml::to_string(&cfg).unwrap();
        for line in [
            "lr_scheduler_type = \"linear\"",
            "eval_strategy = \"epoch\"",
            "metric_for_best_model = \"auc\"",
            "pooling = \"cls_pooler\"",
            "class_weights = \"none\"",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        let back: TrainConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, cfg);
        cfg.validate().unwrap();
        let old = text.replace("\"auc\"", "\"roc_auc\"");
        let back: TrainConfig = toml::from_str(&old).unwrap();
        assert_eq!(back.metric_for_best_model, MetricForBestModel::Auc);
        assert!(
            toml::from_str::<TrainConfig>(&text.replace("\"epoch\"", "\"sometimes\"")).is_err()
        );
        assert!(TrainConfig {
            eval_strategy: EvalStrategy::Steps,
            eval_steps: 0,
            ..Default::default()
        }
        .validate()
        .is_err());
    }
}
