//! Training throughput of MiniLM + classifier at batch 16 x 128 tokens on the CPU.
//!
//!     cargo run --release -p longtail-model --example train_step_speed -- [STEPS] [--with-torch]
//!
//! Times forward, backward and the AdamW update separately (after one warm-up step), plus the
//! inference forward. `--with-torch` then runs `scripts/make_reference.py --bench-train-step`
//! (PyTorch, same shape, same thread count) for a side-by-side number.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use longtail_model::{BertForSequenceClassification, ClassifierOptions, CrossEntropy, HubOptions};
use rand::{Rng, SeedableRng};

const BATCH: usize = 16;
const SEQ: usize = 128;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let steps: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(5);
    let with_torch = args.iter().any(|a| a == "--with-torch");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = std::env::var("LONGTAIL_BASE_MODEL").unwrap_or_else(|_| {
        root.join("checkpoints/base/all-MiniLM-L6-v2")
            .display()
            .to_string()
    });
    let dev = Device::Cpu;
    let threads = candle_core::utils::get_num_threads();
    let opts = ClassifierOptions {
        labels: Some(vec!["head".into(), "tail".into()]),
        ..Default::default()
    };
    let (model, _) =
        BertForSequenceClassification::from_pretrained(&dir, &opts, &HubOptions::default(), &dev)?;

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let ids: Vec<u32> = (0..BATCH * SEQ)
        .map(|_| rng.random_range(1000..30000))
        .collect();
    let ids = Tensor::from_vec(ids, (BATCH, SEQ), &dev)?;
    let mask = Tensor::ones((BATCH, SEQ), DType::U32, &dev)?;
    let labels: Vec<u32> = (0..BATCH).map(|_| rng.random_range(0..2)).collect();
    let labels = Tensor::from_vec(labels, BATCH, &dev)?;
    let mut opt = AdamW::new(
        model.trainable_vars(),
        ParamsAdamW {
            lr: 2e-5,
            ..Default::default()
        },
    )?;

    let (mut tf, mut tb, mut to) = (0.0, 0.0, 0.0);
    for step in 0..=steps {
        let t0 = Instant::now();
        let logits = model.forward_t(&ids, None, Some(&mask), true)?;
        let loss = model.loss(&logits, &labels, &CrossEntropy::default())?;
        let _ = loss.to_scalar::<f32>()?;
        let t1 = Instant::now();
        let grads = loss.backward()?;
        let t2 = Instant::now();
        opt.step(&grads)?;
        let t3 = Instant::now();
        if step > 0 {
            tf += (t1 - t0).as_secs_f64();
            tb += (t2 - t1).as_secs_f64();
            to += (t3 - t2).as_secs_f64();
        }
    }
    let n = steps as f64;
    let total = (tf + tb + to) / n;
    println!(
        "candle (longtail-model, {threads} threads, fp32): train step {BATCH}x{SEQ}: {:.0} ms/step \
         (forward {:.0} + backward {:.0} + AdamW {:.0}), {:.2} samples/s",
        total * 1e3,
        tf / n * 1e3,
        tb / n * 1e3,
        to / n * 1e3,
        BATCH as f64 / total
    );

    let time = |f: &dyn Fn() -> Result<Tensor, longtail_model::ModelError>| -> Result<f64, Box<dyn std::error::Error>> {
        f()?;
        let t = Instant::now();
        for _ in 0..steps {
            f()?.to_dtype(DType::F32)?.sum_all()?.to_scalar::<f32>()?;
        }
        Ok(t.elapsed().as_secs_f64() / n)
    };
    let eval = time(&|| model.forward_t(&ids, None, Some(&mask), false))?;
    let fused = time(&|| model.forward_inference(&ids, None, Some(&mask)))?;
    println!(
        "candle forward only {BATCH}x{SEQ}: differentiable eval {:.0} ms ({:.1} samples/s), fused inference {:.0} ms ({:.1} samples/s)",
        eval * 1e3,
        BATCH as f64 / eval,
        fused * 1e3,
        BATCH as f64 / fused
    );

    if with_torch {
        let status = std::process::Command::new("python3")
            .arg(root.join("scripts/make_reference.py"))
            .args(["--bench-train-step", "--steps", &steps.to_string()])
            .env("OMP_NUM_THREADS", threads.to_string())
            .status()?;
        if !status.success() {
            eprintln!("the PyTorch benchmark failed (pip install torch transformers)");
        }
    }
    Ok(())
}
