//! Parity with PyTorch: `torch.optim.AdamW` (HF-style parameter groups,
//! frozen parameter, per-group LR multiplier, a step where one parameter has
//! no gradient) and `torch.nn.utils.clip_grad_norm_`.
//!
//! The fixture is produced by `scripts/torch_reference.py` from synthetic
//! sin/cos values (no data set involved).

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use longtail_train::{clip_grad_norm, AdamW, AdamWConfig, ParamGroupSpec};
use serde_json::Value;

const FIXTURE: &str = include_str!("fixtures/torch_adamw.json");
const TOL: f32 = 1e-6;

struct Param {
    name: String,
    shape: Vec<usize>,
    lr_scale: f64,
    frozen: bool,
    initial: Vec<f32>,
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

fn load() -> (Value, Vec<Param>) {
    let fx: Value = serde_json::from_str(FIXTURE).unwrap();
    let params = fx["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Param {
            name: p["name"].as_str().unwrap().to_string(),
            shape: p["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect(),
            lr_scale: p["lr_scale"].as_f64().unwrap(),
            frozen: p["frozen"].as_bool().unwrap(),
            initial: floats(&p["initial"]),
        })
        .collect();
    (fx, params)
}

fn build(fx: &Value, params: &[Param]) -> (AdamW, Vec<(String, Var)>) {
    let cfg = &fx["config"];
    let config = AdamWConfig {
        learning_rate: cfg["learning_rate"].as_f64().unwrap(),
        weight_decay: cfg["weight_decay"].as_f64().unwrap(),
        adam_beta1: cfg["adam_beta1"].as_f64().unwrap(),
        adam_beta2: cfg["adam_beta2"].as_f64().unwrap(),
        adam_epsilon: cfg["adam_epsilon"].as_f64().unwrap(),
    };
    let vars: Vec<(String, Var)> = params
        .iter()
        .map(|p| {
            let t = Tensor::from_slice(&p.initial, p.shape.as_slice(), &Device::Cpu).unwrap();
            (p.name.clone(), Var::from_tensor(&t).unwrap())
        })
        .collect();
    let scales: HashMap<String, f64> = params
        .iter()
        .map(|p| (p.name.clone(), p.lr_scale))
        .collect();
    let spec = ParamGroupSpec::new(config.weight_decay)
        .frozen_names(params.iter().filter(|p| p.frozen).map(|p| p.name.clone()))
        .lr_scale(move |n| scales[n]);
    let opt = AdamW::with_spec(vars.clone(), config, &spec).unwrap();
    (opt, vars)
}

/// Runs the fixture scenario and returns the max |rust - torch| over all
/// parameters and steps (and over grad norms when clipping).
fn run_scenario(key: &str, clip: bool) -> (f32, f64) {
    let (fx, params) = load();
    let (mut opt, vars) = build(&fx, &params);
    let max_grad_norm = fx["config"]["max_grad_norm"].as_f64().unwrap();
    let mut max_diff = 0f32;
    let mut max_norm_rel_diff = 0f64;
    let steps = fx[key].as_array().unwrap();
    assert_eq!(steps.len(), 5);
    for (i, step) in steps.iter().enumerate() {
        let mut grads = GradStore::default();
        for (p, (_, var)) in params.iter().zip(&vars) {
            let g = &step["grads"][&p.name];
            if g.is_null() {
                continue;
            }
            let g = Tensor::from_slice(&floats(g), p.shape.as_slice(), &Device::Cpu).unwrap();
            grads.insert(var.as_tensor(), g);
        }
        if clip {
            let norm = clip_grad_norm(&mut grads, &opt.trainable_vars(), max_grad_norm).unwrap();
            let expected = step["grad_norm"].as_f64().unwrap();
            let rel = (norm - expected).abs() / expected;
            max_norm_rel_diff = max_norm_rel_diff.max(rel);
            assert!(rel < 1e-6, "step {i}: grad_norm {norm} vs torch {expected}");
        }
        opt.set_learning_rate(step["learning_rate"].as_f64().unwrap());
        opt.step(&grads).unwrap();
        for (p, (_, var)) in params.iter().zip(&vars) {
            let ours = var
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let theirs = floats(&step["params_after"][&p.name]);
            for (a, b) in ours.iter().zip(&theirs) {
                let d = (a - b).abs();
                max_diff = max_diff.max(d);
                assert!(d < TOL, "{key} step {i} {}: {a} vs torch {b}", p.name);
            }
        }
    }
    (max_diff, max_norm_rel_diff)
}

#[test]
fn adamw_matches_torch_after_five_steps() {
    let (max_diff, _) = run_scenario("adamw", false);
    println!("adamw: max |param - torch| = {max_diff:e}");
}

#[test]
fn adamw_with_clipping_matches_torch() {
    let (max_diff, norm_rel) = run_scenario("adamw_clip", true);
    println!(
        "adamw+clip: max |param - torch| = {max_diff:e}, max grad_norm rel diff = {norm_rel:e}"
    );
}

/// The fixture must actually discriminate: parameters move well beyond the
/// tolerance, the frozen one does not move, and a deliberately wrong
/// optimizer (no weight-decay grouping) would fail the comparison.
#[test]
fn fixture_is_discriminating() {
    let (fx, params) = load();
    let last = &fx["adamw"][4]["params_after"];
    for p in &params {
        let after = floats(&last[&p.name]);
        let moved = p
            .initial
            .iter()
            .zip(&after)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        if p.frozen {
            assert_eq!(moved, 0.0, "{} is frozen", p.name);
        } else {
            assert!(moved > 1e-2, "{} moved only {moved}", p.name);
        }
    }

    // Weight decay on every parameter (ignoring HF's no-decay group) must be
    // detected by the comparison.
    let (_, vars) = build(&fx, &params);
    let scales: HashMap<String, f64> = params
        .iter()
        .map(|p| (p.name.clone(), p.lr_scale))
        .collect();
    let spec = ParamGroupSpec::new(0.1)
        .no_decay(|_| false)
        .frozen_names(["embeddings.word_embeddings.weight"])
        .lr_scale(move |n| scales[n]);
    let mut wrong = AdamW::with_spec(
        vars.clone(),
        AdamWConfig {
            learning_rate: 0.05,
            weight_decay: 0.1,
            ..Default::default()
        },
        &spec,
    )
    .unwrap();
    for step in fx["adamw"].as_array().unwrap() {
        let mut grads = GradStore::default();
        for (p, (_, var)) in params.iter().zip(&vars) {
            let g = &step["grads"][&p.name];
            if !g.is_null() {
                let g = Tensor::from_slice(&floats(g), p.shape.as_slice(), &Device::Cpu).unwrap();
                grads.insert(var.as_tensor(), g);
            }
        }
        wrong.set_learning_rate(step["learning_rate"].as_f64().unwrap());
        wrong.step(&grads).unwrap();
    }
    let bias = vars
        .iter()
        .find(|(n, _)| n == "classifier.bias")
        .unwrap()
        .1
        .as_tensor()
        .to_vec1::<f32>()
        .unwrap();
    let torch_bias = floats(&last["classifier.bias"]);
    let diff = bias
        .iter()
        .zip(&torch_bias)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(diff > 1e-4, "wrong grouping went unnoticed (diff {diff})");
}
