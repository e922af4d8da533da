//! `longtail train`: typed arguments -> `TrainConfig` -> the training loop of
//! longtail-classify, with a progress bar (samples/s, loss, ETA).

use crate::progress::ProgressDisplay;
use anyhow::Result;
use longtail_classify::TrainConfig;

pub fn run(args: TrainArgs) -> Result<()> {
    let cfg = args.train;
    if cfg.pooling != longtail_model::Pooling::ClsPooler {
        // transformers' BertForSequenceClassification always pools with the [CLS] pooler.
        eprintln!(
            "note: --pooling {}: longtail scores this checkpoint with {} pooling, but \
             transformers' AutoModelForSequenceClassification would use the [CLS] pooler and \
             give other logits; train with --pooling cls_pooler for a checkpoint both score alike",
            cfg.pooling.as_str(),
            cfg.pooling.as_str()
        );
    }
    let mut bar = ProgressDisplay::new("train", "samples");
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
            cfg.metric_for_best_model.as_str(),
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

// The command's arguments: the library's `TrainConfig` is the command line (one definition of
// every flag, its help and its default), plus the config file.
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// TOML file whose [train] table supplies defaults for any flag (see configs/train.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub train: TrainConfig,
}
