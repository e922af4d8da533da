//! `longtail eval-rec` on the tiny fixture, with values worked out by hand in the comments.

mod common;

use common::{longtail, run_ok};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny")
}

fn prepare(out: &Path) {
    let dir = fixture();
    run_ok(
        longtail()
            .arg("prepare")
            .arg("--items")
            .arg(dir.join("items.jsonl"))
            .arg("--interactions")
            .arg(dir.join("interactions.csv"))
            .arg("--out")
            .arg(out),
    );
}

fn close(v: &Value, want: f64) {
    let got = v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));
    assert!((got - want).abs() < 1e-4, "{got} vs {want}");
}

/// Runs `eval-rec` (baselines only) on `data`; its output and the JSON report.
fn eval_rec(data: &Path, report: &Path, lambdas: &str) -> (Output, Value) {
    let out = run_ok(
        longtail()
            .arg("eval-rec")
            .arg("--data")
            .arg(data)
            .arg("--report")
            .arg(report)
            .args(["--ease-lambdas", lambdas]),
    );
    let r = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    (out, r)
}

#[test]
fn eval_rec_on_the_tiny_fixture_matches_hand_computed_values() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("prepared");
    prepare(&data);
    let (out, r) = eval_rec(&data, &tmp.path().join("rec/report.json"), "1,10");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("baselines only"), "{stderr}");

    // Distinct items per user (first event kept; u1-u3 repeat A, u4 repeats B):
    // u1 A B C | E | F, u2 A B C | E | G, u3 A B C | E | G, u4 A B D | E | H,
    // u5 A B C D | F | I, u6 A B C | D | F, u7 A B C | D | F  (train | valid | test)
    let split = &r["protocol"]["split"];
    assert_eq!(split["duplicates_dropped"], 4);
    assert_eq!(split["evaluated_users"], 7);
    assert_eq!(split["train_interactions"], 22);
    // training counts A 7, B 7, C 6, D 2: cumulative 7/22, 14/22, 20/22 >= 0.8 -> head A B C
    let seg = &r["protocol"]["segments"];
    assert_eq!(seg["tail_items"], 7);
    // training lengths 3,3,3,3,3,3,4: 20% of 7 -> 2 users needed -> N = 3 -> 6 tail users
    assert_eq!(seg["tail_user_max_train"], 3);

    let models = r["models"].as_object().unwrap();
    for name in ["most_popular", "item_knn", "ease"] {
        let m = &models[name];
        for s in ["overall", "tail_items", "head_items", "tail_users"] {
            for k in ["recall@10", "recall@20", "ndcg@10", "ndcg@20", "users"] {
                assert!(m[s][k].is_number(), "{name}.{s}.{k} missing");
            }
        }
        for k in ["coverage@10", "aplt@10", "gini@10"] {
            assert!(m[k].is_number(), "{name}.{k} missing");
        }
        assert_eq!(m["overall"]["users"], 7);
        assert_eq!(m["tail_items"]["users"], 7);
        assert_eq!(m["head_items"]["users"], 0);
        assert_eq!(m["tail_users"]["users"], 6);
    }
    // Most popular (A, B, C, D, then zero-count items in catalogue order), history excluded:
    // test ranks u1 F:2, u2 G:3, u3 G:3, u4 H:4, u5 I:4, u6 F:2, u7 F:2
    let pop = &models["most_popular"];
    close(&pop["overall"]["recall@10"], 1.0);
    let ndcg = (3.0 / 3f64.log2() + 2.0 / 4f64.log2() + 2.0 / 5f64.log2()) / 7.0;
    close(&pop["overall"]["ndcg@10"], ndcg);
    // tail users are everyone but u5 (rank 4)
    let ndcg_tu = (3.0 / 3f64.log2() + 2.0 / 4f64.log2() + 1.0 / 5f64.log2()) / 6.0;
    close(&pop["tail_users"]["ndcg@10"], ndcg_tu);
    // Every list holds all its unexcluded items; A and B are in every history, never shown
    close(&pop["coverage@10"], 0.8);

    let lambda = r["ease_lambda"]["chosen"].as_f64().unwrap();
    assert!(lambda == 1.0 || lambda == 10.0);
    let curves = r["tradeoffs"].as_array().unwrap();
    assert_eq!(curves.len(), 1, "baselines only: one curve");
    assert!(curves[0]["points"].as_array().unwrap().len() > 10);
    // Each curve comes in both stages, over the same knobs; unre-ranked (tail weight 0), each
    // stage's point is that model's own row of the stage.
    let name = curves[0]["model"].as_str().unwrap();
    for (stage, rows) in [("points", &r["models"]), ("validation", &r["validation"])] {
        let pts = curves[0][stage].as_array().unwrap();
        assert_eq!(pts.len(), curves[0]["points"].as_array().unwrap().len());
        let plain = pts
            .iter()
            .find(|p| p["knob"] == "tail_weight" && p["value"] == 0.0)
            .unwrap_or_else(|| panic!("{stage}: no tail weight 0 in {pts:?}"));
        for (point, row) in [("ndcg@10", "ndcg@10"), ("recall@10", "recall@10")] {
            close(&plain[point], rows[name]["overall"][row].as_f64().unwrap());
        }
    }
    for f in [
        "report.md",
        "report_head_tail.png",
        "report_frontier.png",
        "report_tradeoff.png",
    ] {
        let p = tmp.path().join("rec").join(f);
        assert!(
            std::fs::metadata(&p).unwrap().len() > 100,
            "{}",
            p.display()
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("| most_popular |"), "{stdout}");
}

#[test]
fn eval_rec_with_a_directory_that_is_no_interest_checkpoint_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("prepared");
    prepare(&data);
    let out = longtail()
        .arg("eval-rec")
        .arg("--data")
        .arg(&data)
        .arg("--report")
        .arg(tmp.path().join("r.json"))
        .arg("--checkpoint")
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot load interest checkpoint") && stderr.contains("interest.json"),
        "{stderr}"
    );
}

#[test]
fn eval_rec_counts_and_reports_rows_with_unknown_items() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("prepared");
    prepare(&data);
    let log = data.join("interactions.csv");
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str("u1,NOT-IN-CATALOGUE,1600000001\nu9,ALSO-UNKNOWN,1600000002\n");
    std::fs::write(&log, text).unwrap();
    let (out, r) = eval_rec(&data, &tmp.path().join("rec/report.json"), "1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("2 interaction rows skipped"), "{stderr}");
    let split = &r["protocol"]["split"];
    assert_eq!(split["unknown_items"], 2);
    // the rest of the split is the fixture's: u9 never becomes a user
    assert_eq!(split["evaluated_users"], 7);
    assert_eq!(split["train_interactions"], 22);
    let md = std::fs::read_to_string(tmp.path().join("rec/report.md")).unwrap();
    assert!(md.contains("2 interaction rows skipped"), "{md}");
}
