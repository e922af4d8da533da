//! The fine-tuning loop behind `longtail train`: a prepared dataset and a BERT checkpoint in,
//! checkpoints (HF names, `config.json` with `id2label`, `tokenizer.json`, optimizer state,
//! `trainer_state.json`) and `metrics.jsonl` out.
//!
//! One optimizer update = `gradient_accumulation_steps` micro-batches of
//! `per_device_train_batch_size` items (dropout on), class-weighted cross-entropy with label
//! smoothing, global-norm clipping, AdamW with HF no-decay groups and frozen parameters, LR
//! from a warmup + linear/cosine schedule. The validation split is scored (ROC-AUC, loss) per
//! epoch or every `eval_steps`; each evaluation writes a checkpoint atomically, tracks the best
//! one (`metric_for_best_model`) and feeds early stopping. At the end the best checkpoint's
//! model (or the last one without evaluation) is copied to the top of `out`.
//!
//! Resuming (`resume = true`) restores weights, optimizer moments, step, schedule position,
//! data order (batches are a function of `(seed, epoch)`; the consumed ones are skipped) and
//! the dropout RNG, so an interrupted and resumed run ends with the same weights as an
//! uninterrupted one.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use longtail_data::{PreparedDataset, Split};
use longtail_model::checkpoint::{
    DEFAULT_MAX_LEN, METRICS_FILE, TOKENIZER_FILE, TRAINER_STATE_FILE, TRAIN_ARGS_FILE,
};
use longtail_model::{
    BertForSequenceClassification, Checkpoint, ClassifierOptions, CrossEntropy, DeviceSpec,
    DropoutRngState, HubOptions, Precision,
};
use longtail_tokenize::ItemTokenizer;
use longtail_train::{
    checkpoint_dir_name, class_weights_inverse_frequency, last_checkpoint,
    num_update_steps_per_epoch, remaining_updates, rotate_checkpoints, AdamW, AdamWConfig,
    BestMetricConfig, EarlyStopping, LogEntry, LrSchedule, ParamGroupSpec, PhaseTimes, RngState,
    SchedulerType, StepDriver, TrainError, TrainerState, EARLY_STOPPING_CALLBACK,
};
use serde::{Deserialize, Serialize};

use crate::data::{self, predict, EncodedSplit, LABELS};
use crate::error::{ensure, ClassifyError, Result};

const DROPOUT_CALLS: &str = "dropout_calls";

/// Everything a training run needs, with `TrainingArguments` names where HF has one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Prepared dataset directory (`longtail prepare --out`).
    pub data: PathBuf,
    /// Base model: local directory or hub id.
    pub model: String,
    /// Output directory: `checkpoint-N/` subdirectories and the final model.
    pub out: PathBuf,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub warmup_ratio: f64,
    /// `linear`, `cosine` or `constant_with_warmup`.
    pub lr_scheduler_type: String,
    pub max_grad_norm: f64,
    pub gradient_accumulation_steps: usize,
    pub per_device_train_batch_size: usize,
    pub per_device_eval_batch_size: usize,
    pub num_train_epochs: u64,
    /// > 0 overrides `num_train_epochs`.
    pub max_steps: i64,
    /// `epoch`, `steps` or `no`.
    pub eval_strategy: String,
    pub eval_steps: u64,
    pub logging_steps: u64,
    /// 0 = keep every checkpoint.
    pub save_total_limit: usize,
    /// 0 = no early stopping.
    pub early_stopping_patience: u32,
    /// `auc` (alias `roc_auc`) or `loss`.
    pub metric_for_best_model: String,
    pub seed: u64,
    pub max_len: usize,
    /// `cls_pooler`, `cls` or `mean`.
    pub pooling: String,
    /// `none` or `auto` (inverse class frequency on the train split).
    pub class_weights: String,
    pub label_smoothing: f64,
    /// Freeze the embeddings and the lowest N encoder layers.
    pub freeze_layers: usize,
    /// Train the classification head (and pooler) only.
    pub freeze_encoder: bool,
    /// Continue from the last checkpoint in `out`.
    pub resume: bool,
    /// Field template rendering an item's text.
    pub template: String,
    /// Testing aid: stop (as if killed) after this many updates in this invocation; 0 = never.
    pub stop_after_steps: u64,
    /// Where the model trains (`auto`, `cpu`, `cuda:N`). Not part of what a resume must match:
    /// a run may continue on another device.
    #[serde(default)]
    pub device: DeviceSpec,
    /// `fp32`, or `bf16`: the encoder's matmuls on bf16 copies, f32 master weights.
    #[serde(default)]
    pub precision: Precision,
    /// Time each phase of the updates (forward, backward, clip, AdamW), synchronising the
    /// device after each; reported in [`TrainOutcome::phase_times`]. A diagnostic.
    #[serde(default)]
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
            lr_scheduler_type: "linear".into(),
            max_grad_norm: 1.0,
            gradient_accumulation_steps: 1,
            per_device_train_batch_size: 16,
            per_device_eval_batch_size: 64,
            num_train_epochs: 2,
            max_steps: -1,
            eval_strategy: "epoch".into(),
            eval_steps: 100,
            logging_steps: 10,
            save_total_limit: 2,
            early_stopping_patience: 0,
            metric_for_best_model: "auc".into(),
            seed: 42,
            max_len: DEFAULT_MAX_LEN,
            pooling: "cls_pooler".into(),
            class_weights: "none".into(),
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EvalStrategy {
    No,
    Epoch,
    Steps(u64),
}

impl TrainConfig {
    fn eval_strategy(&self) -> Result<EvalStrategy> {
        match self.eval_strategy.as_str() {
            "no" => Ok(EvalStrategy::No),
            "epoch" => Ok(EvalStrategy::Epoch),
            "steps" => {
                ensure(self.eval_steps > 0, || {
                    "eval_steps must be >= 1 with eval_strategy steps".into()
                })?;
                Ok(EvalStrategy::Steps(self.eval_steps))
            }
            other => Err(ClassifyError::invalid(format!(
                "eval_strategy {other:?}: expected epoch, steps or no"
            ))),
        }
    }

    /// The metric name as the trainer logs it (`auc` or `loss`).
    fn best_metric_name(&self) -> Result<&'static str> {
        match self.metric_for_best_model.trim_start_matches("eval_") {
            "auc" | "roc_auc" => Ok("auc"),
            "loss" => Ok("loss"),
            other => Err(ClassifyError::invalid(format!(
                "metric_for_best_model {other:?}: expected auc (roc_auc) or loss"
            ))),
        }
    }

    fn validate(&self) -> Result<()> {
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
            matches!(self.class_weights.as_str(), "none" | "auto"),
            || {
                format!(
                    "class_weights {:?}: expected none or auto",
                    self.class_weights
                )
            },
        )?;
        ensure(self.precision != Precision::Int8, || {
            "precision int8 is for scoring (integer layers have no gradient); train in fp32 or \
             bf16"
                .into()
        })?;
        self.eval_strategy()?;
        self.best_metric_name()?;
        self.lr_scheduler_type.parse::<SchedulerType>()?;
        Ok(())
    }
}

/// One optimizer update, as reported to an [`Observer`].
#[derive(Debug, Clone, Copy)]
pub struct StepInfo {
    pub step: u64,
    pub max_steps: u64,
    pub epoch: f64,
    pub loss: f64,
    pub learning_rate: f64,
    pub samples_per_second: f64,
}

/// Progress callbacks (progress bars, logs). Every method has a no-op default.
pub trait Observer {
    fn on_start(&mut self, _max_steps: u64, _start_step: u64) {}
    fn on_step(&mut self, _info: &StepInfo) {}
    fn on_eval(&mut self, _step: u64, _metrics: &BTreeMap<String, f64>) {}
    fn on_message(&mut self, _message: &str) {}
}

/// Observer that ignores everything.
pub struct Silent;
impl Observer for Silent {}

/// What a finished (or stopped) run reports.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    pub global_step: u64,
    pub max_steps: u64,
    pub best_metric: Option<f64>,
    pub best_checkpoint: Option<PathBuf>,
    pub last_checkpoint: Option<PathBuf>,
    pub train_samples: usize,
    pub samples_seen_this_run: u64,
    pub seconds: f64,
    pub early_stopped: bool,
    /// Stopped by `stop_after_steps` (the final model was not exported).
    pub interrupted: bool,
    /// Per-phase wall time of this run's updates, with `phase_times` on.
    pub phase_times: Option<PhaseTimes>,
}

impl TrainOutcome {
    pub fn samples_per_second(&self) -> f64 {
        self.samples_seen_this_run as f64 / self.seconds.max(1e-9)
    }
}

fn frozen_rule(cfg: &TrainConfig, num_layers: usize) -> Result<impl Fn(&str) -> bool + 'static> {
    ensure(cfg.freeze_layers <= num_layers, || {
        format!(
            "freeze_layers {} exceeds the model's {num_layers} layers",
            cfg.freeze_layers
        )
    })?;
    let freeze_encoder = cfg.freeze_encoder;
    let n = cfg.freeze_layers;
    Ok(move |name: &str| {
        if freeze_encoder {
            return name.starts_with("bert.") && !name.starts_with("bert.pooler.");
        }
        if n == 0 {
            return false;
        }
        if name.starts_with("bert.embeddings.") {
            return true;
        }
        name.strip_prefix("bert.encoder.layer.")
            .and_then(|rest| rest.split('.').next())
            .and_then(|i| i.parse::<usize>().ok())
            .is_some_and(|i| i < n)
    })
}

fn metrics_line(entry: &LogEntry) -> Result<String> {
    Ok(serde_json::to_string(entry)?)
}

fn write_metrics_file(path: &Path, history: &[LogEntry]) -> Result<()> {
    let mut text = String::new();
    for e in history {
        text.push_str(&metrics_line(e)?);
        text.push('\n');
    }
    Ok(longtail_fs::write_atomic(path, text.as_bytes())?)
}

/// Loads a classifier from a model directory or hub id, with its tokenizer rendering items
/// through `template` and truncating to `max_len` tokens.
pub fn load_model(
    model: &str,
    opts: &ClassifierOptions,
    max_len: usize,
    template: &str,
    device: &Device,
) -> Result<(BertForSequenceClassification, ItemTokenizer, Checkpoint)> {
    let checkpoint = Checkpoint::resolve(model, &HubOptions::default())
        .map_err(ClassifyError::model(format!("cannot find model {model}")))?;
    let (model_obj, _report) =
        BertForSequenceClassification::from_files(checkpoint.files(), opts, device)
            .map_err(ClassifyError::model(format!("cannot load model {model}")))?;
    let tokenizer =
        checkpoint
            .item_tokenizer(template, max_len, None)
            .map_err(ClassifyError::model(format!(
                "cannot load the tokenizer of {model}"
            )))?;
    Ok((model_obj, tokenizer, checkpoint))
}

/// Writes `checkpoint-N` directories.
struct Saver<'a> {
    out: &'a Path,
    /// Read once at the start: a resumed run's tokenizer comes from the checkpoint it resumed
    /// from, which checkpoint rotation may delete before the next save.
    tokenizer_json: Vec<u8>,
    args_toml: String,
    save_total_limit: usize,
}

impl Saver<'_> {
    fn save(
        &self,
        model: &BertForSequenceClassification,
        driver: &StepDriver,
        state: &mut TrainerState,
    ) -> Result<PathBuf> {
        let dir = self.out.join(checkpoint_dir_name(state.global_step));
        state.record_best_checkpoint(self.out);
        // An existing checkpoint-N (a resumed run saving the same step) is swapped out in one
        // step by write_dir_atomic, never deleted first.
        longtail_fs::write_dir_atomic(&dir, |tmp| -> Result<()> {
            model
                .save_pretrained(tmp)
                .map_err(ClassifyError::model("saving the model"))?;
            fs::write(tmp.join(TOKENIZER_FILE), &self.tokenizer_json)
                .map_err(|e| ClassifyError::io(tmp.join(TOKENIZER_FILE), e))?;
            driver.save_state(tmp)?;
            state.save(&tmp.join(TRAINER_STATE_FILE))?;
            fs::write(tmp.join(TRAIN_ARGS_FILE), &self.args_toml)
                .map_err(|e| ClassifyError::io(tmp.join(TRAIN_ARGS_FILE), e))?;
            Ok(())
        })?;
        let best = state.best_model_checkpoint.as_ref().map(PathBuf::from);
        if self.save_total_limit > 0 {
            rotate_checkpoints(self.out, self.save_total_limit, best.as_deref())?;
        }
        Ok(dir)
    }
}

/// Runs (or resumes) a training run.
pub fn train(cfg: &TrainConfig, observer: &mut dyn Observer) -> Result<TrainOutcome> {
    cfg.validate()?;
    let started = Instant::now();
    let device = cfg
        .device
        .resolve()
        .map_err(longtail_model::ModelError::from)?;
    fs::create_dir_all(&cfg.out).map_err(|e| ClassifyError::io(&cfg.out, e))?;
    // One run per --out: a second would rotate away the first one's checkpoints.
    let _lock = longtail_fs::OutputLock::acquire(&cfg.out)?;
    let existing = last_checkpoint(&cfg.out)?;
    if existing.is_some() && !cfg.resume {
        return Err(ClassifyError::invalid(format!(
            "{} already holds checkpoints; pass --resume to continue them or choose another --out",
            cfg.out.display()
        )));
    }
    let resume_from = if cfg.resume { existing } else { None };
    if cfg.resume && resume_from.is_none() {
        observer.on_message("--resume: no checkpoint in the output directory, starting fresh");
    }

    // Data.
    let dataset = PreparedDataset::load(&cfg.data)?;
    let train_items: Vec<_> = dataset.split(Split::Train).collect();
    let val_items: Vec<_> = dataset.split(Split::Validation).collect();
    ensure(!train_items.is_empty(), || {
        "the train split is empty".into()
    })?;

    // Model (from the checkpoint when resuming: it carries the trained head).
    let pooling: longtail_model::Pooling = cfg.pooling.parse()?;
    let opts = ClassifierOptions {
        labels: Some(LABELS.iter().map(|s| s.to_string()).collect()),
        pooling: Some(pooling),
        init_seed: cfg.seed,
        dropout_seed: cfg.seed,
        ..Default::default()
    };
    let model_src = match &resume_from {
        Some(dir) => dir.to_string_lossy().into_owned(),
        None => cfg.model.clone(),
    };
    let (mut model, tokenizer, source) =
        load_model(&model_src, &opts, cfg.max_len, &cfg.template, &device)?;
    model.set_precision(cfg.precision)?;
    observer.on_message(&format!(
        "training on {} in {}; tokenizing {} train / {} validation items (max_len {})",
        longtail_model::device_name(&device),
        cfg.precision,
        train_items.len(),
        val_items.len(),
        tokenizer.max_len()
    ));
    let train_split = EncodedSplit::encode(&tokenizer, &train_items)?;
    let val_split = EncodedSplit::encode(&tokenizer, &val_items)?;
    let train_lengths = train_split.lengths();

    // Loss.
    let counts = train_split.class_counts();
    let class_weights = if cfg.class_weights == "auto" {
        let w = class_weights_inverse_frequency(&counts)?;
        Some(Tensor::from_vec(w, 2, &device)?)
    } else {
        None
    };
    let ce = CrossEntropy {
        class_weights,
        label_smoothing: cfg.label_smoothing,
    };

    // Optimizer.
    let spec = ParamGroupSpec::new(cfg.weight_decay)
        .frozen(frozen_rule(cfg, model.config().num_hidden_layers)?);
    let adam_cfg = AdamWConfig {
        learning_rate: cfg.learning_rate,
        weight_decay: cfg.weight_decay,
        ..Default::default()
    };
    let opt = AdamW::with_spec(model.named_trainable_vars(), adam_cfg, &spec)?;
    ensure(!opt.trainable_vars().is_empty(), || {
        "every parameter is frozen: nothing to train".into()
    })?;

    // Steps.
    let bs = cfg.per_device_train_batch_size;
    let gas = cfg.gradient_accumulation_steps;
    let num_batches = train_batches_for(&train_lengths, cfg, 0)?.len();
    let nupe = num_update_steps_per_epoch(num_batches, gas)? as u64;
    let (max_steps, num_epochs) = if cfg.max_steps > 0 {
        let m = cfg.max_steps as u64;
        (m, m.div_ceil(nupe))
    } else {
        (nupe * cfg.num_train_epochs, cfg.num_train_epochs)
    };
    let scheduler: SchedulerType = cfg.lr_scheduler_type.parse()?;
    let schedule =
        LrSchedule::from_args(scheduler, cfg.learning_rate, max_steps, 0, cfg.warmup_ratio)?;
    let mut driver = StepDriver::new(opt, schedule, cfg.max_grad_norm);
    if cfg.phase_times {
        driver = driver.time_phases();
    }
    let strategy = cfg.eval_strategy()?;
    let best_cfg = BestMetricConfig::new(cfg.best_metric_name()?);
    let mut early = if cfg.early_stopping_patience > 0 {
        Some(EarlyStopping::new(cfg.early_stopping_patience, 0.0)?)
    } else {
        None
    };
    if strategy != EvalStrategy::No {
        ensure(val_split.class_counts().iter().all(|&c| c > 0), || {
            "the validation split needs both head and tail items to compute ROC-AUC \
             (or pass --eval-strategy no)"
                .into()
        })?;
    }

    let mut state = TrainerState {
        max_steps,
        num_train_epochs: num_epochs,
        train_batch_size: Some(bs as u64),
        logging_steps: cfg.logging_steps,
        eval_steps: if let EvalStrategy::Steps(s) = strategy {
            s
        } else {
            0
        },
        save_steps: if let EvalStrategy::Steps(s) = strategy {
            s
        } else {
            nupe
        },
        rng_state: RngState {
            seed: cfg.seed,
            ..Default::default()
        },
        ..Default::default()
    };
    if let Some(ckpt) = &resume_from {
        state = TrainerState::load(&ckpt.join(TRAINER_STATE_FILE))?;
        driver.restore(ckpt, state.global_step)?;
        ensure(state.max_steps == max_steps, || {
            format!(
                "the checkpoint was made for max_steps {} but these arguments give {max_steps}: \
                 resume with the original arguments",
                state.max_steps
            )
        })?;
        if let Some(v) = state.stateful_callbacks.get(EARLY_STOPPING_CALLBACK) {
            if early.is_some() {
                early = Some(EarlyStopping::from_state(v)?);
            }
        }
        let calls = state
            .rng_state
            .counters
            .get(DROPOUT_CALLS)
            .copied()
            .unwrap_or(0);
        model.set_dropout_rng_state(DropoutRngState {
            seed: cfg.seed,
            calls,
        });
        observer.on_message(&format!(
            "resuming from {} (step {})",
            ckpt.display(),
            state.global_step
        ));
    }

    let args_toml = toml::to_string(cfg)?;
    longtail_fs::write_atomic(&cfg.out.join(TRAIN_ARGS_FILE), args_toml.as_bytes())?;
    let metrics_path = cfg.out.join(METRICS_FILE);
    write_metrics_file(&metrics_path, &state.log_history)?;
    let mut metrics_file = fs::OpenOptions::new()
        .append(true)
        .open(&metrics_path)
        .map_err(|e| ClassifyError::io(&metrics_path, e))?;
    let saver = Saver {
        out: &cfg.out,
        tokenizer_json: {
            let path = source
                .tokenizer_path()
                .map_err(ClassifyError::model("tokenizer"))?;
            fs::read(&path).map_err(|e| ClassifyError::io(&path, e))?
        },
        args_toml,
        save_total_limit: cfg.save_total_limit,
    };

    let mut log = |state: &mut TrainerState, entry: LogEntry| -> Result<()> {
        writeln!(metrics_file, "{}", metrics_line(&entry)?)
            .map_err(|e| ClassifyError::io(&metrics_path, e))?;
        state.log(entry);
        Ok(())
    };

    let evaluate = |model: &BertForSequenceClassification| -> Result<BTreeMap<String, f64>> {
        let (probs, loss) = predict(
            model,
            &tokenizer,
            &val_split,
            cfg.per_device_eval_batch_size,
        )?;
        let labels: Vec<bool> = val_split.labels.iter().map(|&l| l == 1).collect();
        let auc = longtail_eval::metrics::roc_auc(&probs, &labels);
        Ok([
            ("eval_loss".to_string(), loss),
            ("eval_auc".to_string(), auc),
        ]
        .into())
    };

    observer.on_start(max_steps, state.global_step);
    let mut last_saved: Option<(u64, PathBuf)> =
        resume_from.clone().map(|p| (state.global_step, p));
    let mut updates_this_run = 0u64;
    let mut samples_this_run = 0u64;
    let mut loss_since_log = 0.0f64;
    let mut steps_since_log = 0u64;
    let mut early_stopped = false;
    let mut interrupted = false;
    let loop_start = Instant::now();
    let mut epoch_batches: Option<(u64, Vec<Vec<usize>>)> = None;

    for window in remaining_updates(state.global_step, num_batches, gas, num_epochs)? {
        if state.global_step >= max_steps {
            break;
        }
        let epoch = window.epoch;
        if epoch_batches.as_ref().map(|(e, _)| *e) != Some(epoch) {
            let batches = train_batches_for(&train_lengths, cfg, epoch)?;
            ensure(batches.len() == num_batches, || {
                format!(
                    "internal: epoch {epoch} has {} batches, epoch 0 had {num_batches}",
                    batches.len()
                )
            })?;
            epoch_batches = Some((epoch, batches));
        }
        let batches = &epoch_batches.as_ref().expect("set above").1[window.batches.clone()];
        let report = driver
            .step(batches.len(), |i| -> Result<Tensor> {
                let indices = &batches[i];
                let (ids, types, mask) =
                    data::batch_tensors(&tokenizer, &train_split, indices, &device)?;
                let labels: Vec<u32> = indices.iter().map(|&i| train_split.labels[i]).collect();
                let labels = Tensor::from_vec(labels, indices.len(), &device)?;
                let logits = model.forward_t(&ids, Some(&types), Some(&mask), true)?;
                let loss = model.loss(&logits, &labels, &ce)?;
                state.num_samples_seen += indices.len() as u64;
                samples_this_run += indices.len() as u64;
                state.num_input_tokens_seen += indices
                    .iter()
                    .map(|&i| train_split.encoded[i].len() as u64)
                    .sum::<u64>();
                Ok(loss)
            })
            .map_err(|e| match e {
                ClassifyError::Train(TrainError::NonFinite { what, value, step }) => {
                    ClassifyError::Diverged {
                        what,
                        value,
                        step,
                        epoch,
                        last_good: last_saved
                            .as_ref()
                            .map_or("(none saved yet)".into(), |(_, p)| p.display().to_string()),
                    }
                }
                other => other,
            })?;
        let lr = report.learning_rate;
        let cursor = window.batches.end;
        state.global_step = report.step;
        updates_this_run += 1;
        state.epoch = epoch as f64 + cursor as f64 / num_batches as f64;
        state.rng_state.epoch = epoch;
        state.rng_state.batches_seen_in_epoch = cursor as u64;
        state
            .rng_state
            .counters
            .insert(DROPOUT_CALLS.into(), model.dropout_rng_state().calls);
        loss_since_log += report.loss;
        steps_since_log += 1;

        let elapsed = loop_start.elapsed().as_secs_f64().max(1e-9);
        let sps = samples_this_run as f64 / elapsed;
        observer.on_step(&StepInfo {
            step: state.global_step,
            max_steps,
            epoch: state.epoch,
            loss: report.loss,
            learning_rate: lr,
            samples_per_second: sps,
        });
        if state.global_step.is_multiple_of(cfg.logging_steps) {
            let entry = LogEntry::new(state.global_step, state.epoch)
                .with("loss", loss_since_log / steps_since_log as f64)
                .with("learning_rate", lr)
                .with("grad_norm", report.grad_norm)
                .with("samples_per_second", sps);
            log(&mut state, entry)?;
            loss_since_log = 0.0;
            steps_since_log = 0;
        }

        let last_step = state.global_step >= max_steps;
        let do_eval = match strategy {
            EvalStrategy::No => false,
            EvalStrategy::Epoch => window.end_of_epoch || last_step,
            EvalStrategy::Steps(s) => state.global_step.is_multiple_of(s) || last_step,
        };
        let do_save =
            do_eval || (strategy == EvalStrategy::No && (window.end_of_epoch || last_step));
        if do_eval {
            let metrics = evaluate(&model)?;
            observer.on_eval(state.global_step, &metrics);
            let mut entry = LogEntry::new(state.global_step, state.epoch);
            for (k, v) in &metrics {
                entry = entry.with(k.clone(), *v);
            }
            log(&mut state, entry)?;
            if let Some(es) = early.as_mut() {
                early_stopped = es.on_evaluate(&metrics, &best_cfg, state.best_metric);
                state
                    .stateful_callbacks
                    .insert(EARLY_STOPPING_CALLBACK.into(), es.state());
            }
            state.update_best_metric(&metrics, &best_cfg)?;
        }
        if do_save {
            let dir = saver.save(&model, &driver, &mut state)?;
            last_saved = Some((state.global_step, dir));
        }
        if early_stopped {
            observer.on_message(&format!(
                "early stopping at step {}: no improvement of {} for {} evaluations",
                state.global_step, cfg.metric_for_best_model, cfg.early_stopping_patience
            ));
            break;
        }
        if last_step {
            break;
        }
        if cfg.stop_after_steps > 0 && updates_this_run >= cfg.stop_after_steps {
            interrupted = true;
            break;
        }
    }

    // The final state is always on disk as a checkpoint (unless interrupted on purpose).
    if !interrupted && last_saved.as_ref().map(|(s, _)| *s) != Some(state.global_step) {
        let dir = saver.save(&model, &driver, &mut state)?;
        last_saved = Some((state.global_step, dir));
    }
    write_metrics_file(&metrics_path, &state.log_history)?;

    let best_checkpoint = state
        .best_global_step
        .map(|s| cfg.out.join(checkpoint_dir_name(s)))
        .filter(|p| p.is_dir());
    if !interrupted {
        let src = best_checkpoint
            .clone()
            .or_else(|| last_saved.as_ref().map(|(_, p)| p.clone()))
            .ok_or_else(|| ClassifyError::invalid("internal: no checkpoint to export"))?;
        Checkpoint::open(&src)
            .and_then(|c| c.export_model(&cfg.out))
            .map_err(ClassifyError::model(format!(
                "exporting {} to {}",
                src.display(),
                cfg.out.display()
            )))?;
        state.save(&cfg.out.join(TRAINER_STATE_FILE))?;
        observer.on_message(&format!(
            "final model: {} (from {})",
            cfg.out.display(),
            src.display()
        ));
    }
    Ok(TrainOutcome {
        global_step: state.global_step,
        max_steps,
        best_metric: state.best_metric,
        best_checkpoint,
        last_checkpoint: last_saved.map(|(_, p)| p),
        train_samples: train_split.len(),
        samples_seen_this_run: samples_this_run,
        seconds: started.elapsed().as_secs_f64(),
        early_stopped,
        interrupted,
        phase_times: driver.phase_times(),
    })
}

fn train_batches_for(lengths: &[usize], cfg: &TrainConfig, epoch: u64) -> Result<Vec<Vec<usize>>> {
    data::train_batches(
        lengths,
        cfg.per_device_train_batch_size,
        cfg.max_len,
        cfg.seed,
        epoch,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freeze_rule_names() {
        let cfg = TrainConfig {
            freeze_layers: 2,
            ..Default::default()
        };
        let f = frozen_rule(&cfg, 6).unwrap();
        assert!(f("bert.embeddings.word_embeddings.weight"));
        assert!(f("bert.encoder.layer.1.output.dense.weight"));
        assert!(!f("bert.encoder.layer.2.output.dense.weight"));
        assert!(!f("bert.encoder.layer.10.output.dense.weight"));
        assert!(!f("classifier.weight"));
        let cfg = TrainConfig {
            freeze_encoder: true,
            ..Default::default()
        };
        let f = frozen_rule(&cfg, 6).unwrap();
        assert!(f("bert.encoder.layer.5.output.dense.weight"));
        assert!(!f("bert.pooler.dense.weight"));
        assert!(!f("classifier.bias"));
        assert!(frozen_rule(
            &TrainConfig {
                freeze_layers: 7,
                ..Default::default()
            },
            6
        )
        .is_err());
    }

    #[test]
    fn config_round_trips_through_toml() {
        let cfg = TrainConfig::default();
        let text = toml::to_string(&cfg).unwrap();
        let back: TrainConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, cfg);
        cfg.validate().unwrap();
        assert!(TrainConfig {
            eval_strategy: "sometimes".into(),
            ..Default::default()
        }
        .validate()
        .is_err());
    }
}
