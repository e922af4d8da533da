//! Writes a checkpoint with `save_pretrained` plus the logits this crate computes for a few
//! inputs, so that `python3 scripts/make_reference.py --check-saved DIR` can verify that
//! `transformers.AutoModelForSequenceClassification` loads it and computes the same logits.
//!
//!     cargo run -p longtail-model --example save_for_hf_check -- DIR [BASE_MODEL_DIR]
//!
//! Without BASE_MODEL_DIR a tiny random model is saved; with it, that checkpoint (e.g. MiniLM)
//! with a fresh 3-label head, after one AdamW step so the saved weights are trained ones.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use longtail_model::{
    BertConfig, BertForSequenceClassification, ClassifierOptions, CrossEntropy, HubOptions,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = args
        .first()
        .ok_or("usage: save_for_hf_check DIR [BASE_MODEL_DIR]")?;
    let dev = Device::Cpu;
    let opts = ClassifierOptions {
        labels: Some(vec!["head".into(), "torso".into(), "tail".into()]),
        init_seed: 3,
        ..Default::default()
    };
    let model = match args.get(1) {
        Some(base) => {
            BertForSequenceClassification::from_pretrained(
                base,
                &opts,
                &HubOptions::default(),
                &dev,
            )?
            .0
        }
        None => BertForSequenceClassification::new_random(
            &BertConfig::tiny(120, 32, 2, 4),
            &opts,
            &dev,
        )?,
    };
    let ids = Tensor::new(
        &[[101u32, 7, 19, 55, 102, 0], [101, 88, 41, 3, 9, 102]],
        &dev,
    )?;
    let mask = Tensor::new(&[[1u32, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]], &dev)?;
    let labels = Tensor::new(&[2u32, 0], &dev)?;
    let mut opt = AdamW::new(
        model.trainable_vars(),
        ParamsAdamW {
            lr: 1e-3,
            ..Default::default()
        },
    )?;
    let logits = model.forward_t(&ids, None, Some(&mask), true)?;
    opt.backward_step(&model.loss(&logits, &labels, &CrossEntropy::default())?)?;

    model.save_pretrained(out)?;
    let logits = model.forward_t(&ids, None, Some(&mask), false)?;
    let expected: HashMap<String, Tensor> = [
        ("input_ids".to_string(), ids.to_dtype(DType::I64)?),
        ("attention_mask".to_string(), mask.to_dtype(DType::I64)?),
        ("logits".to_string(), logits),
    ]
    .into();
    candle_core::safetensors::save(
        &expected,
        std::path::Path::new(out).join("longtail_expected.safetensors"),
    )?;
    println!("wrote {out}; now run: python3 scripts/make_reference.py --check-saved {out}");
    Ok(())
}
