//! `longtail train-interest` / `recommend` / `eval-rec --checkpoint` end to end on a tiny
//! random BERT and a synthetic catalogue prepared by the real `longtail prepare` (the same
//! generators as tests/train_cli.rs). Runs in seconds; nothing touches the real data.

mod common;
use common::tiny::{prepared, run_train_interest, tensors, tiny_model, train_sequence};
use common::{longtail, run_ok};

use candle_core::Tensor;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::Path;

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The bi-encoder architecture on the tiny world.
fn train_interest(data: &Path, out: &Path, extra: &[&str]) {
    let base = [
        "--architecture",
        "bi-encoder",
        "--frozen-layers",
        "1",
        "--refresh-every",
        "2",
        "--eval-every",
        "2",
    ];
    run_train_interest(data, out, &base, extra);
}

/// `longtail eval-rec --checkpoint ckpt` on `data` (plus `extra`); the report JSON.
fn eval_rec(data: &Path, ckpt: &Path, report: &Path, extra: &[&str]) -> Value {
    run_ok(
        longtail()
            .arg("eval-rec")
            .arg("--data")
            .arg(data)
            .arg("--checkpoint")
            .arg(ckpt)
            .arg("--report")
            .arg(report)
            .args(extra),
    );
    serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap()
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn histories(data: &Path) -> HashMap<String, HashSet<String>> {
    let mut h: HashMap<String, HashSet<String>> = HashMap::new();
    let text = std::fs::read_to_string(data.join("interactions.csv")).unwrap();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        h.entry(f[0].to_string())
            .or_default()
            .insert(f[1].to_string());
    }
    h
}

#[test]
fn train_interest_recommend_and_eval_rec() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let data = prepared(tmp.path());
    let ckpt = tmp.path().join("interest");
    train_interest(
        &data,
        &ckpt,
        &["--model", model.to_str().unwrap(), "--max-steps", "4"],
    );
    for f in [
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "interest.json",
        "trainer_state.json",
        "optimizer.json",
        "optimizer.safetensors",
        "item_embeddings.safetensors",
    ] {
        assert!(ckpt.join(f).is_file(), "missing {f}");
    }
    // The trained top layer moved; the frozen bottom layer and embeddings did not.
    let before = tensors(&model.join("model.safetensors"));
    let after = tensors(&ckpt.join("model.safetensors"));
    let top = "encoder.layer.1.attention.self.query.weight";
    let bottom = "encoder.layer.0.attention.self.query.weight";
    let emb = "embeddings.word_embeddings.weight";
    assert!(max_abs_diff(&before[&format!("bert.{top}")], &after[top]) > 1e-6);
    assert_eq!(
        max_abs_diff(&before[&format!("bert.{bottom}")], &after[bottom]),
        0.0
    );
    assert_eq!(
        max_abs_diff(&before[&format!("bert.{emb}")], &after[emb]),
        0.0
    );
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(ckpt.join("interest.json")).unwrap())
            .unwrap();
    assert_eq!(meta["global_step"], 4);
    assert!(meta["calibration"]["a"].as_f64().unwrap().is_finite());

    // Recommend: pseudonymised, seen items excluded, explanations from the history.
    let recs = tmp.path().join("out/recs.jsonl");
    let rec = |extra: &[&str]| recommend(&ckpt, &data, &recs, extra);
    rec(&["--keep-user-ids"]);
    let hist = histories(&data);
    let plain = read_jsonl(&recs);
    assert_eq!(plain.len(), hist.len());
    let mut plain_tail = 0;
    for line in &plain {
        let user = line["user"].as_str().unwrap();
        let seen = &hist[user];
        let list = line["recommendations"].as_array().unwrap();
        assert_eq!(list.len(), 5);
        for r in list {
            assert!(
                !seen.contains(r["item_id"].as_str().unwrap()),
                "seen item recommended"
            );
            assert!(seen.contains(r["because_of"].as_str().unwrap()));
            let p = r["p_interest"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&p));
            plain_tail += usize::from(r["tail"].as_bool().unwrap());
        }
    }
    rec(&["--tail-share", "1.0", "--keep-user-ids"]);
    let all_tail: usize = read_jsonl(&recs)
        .iter()
        .flat_map(|l| l["recommendations"].as_array().unwrap().clone())
        .filter(|r| r["tail"].as_bool().unwrap())
        .count();
    assert_eq!(all_tail, 5 * hist.len());
    assert!(all_tail > plain_tail);

    rec(&[]);
    let first: Vec<String> = read_jsonl(&recs)
        .iter()
        .map(|l| l["user"].as_str().unwrap().to_string())
        .collect();
    assert!(first
        .iter()
        .all(|u| u.starts_with("u_") && !hist.contains_key(u)));
    assert!(tmp.path().join("out/user_id.key").is_file());
    rec(&[]);
    let second: Vec<String> = read_jsonl(&recs)
        .iter()
        .map(|l| l["user"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(first, second, "pseudonyms are stable under the same key");
    rec(&["--user-id-key", "another-key-of-16-bytes"]);
    let third: Vec<String> = read_jsonl(&recs)
        .iter()
        .map(|l| l["user"].as_str().unwrap().to_string())
        .collect();
    assert_ne!(first, third, "pseudonyms depend on the key");

    // Resume on the same data: continues the step count.
    let ckpt2 = tmp.path().join("interest2");
    run_ok(
        longtail()
            .arg("train-interest")
            .arg("--data")
            .arg(&data)
            .arg("--resume-from")
            .arg(&ckpt)
            .arg("--out")
            .arg(&ckpt2)
            .args(["--max-steps", "2", "--batch-size", "8", "--eval-every", "0"]),
    );
    let meta2: Value =
        serde_json::from_str(&std::fs::read_to_string(ckpt2.join("interest.json")).unwrap())
            .unwrap();
    assert_eq!(meta2["global_step"], 6);

    // eval-rec with the checkpoint: longtail and the blend next to the baselines.
    let report = tmp.path().join("rec/report.json");
    let r = eval_rec(&data, &ckpt, &report, &[]);
    for m in [
        "longtail",
        "longtail+ease",
        "ease",
        "item_knn",
        "most_popular",
    ] {
        assert!(
            r["models"][m].is_object(),
            "model {m} missing from the report"
        );
    }
    let curves: Vec<&str> = r["tradeoffs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["model"].as_str().unwrap())
        .collect();
    assert!(curves.contains(&"longtail") && curves.contains(&"longtail+ease"));
    // The tail weight was chosen on the validation curve by the stated rule.
    let choice = &r["tail_weight"];
    assert_eq!(choice["base"], "longtail+ease");
    let floor = choice["ndcg_floor"].as_f64().unwrap();
    let best_baseline = ["most_popular", "item_knn", "ease"]
        .iter()
        .map(|m| r["validation"][m]["overall"]["ndcg@10"].as_f64().unwrap())
        .fold(f64::MIN, f64::max);
    assert_eq!(floor, best_baseline);
    let points = choice["validation"].as_array().unwrap();
    let qualifying = points
        .iter()
        .filter(|p| p["ndcg@10"].as_f64().unwrap() >= floor);
    let best_tail = qualifying
        .map(|p| p["tail_recall@10"].as_f64().unwrap())
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
    match (choice["chosen"].as_f64(), best_tail) {
        (Some(l), Some(best)) => {
            let p = points
                .iter()
                .find(|p| p["value"].as_f64() == Some(l))
                .unwrap();
            assert_eq!(p["tail_recall@10"].as_f64(), Some(best));
            // The added model ranks exactly like the curve's re-ranking at that weight.
            let m = &r["validation"]["longtail+ease+tail"]["overall"];
            let ndcg = m["ndcg@10"].as_f64().unwrap();
            assert!((ndcg - p["ndcg@10"].as_f64().unwrap()).abs() < 1e-12);
            assert!(ndcg >= floor);
            assert!(r["models"]["longtail+ease+tail"].is_object());
        }
        (None, None) => assert!(r["models"].get("longtail+ease+tail").is_none()),
        other => panic!("choice and curve disagree: {other:?}"),
    }
}

/// `longtail recommend --k 5` of `ckpt` on `data` into `out`, plus `extra` flags.
fn recommend(ckpt: &Path, data: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    run_ok(
        longtail()
            .arg("recommend")
            .arg("--checkpoint")
            .arg(ckpt)
            .arg("--data")
            .arg(data)
            .arg("--output")
            .arg(out)
            .args(["--k", "5"])
            .args(extra),
    )
}

/// EASE scores of every user, fitted here on the same interactions with longtail-rec's EASE.
fn ease_scores(data: &Path, lambda: f64) -> HashMap<String, (Vec<f32>, HashSet<usize>)> {
    use longtail_rec::{Ease, ItemIdx, Scorer};
    let items: Vec<String> = read_jsonl(&data.join("items.jsonl"))
        .iter()
        .map(|v| v["item_id"].as_str().unwrap().to_string())
        .collect();
    let index: HashMap<&str, usize> = items
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    let users: Vec<(String, Vec<ItemIdx>)> = histories(data)
        .into_iter()
        .map(|(u, set)| {
            (
                u,
                set.iter().map(|i| index[i.as_str()] as ItemIdx).collect(),
            )
        })
        .collect();
    let lists: Vec<Vec<ItemIdx>> = users.iter().map(|(_, l)| l.clone()).collect();
    let ease = Ease::fit_lists(&lists, items.len(), lambda).unwrap();
    users
        .into_iter()
        .map(|(u, hist)| {
            let mut s = vec![0f32; items.len()];
            ease.scores(0, &hist, &mut s);
            let seen = hist.iter().map(|&i| i as usize).collect();
            (u, (s, seen))
        })
        .collect()
}

#[test]
fn recommend_serves_the_ease_blend() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let data = prepared(tmp.path());
    let ckpt = tmp.path().join("interest");
    train_interest(
        &data,
        &ckpt,
        &["--model", model.to_str().unwrap(), "--max-steps", "0"],
    );
    let recs = tmp.path().join("recs.jsonl");
    let rec = |extra: &[&str]| {
        recommend(&ckpt, &data, &recs, &[&["--keep-user-ids"], extra].concat());
        read_jsonl(&recs)
    };
    let ids = |lines: &[Value]| -> Vec<Vec<String>> {
        lines
            .iter()
            .map(|l| {
                l["recommendations"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["item_id"].as_str().unwrap().to_string())
                    .collect()
            })
            .collect()
    };
    let plain = rec(&[]);
    let pure_ease = rec(&["--ease-weight", "1", "--ease-lambda", "10"]);
    // The test has power only if EASE and the cosine disagree somewhere.
    assert_ne!(
        ids(&plain),
        ids(&pure_ease),
        "EASE ignored or identical to cosine"
    );
    let items: Vec<String> = read_jsonl(&data.join("items.jsonl"))
        .iter()
        .map(|v| v["item_id"].as_str().unwrap().to_string())
        .collect();
    let pos: HashMap<&str, usize> = items
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    let ease = ease_scores(&data, 10.0);
    for line in &pure_ease {
        let (scores, seen) = &ease[line["user"].as_str().unwrap()];
        // Weight 1 is pure EASE: the list holds the user's top-5 unseen EASE scores.
        let mut best: Vec<f32> = (0..scores.len())
            .filter(|i| !seen.contains(i))
            .map(|i| scores[i])
            .collect();
        best.sort_by(|a, b| b.total_cmp(a));
        let got: Vec<f32> = line["recommendations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| scores[pos[r["item_id"].as_str().unwrap()]])
            .collect();
        for (g, b) in got.iter().zip(&best[..5]) {
            assert!((g - b).abs() < 1e-5, "{got:?} vs {:?}", &best[..5]);
        }
        // Ranked by the blend score, cosine kept in `score` for p_interest.
        let blend: Vec<f64> = line["recommendations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["blend_score"].as_f64().unwrap())
            .collect();
        assert!(blend.windows(2).all(|w| w[0] >= w[1]));
    }
    // Weight 0 is the cosine ranking again; a tail weight still re-ranks the blend.
    assert_eq!(
        ids(&rec(&["--ease-weight", "0", "--ease-lambda", "10"])),
        ids(&plain)
    );
    let tail_count = |lines: &[Value]| -> usize {
        lines
            .iter()
            .flat_map(|l| l["recommendations"].as_array().unwrap().clone())
            .filter(|r| r["tail"].as_bool().unwrap())
            .count()
    };
    let boosted = rec(&[
        "--ease-weight",
        "1",
        "--ease-lambda",
        "10",
        "--tail-weight",
        "3",
    ]);
    assert!(tail_count(&boosted) > tail_count(&pure_ease));
}

/// `(step, learning_rate)` of every training step logged in `out/trainer_state.json`.
fn learning_rates(out: &Path) -> Vec<(u64, f64)> {
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("trainer_state.json")).unwrap())
            .unwrap();
    s["log_history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| Some((e["step"].as_u64()?, e.get("learning_rate")?.as_f64()?)))
        .collect()
}

/// `train-interest --resume-from` continues the LR schedule where the checkpoint stopped: its
/// updates use the rates of the same updates in one uninterrupted run of the total length
/// (before the fix the schedule restarted at step 0, warming up again from 0).
#[test]
fn train_interest_resume_continues_the_learning_rate_schedule() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let data = prepared(tmp.path());
    let model = model.to_str().unwrap();
    let straight = tmp.path().join("straight");
    train_interest(&data, &straight, &["--max-steps", "6", "--model", model]);
    let first = tmp.path().join("first");
    train_interest(&data, &first, &["--max-steps", "3", "--model", model]);
    let resumed = tmp.path().join("resumed");
    let first_arg = first.to_str().unwrap();
    train_interest(
        &data,
        &resumed,
        &["--max-steps", "3", "--resume-from", first_arg],
    );

    let straight = learning_rates(&straight);
    let resumed = learning_rates(&resumed);
    assert_eq!(straight.len(), 6);
    assert_eq!(
        resumed.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6],
        "the resumed log carries the first run's steps over"
    );
    assert_eq!(
        &resumed[3..],
        &straight[3..],
        "steps 4-6: same learning rates"
    );
    assert!(resumed[3].1 > 0.0, "no second warmup from 0: {resumed:?}");
}

fn interest_meta(ckpt: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(ckpt.join("interest.json")).unwrap()).unwrap()
}

/// `train-interest --architecture sequence` (text + ID), `--item-features id` (SASRec),
/// `recommend` from the sequence checkpoint, and `eval-rec` with both: the served model, the
/// frozen-text rows of its text embeddings, and the SASRec row.
#[test]
fn sequence_model_trains_recommends_and_is_evaluated_next_to_sasrec() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let model = model.to_str().unwrap();
    let data = prepared(tmp.path());
    let ckpt = tmp.path().join("seq");
    let trained = train_sequence(
        &data,
        &ckpt,
        &["--model", model, "--max-steps", "6", "--eval-every", "2"],
    );
    for f in [
        "interest.json",
        "sequence.safetensors",
        "model.safetensors",
        "tokenizer.json",
        "item_embeddings.safetensors",
        "optimizer.safetensors",
        "trainer_state.json",
    ] {
        assert!(ckpt.join(f).is_file(), "missing {f}");
    }
    let meta = interest_meta(&ckpt);
    assert_eq!(meta["architecture"], "sequence");
    assert_eq!(meta["sequence"]["item_features"], "text-id");
    assert!(meta["calibration"]["a"].as_f64().unwrap().is_finite());
    let w = tensors(&ckpt.join("sequence.safetensors"));
    assert!(w.contains_key("adaptor.dense.weight"));
    assert!(w.contains_key("item_id_embeddings.weight"));
    assert!(w.contains_key("encoder.layer.0.attention.self.query.weight"));

    // SASRec: ID embeddings only, no text encoder in the checkpoint. With --phase-times, one
    // line says where the 6 updates' time went.
    let sasrec = tmp.path().join("sasrec");
    let out = train_sequence(
        &data,
        &sasrec,
        &[
            "--item-features",
            "id",
            "--max-steps",
            "6",
            "--eval-every",
            "2",
            "--phase-times",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.lines().any(
            |l| l.starts_with("phase times: forward ") && l.ends_with("per update (6 updates)")
        ),
        "{stdout}"
    );
    assert!(!sasrec.join("model.safetensors").exists());
    assert!(!tensors(&sasrec.join("sequence.safetensors")).contains_key("adaptor.dense.weight"));

    // recommend: seen items excluded, explanations from the history, probabilities.
    let recs = tmp.path().join("out/recs.jsonl");
    recommend(&ckpt, &data, &recs, &["--keep-user-ids"]);
    let hist = histories(&data);
    let lines = read_jsonl(&recs);
    assert_eq!(lines.len(), hist.len());
    for line in &lines {
        let seen = &hist[line["user"].as_str().unwrap()];
        let list = line["recommendations"].as_array().unwrap();
        assert_eq!(list.len(), 5);
        for r in list {
            assert!(!seen.contains(r["item_id"].as_str().unwrap()));
            assert!(seen.contains(r["because_of"].as_str().unwrap()));
            assert!((0.0..=1.0).contains(&r["p_interest"].as_f64().unwrap()));
        }
    }

    let report = tmp.path().join("rec/report.json");
    let compare = format!("sasrec={}", sasrec.display());
    let r = eval_rec(&data, &ckpt, &report, &["--compare", &compare]);
    // The trainer's validation tail recall is eval-rec's: the same users, and tail items by the
    // same rule on training counts (not the prepared labels, which count every split).
    let stdout = String::from_utf8_lossy(&trained.stdout);
    let printed: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("validation Recall@10 "))
        .and_then(|l| l.split("tail ").nth(1))
        .and_then(|t| t.split(" -> ").nth(1))
        .and_then(|t| t.split_whitespace().next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no validation tail line in {stdout}"));
    let evaluated = r["validation"]["longtail"]["tail_items"]["recall@10"]
        .as_f64()
        .unwrap();
    assert!(
        (printed - evaluated).abs() < 5e-5,
        "{printed} vs {evaluated}"
    );
    for m in [
        "longtail",
        "text-last-item",
        "text-last-item+ease",
        "sasrec",
        "ease",
        "item_knn",
        "most_popular",
    ] {
        assert!(r["models"][m].is_object(), "model {m} missing");
    }
    let curves: Vec<&str> = r["tradeoffs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["model"].as_str().unwrap())
        .collect();
    assert!(curves.contains(&"longtail"), "{curves:?}");
}

/// A sequence run resumed from its checkpoint ends with the same weights as one
/// uninterrupted run of the same total length (data order, dropout stream and optimizer
/// moments all continue), and `--resume-from` adds the steps.
#[test]
fn sequence_resume_is_bit_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let model = model.to_str().unwrap();
    let data = prepared(tmp.path());
    // A constant learning rate: a 3-step run's linear schedule would differ from the first
    // half of a 6-step one (HF semantics), which is not what resuming is about.
    let common = [
        "--eval-every",
        "0",
        "--hidden-dropout-prob",
        "0.3",
        "--lr-scheduler-type",
        "constant_with_warmup",
        "--warmup-ratio",
        "0",
    ];
    let straight = tmp.path().join("straight");
    let args = |steps: &'static str| {
        let mut a = vec!["--max-steps", steps];
        a.extend(common);
        a
    };
    let mut a = args("6");
    a.extend(["--model", model]);
    train_sequence(&data, &straight, &a);
    let first = tmp.path().join("first");
    let mut a = args("3");
    a.extend(["--model", model]);
    train_sequence(&data, &first, &a);
    let resumed = tmp.path().join("resumed");
    let mut a = args("3");
    let first_arg = first.to_str().unwrap().to_string();
    a.extend(["--resume-from", &first_arg]);
    train_sequence(&data, &resumed, &a);

    assert_eq!(interest_meta(&resumed)["global_step"], 6);
    let (s, r) = (
        tensors(&straight.join("sequence.safetensors")),
        tensors(&resumed.join("sequence.safetensors")),
    );
    let f = tensors(&first.join("sequence.safetensors"));
    assert_eq!(s.len(), r.len());
    for (name, t) in &s {
        assert_eq!(
            max_abs_diff(t, &r[name]),
            0.0,
            "{name} differs after resume"
        );
    }
    let moved = s.iter().any(|(name, t)| max_abs_diff(t, &f[name]) > 0.0);
    assert!(moved, "steps 4-6 changed nothing");
}

/// `--group-logq-weight` and `--tail-rule` reach training: both are saved with the run, and two
/// steps with the group prior end at other weights than two plain steps from the same seed. A
/// rule with a second (torso) cut is refused, naming the setting.
#[test]
fn the_group_prior_flags_reach_training() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let model = model.to_str().unwrap();
    let data = prepared(tmp.path());
    let common = ["--model", model, "--max-steps", "2", "--eval-every", "0"];
    let plain = tmp.path().join("plain");
    train_sequence(&data, &plain, &common);
    let grouped = tmp.path().join("grouped");
    let mut a = common.to_vec();
    a.extend(["--group-logq-weight", "1", "--tail-rule", "min-count:3"]);
    train_sequence(&data, &grouped, &a);

    let args: Value = serde_json::from_str(
        &std::fs::read_to_string(grouped.join("train_interest_args.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(args["group_logq_weight"], 1.0);
    assert_eq!(args["tail_rule"], "min-count:3");
    let (p, g) = (
        tensors(&plain.join("sequence.safetensors")),
        tensors(&grouped.join("sequence.safetensors")),
    );
    assert!(
        p.iter().any(|(name, t)| max_abs_diff(t, &g[name]) > 0.0),
        "the group prior changed no weight"
    );

    let out = longtail()
        .args(["train-interest", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(tmp.path().join("bad"))
        .args(["--model", model, "--group-logq-weight", "1"])
        .args(["--tail-rule", "pareto:0.8,0.5"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tail_rule") && err.contains("pareto:0.8,0.5"),
        "{err}"
    );
}

/// `--adaptor-experts 3` trains a mixture of three adaptors: the checkpoint holds the experts,
/// their centres and the gate in place of the single dense map, `interest.json` says how many,
/// and `recommend` rebuilds the mixture from the checkpoint and serves from it.
#[test]
fn a_mixture_of_adaptors_trains_and_serves() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let model = model.to_str().unwrap();
    let data = prepared(tmp.path());
    let ckpt = tmp.path().join("moe");
    train_sequence(
        &data,
        &ckpt,
        &[
            "--model",
            model,
            "--max-steps",
            "4",
            "--eval-every",
            "2",
            "--adaptor-experts",
            "3",
        ],
    );
    let meta = interest_meta(&ckpt);
    assert_eq!(meta["sequence"]["adaptor_experts"], 3);
    let text_dim = meta["sequence"]["text_dim"].as_u64().unwrap() as usize;
    let width = meta["sequence"]["encoder"]["hidden_size"].as_u64().unwrap() as usize;
    let w = tensors(&ckpt.join("sequence.safetensors"));
    assert_eq!(w["adaptor.experts.weight"].dims(), &[3, width, text_dim]);
    assert_eq!(w["adaptor.experts.centres"].dims(), &[3, text_dim]);
    assert_eq!(w["adaptor.gate.weight"].dims(), &[3, text_dim]);
    assert!(!w.contains_key("adaptor.dense.weight"));

    let recs = tmp.path().join("recs.jsonl");
    recommend(&ckpt, &data, &recs, &[]);
    let rows = read_jsonl(&recs);
    assert_eq!(rows.len(), histories(&data).len(), "one row per user");
    assert!(
        rows.iter()
            .all(|r| r["recommendations"].as_array().unwrap().len() == 5),
        "{:?}",
        rows[0]
    );
}

/// `--resume-from` on new data: a catalogue with a brand-new item and more interactions.
/// A copy of the prepared `data` in `dir` with one more item, `NEW1` (I000's text), and
/// `more_interactions` (CSV lines) appended to the interactions.
fn with_new_item(data: &Path, dir: &Path, more_interactions: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let items = std::fs::read_to_string(data.join("items.jsonl")).unwrap();
    let first = items
        .lines()
        .next()
        .unwrap()
        .replace("\"I000\"", "\"NEW1\"");
    std::fs::write(dir.join("items.jsonl"), format!("{items}{first}\n")).unwrap();
    let inter = std::fs::read_to_string(data.join("interactions.csv")).unwrap();
    std::fs::write(
        dir.join("interactions.csv"),
        format!("{inter}{more_interactions}"),
    )
    .unwrap();
    for f in ["stats.json", "prepare.json"] {
        if data.join(f).is_file() {
            std::fs::copy(data.join(f), dir.join(f)).unwrap();
        }
    }
    dir.to_path_buf()
}

/// Training continues (step count adds up, the ID rows stay those of the first run) and the
/// new item, which has no ID embedding and was never trained on, is recommended from its text.
#[test]
fn sequence_resume_on_new_data_recommends_the_new_item() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let data = prepared(tmp.path());
    let ckpt = tmp.path().join("seq");
    train_sequence(
        &data,
        &ckpt,
        &[
            "--model",
            model.to_str().unwrap(),
            "--max-steps",
            "4",
            "--eval-every",
            "2",
        ],
    );
    // New data: one more item (a copy of the first line with a new id) and a new user who
    // bought two old items.
    let new = with_new_item(
        &data,
        &tmp.path().join("new"),
        "fresh,I003,1500000000\nfresh,I006,1500000001\n",
    );
    let resumed = tmp.path().join("resumed");
    run_train_interest(
        &new,
        &resumed,
        &["--resume-from", ckpt.to_str().unwrap()],
        &["--max-steps", "2", "--eval-every", "0"],
    );
    let (before, after) = (interest_meta(&ckpt), interest_meta(&resumed));
    assert_eq!(
        after["global_step"].as_u64().unwrap(),
        before["global_step"].as_u64().unwrap() + 2
    );
    assert_eq!(
        after["sequence"]["id_items"],
        before["sequence"]["id_items"]
    );
    assert!(!after["sequence"]["id_items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v == "NEW1"));

    // Every user's full list (k = the catalogue): the new item is ranked for users who never
    // saw it, with a finite score.
    let recs = tmp.path().join("out/recs.jsonl");
    run_ok(
        longtail()
            .arg("recommend")
            .arg("--checkpoint")
            .arg(&resumed)
            .arg("--data")
            .arg(&new)
            .arg("--output")
            .arg(&recs)
            .args(["--k", "151", "--keep-user-ids"]),
    );
    let lines = read_jsonl(&recs);
    let fresh = lines.iter().find(|l| l["user"] == "fresh").unwrap();
    let new_item = fresh["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["item_id"] == "NEW1")
        .expect("the new item is recommendable");
    assert!(new_item["score"].as_f64().unwrap().is_finite());
}

/// `--precision int8` for the item-embedding pass: saved in the checkpoint, close to fp32 but
/// not equal (the integer layers ran), kept by a resumed run, whose new item (a copy of
/// I000's text) gets exactly I000's vector (per-row quantization: no batch effects) and whose
/// old items keep theirs byte for byte. The bi-encoder, which trains the encoder, refuses it.
#[test]
fn int8_item_embeddings_are_saved_kept_on_resume_and_close_to_fp32() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let model = model.to_str().unwrap();
    let data = prepared(tmp.path());
    let steps = ["--model", model, "--max-steps", "2", "--eval-every", "0"];
    let (fp32, int8) = (tmp.path().join("fp32"), tmp.path().join("int8"));
    train_sequence(&data, &fp32, &steps);
    train_sequence(
        &data,
        &int8,
        &[&steps[..], &["--precision", "int8"]].concat(),
    );
    assert_eq!(interest_meta(&int8)["precision"], "int8");
    assert!(interest_meta(&fp32).get("precision").is_none());
    let emb = |dir: &Path| -> Vec<Vec<f32>> {
        tensors(&dir.join("item_embeddings.safetensors"))["embeddings"]
            .to_vec2()
            .unwrap()
    };
    let (a, b) = (emb(&fp32), emb(&int8));
    assert_eq!(a.len(), b.len());
    let mut worst = 1f32;
    for (x, y) in a.iter().zip(&b) {
        worst = worst.min(x.iter().zip(y).map(|(p, q)| p * q).sum());
    }
    assert!(
        worst > 0.95,
        "an int8 item vector is far from fp32: cosine {worst}"
    );
    assert_ne!(
        a, b,
        "int8 gave the fp32 vectors: the integer path did not run"
    );

    // Resume on a catalogue with one new item whose text is I000's.
    let new = with_new_item(&data, &tmp.path().join("new"), "");
    let resumed = tmp.path().join("resumed");
    run_train_interest(
        &new,
        &resumed,
        &["--resume-from", int8.to_str().unwrap()],
        &["--max-steps", "1", "--eval-every", "0"],
    );
    assert_eq!(interest_meta(&resumed)["precision"], "int8");
    let c = emb(&resumed);
    assert_eq!(
        &c[..b.len()],
        &b[..],
        "old items' int8 vectors changed on resume"
    );
    assert_eq!(c[b.len()], b[0], "the copy of I000 got another vector");

    let out = longtail()
        .arg("train-interest")
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(tmp.path().join("bi"))
        .args([
            "--architecture",
            "bi-encoder",
            "--model",
            model,
            "--precision",
            "int8",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(msg.contains("the bi-encoder trains in fp32"), "{msg}");
}

#[test]
fn tune_chooses_on_validation_resumes_and_writes_the_winner() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let model = model.to_str().unwrap();
    let data = prepared(tmp.path());
    let ckpt = tmp.path().join("tuned");
    let args = [
        "--model",
        model,
        "--max-steps",
        "6",
        "--eval-every",
        "2",
        "--tune",
        "3",
        // any gain wins here: the margin rule has its own unit test
        "--tune-margin",
        "0",
    ];
    let first = train_sequence(&data, &ckpt, &args);
    let log = String::from_utf8_lossy(&first.stderr).to_string();
    assert!(
        log.contains("tune: trial 0 rung 0 (2 steps): recipe"),
        "{log}"
    );
    for f in [
        "interest.json",
        "sequence.safetensors",
        "tune.json",
        "tune.md",
    ] {
        assert!(ckpt.join(f).is_file(), "{f} missing");
    }
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(ckpt.join("tune.json")).unwrap()).unwrap();
    assert_eq!(state["trials"].as_array().unwrap().len(), 3);
    assert_eq!(state["rungs"], serde_json::json!([[3, 2], [1, 6]]));
    let results = state["results"].as_array().unwrap();
    assert_eq!(results.iter().filter(|r| r["rung"] == 0).count(), 3);
    let last: Vec<u64> = results
        .iter()
        .filter(|r| r["rung"] == 1)
        .map(|r| r["trial"].as_u64().unwrap())
        .collect();
    assert!(
        last.contains(&0),
        "the recipe runs in the last rung: {last:?}"
    );
    let winner = state["winner"].as_u64().unwrap();
    let winner_rung = state["winner_rung"].as_u64().unwrap();
    // the chosen run is the best validation NDCG@10 of every run
    let best = results
        .iter()
        .map(|r| r["ndcg@10"].as_f64().unwrap())
        .fold(f64::MIN, f64::max);
    let won = results
        .iter()
        .find(|r| r["rung"] == winner_rung && r["trial"].as_u64() == Some(winner))
        .unwrap();
    assert_eq!(won["ndcg@10"].as_f64().unwrap(), best);
    assert!(std::fs::read_to_string(ckpt.join("tune.md"))
        .unwrap()
        .contains("**(chosen)**"));
    // --out holds the winner's trial checkpoint
    let trial = tmp
        .path()
        .join("tuned.tune")
        .join(format!("trial-{winner:02}-rung-{winner_rung}"));
    assert_eq!(
        std::fs::read(trial.join("sequence.safetensors")).unwrap(),
        std::fs::read(ckpt.join("sequence.safetensors")).unwrap()
    );

    // The same search again trains nothing and writes the same winner.
    let again = train_sequence(&data, &ckpt, &args);
    let log = String::from_utf8_lossy(&again.stderr).to_string();
    assert!(log.contains("resuming the search"), "{log}");
    assert!(!log.contains("steps): "), "nothing retrained: {log}");
    let state2: Value =
        serde_json::from_str(&std::fs::read_to_string(ckpt.join("tune.json")).unwrap()).unwrap();
    assert_eq!(state2["winner"], state["winner"]);

    // The bi-encoder is not searched.
    let out = longtail()
        .args([
            "train-interest",
            "--architecture",
            "bi-encoder",
            "--tune",
            "3",
        ])
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(tmp.path().join("bi"))
        .args(["--model", model])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tune searches the sequence recipe"));
}
