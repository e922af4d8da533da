//! `longtail train`: typed arguments -> `TrainConfig` -> the training loop of
//! longtail-classify, with a progress bar (samples/s, loss, ETA).

use crate::cli::{value_name, TrainArgs};
use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use longtail_classify::{Observer, StepInfo, TrainConfig};
use std::collections::BTreeMap;

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
    let mut bar = Bar::default();
    let outcome = longtail_classify::train(&cfg, &mut bar)?;
    if let Some(pb) = bar.pb.take() {
        pb.finish_and_clear();
    }
    println!(
        "trained {} of {} steps in {:.1}s ({:.1} samples/s, {} train items){}",
        outcome.global_step,
        outcome.max_steps,
        outcome.seconds,
        outcome.samples_per_second(),
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

/// Progress bar over optimizer updates; messages and evaluations are printed above it.
/// When stderr is not a terminal (CI, `nohup`, a log file) the bar is invisible, so a plain
/// progress line is printed every [`PLAIN_PROGRESS_EVERY`] instead.
#[derive(Default)]
struct Bar {
    pb: Option<ProgressBar>,
    last_plain: Option<std::time::Instant>,
}

const PLAIN_PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

impl Observer for Bar {
    fn on_start(&mut self, max_steps: u64, start_step: u64) {
        let pb = ProgressBar::new(max_steps).with_style(
            ProgressStyle::with_template(
                "train [{elapsed_precise}] {wide_bar} {pos}/{len} steps ETA {eta} {msg}",
            )
            .expect("valid template"),
        );
        pb.set_draw_target(ProgressDrawTarget::stderr_with_hz(4));
        pb.set_position(start_step);
        pb.reset_eta();
        self.pb = Some(pb);
    }

    fn on_step(&mut self, info: &StepInfo) {
        let Some(pb) = &self.pb else { return };
        pb.set_position(info.step);
        let status = format!(
            "loss {:.4} lr {:.2e} {:.1} samples/s",
            info.loss, info.learning_rate, info.samples_per_second
        );
        if pb.is_hidden()
            && self
                .last_plain
                .is_none_or(|t| t.elapsed() >= PLAIN_PROGRESS_EVERY)
        {
            self.last_plain = Some(std::time::Instant::now());
            let len = pb.length().unwrap_or(0);
            eprintln!(
                "step {}/{len} {status} elapsed {}s ETA {}s",
                info.step,
                pb.elapsed().as_secs(),
                pb.eta().as_secs()
            );
        }
        pb.set_message(status);
    }

    fn on_eval(&mut self, step: u64, metrics: &BTreeMap<String, f64>) {
        let text: Vec<String> = metrics.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
        self.on_message(&format!("step {step}: {}", text.join(", ")));
    }

    fn on_message(&mut self, message: &str) {
        match &self.pb {
            Some(pb) => pb.suspend(|| eprintln!("{message}")),
            None => eprintln!("{message}"),
        }
    }
}
