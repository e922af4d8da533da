//! Time of the GEMMs alone of one MiniLM training step (forward + backward), as candle runs them.
use candle_core::{Device, Tensor};
use std::time::Instant;

fn main() -> candle_core::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let b: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(16);
    let s: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(64);
    let n = b * s;
    let dev = Device::Cpu;
    let r = |d: &[usize]| Tensor::randn(0f32, 1., d, &dev);
    let mut lin = vec![];
    for (i, o) in [
        (384, 384),
        (384, 384),
        (384, 384),
        (384, 384),
        (384, 1536),
        (1536, 384),
    ] {
        lin.push((r(&[n, i])?, r(&[o, i])?, r(&[n, o])?));
    }
    let q = r(&[b, 12, s, 32])?;
    let k = r(&[b, 12, s, 32])?;
    let p = r(&[b, 12, s, s])?;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let mut flops = 0f64;
        for (x, w, gy) in &lin {
            let _y = x.matmul(&w.t()?)?; // forward
            let _dx = gy.matmul(w)?; // backward, input grad
            let _dw = x.t()?.matmul(gy)?; // backward, weight grad (as candle: lhs^T grad)
            flops += 3.0 * 2.0 * (x.dim(0)? * x.dim(1)? * w.dim(0)?) as f64;
        }
        let kt = k.t()?;
        let _sc = q.matmul(&kt)?;
        let _c = p.matmul(&k)?;
        let _g1 = p.matmul(&k)?;
        let _g2 = q.matmul(&kt)?;
        let _g3 = p.matmul(&k)?;
        let _g4 = p.t()?.matmul(&q)?;
        flops += 6.0 * 2.0 * (b * 12 * s * s * 32) as f64;
        let dt = t.elapsed().as_secs_f64();
        if dt < best {
            best = dt;
        }
        println!(
            "one layer: {:.1} ms, {:.1} GFLOP/s",
            dt * 1e3,
            flops / dt / 1e9
        );
    }
    println!("x6 layers = {:.0} ms per step (best)", best * 6e3);
    Ok(())
}
