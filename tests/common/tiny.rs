//! The synthetic world of the training-side CLI tests: a tiny WordPiece tokenizer, a tiny
//! random BERT classifier, and a catalogue prepared by the real `longtail prepare`.
#![allow(dead_code)] // each test binary uses a different part

use super::{longtail, run_ok};
use candle_core::{Device, Tensor};
use longtail_model::{BertConfig, BertForSequenceClassification, ClassifierOptions, Pooling};
use serde_json::{json, Value};
use std::collections::HashMap;
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
pub fn write_tokenizer(dir: &Path) -> usize {
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
pub fn tiny_model(root: &Path) -> PathBuf {
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
pub fn prepared(root: &Path) -> PathBuf {
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

pub fn tensors(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu).unwrap()
}

/// A tiny random head/tail classifier saved like a `longtail train` output.
pub fn tiny_classifier(root: &Path) -> PathBuf {
    let dir = root.join("ckpt");
    std::fs::create_dir_all(&dir).unwrap();
    let vocab = write_tokenizer(&dir);
    let config = BertConfig::tiny(vocab, 32, 2, 4);
    let opts = ClassifierOptions {
        labels: Some(vec!["head".into(), "tail".into()]),
        pooling: Some(Pooling::Mean),
        init_seed: 11,
        ..Default::default()
    };
    let model = BertForSequenceClassification::new_random(&config, &opts, &Device::Cpu).unwrap();
    model.save_pretrained(&dir).unwrap();
    std::fs::write(
        dir.join("train_args.toml"),
        "max_len = 24\ntemplate = \"{title} | {brand} | {categories} | {description}\"\nseed = 1\n",
    )
    .unwrap();
    dir
}

/// `train-interest` on the tiny world with `base` flags, then `extra`.
pub fn run_train_interest(
    data: &Path,
    out: &Path,
    base: &[&str],
    extra: &[&str],
) -> std::process::Output {
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
            ])
            .args(base)
            .args([
                "--eval-users",
                "0",
                "--calibration-negatives",
                "5",
                "--seed",
                "3",
            ])
            .args(extra),
    )
}

/// The sequence architecture (the default) on the tiny world.
pub fn train_sequence(data: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let base = [
        "--hidden-size",
        "16",
        "--num-attention-heads",
        "2",
        "--max-history",
        "6",
        "--id-min-count",
        "2",
    ];
    run_train_interest(data, out, &base, extra)
}
