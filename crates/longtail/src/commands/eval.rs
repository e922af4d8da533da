//! `longtail eval`: score validation and the chosen split with a checkpoint (dropout off),
//! choose the threshold on validation, compare with the majority and TF-IDF baselines, write
//! the report (JSON, Markdown, ROC PNG) beside --report and training curves from the
//! checkpoint's metrics.jsonl.

use crate::cli::EvalArgs;
use anyhow::{ensure, Context, Result};
use longtail_data::{PreparedDataset, Split};
use longtail_eval::report::{self, ReportFiles};
use longtail_eval::{baselines, evaluate_scores, text_splits, BaselineOptions, Series};
use longtail_model::ClassifierOptions;
use longtail_train::trainer::{self, EncodedSplit, TrainConfig, METRICS_FILE, TRAIN_ARGS_FILE};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub fn run(args: EvalArgs) -> Result<()> {
    let started = Instant::now();
    let split: Split = args.split.into();
    ensure!(args.batch_size > 0, "--batch-size must be >= 1");
    let ckpt = &args.checkpoint;
    ensure!(
        ckpt.join("config.json").is_file(),
        "{} has no config.json: pass the --out of `longtail train` or one of its checkpoint-N",
        ckpt.display()
    );
    let train_args = find_up(ckpt, TRAIN_ARGS_FILE)
        .map(|p| -> Result<TrainConfig> {
            let text = std::fs::read_to_string(&p)?;
            toml::from_str(&text).with_context(|| format!("{}: not valid train args", p.display()))
        })
        .transpose()?;
    let defaults = TrainConfig::default();
    let max_len = args
        .max_len
        .or(train_args.as_ref().map(|t| t.max_len))
        .unwrap_or(defaults.max_len);
    let template = train_args
        .as_ref()
        .map_or(defaults.template.clone(), |t| t.template.clone());

    let (model, tokenizer, _) = trainer::load_model(
        &ckpt.to_string_lossy(),
        &ClassifierOptions::default(),
        max_len,
        &template,
    )?;
    ensure!(
        model.labels().iter().any(|l| l == "tail"),
        "{}: the checkpoint has no `tail` label (labels {:?})",
        ckpt.display(),
        model.labels()
    );
    let dataset = PreparedDataset::load(&args.data)
        .with_context(|| format!("cannot load prepared dataset {}", args.data.display()))?;
    let score = |s: Split| -> Result<Vec<(f64, bool)>> {
        let items: Vec<_> = dataset.split(s).collect();
        let enc = EncodedSplit::encode(&tokenizer, &items)?;
        let (probs, _) = trainer::predict(&model, &tokenizer, &enc, args.batch_size)?;
        Ok(probs
            .into_iter()
            .zip(enc.labels.iter().map(|&l| l == 1))
            .collect())
    };
    let val = score(Split::Validation)?;
    let target = if split == Split::Validation {
        val.clone()
    } else {
        score(split)?
    };
    let scoring_seconds = started.elapsed().as_secs_f64();
    let metrics = evaluate_scores(&val, &target).map_err(anyhow::Error::from)?;

    let baseline_metrics = if args.no_baselines {
        BTreeMap::new()
    } else if split != Split::Test {
        eprintln!(
            "baselines are measured on the test split only; skipped for --split {}",
            crate::cli::value_name(&args.split)
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
    let report_dir = args
        .report
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let (rep, files) = report::write(&report_dir, &model_name, &metrics, &baseline_metrics)
        .map_err(anyhow::Error::from)?;
    let files = rename_outputs(&args.report, files)?;

    let curves = match find_up(ckpt, METRICS_FILE) {
        Some(path) => training_curves(&path, &report_dir)?,
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
    Ok(())
}

/// `name` in `dir`, or in its parent (a checkpoint-N inside a training output).
fn find_up(dir: &Path, name: &str) -> Option<PathBuf> {
    [Some(dir), dir.parent()]
        .into_iter()
        .flatten()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `report.json`/`report.md`/`roc.png` -> `FILE.json`/`FILE.md`/`FILE.roc.png`.
fn rename_outputs(report: &Path, files: ReportFiles) -> Result<ReportFiles> {
    let stem = report
        .file_stem()
        .context("--report needs a file name")?
        .to_string_lossy()
        .into_owned();
    let dir = files.json.parent().unwrap_or(Path::new(".")).to_path_buf();
    let wanted = ReportFiles {
        json: dir.join(format!("{stem}.json")),
        markdown: dir.join(format!("{stem}.md")),
        roc_png: dir.join(format!("{stem}.roc.png")),
    };
    for (from, to) in [
        (&files.json, &wanted.json),
        (&files.markdown, &wanted.markdown),
        (&files.roc_png, &wanted.roc_png),
    ] {
        if from != to {
            std::fs::rename(from, to)
                .with_context(|| format!("renaming {} to {}", from.display(), to.display()))?;
        }
    }
    Ok(wanted)
}

/// loss.png (train loss per logging step, validation loss per evaluation) and
/// validation_roc_auc.png from metrics.jsonl.
fn training_curves(metrics: &Path, dir: &Path) -> Result<Vec<PathBuf>> {
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
    let plots =
        report::write_training_curves(dir, &loss, "ROC-AUC", &auc).map_err(anyhow::Error::from)?;
    Ok(vec![plots.loss_png, plots.metric_png])
}
