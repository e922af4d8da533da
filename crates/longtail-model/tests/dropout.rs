//! Dropout: active only with `train == true`, reproducible from the seed, resumable.

mod common;

use candle_core::{DType, Device, Tensor};
use common::*;
use longtail_model::{
    BertConfig, BertForSequenceClassification, ClassifierOptions, DropoutRngState, MaskGenerator,
};

fn model(dropout_seed: u64) -> BertForSequenceClassification {
    let mut cfg = BertConfig::tiny(40, 16, 2, 4);
    cfg.hidden_dropout_prob = 0.2;
    cfg.attention_probs_dropout_prob = 0.2;
    BertForSequenceClassification::new_random(
        &cfg,
        &ClassifierOptions {
            init_seed: 1,
            dropout_seed,
            ..Default::default()
        },
        &Device::Cpu,
    )
    .unwrap()
}

fn ids() -> Tensor {
    Tensor::new(
        &[[2u32, 5, 7, 11, 13, 3], [2, 17, 19, 3, 0, 0]],
        &Device::Cpu,
    )
    .unwrap()
}

fn mask() -> Tensor {
    Tensor::new(&[[1u32, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], &Device::Cpu).unwrap()
}

fn hidden(m: &BertForSequenceClassification, train: bool) -> Tensor {
    m.bert()
        .forward_t(&ids(), None, Some(&mask()), train)
        .unwrap()
}

#[test]
fn eval_mode_is_deterministic_and_does_not_consume_the_rng() {
    let m = model(3);
    let s0 = m.dropout_rng_state();
    let a = hidden(&m, false);
    let b = hidden(&m, false);
    assert_eq!(max_abs_diff(&a, &b), 0.0);
    assert_eq!(m.dropout_rng_state(), s0);
    let la = m.forward_t(&ids(), None, Some(&mask()), false).unwrap();
    let lb = m.forward_t(&ids(), None, Some(&mask()), false).unwrap();
    assert_eq!(max_abs_diff(&la, &lb), 0.0);
}

#[test]
fn train_mode_differs_from_eval_and_between_steps() {
    let m = model(3);
    let eval = hidden(&m, false);
    let t1 = hidden(&m, true);
    let t2 = hidden(&m, true);
    assert!(max_abs_diff(&eval, &t1) > 1e-3);
    assert!(max_abs_diff(&t1, &t2) > 1e-3);
    assert_eq!(
        m.dropout_rng_state(),
        DropoutRngState {
            seed: 3,
            calls: 2,
            generator: MaskGenerator::NEW_RUNS
        }
    );
    // the classifier's own dropout is on too
    let e = m.forward_t(&ids(), None, Some(&mask()), false).unwrap();
    let t = m.forward_t(&ids(), None, Some(&mask()), true).unwrap();
    assert!(max_abs_diff(&e, &t) > 1e-4);
}

#[test]
fn same_seed_same_masks_and_resume_replays_them() {
    let a = model(3);
    let b = model(3);
    let a1 = hidden(&a, true);
    let a2 = hidden(&a, true);
    let b1 = hidden(&b, true);
    let b2 = hidden(&b, true);
    assert_eq!(max_abs_diff(&a1, &b1), 0.0);
    assert_eq!(max_abs_diff(&a2, &b2), 0.0);
    // eval passes in between do not shift the stream
    let c = model(3);
    let _ = hidden(&c, false);
    assert_eq!(max_abs_diff(&hidden(&c, true), &a1), 0.0);
    // resume from a saved state
    let d = model(3);
    d.set_dropout_rng_state(DropoutRngState {
        seed: 3,
        calls: 1,
        generator: MaskGenerator::NEW_RUNS,
    });
    assert_eq!(max_abs_diff(&hidden(&d, true), &a2), 0.0);
    // another seed, other masks
    let e = model(4);
    assert!(max_abs_diff(&hidden(&e, true), &a1) > 1e-3);
}

#[test]
fn dropout_works_in_f64_models() {
    let mut cfg = BertConfig::tiny(40, 16, 1, 4);
    cfg.hidden_dropout_prob = 0.3;
    let m = BertForSequenceClassification::new_random(
        &cfg,
        &ClassifierOptions {
            dtype: DType::F64,
            ..Default::default()
        },
        &Device::Cpu,
    )
    .unwrap();
    let t = m
        .bert()
        .forward_t(&ids(), None, Some(&mask()), true)
        .unwrap();
    assert_eq!(t.dtype(), DType::F64);
    let e = m
        .bert()
        .forward_t(&ids(), None, Some(&mask()), false)
        .unwrap();
    assert!(max_abs_diff(&t, &e) > 1e-3);
}
