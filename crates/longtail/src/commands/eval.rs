//! `longtail eval`: score validation and the chosen split with a checkpoint (through
//! `longtail_infer::Scorer`, the one inference path), choose the threshold on validation,
//! compare with the majority and TF-IDF baselines, write the report `--report DIR/STEM.json`
//! and beside it `STEM.md`, `STEM.roc.png` and training curves from the checkpoint's
//! metrics.jsonl (`STEM.loss.png`, `STEM.validation_roc_auc.png`). No other file is touched.

use anyhow::{ensure, Context, Result};
use longtail_data::{Label, PreparedDataset, Split};
use longtail_eval::report;
use longtail_eval::{
    baselines, compare_precision, evaluate_scores, text_splits, BaselineOptions, PrecisionDiff,
    Series,
};
use longtail_infer::{Scorer, ScorerOptions};
use longtail_model::checkpoint::METRICS_FILE;
use longtail_model::{Checkpoint, Precision};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `(p_tail, is_tail)` per row of a split.
type Scored = Vec<(f64, bool)>;

pub fn run(args: EvalArgs) -> Result<()> {
    let started = Instant::now();
    let split: Split = args.split.into();
    ensure!(args.batch_size > 0, "--batch-size must be >= 1");
    ensure!(
        args.report.file_stem().is_some(),
        "--report needs a file name (e.g. runs/eval/report.json)"
    );
    let ckpt = &args.checkpoint;
    let device = args.device.resolve()?;
    // Batches as in the trainer's validation, so the numbers match the training log.
    let load = |precision: Precision| -> Result<Scorer> {
        let opts = ScorerOptions {
            max_len: args.max_len,
            batch_rows: Some(args.batch_size),
            precision,
            device: device.clone(),
            ..Default::default()
        };
        Scorer::with_options(ckpt, &opts)
            .with_context(|| format!("cannot load checkpoint {}", ckpt.display()))
    };
    let scorer = load(args.precision)?;
    let dataset = PreparedDataset::load(&args.data)
        .with_context(|| format!("cannot load prepared dataset {}", args.data.display()))?;
    let score = |scorer: &Scorer, s: Split| -> Result<Vec<(f64, bool)>> {
        let items: Vec<_> = dataset.split(s).collect();
        let p_tail = scorer.score_items(&items)?;
        Ok(p_tail
            .into_iter()
            .zip(&items)
            .map(|(p, item)| (f64::from(p), item.label == Label::Tail))
            .collect())
    };
    // (validation, the reported split), each as (p_tail, is_tail) per row.
    let score_both = |scorer: &Scorer| -> Result<(Scored, Scored)> {
        let val = score(scorer, Split::Validation)?;
        let target = if split == Split::Validation {
            val.clone()
        } else {
            score(scorer, split)?
        };
        Ok((val, target))
    };
    let (val, target) = score_both(&scorer)?;
    let scoring_seconds = started.elapsed().as_secs_f64();
    let metrics = evaluate_scores(&val, &target).map_err(anyhow::Error::from)?;
    // A cheaper precision is reported against f32 on the same rows.
    let reference = if args.precision == Precision::Fp32 {
        None
    } else {
        let (ref_val, ref_target) = score_both(&load(Precision::Fp32)?)?;
        let check = PrecisionCheck {
            precision: args.precision.as_str(),
            kernel: (args.precision == Precision::Int8)
                .then(|| longtail_model::int8::kernel().name()),
            validation: compare_precision(&ref_val, &val),
            split: crate::shared_args::value_name(&args.split),
            reported: compare_precision(&ref_target, &target),
        };
        let fp32 = evaluate_scores(&ref_val, &ref_target).map_err(anyhow::Error::from)?;
        Some((check, fp32))
    };

    let mut baseline_metrics = if args.no_baselines {
        BTreeMap::new()
    } else if split != Split::Test {
        eprintln!(
            "baselines are measured on the test split only; skipped for --split {}",
            crate::shared_args::value_name(&args.split)
        );
        BTreeMap::new()
    } else {
        baselines::run(&text_splits(&dataset), &BaselineOptions::default())
            .map_err(anyhow::Error::from)?
            .metrics
    };

    let model_name = ckpt
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "model".into());
    if let Some((_, fp32)) = &reference {
        baseline_metrics.insert(format!("{model_name} (fp32)"), fp32.clone());
    }
    let (rep, files) = report::write(&args.report, &model_name, &metrics, &baseline_metrics)
        .map_err(anyhow::Error::from)?;

    let metrics_log = Checkpoint::open(ckpt)?.find_up(METRICS_FILE);
    let curves = match metrics_log {
        Some(path) => training_curves(&path, &args.report)?,
        None => Vec::new(),
    };

    println!("{}", rep.to_markdown());
    println!(
        "scored in {scoring_seconds:.1}s; report: {}, {}, {}",
        files.json.display(),
        files.markdown.display(),
        files.roc_png.display()
    );
    for c in curves {
        println!("training curve: {}", c.display());
    }
    if let Some((check, _)) = reference {
        let path = args.report.with_extension("precision.json");
        longtail_fs::write_json_atomic(&path, &check)?;
        println!("{}", check.to_markdown());
        println!("precision check: {}", path.display());
    }
    Ok(())
}

/// `eval --precision int8`: the same rows scored in f32 and in the cheaper precision.
#[derive(serde::Serialize)]
struct PrecisionCheck {
    precision: &'static str,
    /// The integer kernel (int8 only).
    kernel: Option<&'static str>,
    validation: PrecisionDiff,
    /// The split the report is on (`--split`).
    split: String,
    reported: PrecisionDiff,
}

impl PrecisionCheck {
    fn to_markdown(&self) -> String {
        let mut s = format!(
            "| split | rows | ROC-AUC fp32 | ROC-AUC {p} | AUC change | max abs p_tail diff | mean abs p_tail diff |\n|---|---|---|---|---|---|---|\n",
            p = self.precision
        );
        for (name, d) in [
            ("validation", &self.validation),
            (self.split.as_str(), &self.reported),
        ] {
            s += &format!(
                "| {name} | {} | {:.4} | {:.4} | {:+.4} | {:.4} | {:.5} |\n",
                d.rows,
                d.auc_reference,
                d.auc_candidate,
                d.auc_candidate - d.auc_reference,
                d.max_abs_diff,
                d.mean_abs_diff
            );
        }
        s
    }
}

/// REPORT.loss.png (train loss per logging step, validation loss per evaluation) and
/// REPORT.validation_roc_auc.png from metrics.jsonl, beside the report.
fn training_curves(metrics: &Path, report: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(metrics)?;
    let mut series: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not JSON", metrics.display(), i + 1))?;
        let Some(step) = v.get("step").and_then(|s| s.as_f64()) else {
            continue;
        };
        for key in ["loss", "eval_loss", "eval_auc"] {
            if let Some(x) = v.get(key).and_then(|x| x.as_f64()) {
                series.entry(key).or_default().push((step, x));
            }
        }
    }
    if series.get("loss").is_none_or(|s| s.is_empty()) {
        return Ok(Vec::new());
    }
    let get = |k: &str| series.get(k).cloned().unwrap_or_default();
    let loss = [
        Series::new("train loss", get("loss")),
        Series::new("validation loss", get("eval_loss")),
    ];
    let auc = [Series::new("validation ROC-AUC", get("eval_auc"))];
    let plots = report::write_training_curves(report, &loss, "ROC-AUC", &auc)
        .map_err(anyhow::Error::from)?;
    Ok(vec![plots.loss_png, plots.metric_png])
}

// The command's arguments (raw flags -> typed values; defaults from the library).
use clap::{Args, ValueEnum};

use crate::shared_args::{defaults, DeviceArg};

/// The split `eval` reports on.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
#[value(rename_all = "snake_case")]
pub enum EvalSplit {
    Validation,
    Test,
}

impl From<EvalSplit> for longtail_data::Split {
    fn from(s: EvalSplit) -> Self {
        match s {
            EvalSplit::Validation => longtail_data::Split::Validation,
            EvalSplit::Test => longtail_data::Split::Test,
        }
    }
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Prepared dataset directory.
    #[arg(long)]
    pub data: PathBuf,

    /// Checkpoint directory (the --out of `longtail train`, or one of its checkpoint-N).
    #[arg(long)]
    pub checkpoint: PathBuf,

    /// TOML file whose [eval] table supplies defaults for any flag.
    #[arg(long)]
    pub config: Option<PathBuf>,

    /// Split the metrics are reported on (the threshold is always chosen on validation).
    #[arg(long, value_enum, default_value_t = EvalSplit::Test)]
    pub split: EvalSplit,

    /// Report path (FILE.json); FILE.md, FILE.roc.png and training curves go beside it.
    #[arg(long)]
    pub report: PathBuf,

    /// Items per scoring batch.
    #[arg(long, default_value_t = defaults::train().per_device_eval_batch_size)]
    pub batch_size: usize,

    /// Maximum tokens per item (default: the checkpoint's train_args.toml, else 128).
    #[arg(long)]
    pub max_len: Option<usize>,

    /// Skip the TF-IDF and majority baselines.
    #[arg(long, default_value_t = false)]
    pub no_baselines: bool,

    /// Score with this precision (fp32, int8 on the CPU, bf16 for a GPU). With int8 or bf16
    /// the f32 model runs too: the report gets an `fp32` row, and REPORT.precision.json the
    /// ROC-AUC of both and max / mean |p_tail difference| on validation and the reported split.
    #[arg(long, value_enum, default_value_t = Precision::Fp32)]
    pub precision: Precision,

    #[command(flatten)]
    pub device: DeviceArg,
}
