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

pub mod data;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use candle_core::{Device, Tensor};
use longtail_data::{PreparedDataset, Split};
use longtail_model::{
    BertForSequenceClassification, ClassifierOptions, CrossEntropy, DropoutRngState, HubOptions,
    PretrainedFiles,
};
use longtail_tokenize::{FieldTemplate, ItemTokenizer, TokenizeConfig};
use serde::{Deserialize, Serialize};

use crate::{
    accumulation_windows, checkpoint_dir_name, class_weights_inverse_frequency, clip_grad_norm,
    last_checkpoint, num_update_steps_per_epoch, resume_position, rotate_checkpoints,
    sorted_checkpoints, write_dir_atomic, AdamW, AdamWConfig, BestMetricConfig, EarlyStopping,
    GradAccumulator, LogEntry, LrSchedule, ParamGroupSpec, RngState, SchedulerType, TrainError,
    TrainerState, EARLY_STOPPING_CALLBACK, TRAINER_STATE_FILE,
};
pub use data::{label_id, predict, EncodedSplit, LABELS};

/// `metrics.jsonl`: one JSON object per logging step and per evaluation.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// The effective arguments of the run.
pub const TRAIN_ARGS_FILE: &str = "train_args.toml";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
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
            max_len: 128,
            pooling: "mean".into(),
            class_weights: "none".into(),
            label_smoothing: 0.0,
            freeze_layers: 0,
            freeze_encoder: false,
            resume: false,
            template: longtail_tokenize::CATALOGUE_TEMPLATE.into(),
            stop_after_steps: 0,
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
                ensure!(
                    self.eval_steps > 0,
                    "eval_steps must be >= 1 with eval_strategy steps"
                );
                Ok(EvalStrategy::Steps(self.eval_steps))
            }
            other => bail!("eval_strategy {other:?}: expected epoch, steps or no"),
        }
    }

    /// The metric name as the trainer logs it (`auc` or `loss`).
    fn best_metric_name(&self) -> Result<&'static str> {
        match self.metric_for_best_model.trim_start_matches("eval_") {
            "auc" | "roc_auc" => Ok("auc"),
            "loss" => Ok("loss"),
            other => bail!("metric_for_best_model {other:?}: expected auc (roc_auc) or loss"),
        }
    }

    fn validate(&self) -> Result<()> {
        ensure!(
            self.per_device_train_batch_size > 0,
            "per_device_train_batch_size must be >= 1"
        );
        ensure!(
            self.per_device_eval_batch_size > 0,
            "per_device_eval_batch_size must be >= 1"
        );
        ensure!(
            self.gradient_accumulation_steps > 0,
            "gradient_accumulation_steps must be >= 1"
        );
        ensure!(self.max_len >= 8, "max_len must be >= 8");
        ensure!(self.logging_steps > 0, "logging_steps must be >= 1");
        ensure!(
            self.num_train_epochs > 0 || self.max_steps > 0,
            "num_train_epochs or max_steps must be >= 1"
        );
        ensure!(
            (0.0..1.0).contains(&self.label_smoothing),
            "label_smoothing must be in [0, 1)"
        );
        ensure!(
            matches!(self.class_weights.as_str(), "none" | "auto"),
            "class_weights {:?}: expected none or auto",
            self.class_weights
        );
        self.eval_strategy()?;
        self.best_metric_name()?;
        self.lr_scheduler_type
            .parse::<SchedulerType>()
            .map_err(anyhow::Error::from)?;
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
}

impl TrainOutcome {
    pub fn samples_per_second(&self) -> f64 {
        self.samples_seen_this_run as f64 / self.seconds.max(1e-9)
    }
}

fn frozen_rule(cfg: &TrainConfig, num_layers: usize) -> Result<impl Fn(&str) -> bool + 'static> {
    ensure!(
        cfg.freeze_layers <= num_layers,
        "freeze_layers {} exceeds the model's {num_layers} layers",
        cfg.freeze_layers
    );
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
    crate::write_atomic(path, text.as_bytes()).map_err(anyhow::Error::from)
}

/// Where the tokenizer of a model directory or hub id lives.
pub fn tokenizer_path(files: &PretrainedFiles) -> Result<PathBuf> {
    let dir = files
        .config
        .parent()
        .context("model config has no parent directory")?;
    let path = dir.join(TOKENIZER_FILE);
    ensure!(
        path.is_file(),
        "no {TOKENIZER_FILE} next to {} (the model directory must contain one)",
        files.config.display()
    );
    Ok(path)
}

/// Loads a classifier from a model directory/hub id plus its tokenizer.
pub fn load_model(
    model: &str,
    opts: &ClassifierOptions,
    max_len: usize,
    template: &str,
) -> Result<(BertForSequenceClassification, ItemTokenizer, PathBuf)> {
    let files = PretrainedFiles::resolve(model, &HubOptions::default())
        .with_context(|| format!("cannot find model {model}"))?;
    let (model_obj, _report) =
        BertForSequenceClassification::from_files(&files, opts, &Device::Cpu)
            .with_context(|| format!("cannot load model {model}"))?;
    let tok_path = tokenizer_path(&files)?;
    let template = FieldTemplate::parse(template).context("bad template")?;
    let max_len = max_len.min(model_obj.config().max_position_embeddings);
    let tokenizer = ItemTokenizer::from_file(&tok_path, TokenizeConfig::new(template, max_len))
        .with_context(|| format!("cannot load {}", tok_path.display()))?;
    Ok((model_obj, tokenizer, tok_path))
}

struct Saver<'a> {
    out: &'a Path,
    tokenizer: &'a Path,
    args_toml: String,
    save_total_limit: usize,
}

impl Saver<'_> {
    fn save(
        &self,
        model: &BertForSequenceClassification,
        opt: &AdamW,
        state: &mut TrainerState,
    ) -> Result<PathBuf> {
        let dir = self.out.join(checkpoint_dir_name(state.global_step));
        state.record_best_checkpoint(self.out);
        if dir.exists() {
            fs::remove_dir_all(&dir)
                .with_context(|| format!("removing stale {}", dir.display()))?;
        }
        write_dir_atomic(&dir, |tmp| {
            model
                .save_pretrained(tmp)
                .map_err(|e| TrainError::invalid(format!("saving model: {e}")))?;
            fs::copy(self.tokenizer, tmp.join(TOKENIZER_FILE))
                .map_err(|e| TrainError::io(tmp.join(TOKENIZER_FILE), e))?;
            opt.save_state(tmp)?;
            state.save(&tmp.join(TRAINER_STATE_FILE))?;
            fs::write(tmp.join(TRAIN_ARGS_FILE), &self.args_toml)
                .map_err(|e| TrainError::io(tmp.join(TRAIN_ARGS_FILE), e))?;
            Ok(())
        })
        .with_context(|| format!("writing checkpoint {}", dir.display()))?;
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
    let device = Device::Cpu;
    fs::create_dir_all(&cfg.out).with_context(|| format!("creating {}", cfg.out.display()))?;
    let existing = last_checkpoint(&cfg.out)?;
    if existing.is_some() && !cfg.resume {
        bail!(
            "{} already holds checkpoints; pass --resume to continue them or choose another --out",
            cfg.out.display()
        );
    }
    let resume_from = if cfg.resume { existing } else { None };
    if cfg.resume && resume_from.is_none() {
        observer.on_message("--resume: no checkpoint in the output directory, starting fresh");
    }

    // Data.
    let dataset = PreparedDataset::load(&cfg.data)
        .with_context(|| format!("cannot load prepared dataset {}", cfg.data.display()))?;
    let train_items: Vec<_> = dataset.split(Split::Train).collect();
    let val_items: Vec<_> = dataset.split(Split::Validation).collect();
    ensure!(!train_items.is_empty(), "the train split is empty");

    // Model (from the checkpoint when resuming: it carries the trained head).
    let pooling: longtail_model::Pooling = cfg.pooling.parse().map_err(anyhow::Error::from)?;
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
    let (model, tokenizer, tok_path) = load_model(&model_src, &opts, cfg.max_len, &cfg.template)?;
    observer.on_message(&format!(
        "tokenizing {} train / {} validation items (max_len {})",
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
    let mut opt = AdamW::with_spec(model.named_trainable_vars(), adam_cfg, &spec)?;
    ensure!(
        !opt.trainable_vars().is_empty(),
        "every parameter is frozen: nothing to train"
    );

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
    let strategy = cfg.eval_strategy()?;
    let best_cfg = BestMetricConfig::new(cfg.best_metric_name()?);
    let mut early = if cfg.early_stopping_patience > 0 {
        Some(EarlyStopping::new(cfg.early_stopping_patience, 0.0)?)
    } else {
        None
    };
    if strategy != EvalStrategy::No {
        ensure!(
            val_split.class_counts().iter().all(|&c| c > 0),
            "the validation split needs both head and tail items to compute ROC-AUC \
             (or pass --eval-strategy no)"
        );
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
        opt.load_state(ckpt)
            .with_context(|| format!("optimizer state in {}", ckpt.display()))?;
        state = TrainerState::load(&ckpt.join(TRAINER_STATE_FILE))?;
        ensure!(
            state.max_steps == max_steps,
            "the checkpoint was made for max_steps {} but these arguments give {max_steps}: \
             resume with the original arguments",
            state.max_steps
        );
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

    let args_toml = toml::to_string(cfg).context("serialising the arguments")?;
    fs::write(cfg.out.join(TRAIN_ARGS_FILE), &args_toml)?;
    let metrics_path = cfg.out.join(METRICS_FILE);
    write_metrics_file(&metrics_path, &state.log_history)?;
    let mut metrics_file = fs::OpenOptions::new()
        .append(true)
        .open(&metrics_path)
        .with_context(|| format!("opening {}", metrics_path.display()))?;
    let saver = Saver {
        out: &cfg.out,
        tokenizer: &tok_path,
        args_toml,
        save_total_limit: cfg.save_total_limit,
    };

    let mut log = |state: &mut TrainerState, entry: LogEntry| -> Result<()> {
        writeln!(metrics_file, "{}", metrics_line(&entry)?)?;
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
    let pos = resume_position(state.global_step, nupe, gas as u64)?;
    let mut acc = GradAccumulator::new(opt.trainable_vars());
    let mut last_saved: Option<(u64, PathBuf)> =
        resume_from.clone().map(|p| (state.global_step, p));
    let mut updates_this_run = 0u64;
    let mut samples_this_run = 0u64;
    let mut loss_since_log = 0.0f64;
    let mut steps_since_log = 0u64;
    let mut early_stopped = false;
    let mut interrupted = false;
    let loop_start = Instant::now();

    'epochs: for epoch in pos.epochs_trained..num_epochs {
        if state.global_step >= max_steps {
            break;
        }
        let batches = train_batches_for(&train_lengths, cfg, epoch)?;
        ensure!(
            batches.len() == num_batches,
            "internal: epoch {epoch} has {} batches, epoch 0 had {num_batches}",
            batches.len()
        );
        let windows = accumulation_windows(num_batches, gas)?;
        let skip = if epoch == pos.epochs_trained {
            pos.batches_to_skip as usize
        } else {
            0
        };
        let mut cursor = 0usize;
        for window in windows {
            if cursor < skip {
                cursor += window;
                continue;
            }
            acc.begin_window(window)?;
            let mut window_loss = 0.0f64;
            for indices in &batches[cursor..cursor + window] {
                let (ids, types, mask) =
                    data::batch_tensors(&tokenizer, &train_split, indices, &device)?;
                let labels: Vec<u32> = indices.iter().map(|&i| train_split.labels[i]).collect();
                let labels = Tensor::from_vec(labels, indices.len(), &device)?;
                let logits = model.forward_t(&ids, Some(&types), Some(&mask), true)?;
                let loss = model.loss(&logits, &labels, &ce)?;
                let value = f64::from(loss.to_scalar::<f32>()?);
                if !value.is_finite() {
                    bail!(
                        "training loss is {value} at step {} (epoch {epoch}); stopping. The last \
                         good checkpoint is {}. Try a lower --learning-rate or --max-grad-norm.",
                        state.global_step + 1,
                        last_saved
                            .as_ref()
                            .map_or("(none saved yet)".into(), |(_, p)| p.display().to_string())
                    );
                }
                window_loss += value / window as f64;
                acc.backward(&loss)?;
                state.num_samples_seen += indices.len() as u64;
                samples_this_run += indices.len() as u64;
                state.num_input_tokens_seen += indices
                    .iter()
                    .map(|&i| train_split.encoded[i].len() as u64)
                    .sum::<u64>();
            }
            cursor += window;
            let mut grads = acc.take();
            let grad_norm = clip_grad_norm(&mut grads, &opt.trainable_vars(), cfg.max_grad_norm)?;
            if !grad_norm.is_finite() {
                bail!(
                    "gradient norm is {grad_norm} at step {}; stopping without applying it. The \
                     last good checkpoint is {}.",
                    state.global_step + 1,
                    last_saved
                        .as_ref()
                        .map_or("(none saved yet)".into(), |(_, p)| p.display().to_string())
                );
            }
            let lr = schedule.lr_at(state.global_step);
            opt.set_learning_rate(lr);
            opt.step(&grads)?;
            state.global_step += 1;
            updates_this_run += 1;
            state.epoch = epoch as f64 + cursor as f64 / num_batches as f64;
            state.rng_state.epoch = epoch;
            state.rng_state.batches_seen_in_epoch = cursor as u64;
            state
                .rng_state
                .counters
                .insert(DROPOUT_CALLS.into(), model.dropout_rng_state().calls);
            loss_since_log += window_loss;
            steps_since_log += 1;

            let elapsed = loop_start.elapsed().as_secs_f64().max(1e-9);
            let sps = samples_this_run as f64 / elapsed;
            observer.on_step(&StepInfo {
                step: state.global_step,
                max_steps,
                epoch: state.epoch,
                loss: window_loss,
                learning_rate: lr,
                samples_per_second: sps,
            });
            if state.global_step % cfg.logging_steps == 0 {
                let entry = LogEntry::new(state.global_step, state.epoch)
                    .with("loss", loss_since_log / steps_since_log as f64)
                    .with("learning_rate", lr)
                    .with("grad_norm", grad_norm)
                    .with("samples_per_second", sps);
                log(&mut state, entry)?;
                loss_since_log = 0.0;
                steps_since_log = 0;
            }

            let end_of_epoch = cursor == num_batches;
            let last_step = state.global_step >= max_steps;
            let do_eval = match strategy {
                EvalStrategy::No => false,
                EvalStrategy::Epoch => end_of_epoch || last_step,
                EvalStrategy::Steps(s) => state.global_step % s == 0 || last_step,
            };
            let do_save = do_eval || (strategy == EvalStrategy::No && (end_of_epoch || last_step));
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
                let dir = saver.save(&model, &opt, &mut state)?;
                last_saved = Some((state.global_step, dir));
            }
            if early_stopped {
                observer.on_message(&format!(
                    "early stopping at step {}: no improvement of {} for {} evaluations",
                    state.global_step, cfg.metric_for_best_model, cfg.early_stopping_patience
                ));
                break 'epochs;
            }
            if last_step {
                break 'epochs;
            }
            if cfg.stop_after_steps > 0 && updates_this_run >= cfg.stop_after_steps {
                interrupted = true;
                break 'epochs;
            }
        }
    }

    // The final state is always on disk as a checkpoint (unless interrupted on purpose).
    if !interrupted && last_saved.as_ref().map(|(s, _)| *s) != Some(state.global_step) {
        let dir = saver.save(&model, &opt, &mut state)?;
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
            .context("internal: no checkpoint to export")?;
        for f in ["model.safetensors", "config.json", TOKENIZER_FILE] {
            crate::write_atomic_with(&cfg.out.join(f), |tmp| {
                fs::copy(src.join(f), tmp)
                    .map(|_| ())
                    .map_err(|e| TrainError::io(src.join(f), e))
            })?;
        }
        state.save(&cfg.out.join(TRAINER_STATE_FILE))?;
        observer.on_message(&format!(
            "final model: {} (from {})",
            cfg.out.display(),
            src.display()
        ));
    }
    let _ = sorted_checkpoints(&cfg.out)?;
    let _ = File::open(&metrics_path)?;
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
