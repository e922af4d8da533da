//! Training throughput and peak memory of MiniLM + classifier on the CPU (random token ids,
//! full-length sequences, dropout on, longtail-train's AdamW (what `longtail train` runs) over
//! every parameter).
//!
//!     target/release/examples/bench_train [--batch 16] [--seq 128] [--steps 5] [--json]
//!
//! Times forward, backward and the AdamW update separately after one warm-up step.
//! `make bench` runs it beside `scripts/bench_torch.py train` (PyTorch, same shape, same thread
//! count) and prints the ratio.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use longtail_model::{BertForSequenceClassification, ClassifierOptions, CrossEntropy, HubOptions};
use longtail_train::{AdamW, AdamWConfig};
use rand::{Rng, SeedableRng};

/// Peak resident set size of this process in MB (Linux `VmHWM`), if known.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

fn flag(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} expects a number, got {v}"))
        })
        .unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    longtail_model::configure_cpu_runtime();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (batch, seq, steps) = (
        flag(&args, "--batch", 16),
        flag(&args, "--seq", 128),
        flag(&args, "--steps", 5),
    );
    let json = args.iter().any(|a| a == "--json");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = std::env::var("LONGTAIL_TEST_BASE_MODEL").unwrap_or_else(|_| {
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
    let ids: Vec<u32> = (0..batch * seq)
        .map(|_| rng.random_range(1000..30000))
        .collect();
    let ids = Tensor::from_vec(ids, (batch, seq), &dev)?;
    let mask = Tensor::ones((batch, seq), DType::U32, &dev)?;
    let labels: Vec<u32> = (0..batch).map(|_| rng.random_range(0..2)).collect();
    let labels = Tensor::from_vec(labels, batch, &dev)?;
    // torch.optim.AdamW's defaults on the PyTorch side: lr 2e-5, weight decay 0.01.
    let mut opt = AdamW::new(
        model.named_trainable_vars(),
        AdamWConfig {
            learning_rate: 2e-5,
            weight_decay: 0.01,
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
    if json {
        // One line for scripts/bench_torch.py, which prints the side-by-side ratio.
        println!(
            "{{\"impl\": \"longtail\", \"batch\": {batch}, \"seq\": {seq}, \"threads\": {threads}, \
             \"samples_per_second\": {:.4}, \"forward_ms\": {:.1}, \"backward_ms\": {:.1}, \
             \"optimizer_ms\": {:.1}, \"peak_rss_mb\": {:.1}}}",
            batch as f64 / total,
            tf / n * 1e3,
            tb / n * 1e3,
            to / n * 1e3,
            peak_rss_mb().unwrap_or(f64::NAN)
        );
    } else {
        println!(
            "candle (longtail-model, {threads} threads, fp32): train step {batch}x{seq}: {:.0} ms/step \
             (forward {:.0} + backward {:.0} + AdamW {:.0}), {:.2} samples/s, peak RSS {:.0} MB",
            total * 1e3,
            tf / n * 1e3,
            tb / n * 1e3,
            to / n * 1e3,
            batch as f64 / total,
            peak_rss_mb().unwrap_or(f64::NAN)
        );
    }
    Ok(())
}
