//! Runs the baselines on a `longtail prepare` output and prints the table.
//!
//! ```text
//! cargo run --release -p longtail-eval --example office_baselines -- [DIR] [OUT_DIR]
//! ```
//! DIR defaults to `runs/office` in the workspace; with OUT_DIR the ROC plot
//! of the baselines is written to `OUT_DIR/baselines_roc.png`.

use std::path::PathBuf;
use std::time::Instant;

use longtail_eval::baselines::{self, BaselineOptions, TFIDF_LOGREG};
use longtail_eval::report::{summary_table, write_roc_png};
use longtail_eval::{load_text_splits, RocCurve, Summary};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../runs/office"));
    let out = args.next().map(PathBuf::from);
    if !dir.join("items.jsonl").exists() {
        println!(
            "{}: no items.jsonl; run `longtail prepare` first. Nothing to do.",
            dir.display()
        );
        return Ok(());
    }
    let splits = load_text_splits(&dir)?;
    let tails = |l: &[bool]| l.iter().filter(|&&x| x).count();
    for (name, s) in [
        ("train", &splits.train),
        ("validation", &splits.validation),
        ("test", &splits.test),
    ] {
        println!(
            "{name:>10}: {} items, {} tail",
            s.labels.len(),
            tails(&s.labels)
        );
    }
    let started = Instant::now();
    let results = baselines::run(&splits, &BaselineOptions::default())?;
    let fit = &results.tfidf_logreg;
    println!(
        "\ntfidf_logreg: {} features, validation ROC-AUC by C: {}; chosen C = {} ({} L-BFGS iterations, converged: {})",
        fit.n_features,
        fit.validation_auc_by_c
            .iter()
            .map(|(c, auc)| format!("{c}: {auc:.4}"))
            .collect::<Vec<_>>()
            .join(", "),
        fit.c,
        fit.iterations,
        fit.converged
    );
    println!(
        "baselines fitted and evaluated in {:.1} s\n",
        started.elapsed().as_secs_f64()
    );
    let rows: Vec<(&str, Summary)> = results
        .metrics
        .iter()
        .map(|(k, m)| (k.as_str(), Summary::from(m)))
        .collect();
    println!(
        "Test split (n = {}):\n\n{}",
        splits.test.labels.len(),
        summary_table(&rows)
    );
    let t = &results.metrics[TFIDF_LOGREG];
    println!(
        "tfidf_logreg: threshold {:.4}, ECE {:.4}, confusion {:?}",
        t.threshold, t.ece, t.confusion.matrix
    );
    if let Some(out) = out {
        std::fs::create_dir_all(&out)?;
        let path = out.join("baselines_roc.png");
        let curves: Vec<(&str, &RocCurve, f64)> = results
            .metrics
            .iter()
            .map(|(k, m)| (k.as_str(), &m.roc, m.auc))
            .collect();
        write_roc_png(&path, "ROC, test split: baselines", &curves)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
