//! The committed corpus of hostile inputs (`tests/corpus/adversarial.json`, issue 29): each
//! pattern, grown to about a MiB, goes through `clean_text`, the JSONL and CSV readers and
//! `BertConfig` parsing. Every one ends in bounded time with a value, a reject or an error:
//! no panic, no allocation abort, nothing quadratic (a quadratic pass over a MiB takes
//! minutes; the budget is seconds).

use std::path::Path;
use std::time::{Duration, Instant};

use longtail_data::{clean_text, ReadOptions, RecordReader};
use longtail_model::BertConfig;
use serde_json::Value;

/// Linear work on a MiB takes milliseconds (81 ms at most here); quadratic work takes minutes.
const BUDGET: Duration = Duration::from_secs(1);

fn corpus() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/adversarial.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// `head`, then `unit` repeated up to `bytes`, then `tail`.
fn grow(case: &Value, bytes: usize) -> String {
    let s = |k: &str| case[k].as_str().unwrap_or("").to_string();
    let unit = s("unit");
    let reps = bytes / unit.len().max(1);
    format!("{}{}{}", s("head"), unit.repeat(reps), s("tail"))
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let out = f();
    let took = t.elapsed();
    assert!(took < BUDGET, "{what}: {took:?}");
    (out, took)
}

#[test]
fn every_corpus_input_ends_in_bounded_time_without_a_panic() {
    let corpus = corpus();
    let bytes = corpus["bytes"].as_u64().unwrap() as usize;
    let mut slowest = (Duration::ZERO, String::new());
    let mut note = |what: String, took: Duration| {
        if took > slowest.0 {
            slowest = (took, what);
        }
    };
    let mut tried = 0;
    for case in corpus["text"].as_array().unwrap() {
        let input = grow(case, bytes);
        let what = format!("clean_text: {}", case["name"]);
        let (out, took) = timed(&what, || clean_text(&input));
        assert!(out.len() <= input.len() * 3, "{what}");
        note(what, took);
        tried += 1;
    }
    let dir = tempfile::tempdir().unwrap();
    // The readers' line limit is 1 MiB: half a MiB keeps a line under it (a longer one is a
    // cheap line-too-long reject, tried too).
    for (kind, file) in [("csv", "x.csv"), ("jsonl", "x.jsonl")] {
        for case in corpus[kind].as_array().unwrap() {
            for size in [bytes / 2, bytes * 2] {
                let path = dir.path().join(file);
                std::fs::write(&path, grow(case, size)).unwrap();
                let what = format!("{kind} reader, {} bytes: {}", size, case["name"]);
                let (rows, took) = timed(&what, || {
                    match RecordReader::open(&path, ReadOptions::default()) {
                        Ok(reader) => reader.count(),
                        Err(_) => 0, // a bad header is a clear error
                    }
                });
                let _ = rows;
                note(what, took);
                tried += 1;
            }
        }
    }
    let base: Value = serde_json::json!({
        "hidden_size": 32, "num_attention_heads": 2, "num_hidden_layers": 1,
        "intermediate_size": 64, "vocab_size": 100, "max_position_embeddings": 64,
        "type_vocab_size": 2, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "layer_norm_eps": 1e-12, "initializer_range": 0.02
    });
    assert!(BertConfig::from_json_str(&base.to_string()).is_ok());
    for case in corpus["config"].as_array().unwrap() {
        let mut cfg = base.clone();
        for (k, v) in case["json"].as_object().unwrap() {
            cfg[k] = v.clone();
        }
        let what = format!("config.json: {}", case["name"]);
        let (parsed, took) = timed(&what, || BertConfig::from_json_str(&cfg.to_string()));
        assert!(parsed.is_err(), "{what}: accepted");
        note(what, took);
        tried += 1;
    }
    eprintln!(
        "hostile inputs: {tried} tried (about {} KiB each), slowest {:?} ({})",
        bytes / 1024,
        slowest.0,
        slowest.1
    );
}
