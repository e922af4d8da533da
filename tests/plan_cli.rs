//! `longtail plan` end to end on the tiny world: the plan is chosen on validation and written
//! with its artefacts; `eval-rec --plan`'s `served` row re-measures exactly what the plan
//! measured; `recommend --plan` serves the lists the library's served ranking gives; a
//! changed artefact is refused.

mod common;
use common::tiny::{prepared, tiny_model, train_sequence};
use common::{longtail, run_ok};

use longtail_interest::{Recommender, RecommenderOptions, ServedScorer};
use longtail_rec::{exclude_history, rerank, top_k, ItemIdx, Knob, Scorer};
use serde_json::Value;
use std::path::Path;

fn plan(data: &Path, ckpt: &Path, sasrec: &Path, out: &Path, extra: &[&str]) -> Value {
    run_ok(
        longtail()
            .arg("plan")
            .arg("--data")
            .arg(data)
            .arg("--checkpoint")
            .arg(ckpt)
            .arg(format!("--candidate=sasrec={}", sasrec.display()))
            .arg("--out")
            .arg(out)
            .args(extra),
    );
    serde_json::from_str(&std::fs::read_to_string(out.join("plan.json")).unwrap()).unwrap()
}

#[test]
fn plan_is_chosen_on_validation_and_served_as_measured() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let model = model.to_str().unwrap();
    let data = prepared(tmp.path());
    let ckpt = tmp.path().join("seq");
    train_sequence(
        &data,
        &ckpt,
        &["--model", model, "--max-steps", "6", "--eval-every", "2"],
    );
    let sasrec = tmp.path().join("sasrec");
    train_sequence(
        &data,
        &sasrec,
        &[
            "--item-features",
            "id",
            "--max-steps",
            "6",
            "--eval-every",
            "2",
        ],
    );

    // A budget large enough that some tail weight is served on this small world.
    let dir = tmp.path().join("plan");
    let p = plan(&data, &ckpt, &sasrec, &dir, &["--relevance-budget", "0.5"]);
    let candidates: Vec<&str> = p["selection"]["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(
        candidates,
        [
            "longtail",
            "text-last-item",
            "sasrec",
            "ease",
            "item_knn",
            "most_popular"
        ]
    );
    let kept = p["components"].as_array().unwrap();
    assert!(!kept.is_empty());
    let total: f64 = kept.iter().map(|c| c["weight"].as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-9, "weights sum to {total}");
    assert_eq!(
        kept.len() + p["dropped"].as_array().unwrap().len(),
        candidates.len()
    );
    for c in kept {
        assert!(c["weight"].as_f64().unwrap() > 0.0);
        if let Some(file) = c["artefact"].as_str() {
            assert!(dir.join(file).is_file(), "{file}");
        }
    }
    // The search starts from the best single candidate and only climbs.
    let path = p["selection"]["blend_path"].as_array().unwrap();
    let ndcgs: Vec<f64> = path
        .iter()
        .map(|s| s["ndcg@10"].as_f64().unwrap())
        .collect();
    assert!(ndcgs.windows(2).all(|w| w[1] > w[0]), "{ndcgs:?}");
    // The tail stage starts at the relevance blend and only gains tail recall, within budget.
    let sel = &p["selection"];
    assert!(sel["tail_search_rule"]
        .as_str()
        .unwrap()
        .contains("tail-item Recall@10"));
    let tail_path = sel["tail_path"].as_array().unwrap();
    assert!(!tail_path.is_empty(), "a budget of 0.5 runs the tail stage");
    let first: Vec<f64> = serde_json::from_value(tail_path[0]["weights"].clone()).unwrap();
    let blend_total: f64 = path.last().unwrap()["weights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_f64().unwrap())
        .sum();
    let blend: Vec<f64> = path.last().unwrap()["weights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_f64().unwrap() / blend_total)
        .collect();
    for (a, b) in first.iter().zip(&blend) {
        assert!((a - b).abs() < 1e-9, "{first:?} vs {blend:?}");
    }
    let tails: Vec<f64> = tail_path
        .iter()
        .map(|s| s["tail_recall@10"].as_f64().unwrap())
        .collect();
    assert!(tails.windows(2).all(|w| w[1] > w[0]), "{tails:?}");
    // the served weights are the components' (in candidate order) when the stage moved them
    if let Some(w) = sel["served_weights"].as_array() {
        for c in kept {
            let i = candidates
                .iter()
                .position(|n| *n == c["name"].as_str().unwrap())
                .unwrap();
            assert!((w[i].as_f64().unwrap() - c["weight"].as_f64().unwrap()).abs() < 1e-12);
        }
    }

    // eval-rec's `served` row measures on validation exactly what the plan recorded.
    let report = tmp.path().join("eval/report.json");
    run_ok(
        longtail()
            .arg("eval-rec")
            .arg("--data")
            .arg(&data)
            .arg("--plan")
            .arg(&dir)
            .arg("--report")
            .arg(&report),
    );
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let measured = r["validation"]["served"]["overall"]["ndcg@10"]
        .as_f64()
        .unwrap();
    let planned = p["selection"]["served"]["ndcg@10"].as_f64().unwrap();
    assert!((measured - planned).abs() < 1e-9, "{measured} vs {planned}");
    let measured_tail = r["validation"]["served"]["tail_items"]["recall@10"]
        .as_f64()
        .unwrap();
    let planned_tail = p["selection"]["served"]["tail_recall@10"].as_f64().unwrap();
    assert!((measured_tail - planned_tail).abs() < 1e-9);
    assert!(r["models"]["served"]["overall"]["ndcg@10"].is_number());
    assert_eq!(r["plan"]["components"], p["components"]);

    // recommend --plan serves the library's lists, and those are the served ranking that
    // eval-rec measures (same scores, the plan's knob on the prepared labels).
    let recs = tmp.path().join("recs.jsonl");
    run_ok(
        longtail()
            .arg("recommend")
            .arg("--plan")
            .arg(&dir)
            .arg("--data")
            .arg(&data)
            .arg("--keep-user-ids")
            .arg("--k")
            .arg("5")
            .arg("--output")
            .arg(&recs),
    );
    let (rec, _) = Recommender::load_plan(&dir, &data, &RecommenderOptions::default()).unwrap();
    let served = ServedScorer {
        rec: &rec,
        name: "served".into(),
    };
    let knob = rec.plan_knob();
    let mut checked = 0;
    for line in std::fs::read_to_string(&recs).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let user = v["user"].as_str().unwrap();
        let history = rec.history(user).unwrap().to_vec();
        let cli: Vec<&str> = v["recommendations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["item_id"].as_str().unwrap())
            .collect();
        let lib = rec.recommend(&history, 5, knob).unwrap().unwrap();
        let lib_ids: Vec<&str> = lib.iter().map(|x| rec.item_id(x.item)).collect();
        assert_eq!(cli, lib_ids, "user {user}");
        for x in &lib {
            assert!(history.contains(&x.because_of.unwrap()));
        }
        let h: Vec<ItemIdx> = history.iter().map(|&i| i as ItemIdx).collect();
        let mut scores = vec![0f32; rec.num_items()];
        served.scores(0, &h, &mut scores);
        exclude_history("served", 0, &h, &mut scores).unwrap();
        let measured: Vec<usize> = match knob {
            Some(k @ Knob::TailWeight(_)) => rerank(&scores, rec.tail_labels(), 5, k),
            _ => top_k(&scores, 5),
        }
        .into_iter()
        .map(|i| i as usize)
        .collect();
        let served_items: Vec<usize> = lib.iter().map(|x| x.item).collect();
        assert_eq!(measured, served_items, "user {user}");
        checked += 1;
    }
    assert!(checked > 10);

    // Budget 0: pure relevance.
    let pure = plan(
        &data,
        &ckpt,
        &sasrec,
        &tmp.path().join("plan0"),
        &["--relevance-budget", "0"],
    );
    assert!(pure["knob"].is_null());

    // A changed artefact is refused, naming the check.
    if let Some(file) = kept.iter().find_map(|c| c["artefact"].as_str()) {
        let path = dir.join(file);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let out = longtail()
            .arg("recommend")
            .arg("--plan")
            .arg(&dir)
            .arg("--data")
            .arg(&data)
            .arg("--output")
            .arg(tmp.path().join("x.jsonl"))
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("sha256"), "{err}");
    }
}
