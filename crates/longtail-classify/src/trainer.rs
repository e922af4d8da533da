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
use std::path::PathBuf;
use std::time::Instant;

use candle_core::{Device, Tensor};
use longtail_data::{PreparedDataset, Split};
use longtail_model::checkpoint::{
    METRICS_FILE, TOKENIZER_FILE, TRAINER_STATE_FILE, TRAIN_ARGS_FILE,
};
use longtail_model::{
    BertForSequenceClassification, Checkpoint, ClassifierOptions, CrossEntropy, DropoutRngState,
    HubOptions, MaskGenerator,
};
use longtail_tokenize::ItemTokenizer;
use longtail_train::{
    checkpoint_dir_name, class_weights_inverse_frequency, encoder_layer, last_checkpoint,
    num_update_steps_per_epoch, rotate_checkpoints, AdamW, AdamWConfig, BestMetricConfig,
    EarlyStopping, EvalCadence, Event, FitOutcome, FitSettings, Learner, LrSchedule, Objective,
    ParamGroupSpec, PhaseTimes, RngState, SavePolicy, StepDriver, TrainerState,
    EARLY_STOPPING_CALLBACK,
};

use crate::config::{ClassWeights, TrainConfig};
use crate::data::{self, predict, EncodedSplit, LABELS};
use crate::error::{ensure, ClassifyError, Result};

const DROPOUT_CALLS: &str = "dropout_calls";
/// [`MaskGenerator::version`] of the run's dropout masks; absent in checkpoints written before
/// it was recorded, which used ChaCha8.
const DROPOUT_GENERATOR: &str = "dropout_generator";

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
    /// The whole run: loading, tokenizing, updates, evaluations, checkpoint writes.
    pub seconds: f64,
    /// The updates only (evaluation and checkpoint writes left out): what to compare with
    /// another trainer's loop.
    pub loop_seconds: f64,
    pub early_stopped: bool,
    /// Stopped by `stop_after_steps` (the final model was not exported).
    pub interrupted: bool,
    /// Per-phase wall time of this run's updates, with `phase_times` on.
    pub phase_times: Option<PhaseTimes>,
}

impl TrainOutcome {
    /// Samples per second of the whole run.
    pub fn samples_per_second(&self) -> f64 {
        self.samples_seen_this_run as f64 / self.seconds.max(1e-9)
    }

    /// Samples per second of the updates alone.
    pub fn loop_samples_per_second(&self) -> f64 {
        self.samples_seen_this_run as f64 / self.loop_seconds.max(1e-9)
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
        name.strip_prefix("bert.")
            .and_then(encoder_layer)
            .is_some_and(|i| i < n)
    })
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

/// The classifier as the [`Learner`]'s objective: class-weighted cross-entropy on
/// length-bucketed batches, ROC-AUC and loss on validation, `checkpoint-N` directories.
struct Classification<'a> {
    cfg: &'a TrainConfig,
    model: BertForSequenceClassification,
    tokenizer: &'a ItemTokenizer,
    train_split: &'a EncodedSplit,
    val_split: &'a EncodedSplit,
    train_lengths: Vec<usize>,
    num_batches: usize,
    ce: CrossEntropy,
    device: &'a Device,
    /// Read once at the start: a resumed run's tokenizer comes from the checkpoint it resumed
    /// from, which checkpoint rotation may delete before the next save.
    tokenizer_json: Vec<u8>,
    args_toml: String,
}

impl Objective for Classification<'_> {
    type Batch = Vec<usize>;
    type Error = ClassifyError;

    fn num_batches(&self) -> usize {
        self.num_batches
    }

    fn epoch_batches(&mut self, epoch: u64) -> Result<Vec<Vec<usize>>> {
        train_batches_for(&self.train_lengths, self.cfg, epoch)
    }

    fn loss(&mut self, indices: &Vec<usize>) -> Result<Tensor> {
        let split = self.train_split;
        let (ids, types, mask) = data::batch_tensors(self.tokenizer, split, indices, self.device)?;
        let labels: Vec<u32> = indices.iter().map(|&i| split.labels[i]).collect();
        let labels = Tensor::from_vec(labels, indices.len(), self.device)?;
        let logits = self
            .model
            .forward_t(&ids, Some(&types), Some(&mask), true)?;
        Ok(self.model.loss(&logits, &labels, &self.ce)?)
    }

    fn count(&self, indices: &Vec<usize>) -> (u64, u64) {
        let tokens = indices
            .iter()
            .map(|&i| self.train_split.encoded[i].len() as u64)
            .sum();
        (indices.len() as u64, tokens)
    }

    fn after_update(&mut self, state: &mut TrainerState, _last: bool) -> Result<()> {
        let dropout = self.model.dropout_rng_state();
        let counters = &mut state.rng_state.counters;
        counters.insert(DROPOUT_CALLS.into(), dropout.calls);
        counters.insert(DROPOUT_GENERATOR.into(), dropout.generator.version());
        Ok(())
    }

    fn evaluate(&mut self, _state: &TrainerState) -> Result<Option<BTreeMap<String, f64>>> {
        let (probs, loss) = predict(
            &self.model,
            self.tokenizer,
            self.val_split,
            self.cfg.per_device_eval_batch_size,
        )?;
        let labels: Vec<bool> = self.val_split.labels.iter().map(|&l| l == 1).collect();
        let auc = longtail_metrics::roc_auc(&probs, &labels);
        Ok(Some(
            [
                ("eval_loss".to_string(), loss),
                ("eval_auc".to_string(), auc),
            ]
            .into(),
        ))
    }

    fn save(&mut self, driver: &StepDriver, state: &mut TrainerState) -> Result<PathBuf> {
        let out = &self.cfg.out;
        let dir = out.join(checkpoint_dir_name(state.global_step));
        state.record_best_checkpoint(out);
        // An existing checkpoint-N (a resumed run saving the same step) is swapped out in one
        // step by write_dir_atomic, never deleted first.
        longtail_fs::write_dir_atomic(&dir, |tmp| -> Result<()> {
            self.model
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
        if self.cfg.save_total_limit > 0 {
            rotate_checkpoints(out, self.cfg.save_total_limit, best.as_deref())?;
        }
        Ok(dir)
    }
}

/// The checkpoint a `--resume` run continues (`None`: a fresh run); refuses to write over
/// another run's checkpoints.
fn resume_point(cfg: &TrainConfig, progress: &mut dyn FnMut(Event<'_>)) -> Result<Option<PathBuf>> {
    let existing = last_checkpoint(&cfg.out)?;
    if existing.is_some() && !cfg.resume {
        return Err(ClassifyError::invalid(format!(
            "{} already holds checkpoints; pass --resume to continue them or choose another --out",
            cfg.out.display()
        )));
    }
    let resume_from = if cfg.resume { existing } else { None };
    if cfg.resume && resume_from.is_none() {
        progress(Event::Message(
            "--resume: no checkpoint in the output directory, starting fresh",
        ));
    }
    Ok(resume_from)
}

/// The class-weighted, label-smoothed cross-entropy of the configuration.
fn loss_of(cfg: &TrainConfig, train_split: &EncodedSplit, device: &Device) -> Result<CrossEntropy> {
    let counts = train_split.class_counts();
    let class_weights = if cfg.class_weights == ClassWeights::Auto {
        let w = class_weights_inverse_frequency(&counts)?;
        Some(Tensor::from_vec(w, 2, device)?)
    } else {
        None
    };
    Ok(CrossEntropy {
        class_weights,
        label_smoothing: cfg.label_smoothing,
    })
}

/// The optimizer, the schedule and the loop settings of `cfg` over `num_batches` micro-batches
/// per epoch, continued from `resume_from` (weights' dropout stream included) when given.
fn learner(
    cfg: &TrainConfig,
    model: &mut BertForSequenceClassification,
    num_batches: usize,
    val_split: &EncodedSplit,
    resume_from: Option<PathBuf>,
    progress: &mut dyn FnMut(Event<'_>),
) -> Result<Learner> {
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
    let nupe = num_update_steps_per_epoch(num_batches, gas)? as u64;
    let (max_steps, num_epochs) = if cfg.max_steps > 0 {
        let m = cfg.max_steps as u64;
        (m, m.div_ceil(nupe))
    } else {
        (nupe * cfg.num_train_epochs, cfg.num_train_epochs)
    };
    let scheduler = cfg.lr_scheduler_type;
    let schedule =
        LrSchedule::from_args(scheduler, cfg.learning_rate, max_steps, 0, cfg.warmup_ratio)?;
    let mut driver = StepDriver::new(opt, schedule, cfg.max_grad_norm);
    if cfg.phase_times {
        driver = driver.time_phases();
    }
    let strategy = cfg.eval_cadence();
    let mut early = if cfg.early_stopping_patience > 0 {
        Some(EarlyStopping::new(cfg.early_stopping_patience, 0.0)?)
    } else {
        None
    };
    if strategy != EvalCadence::No {
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
        eval_steps: if let EvalCadence::Steps(s) = strategy {
            s
        } else {
            0
        },
        save_steps: if let EvalCadence::Steps(s) = strategy {
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
        let counters = &state.rng_state.counters;
        let calls = counters.get(DROPOUT_CALLS).copied().unwrap_or(0);
        let generator = match counters.get(DROPOUT_GENERATOR) {
            None => MaskGenerator::Chacha8,
            Some(&v) => MaskGenerator::from_version(v).ok_or_else(|| {
                ClassifyError::InvalidArgument(format!(
                    "{}: dropout generator version {v} is newer than this build knows \
                     (1 = ChaCha8, 2 = Philox4x32-10); resume with the longtail that wrote it",
                    ckpt.display()
                ))
            })?,
        };
        model.set_dropout_rng_state(DropoutRngState {
            seed: cfg.seed,
            calls,
            generator,
        });
        progress(Event::Message(&format!(
            "resuming from {} (step {})",
            ckpt.display(),
            state.global_step
        )));
    }

    let settings = FitSettings {
        max_steps,
        gradient_accumulation_steps: gas,
        logging_steps: cfg.logging_steps,
        eval: strategy,
        save: SavePolicy::EveryEvaluation,
        best_metric: Some(BestMetricConfig::new(cfg.metric_for_best_model.as_str())),
        early_stopping: early,
        stop_after_steps: cfg.stop_after_steps,
        metrics_file: Some(cfg.out.join(METRICS_FILE)),
    };
    let learner = Learner::new(driver, state, settings)?;
    Ok(match resume_from {
        Some(ckpt) => learner.resumed_from(ckpt),
        None => learner,
    })
}

/// Unless the run was interrupted, copies the best checkpoint's model (the last one's without
/// evaluation) to the top of `out` with the final trainer state; returns the best checkpoint.
fn export_best(
    cfg: &TrainConfig,
    state: &TrainerState,
    fit: &FitOutcome,
    progress: &mut dyn FnMut(Event<'_>),
) -> Result<Option<PathBuf>> {
    let best_checkpoint = state
        .best_global_step
        .map(|s| cfg.out.join(checkpoint_dir_name(s)))
        .filter(|p| p.is_dir());
    if !fit.interrupted {
        let src = best_checkpoint
            .clone()
            .or_else(|| fit.last_checkpoint.as_ref().map(|(_, p)| p.clone()))
            .ok_or_else(|| ClassifyError::invalid("internal: no checkpoint to export"))?;
        Checkpoint::open(&src)
            .and_then(|c| c.export_model(&cfg.out))
            .map_err(ClassifyError::model(format!(
                "exporting {} to {}",
                src.display(),
                cfg.out.display()
            )))?;
        state.save(&cfg.out.join(TRAINER_STATE_FILE))?;
        progress(Event::Message(&format!(
            "final model: {} (from {})",
            cfg.out.display(),
            src.display()
        )));
    }
    Ok(best_checkpoint)
}

/// Runs (or resumes) a training run.
pub fn train(cfg: &TrainConfig, progress: &mut dyn FnMut(Event<'_>)) -> Result<TrainOutcome> {
    cfg.validate()?;
    let started = Instant::now();
    let device = cfg
        .device
        .resolve()
        .map_err(longtail_model::ModelError::from)?;
    // One thread issues all of a training run's GPU work: cudarc's event tracking can go.
    if let Some(line) = longtail_model::single_thread_settings(&device) {
        progress(Event::Message(&line));
    }
    fs::create_dir_all(&cfg.out).map_err(|e| ClassifyError::io(&cfg.out, e))?;
    // One run per --out: a second would rotate away the first one's checkpoints.
    let _lock = longtail_fs::OutputLock::acquire(&cfg.out)?;
    let resume_from = resume_point(cfg, progress)?;

    // Data.
    let dataset = PreparedDataset::load(&cfg.data)?;
    let train_items: Vec<_> = dataset.split(Split::Train).collect();
    let val_items: Vec<_> = dataset.split(Split::Validation).collect();
    ensure(!train_items.is_empty(), || {
        "the train split is empty".into()
    })?;

    // Model (from the checkpoint when resuming: it carries the trained head).
    let pooling = cfg.pooling;
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
    progress(Event::Message(&format!(
        "training on {} in {}; tokenizing {} train / {} validation items (max_len {})",
        longtail_model::device_name(&device),
        cfg.precision,
        train_items.len(),
        val_items.len(),
        tokenizer.max_len()
    )));
    let train_split = EncodedSplit::encode(&tokenizer, &train_items)?;
    let val_split = EncodedSplit::encode(&tokenizer, &val_items)?;
    let train_lengths = train_split.lengths();

    let ce = loss_of(cfg, &train_split, &device)?;
    let num_batches = train_batches_for(&train_lengths, cfg, 0)?.len();
    let mut learner = learner(
        cfg,
        &mut model,
        num_batches,
        &val_split,
        resume_from,
        progress,
    )?;
    let args_toml = toml::to_string(cfg)?;
    longtail_fs::write_atomic(&cfg.out.join(TRAIN_ARGS_FILE), args_toml.as_bytes())?;
    let mut objective = Classification {
        cfg,
        model,
        tokenizer: &tokenizer,
        train_split: &train_split,
        val_split: &val_split,
        train_lengths,
        num_batches,
        ce,
        device: &device,
        tokenizer_json: {
            let path = source
                .tokenizer_path()
                .map_err(ClassifyError::model("tokenizer"))?;
            fs::read(&path).map_err(|e| ClassifyError::io(&path, e))?
        },
        args_toml,
    };
    let fit = learner.fit(&mut objective, progress)?;
    let phase_times = learner.driver().phase_times();
    let state = learner.state();

    let best_checkpoint = export_best(cfg, state, &fit, progress)?;
    let max_steps = state.max_steps;
    Ok(TrainOutcome {
        global_step: state.global_step,
        max_steps,
        best_metric: state.best_metric,
        best_checkpoint,
        last_checkpoint: fit.last_checkpoint.map(|(_, p)| p),
        train_samples: train_split.len(),
        samples_seen_this_run: fit.samples,
        seconds: started.elapsed().as_secs_f64(),
        loop_seconds: fit.loop_time.as_secs_f64(),
        early_stopped: fit.early_stopped,
        interrupted: fit.interrupted,
        phase_times,
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
}
