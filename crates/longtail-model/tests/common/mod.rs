#![allow(dead_code)]
//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The device of the device-parametrised tests: `LONGTAIL_TEST_DEVICE` (`cpu` when unset;
/// scripts/gpu_check.sh sets `cuda`). A device that cannot be had fails the test.
pub fn test_device() -> Device {
    let spec: longtail_model::DeviceSpec = std::env::var("LONGTAIL_TEST_DEVICE")
        .unwrap_or_else(|_| "cpu".into())
        .parse()
        .unwrap();
    spec.resolve().unwrap()
}

/// The real all-MiniLM-L6-v2 (checkpoints/ is not in git: `make setup` places it), or `None`
/// with a recorded skip.
pub fn base_model_dir() -> Option<PathBuf> {
    let d = std::env::var_os("LONGTAIL_TEST_BASE_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("checkpoints/base/all-MiniLM-L6-v2"));
    let complete = ["config.json", "model.safetensors", "tokenizer.json"]
        .iter()
        .all(|f| d.join(f).is_file());
    if !complete {
        longtail_testutil::skip!(
            "base model not found at {} (run make setup or set LONGTAIL_TEST_BASE_MODEL)",
            d.display()
        );
    }
    complete.then_some(d)
}

/// The committed PyTorch reference for the MiniLM parity test (`python3
/// scripts/make_reference.py` regenerates it from `minilm_texts.json`).
pub fn minilm_reference_file() -> PathBuf {
    fixtures().join("minilm_reference.safetensors")
}

/// The inputs of that reference: texts written for the test, not catalogue rows.
pub fn minilm_texts() -> Vec<String> {
    let path = fixtures().join("minilm_texts.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

/// The real Office items (research use only, read from ../shared).
pub fn office_items() -> Option<PathBuf> {
    let p = std::env::var_os("LONGTAIL_TEST_OFFICE_ITEMS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            workspace_root().join("../shared/datasets/amazon-office-2014/items.jsonl")
        });
    p.is_file().then_some(p)
}

/// `title | brand | categories` of the first `n` items, as make_reference.py builds them.
pub fn office_texts(path: &Path, n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .take(n)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            ["title", "brand", "categories"]
                .iter()
                .map(|k| v[*k].as_str().unwrap_or("").to_string())
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .collect()
}

/// Same texts when the data set is absent (so the candle-transformers parity still runs).
pub fn fallback_texts() -> Vec<String> {
    [
        "HP 12C Financial Calculator | HP | Office Electronics, Calculators, Scientific",
        "Stapler, full strip, 20 sheets | | Office & School Supplies",
        "A much longer product title that goes on and on about ink, toner, labels, envelopes, \
         folders, binders, pens, pencils, markers, highlighters and sticky notes | Brand | Office",
        "x",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

pub struct Batch {
    pub input_ids: Tensor,
    pub attention_mask: Tensor,
    pub token_type_ids: Tensor,
}

/// Tokenises with the real tokenizer.json: truncation 128, padding to the longest.
pub fn tokenize(tokenizer_json: &Path, texts: &[String], device: &Device) -> Batch {
    use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};
    let mut tok = Tokenizer::from_file(tokenizer_json).unwrap();
    tok.with_padding(Some(PaddingParams {
        strategy: PaddingStrategy::BatchLongest,
        pad_id: 0,
        pad_token: "[PAD]".into(),
        ..Default::default()
    }));
    tok.with_truncation(Some(TruncationParams {
        max_length: 128,
        ..Default::default()
    }))
    .unwrap();
    let enc = tok
        .encode_batch(texts.iter().map(|s| s.as_str()).collect::<Vec<_>>(), true)
        .unwrap();
    let (b, s) = (enc.len(), enc[0].get_ids().len());
    let cat = |f: &dyn Fn(&tokenizers::Encoding) -> Vec<u32>| {
        let v: Vec<u32> = enc.iter().flat_map(f).collect();
        Tensor::from_vec(v, (b, s), device).unwrap()
    };
    Batch {
        input_ids: cat(&|e| e.get_ids().to_vec()),
        attention_mask: cat(&|e| e.get_attention_mask().to_vec()),
        token_type_ids: cat(&|e| e.get_type_ids().to_vec()),
    }
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    let host = |t: &Tensor| {
        t.to_device(&Device::Cpu)
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
    };
    (host(a) - host(b))
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

pub fn max_abs(a: &Tensor) -> f64 {
    a.to_dtype(DType::F64)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}
