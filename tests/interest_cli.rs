//! `longtail train-interest` / `recommend` / `eval-rec --checkpoint` end to end on a tiny
//! random BERT and a synthetic catalogue prepared by the real `longtail prepare` (the same
//! generators as tests/train_cli.rs). Runs in seconds; nothing touches the real data.

mod common;
use common::{longtail, run_ok};

use candle_core::{Device, Tensor};
use longtail_model::{BertConfig, BertForSequenceClassification, ClassifierOptions};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

const HEAD_WORDS: [&str; 6] = ["printer", "desk", "chair", "laptop", "stapler", "monitor"];
const TAIL_WORDS: [&str; 6] = [
    "refill",
    "cartridge",
    "ribbon",
    "vintage",
    "spare",
    "adapter",
];
const SHARED: [&str; 6] = ["black", "office", "pack", "new", "large", "quality"];

/// A WordPiece tokenizer.json (BERT normalizer and pre-tokenizer, [CLS] x [SEP]).
fn write_tokenizer(dir: &Path) -> usize {
    let mut vocab: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "|", ","]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for w in HEAD_WORDS.iter().chain(&TAIL_WORDS).chain(&SHARED) {
        vocab.push(w.to_string());
    }
    for c in 'a'..='z' {
        vocab.push(c.to_string());
        vocab.push(format!("##{c}"));
    }
    for d in '0'..='9' {
        vocab.push(d.to_string());
        vocab.push(format!("##{d}"));
    }
    let vocab_map: serde_json::Map<String, Value> = vocab
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), json!(i)))
        .collect();
    let added: Vec<Value> = vocab[..5]
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({"id": i, "content": t, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let tok = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": true,
                        "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {
                "[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}
            }
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab_map}
    });
    std::fs::write(dir.join("tokenizer.json"), tok.to_string()).unwrap();
    vocab.len()
}

/// A tiny random BERT (2 layers, hidden 32) with its tokenizer.
fn tiny_model(root: &Path) -> PathBuf {
    let dir = root.join("tiny-model");
    std::fs::create_dir_all(&dir).unwrap();
    let vocab = write_tokenizer(&dir);
    let config = BertConfig::tiny(vocab, 32, 2, 4);
    let opts = ClassifierOptions {
        init_seed: 7,
        ..Default::default()
    };
    let model = BertForSequenceClassification::new_random(&config, &opts, &Device::Cpu).unwrap();
    model.save_pretrained(&dir).unwrap();
    dir
}

/// 150 items: every third is popular (20 interactions, head words), the rest have one
/// interaction (tail words); prepared by `longtail prepare` with min-count:5.
fn prepared(root: &Path) -> PathBuf {
    let raw = root.join("raw");
    std::fs::create_dir_all(&raw).unwrap();
    let mut items = String::new();
    let mut inter = String::from("user_id,item_id,timestamp\n");
    let mut user = 0;
    for i in 0..150usize {
        let popular = i % 3 == 0;
        let words = if popular { HEAD_WORDS } else { TAIL_WORDS };
        let title = format!("{} {} {}", words[i % 6], SHARED[i % 6], words[(i / 6) % 6]);
        items.push_str(
            &json!({"item_id": format!("I{i:03}"), "title": title, "brand": SHARED[(i + 1) % 6],
                    "categories": "office", "description": format!("{} {}", SHARED[(i + 2) % 6], words[(i + 3) % 6])})
                .to_string(),
        );
        items.push('\n');
        for _ in 0..if popular { 20 } else { 1 } {
            user += 1;
            inter.push_str(&format!(
                "u{},I{i:03},{}\n",
                user % 97,
                1_400_000_000 + user
            ));
        }
    }
    std::fs::write(raw.join("items.jsonl"), items).unwrap();
    std::fs::write(raw.join("interactions.csv"), inter).unwrap();
    let out = root.join("prepared");
    run_ok(
        longtail()
            .args(["prepare", "--tail-rule", "min-count:5", "--items"])
            .arg(raw.join("items.jsonl"))
            .arg("--interactions")
            .arg(raw.join("interactions.csv"))
            .arg("--out")
            .arg(&out),
    );
    out
}

fn tensors(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn train_interest(data: &Path, out: &Path, extra: &[&str]) {
    run_ok(
        longtail()
            .arg("train-interest")
            .arg("--data")
            .arg(data)
            .arg("--out")
            .arg(out)
            .args([
                "--max-len",
                "16",
                "--batch-size",
                "8",
                "--learning-rate",
                "1e-2",
                "--frozen-layers",
                "1",
                "--refresh-every",
                "2",
                "--eval-every",
                "2",
                "--eval-users",
                "0",
                "--calibration-negatives",
                "5",
                "--seed",
                "3",
            ])
            .args(extra),
    );
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
    let rec = |extra: &[&str]| {
        run_ok(
            longtail()
                .arg("recommend")
                .arg("--checkpoint")
                .arg(&ckpt)
                .arg("--data")
                .arg(&data)
                .arg("--output")
                .arg(&recs)
                .args(["--k", "5"])
                .args(extra),
        )
    };
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
    run_ok(
        longtail()
            .arg("eval-rec")
            .arg("--data")
            .arg(&data)
            .arg("--checkpoint")
            .arg(&ckpt)
            .arg("--report")
            .arg(&report),
    );
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
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
}
