//! Gradients reach every parameter, match finite differences, and an optimiser step moves
//! every trainable parameter. Plus the pitfall this crate exists for.

mod common;

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use common::*;
use longtail_model::{
    ops, BertConfig, BertForSequenceClassification, ClassifierOptions, CrossEntropy, DropoutRng,
    Pooling, Precision,
};

fn tiny_config() -> BertConfig {
    let mut cfg = BertConfig::tiny(30, 8, 2, 2);
    cfg.intermediate_size = 12;
    cfg.max_position_embeddings = 16;
    cfg.initializer_range = 0.3;
    cfg
}

struct Inputs {
    ids: Tensor,
    types: Tensor,
    mask: Tensor,
    labels: Tensor,
}

fn inputs(dev: &Device) -> Inputs {
    Inputs {
        ids: Tensor::new(
            &[
                [2u32, 5, 7, 11, 13, 3, 0],
                [2, 17, 19, 3, 0, 0, 0],
                [2, 23, 5, 29, 8, 9, 3],
            ],
            dev,
        )
        .unwrap(),
        types: Tensor::new(
            &[
                [0u32, 0, 0, 1, 1, 1, 0],
                [0, 0, 0, 0, 0, 0, 0],
                [0, 0, 0, 0, 1, 1, 1],
            ],
            dev,
        )
        .unwrap(),
        mask: Tensor::new(
            &[
                [1u32, 1, 1, 1, 1, 1, 0],
                [1, 1, 1, 1, 0, 0, 0],
                [1, 1, 1, 1, 1, 1, 1],
            ],
            dev,
        )
        .unwrap(),
        labels: Tensor::new(&[0u32, 2, 1], dev).unwrap(),
    }
}

fn ce(dev: &Device, dtype: DType) -> CrossEntropy {
    CrossEntropy {
        class_weights: Some(
            Tensor::new(&[1.0f64, 2.0, 0.5], dev)
                .unwrap()
                .to_dtype(dtype)
                .unwrap(),
        ),
        label_smoothing: 0.1,
    }
}

fn model(pooling: Pooling, dtype: DType, dev: &Device) -> BertForSequenceClassification {
    BertForSequenceClassification::new_random(
        &tiny_config(),
        &ClassifierOptions {
            labels: Some(vec!["a".into(), "b".into(), "c".into()]),
            pooling: Some(pooling),
            init_seed: 5,
            dropout_seed: 9,
            dtype,
            ..Default::default()
        },
        dev,
    )
    .unwrap()
}

fn l2(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64)
        .unwrap()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
        .sqrt()
}

#[test]
fn every_parameter_gets_a_gradient() {
    let dev = test_device();
    let x = inputs(&dev);
    for pooling in [Pooling::ClsPooler, Pooling::Cls, Pooling::Mean] {
        let m = model(pooling, DType::F32, &dev);
        let vars = m.named_trainable_vars();
        let expected = 5 + 2 * 16 + 2 + if pooling == Pooling::ClsPooler { 2 } else { 0 };
        assert_eq!(vars.len(), expected, "{pooling}");
        let logits = m
            .forward_t(&x.ids, Some(&x.types), Some(&x.mask), true)
            .unwrap();
        let loss = m.loss(&logits, &x.labels, &ce(&dev, DType::F32)).unwrap();
        let grads = loss.backward().unwrap();
        for (name, var) in &vars {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{pooling}: no gradient for {name}"));
            let n = l2(g);
            if name.ends_with("attention.self.key.bias") {
                // Adding b to every key adds q.b to all scores of a query: softmax ignores it,
                // so this gradient is zero in exact arithmetic (in PyTorch too).
                assert!(n < 1e-5 * (1.0 + l2(var.as_tensor())), "{name}: {n}");
            } else {
                assert!(n > 1e-7, "{pooling}: zero gradient for {name}");
            }
        }
        // nn.Embedding(padding_idx=0): the padding row gets no gradient, other used rows do.
        let (_, we) = vars
            .iter()
            .find(|(n, _)| n == "bert.embeddings.word_embeddings.weight")
            .unwrap();
        let g = grads.get(we.as_tensor()).unwrap();
        assert_eq!(l2(&g.narrow(0, 0, 1).unwrap()), 0.0);
        assert!(l2(&g.narrow(0, 5, 1).unwrap()) > 0.0);
        assert_eq!(l2(&g.narrow(0, 1, 1).unwrap()), 0.0); // token 1 never appears
    }
}

/// The fused CPU ops (linear, attention, dropout, softmax, layer norm, GELU) and the
/// composite path other devices take (here on the test device) give the same loss and the
/// same gradient for every parameter, with dropout on and padding in the batch (f64, every
/// pooling). The dropout masks come from the same seeded host stream on every device.
#[test]
fn fused_and_composite_paths_agree_on_the_whole_model() {
    let dev = test_device();
    let run = |dev: &Device, pooling: Pooling| {
        let x = inputs(dev);
        let m = model(pooling, DType::F64, dev);
        let logits = m
            .forward_t(&x.ids, Some(&x.types), Some(&x.mask), true)
            .unwrap();
        let loss = m.loss(&logits, &x.labels, &ce(dev, DType::F64)).unwrap();
        let grads = loss.backward().unwrap();
        let by_name: std::collections::HashMap<String, Tensor> = m
            .named_trainable_vars()
            .into_iter()
            .map(|(n, v)| {
                (
                    n,
                    grads
                        .get(v.as_tensor())
                        .unwrap()
                        .to_device(&Device::Cpu)
                        .unwrap(),
                )
            })
            .collect();
        (loss.to_scalar::<f64>().unwrap(), by_name)
    };
    for pooling in [Pooling::ClsPooler, Pooling::Cls, Pooling::Mean] {
        let (loss_f, grads_f) = run(&Device::Cpu, pooling);
        let (loss_c, grads_c) = longtail_model::with_composite_ops(|| run(&dev, pooling));
        assert!(
            (loss_f - loss_c).abs() < 1e-12,
            "{pooling} on {dev:?}: loss {loss_f} vs {loss_c}"
        );
        assert_eq!(grads_f.len(), grads_c.len());
        for (name, a) in &grads_f {
            let b = &grads_c[name];
            let d = l2(&(a - b).unwrap());
            assert!(
                d < 1e-10 * (1.0 + l2(b)),
                "{pooling}: {name} differs by {d}"
            );
        }
    }
}

/// Dropout on the test device applies the CPU's mask bit for bit (the same Philox words: the
/// CUDA kernel draws them on the device, the CPU in the fused product), in value and in the
/// gradient (backward regenerates the mask), for f32, bf16 and f64 and a length that is not a
/// multiple of the generator's block.
#[test]
fn dropout_on_the_test_device_is_the_cpu_mask_bit_for_bit() {
    let dev = test_device();
    let bits = |t: &Tensor| {
        t.to_device(&Device::Cpu)
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()
    };
    for dtype in [DType::F32, DType::BF16, DType::F64] {
        let x = Tensor::randn(0f32, 1., (3, 4099), &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let w = Tensor::randn(0f32, 1., (3, 4099), &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let run = |d: &Device| {
            let x = Var::from_tensor(&x.to_device(d).unwrap()).unwrap();
            let rng = DropoutRng::new(13);
            let _ = rng.dropout_next(x.as_tensor(), 0.1).unwrap(); // a later stream, too
            let y = rng.dropout_next(x.as_tensor(), 0.1).unwrap();
            let g = y
                .mul(&w.to_device(d).unwrap())
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            (bits(&y), bits(g.get(x.as_tensor()).unwrap()))
        };
        let (y_cpu, g_cpu) = run(&Device::Cpu);
        let (y_dev, g_dev) = run(&dev);
        assert_eq!(y_cpu, y_dev, "{dtype:?} on {dev:?}: values");
        assert_eq!(g_cpu, g_dev, "{dtype:?} on {dev:?}: gradient");
        let dropped = y_cpu.iter().filter(|v| **v == 0.0).count() as f64 / y_cpu.len() as f64;
        assert!((dropped - 0.1).abs() < 0.02, "{dtype:?}: dropped {dropped}");
    }
}

/// Central differences in f64, with dropout on (the masks replayed by resetting the RNG state).
#[test]
fn gradients_match_finite_differences() {
    let dev = test_device();
    let x = inputs(&dev);
    let m = model(Pooling::ClsPooler, DType::F64, &dev);
    let ce = ce(&dev, DType::F64);
    let state = m.dropout_rng_state();
    let loss_fn = || -> (Tensor, f64) {
        m.set_dropout_rng_state(state);
        let logits = m
            .forward_t(&x.ids, Some(&x.types), Some(&x.mask), true)
            .unwrap();
        let loss = m.loss(&logits, &x.labels, &ce).unwrap();
        let v = loss.to_scalar::<f64>().unwrap();
        (loss, v)
    };
    let (loss, _) = loss_fn();
    let grads = loss.backward().unwrap();
    let h = 8usize; // hidden size
    let checks: &[(&str, usize)] = &[
        ("bert.embeddings.word_embeddings.weight", 5 * h + 3),
        ("bert.embeddings.word_embeddings.weight", 23 * h),
        ("bert.embeddings.position_embeddings.weight", 2 * h + 1),
        ("bert.embeddings.token_type_embeddings.weight", h + 4),
        ("bert.embeddings.LayerNorm.weight", 2),
        ("bert.embeddings.LayerNorm.bias", 6),
        ("bert.encoder.layer.0.attention.self.query.weight", 9),
        ("bert.encoder.layer.0.attention.self.key.weight", 17),
        ("bert.encoder.layer.0.attention.self.key.bias", 1),
        ("bert.encoder.layer.0.attention.self.value.bias", 3),
        ("bert.encoder.layer.0.attention.output.dense.weight", 30),
        ("bert.encoder.layer.0.attention.output.LayerNorm.weight", 5),
        ("bert.encoder.layer.0.intermediate.dense.weight", 40),
        ("bert.encoder.layer.1.intermediate.dense.bias", 7),
        ("bert.encoder.layer.1.output.dense.weight", 50),
        ("bert.encoder.layer.1.output.LayerNorm.bias", 0),
        ("bert.pooler.dense.weight", 12),
        ("classifier.weight", 4),
        ("classifier.bias", 2),
    ];
    let vars: std::collections::HashMap<String, Var> =
        m.named_trainable_vars().into_iter().collect();
    let eps = 1e-5;
    let mut worst: f64 = 0.0;
    for &(name, idx) in checks {
        let var = &vars[name];
        let analytic = grads
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()[idx];
        let orig = var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let eval_at = |delta: f64| {
            let mut v = orig.clone();
            v[idx] += delta;
            var.set(&Tensor::from_vec(v, var.dims(), &dev).unwrap())
                .unwrap();
            loss_fn().1
        };
        let numeric = (eval_at(eps) - eval_at(-eps)) / (2.0 * eps);
        var.set(&Tensor::from_vec(orig, var.dims(), &dev).unwrap())
            .unwrap();
        let err = (analytic - numeric).abs();
        let tol = 1e-7 + 1e-6 * numeric.abs();
        println!("{name}[{idx}]: analytic {analytic:+.10e} numeric {numeric:+.10e} err {err:.1e}");
        assert!(
            err <= tol,
            "{name}[{idx}]: analytic {analytic} numeric {numeric}"
        );
        if !name.ends_with("key.bias") {
            assert!(
                numeric.abs() > 1e-6,
                "{name}[{idx}]: pick an element that matters"
            );
        }
        worst = worst.max(err);
    }
    println!("worst abs error {worst:.2e}");
}

#[test]
fn one_adamw_step_changes_every_trainable_parameter() {
    let dev = test_device();
    let x = inputs(&dev);
    for pooling in [Pooling::ClsPooler, Pooling::Mean] {
        let m = model(pooling, DType::F32, &dev);
        let before: Vec<(String, Tensor)> = m
            .named_trainable_vars()
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().copy().unwrap()))
            .collect();
        let pooler_before = m.varmap().data().lock().unwrap()["bert.pooler.dense.weight"]
            .as_tensor()
            .copy()
            .unwrap();
        let mut opt = AdamW::new(
            m.trainable_vars(),
            ParamsAdamW {
                lr: 1e-3,
                weight_decay: 0.0,
                ..Default::default()
            },
        )
        .unwrap();
        let logits = m
            .forward_t(&x.ids, Some(&x.types), Some(&x.mask), true)
            .unwrap();
        let loss = m.loss(&logits, &x.labels, &ce(&dev, DType::F32)).unwrap();
        opt.backward_step(&loss).unwrap();
        let after: std::collections::HashMap<String, Var> =
            m.named_trainable_vars().into_iter().collect();
        for (name, old) in &before {
            let d = max_abs_diff(old, after[name].as_tensor());
            assert!(d > 0.0, "{pooling}: {name} did not change");
        }
        let pooler_after = m.varmap().data().lock().unwrap()["bert.pooler.dense.weight"]
            .as_tensor()
            .copy()
            .unwrap();
        let pooler_moved = max_abs_diff(&pooler_before, &pooler_after) > 0.0;
        assert_eq!(pooler_moved, pooling == Pooling::ClsPooler);
    }
}

/// Mixed precision ([`Precision::Bf16`]) on the test device: the loss is near the fp32 loss but
/// not equal to it (the bf16 matmuls ran), every parameter still gets a gradient through the
/// casts, and weights and gradients stay f32.
#[test]
fn bf16_autocast_trains_f32_weights_near_the_fp32_loss() {
    let dev = test_device();
    let x = inputs(&dev);
    let loss_of = |m: &BertForSequenceClassification| {
        let logits = m
            .forward_t(&x.ids, Some(&x.types), Some(&x.mask), false)
            .unwrap();
        m.loss(&logits, &x.labels, &ce(&dev, DType::F32)).unwrap()
    };
    let fp32 = loss_of(&model(Pooling::ClsPooler, DType::F32, &dev))
        .to_scalar::<f32>()
        .unwrap();
    let mut m = model(Pooling::ClsPooler, DType::F32, &dev);
    m.set_precision(Precision::Bf16).unwrap();
    let loss = loss_of(&m);
    let bf16 = loss.to_scalar::<f32>().unwrap();
    println!("loss fp32 {fp32} bf16 {bf16}");
    assert_ne!(fp32, bf16, "the bf16 path did not run");
    assert!((fp32 - bf16).abs() < 1e-2 * fp32.abs(), "{fp32} vs {bf16}");
    let grads = loss.backward().unwrap();
    for (name, var) in m.named_trainable_vars() {
        assert_eq!(var.dtype(), DType::F32, "{name}");
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        assert_eq!(g.dtype(), DType::F32, "{name}");
        if !name.ends_with("attention.self.key.bias") {
            assert!(l2(g) > 1e-7, "zero gradient for {name}");
        }
    }
}

/// Why this crate has its own ops: candle_nn's LayerNorm (fused kernel on contiguous input)
/// and fused softmax record no backward, so the gradient silently stops there.
#[test]
fn candle_fused_layer_norm_and_softmax_drop_gradients() {
    let dev = Device::Cpu;
    let x = Tensor::randn(0f32, 1., (3, 4), &dev).unwrap();
    let c = Tensor::randn(0f32, 1., (3, 4), &dev).unwrap();
    let w = Var::randn(0f32, 1., (4, 4), &dev).unwrap();
    let gamma = Var::ones(4, DType::F32, &dev).unwrap();
    let beta = Var::zeros(4, DType::F32, &dev).unwrap();
    let h = x.matmul(w.as_tensor()).unwrap();

    let candle_ln =
        candle_nn::LayerNorm::new(gamma.as_tensor().clone(), beta.as_tensor().clone(), 1e-5);
    let loss = (candle_ln.forward(&h).unwrap() * &c)
        .unwrap()
        .sum_all()
        .unwrap();
    let g = loss.backward().unwrap();
    assert!(
        g.get(w.as_tensor()).is_none(),
        "candle_nn::LayerNorm passed a gradient"
    );
    assert!(g.get(gamma.as_tensor()).is_none());

    let ours = ops::layer_norm(&h, gamma.as_tensor(), beta.as_tensor(), 1e-5).unwrap();
    let g = (ours * &c).unwrap().sum_all().unwrap().backward().unwrap();
    assert!(l2(g.get(w.as_tensor()).unwrap()) > 0.0);
    assert!(l2(g.get(gamma.as_tensor()).unwrap()) > 0.0);

    let loss = (candle_nn::ops::softmax_last_dim(&h).unwrap() * &c)
        .unwrap()
        .sum_all()
        .unwrap();
    assert!(loss.backward().unwrap().get(w.as_tensor()).is_none());
    let loss = (ops::softmax_last_dim(&h).unwrap() * &c)
        .unwrap()
        .sum_all()
        .unwrap();
    assert!(loss.backward().unwrap().get(w.as_tensor()).is_some());
}
