//! This machine's f32 GEMM ceiling through candle, at the shapes of a MiniLM (h=384, i=1536)
//! forward pass on a batch of `tokens` rows: the reference for the encoder's achieved GFLOP/s.
//!
//! `cargo run --release -p longtail-infer --example gemm_ceiling -- [tokens] [seconds]`
//! Prints one line per shape and a final `ceiling_gflops=X` (the best shape's best run).

use candle_core::{Device, Tensor};
use std::time::Instant;

fn main() -> candle_core::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let tokens: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(2048);
    let budget: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let dev = Device::Cpu;
    // (m, k, n): Q/K/V/output projections, FFN up, FFN down.
    let shapes = [(tokens, 384, 384), (tokens, 384, 1536), (tokens, 1536, 384)];
    let mut best_all = 0f64;
    for (m, k, n) in shapes {
        let a = Tensor::randn(0f32, 1., (m, k), &dev)?;
        // Weights are (out, in) and used transposed, as in the model's Linear.
        let w = Tensor::randn(0f32, 1., (n, k), &dev)?;
        let wt = w.t()?;
        a.matmul(&wt)?; // warm-up
        let mut best = 0f64;
        let started = Instant::now();
        let mut runs = 0;
        while started.elapsed().as_secs_f64() < budget / shapes.len() as f64 || runs < 3 {
            let t = Instant::now();
            let c = a.matmul(&wt)?;
            let dt = t.elapsed().as_secs_f64();
            drop(c);
            best = best.max(2.0 * (m * k * n) as f64 / dt / 1e9);
            runs += 1;
        }
        println!("gemm {m}x{k} * {k}x{n}: best {best:.1} GFLOP/s over {runs} runs");
        best_all = best_all.max(best);
    }
    println!(
        "threads={} ceiling_gflops={best_all:.1}",
        candle_core::utils::get_num_threads()
    );
    Ok(())
}
