//! AdamW on `LONGTAIL_TEST_DEVICE` (`cpu` when unset; scripts/gpu_check.sh sets `cuda`) gives
//! the CPU's parameters and moments bit for bit: the in-place CUDA kernels repeat the CPU's
//! arithmetic in its order, explicitly rounded.

use candle_core::{DType, Device, Tensor, Var};
use longtail_model::DeviceSpec;
use longtail_train::{AdamW, AdamWConfig};

fn test_device() -> Device {
    let spec: DeviceSpec = std::env::var("LONGTAIL_TEST_DEVICE")
        .unwrap_or_else(|_| "cpu".into())
        .parse()
        .unwrap();
    spec.resolve().unwrap()
}

fn bits(t: &Tensor) -> Vec<f64> {
    t.to_device(&Device::Cpu)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

/// Four steps of two parameters (one with weight decay), gradients that change every step.
fn run(dev: &Device, dtype: DType) -> Vec<Vec<f64>> {
    let init = |seed: f32, n: usize| {
        let v: Vec<f32> = (0..n).map(|i| ((i as f32 + seed) * 0.37).sin()).collect();
        Var::from_tensor(
            &Tensor::from_vec(v, n, &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap()
                .to_device(dev)
                .unwrap(),
        )
        .unwrap()
    };
    let (a, b) = (init(1.0, 70_003), init(2.0, 129));
    let config = AdamWConfig {
        learning_rate: 1e-3,
        weight_decay: 0.01,
        ..Default::default()
    };
    let mut opt = AdamW::new(
        vec![("a".into(), a.clone()), ("b".into(), b.clone())],
        config,
    )
    .unwrap();
    for step in 0..4 {
        // loss = sum(p * c) + sum(p^2) / 2: the gradient c + p changes with p.
        let loss = |p: &Var| {
            let c = Tensor::ones(p.shape(), dtype, dev)
                .unwrap()
                .affine(0.1 * (step as f64 + 1.0), -0.05)
                .unwrap();
            let p = p.as_tensor();
            (p.mul(&c).unwrap().sum_all().unwrap()
                + p.sqr()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .affine(0.5, 0.0)
                    .unwrap())
            .unwrap()
        };
        let total = (loss(&a) + loss(&b)).unwrap();
        opt.step(&total.backward().unwrap()).unwrap();
    }
    vec![bits(a.as_tensor()), bits(b.as_tensor())]
}

#[test]
fn adamw_on_the_test_device_equals_the_cpu_bit_for_bit() {
    let dev = test_device();
    for dtype in [DType::F32, DType::F64] {
        let cpu = run(&Device::Cpu, dtype);
        let on = run(&dev, dtype);
        for (name, (c, d)) in ["a", "b"].iter().zip(cpu.iter().zip(&on)) {
            let differ = c.iter().zip(d).filter(|(x, y)| x != y).count();
            assert_eq!(
                differ,
                0,
                "{dtype:?} {name} on {dev:?}: {differ} of {} differ",
                c.len()
            );
        }
        // the update moved every element
        let start = run_start(dtype);
        assert!(cpu[1].iter().zip(&start).all(|(x, y)| x != y), "{dtype:?}");
    }
}

fn run_start(dtype: DType) -> Vec<f64> {
    let v: Vec<f32> = (0..129).map(|i| ((i as f32 + 2.0) * 0.37).sin()).collect();
    bits(
        &Tensor::from_vec(v, 129, &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap(),
    )
}
