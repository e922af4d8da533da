//! The GEMMs alone of one MiniLM training step (forward and both backward products of every
//! linear layer, plus the attention matmuls), at the step's shapes, timed through candle.
//! `scripts/bench_gemm_step.py` runs the same list through PyTorch beside it: if the two
//! agree, any gap between whole training steps lies outside the GEMM.
//!
//!     target/release/examples/gemm_step [batch 16] [seq 64]

use candle_core::{Device, Tensor};
use std::time::Instant;

fn main() -> candle_core::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let b: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(16);
    let s: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(64);
    let (n, layers, heads, d) = (b * s, 6, 12, 32);
    let dev = Device::Cpu;
    let r = |dims: &[usize]| Tensor::randn(0f32, 1., dims, &dev);
    // (input x, weight W (out, in), output gradient): Q, K, V, attention output, FFN up, down.
    let mut linears = vec![];
    for (i, o) in [
        (384, 384),
        (384, 384),
        (384, 384),
        (384, 384),
        (384, 1536),
        (1536, 384),
    ] {
        linears.push((r(&[n, i])?, r(&[o, i])?, r(&[n, o])?));
    }
    let (q, k, p) = (
        r(&[b, heads, s, d])?,
        r(&[b, heads, s, d])?,
        r(&[b, heads, s, s])?,
    );
    let mut best = f64::MAX;
    for _ in 0..5 {
        let started = Instant::now();
        for (x, w, gy) in &linears {
            x.matmul(&w.t()?)?; // forward
            gy.matmul(w)?; // input gradient
            x.t()?.matmul(gy)?; // weight gradient
        }
        let kt = k.t()?;
        for _ in 0..2 {
            q.matmul(&kt)?; // scores (forward), probability gradient (backward)
            p.matmul(&k)?; // context (forward), query gradient (backward)
        }
        p.matmul(&k)?; // value gradient shape
        p.t()?.matmul(&q)?; // key gradient
        best = best.min(started.elapsed().as_secs_f64());
    }
    println!(
        "candle gemm per training step ({b}x{s}, {layers} layers): {:.0} ms",
        best * 1e3 * layers as f64
    );
    Ok(())
}
