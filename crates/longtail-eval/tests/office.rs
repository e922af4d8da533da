//! Baselines on the real Amazon Office data (research data, never in the
//! repo). Uses `runs/office` (or `LONGTAIL_TEST_OFFICE_PREPARED`) when present, else
//! prepares `$LONGTAIL_TEST_OFFICE` into a temporary directory, else skips.

use std::path::{Path, PathBuf};

use longtail_data::{prepare, PrepareOptions, PreparedDataset};
use longtail_eval::baselines::{self, BaselineOptions, MAJORITY, TFIDF_LOGREG};
use longtail_eval::report::summary_table;
use longtail_eval::{text_splits, Summary};

/// sklearn 1.9.1, same pipeline, tol 1e-10 (scripts/sklearn_office_baseline.py)
/// on the default `prepare` output (pareto:0.8, random 0.7/0.1/0.2, seed 0).
const SKLEARN_TEST_AUC: f64 = 0.7492;
const SKLEARN_TEST_PR_AUC: f64 = 0.7489;

fn prepared() -> Option<(PathBuf, Option<tempfile::TempDir>)> {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = std::env::var_os("LONGTAIL_TEST_OFFICE_PREPARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("runs/office"));
    if dir.join("items.jsonl").exists() {
        return Some((dir, None));
    }
    let data = std::env::var_os("LONGTAIL_TEST_OFFICE")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("../shared/datasets/amazon-office-2014"));
    let (items, interactions) = (data.join("items.jsonl"), data.join("interactions.csv"));
    if !items.exists() || !interactions.exists() {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    prepare(
        &PrepareOptions::new(items, interactions, tmp.path()),
        &longtail_progress::ignore,
    )
    .unwrap();
    Some((tmp.path().to_path_buf(), Some(tmp)))
}

fn is_default_preparation(ds: &PreparedDataset) -> bool {
    let o = &ds.summary.options;
    let defaults = PrepareOptions::new("", "", "");
    o.tail_rule == defaults.tail_rule
        && o.tiers == defaults.tiers
        && o.split == defaults.split
        && o.seed == defaults.seed
        && o.text_fields == defaults.text_fields
        && Path::new(&o.items).ends_with("amazon-office-2014/items.jsonl")
}

#[test]
fn office_baselines() {
    let Some((dir, _keep)) = prepared() else {
        return longtail_testutil::skip!(
            "no runs/office and no Office data under LONGTAIL_TEST_OFFICE"
        );
    };
    let ds = PreparedDataset::load(&dir).unwrap();
    let splits = text_splits(&ds);
    let r = baselines::run(&splits, &BaselineOptions::default()).unwrap();
    let rows: Vec<(&str, Summary)> = r
        .metrics
        .iter()
        .map(|(k, m)| (k.as_str(), Summary::from(m)))
        .collect();
    println!(
        "{} (C = {}):\n{}",
        dir.display(),
        r.tfidf_logreg.c,
        summary_table(&rows)
    );

    let majority = &r.metrics[MAJORITY];
    assert_eq!(majority.auc, 0.5);
    assert_eq!(majority.n, splits.test.labels.len());
    let tfidf = &r.metrics[TFIDF_LOGREG];
    assert!(r.tfidf_logreg.converged);
    assert!(
        tfidf.auc > 0.7 && tfidf.auc < 0.85,
        "implausible AUC {}",
        tfidf.auc
    );
    if is_default_preparation(&ds) {
        assert!(
            (tfidf.auc - SKLEARN_TEST_AUC).abs() < 1e-3,
            "AUC {} vs sklearn",
            tfidf.auc
        );
        assert!(
            (tfidf.pr_auc - SKLEARN_TEST_PR_AUC).abs() < 1e-3,
            "AP {}",
            tfidf.pr_auc
        );
    } else {
        longtail_testutil::skip!(
            "sklearn comparison: {} is not the default preparation",
            dir.display()
        );
    }
}
