//! `prepare` on the real datasets (skipped with a message when absent):
//! Amazon Office 2014 at `$LONGTAIL_TEST_OFFICE` and MovieLens 100K at
//! `$LONGTAIL_TEST_MOVIELENS`, defaulting to `shared/datasets/` beside the repo.

mod common;

use std::collections::HashMap;
use std::time::Instant;

use common::{
    file_counts, labels_and_splits, pareto_labels_from_raw, python_check, read_jsonl, real_data,
};
use longtail_data::{prepare, Label, PrepareOptions, Split};

fn raw_item_ids(items: &std::path::Path) -> Vec<String> {
    read_jsonl(items)
        .iter()
        .map(|v| match &v["item_id"] {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

/// Checks every item is in exactly one split and per-label split sizes are
/// within one item of the 70/10/20 target.
fn check_random_split(splits: &HashMap<String, (String, String)>) {
    let mut by_label: HashMap<&str, HashMap<&str, usize>> = HashMap::new();
    for (label, split) in splits.values() {
        assert!(["train", "validation", "test"].contains(&split.as_str()));
        *by_label.entry(label).or_default().entry(split).or_default() += 1;
    }
    for (label, counts) in by_label {
        let n: usize = counts.values().sum();
        for (split, frac) in [("train", 0.7), ("validation", 0.1), ("test", 0.2)] {
            let got = *counts.get(split).unwrap_or(&0) as f64;
            assert!(
                (got - n as f64 * frac).abs() <= 1.0,
                "{label}/{split}: {got} of {n}"
            );
        }
    }
}

#[test]
fn office_prepare_matches_independent_pareto_labels() {
    let Some(data) = real_data("LONGTAIL_TEST_OFFICE", "amazon-office-2014") else {
        return;
    };
    let (items, inter) = (data.join("items.jsonl"), data.join("interactions.csv"));
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let t = Instant::now();
    let s = prepare(
        &PrepareOptions::new(&items, &inter, &out),
        &longtail_progress::ignore,
    )
    .unwrap();
    let elapsed = t.elapsed();

    assert_eq!(s.n_items, 2420);
    assert_eq!(s.n_interactions, 53258);
    assert_eq!(s.n_items_with_interactions, 2420);
    assert_eq!(s.n_users, 4905);
    let counts = file_counts(&out);
    assert_eq!(counts["items"], (2420, 2420, 0));
    assert_eq!(counts["interactions"], (53258, 53258, 0));

    let ids = raw_item_ids(&items);
    let want = pareto_labels_from_raw(&ids, &inter, 0.8);
    let got: HashMap<String, (String, String)> = labels_and_splits(&out).into_iter().collect();
    assert_eq!(got.len(), 2420);
    for (id, (label, _)) in &got {
        assert_eq!(label, &want[id], "label of {id}");
    }
    // the dataset README: 1003 head items cover 80% of interactions
    assert_eq!(s.labels[&Label::Head].items, 1003);
    check_random_split(&got);
    let total: u64 = s.splits.values().flat_map(|m| m.values()).sum();
    assert_eq!(total, 2420);
    eprintln!(
        "office: head {} items ({:.1}%), gini {:.4}, prepare took {:.2?}",
        s.labels[&Label::Head].items,
        100.0 * s.head_item_share,
        s.gini,
        elapsed
    );
    python_check(&items, &inter, &out);
}

#[test]
fn office_time_split_and_three_tiers() {
    let Some(data) = real_data("LONGTAIL_TEST_OFFICE", "amazon-office-2014") else {
        return;
    };
    let (items, inter) = (data.join("items.jsonl"), data.join("interactions.csv"));
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = PrepareOptions::new(&items, &inter, tmp.path());
    opts.split = "time:2013-01-01".parse().unwrap();
    opts.tiers = 3;
    let s = prepare(&opts, &longtail_progress::ignore).unwrap();
    let cutoff = 1356998400 + 86_399;
    let rows = read_jsonl(&tmp.path().join("items.jsonl"));
    let mut n_test = 0;
    for r in &rows {
        let late = r["first_seen"].as_i64().unwrap() > cutoff;
        assert_eq!(r["split"] == "test", late, "{}", r["item_id"]);
        n_test += late as u64;
    }
    assert!(n_test > 0 && n_test < 2420, "{n_test} test items");
    assert_eq!(s.splits[&Split::Test].values().sum::<u64>(), n_test);
    // 3 tiers keep the 2-tier tail: the tail cut is still at rank 1003
    assert_eq!(s.tail_rule.cut_ranks[1], 1003);
    assert!(s.labels[&Label::Torso].items > 0);
    python_check(&items, &inter, tmp.path());
}

#[test]
fn movielens_prepare_with_rating_column() {
    let Some(data) = real_data("LONGTAIL_TEST_MOVIELENS", "movielens-100k") else {
        return;
    };
    let (items, inter) = (data.join("items.jsonl"), data.join("interactions.csv"));
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut opts = PrepareOptions::new(&items, &inter, &out);
    opts.text_fields = vec!["title".into(), "year".into(), "genres".into()];
    let s = prepare(&opts, &longtail_progress::ignore).unwrap();
    assert_eq!(
        (s.n_items, s.n_interactions, s.n_users),
        (1682, 100_000, 943)
    );
    assert_eq!(file_counts(&out)["interactions"], (100_000, 100_000, 0));

    let csv = std::fs::read_to_string(out.join("interactions.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("user_id,item_id,timestamp,rating"));
    assert_eq!(lines.next(), Some("259,255,874724710,4"));

    let ids = raw_item_ids(&items);
    let want = pareto_labels_from_raw(&ids, &inter, 0.8);
    let got = labels_and_splits(&out);
    for (id, (label, _)) in &got {
        assert_eq!(label, &want[id], "label of {id}");
    }
    // the dataset README: 536 head items cover 80% of interactions
    assert_eq!(s.labels[&Label::Head].items, 536);
    check_random_split(&got.into_iter().collect());
    let first = &read_jsonl(&out.join("items.jsonl"))[0];
    assert_eq!(first["item_id"], "1");
    assert!(first["text"]
        .as_str()
        .unwrap()
        .starts_with("Toy Story | 1995 | "));
    eprintln!(
        "movielens: head {} items, gini {:.4}",
        s.labels[&Label::Head].items,
        s.gini
    );
    python_check(&items, &inter, &out);
}
