//! The real all-MiniLM-L6-v2 against PyTorch `transformers` (a committed reference made by
//! `python3 scripts/make_reference.py`) and against candle-transformers.

mod common;

use candle_core::{DType, Device, Tensor};
use common::*;
use longtail_model::{PretrainedBert, PretrainedFiles};

fn load_minilm(dir: &std::path::Path) -> PretrainedBert {
    let files = PretrainedFiles::from_dir(dir).unwrap();
    let loaded = PretrainedBert::load(&files, true, DType::F32, &Device::Cpu).unwrap();
    // The checkpoint has every encoder weight and the pooler, nothing is initialised.
    assert!(
        loaded.report.missing.is_empty(),
        "{:?}",
        loaded.report.missing
    );
    assert_eq!(loaded.report.loaded.len(), 5 + 6 * 16 + 2);
    assert_eq!(
        loaded.report.unexpected,
        vec!["embeddings.position_ids".to_string()]
    );
    loaded
}

#[test]
fn minilm_matches_pytorch_reference() {
    let Some(dir) = base_model_dir() else {
        return;
    };
    let dev = Device::Cpu;
    let r = candle_core::safetensors::load(minilm_reference_file(), &dev).unwrap();
    let ids = &r["input_ids"];
    let mask = &r["attention_mask"];
    let types = &r["token_type_ids"];
    let want = &r["last_hidden_state"];
    let texts = minilm_texts();
    assert_eq!(ids.dim(0).unwrap(), texts.len());

    // Our tokenisation of the same texts gives the same ids as the Python tokenizers package.
    let batch = tokenize(&dir.join("tokenizer.json"), &texts, &dev);
    for (ours, theirs) in [(&batch.input_ids, ids), (&batch.attention_mask, mask)] {
        assert_eq!(
            ours.to_dtype(DType::I64).unwrap().to_vec2::<i64>().unwrap(),
            theirs.to_vec2::<i64>().unwrap(),
            "tokenisation differs from the reference"
        );
    }

    let m = load_minilm(&dir);
    let got = m
        .model
        .forward_t(ids, Some(types), Some(mask), false)
        .unwrap();
    let diff = max_abs_diff(&got, want);
    println!(
        "MiniLM vs PyTorch transformers, last_hidden_state {:?}: max abs diff {diff:.3e}",
        got.dims()
    );
    assert!(diff < 1e-4, "max abs diff {diff}");
    // The comparison is not vacuous: states are O(1) and differ between texts.
    assert!(max_abs(want) > 0.5);

    let pooled = m.model.pool(&got).unwrap();
    let pdiff = max_abs_diff(&pooled, &r["pooler_output"]);
    println!("MiniLM vs PyTorch transformers, pooler_output: max abs diff {pdiff:.3e}");
    assert!(pdiff < 1e-4, "pooler max abs diff {pdiff}");

    let fused = m
        .model
        .forward_inference(ids, Some(types), Some(mask))
        .unwrap();
    let fdiff = max_abs_diff(&fused, want);
    println!("MiniLM fused inference vs PyTorch: max abs diff {fdiff:.3e}");
    assert!(fdiff < 1e-4);
}

fn minilm_inputs(dir: &std::path::Path, dev: &Device) -> (Batch, &'static str) {
    match office_items() {
        Some(items) => (
            tokenize(&dir.join("tokenizer.json"), &office_texts(&items, 32), dev),
            "32 Office items",
        ),
        None => (
            tokenize(&dir.join("tokenizer.json"), &fallback_texts(), dev),
            "4 built-in texts (Office data not found)",
        ),
    }
}

#[test]
fn minilm_matches_candle_transformers() {
    let Some(dir) = base_model_dir() else {
        return;
    };
    let dev = Device::Cpu;
    let (batch, what) = minilm_inputs(&dir, &dev);
    let cfg: candle_transformers::models::bert::Config =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let vb = unsafe {
        candle_nn::VarBuilder::from_mmaped_safetensors(
            &[dir.join("model.safetensors")],
            DType::F32,
            &dev,
        )
        .unwrap()
    };
    let theirs = candle_transformers::models::bert::BertModel::load(vb, &cfg).unwrap();
    let want = theirs
        .forward(
            &batch.input_ids,
            &batch.token_type_ids,
            Some(&batch.attention_mask),
        )
        .unwrap();

    let m = load_minilm(&dir);
    let got = m
        .model
        .forward_t(
            &batch.input_ids,
            Some(&batch.token_type_ids),
            Some(&batch.attention_mask),
            false,
        )
        .unwrap();
    let diff = max_abs_diff(&got, &want);
    println!(
        "MiniLM vs candle-transformers BertModel on {what}, {:?}: max abs diff {diff:.3e}",
        got.dims()
    );
    assert!(diff < 1e-4, "max abs diff {diff}");
}

#[test]
fn minilm_fused_inference_equals_differentiable_forward() {
    let Some(dir) = base_model_dir() else {
        return;
    };
    let dev = Device::Cpu;
    let (batch, _) = minilm_inputs(&dir, &dev);
    let m = load_minilm(&dir);
    let slow = m
        .model
        .forward_t(
            &batch.input_ids,
            Some(&batch.token_type_ids),
            Some(&batch.attention_mask),
            false,
        )
        .unwrap();
    let fast = m
        .model
        .forward_inference(
            &batch.input_ids,
            Some(&batch.token_type_ids),
            Some(&batch.attention_mask),
        )
        .unwrap();
    let diff = max_abs_diff(&slow, &fast);
    println!("MiniLM fused inference vs differentiable forward: max abs diff {diff:.3e}");
    assert!(diff < 1e-5, "max abs diff {diff}");
    // no attention mask == all-ones mask
    let ones = Tensor::ones_like(&batch.attention_mask).unwrap();
    let a = m
        .model
        .forward_t(&batch.input_ids, None, Some(&ones), false)
        .unwrap();
    let b = m
        .model
        .forward_t(&batch.input_ids, None, None, false)
        .unwrap();
    assert!(max_abs_diff(&a, &b) < 1e-6);
}

/// The real MiniLM on the test device (`LONGTAIL_TEST_DEVICE`; scripts/gpu_check.sh runs this
/// with `cuda`) through the composite ops every non-CPU device takes, against the fused CPU
/// inference path: fp32 hidden states within 1e-4.
#[test]
fn minilm_on_the_test_device_matches_the_fused_cpu_path() {
    let Some(dir) = base_model_dir() else {
        return;
    };
    let dev = test_device();
    let (cpu_batch, what) = minilm_inputs(&dir, &Device::Cpu);
    let cpu = load_minilm(&dir)
        .model
        .forward_inference(
            &cpu_batch.input_ids,
            Some(&cpu_batch.token_type_ids),
            Some(&cpu_batch.attention_mask),
        )
        .unwrap();
    let (batch, _) = minilm_inputs(&dir, &dev);
    let files = PretrainedFiles::from_dir(&dir).unwrap();
    let m = PretrainedBert::load(&files, true, DType::F32, &dev).unwrap();
    let other = longtail_model::with_composite_ops(|| {
        m.model
            .forward_t(
                &batch.input_ids,
                Some(&batch.token_type_ids),
                Some(&batch.attention_mask),
                false,
            )
            .unwrap()
    });
    let diff = max_abs_diff(&cpu, &other);
    println!(
        "MiniLM on {} (composite ops) vs fused CPU on {what}: max abs diff {diff:.3e}",
        longtail_model::device_name(&dev)
    );
    assert!(diff < 1e-4, "max abs diff {diff}");
}
