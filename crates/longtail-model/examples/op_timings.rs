//! Per-op CPU timings at the MiniLM training shapes (batch 16 x 128 tokens), to see where a
//! train step goes. `cargo run --profile test -p longtail-model --example op_timings`

use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use longtail_model::ops;

fn time(name: &str, reps: usize, f: impl Fn() -> Tensor) {
    let _ = f();
    let t = Instant::now();
    for _ in 0..reps {
        let _ = f();
    }
    println!(
        "{name:<48} {:>8.2} ms",
        t.elapsed().as_secs_f64() / reps as f64 * 1e3
    );
}

fn main() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    let x = Tensor::randn(0f32, 1., (2048, 384), &dev)?;
    let w = Tensor::randn(0f32, 0.02, (1536, 384), &dev)?;
    let wt = w.t()?.contiguous()?;
    let b = Tensor::zeros(1536, DType::F32, &dev)?;
    time("matmul 2048x384 @ (1536x384)^T view", 10, || {
        x.matmul(&w.t().unwrap()).unwrap()
    });
    time("matmul 2048x384 @ 384x1536 contiguous", 10, || {
        x.matmul(&wt).unwrap()
    });
    let y = x.matmul(&wt)?;
    time("bias broadcast_add 2048x1536", 10, || {
        y.broadcast_add(&b).unwrap()
    });
    time("gelu ops::gelu_erf (erf composition)", 10, || {
        ops::gelu_erf(&y).unwrap()
    });
    time("gelu candle gelu_erf (fused fwd)", 10, || {
        y.gelu_erf().unwrap()
    });
    time("gelu candle gelu (tanh)", 10, || y.gelu().unwrap());
    time("erf alone", 10, || y.erf().unwrap());
    time("exp alone 2048x1536", 10, || y.exp().unwrap());
    time("mul 2048x1536", 10, || (&y * &y).unwrap());
    let q = Tensor::randn(0f32, 1., (16, 12, 128, 32), &dev)?;
    let k = Tensor::randn(0f32, 1., (16, 12, 128, 32), &dev)?;
    time("attn scores q @ k^T (16,12,128,32)", 10, || {
        q.matmul(&k.t().unwrap()).unwrap()
    });
    let s = q.matmul(&k.t()?)?;
    time("attn probs @ v", 10, || s.matmul(&k).unwrap());
    time("softmax ours (16,12,128,128)", 10, || {
        ops::softmax_last_dim(&s).unwrap()
    });
    time("softmax candle fused", 10, || {
        candle_nn::ops::softmax_last_dim(&s).unwrap()
    });
    let h = Tensor::randn(0f32, 1., (16, 128, 384), &dev)?;
    let g = Tensor::ones(384, DType::F32, &dev)?;
    let bb = Tensor::zeros(384, DType::F32, &dev)?;
    time("layer_norm ours (16,128,384)", 10, || {
        ops::layer_norm(&h, &g, &bb, 1e-12).unwrap()
    });
    time("layer_norm candle fused", 10, || {
        candle_nn::ops::layer_norm(&h, &g, &bb, 1e-12).unwrap()
    });
    let hv = h.reshape((16, 128, 12, 32))?;
    time("transpose(1,2).contiguous (16,128,12,32)", 10, || {
        hv.transpose(1, 2).unwrap().contiguous().unwrap()
    });

    // backward costs
    let yv = Var::from_tensor(&y)?;
    time("fwd+bwd ops::gelu_erf", 5, || {
        let l = ops::gelu_erf(yv.as_tensor()).unwrap().sum_all().unwrap();
        l.backward().unwrap();
        l
    });
    time("fwd+bwd candle gelu_erf", 5, || {
        let l = yv.as_tensor().gelu_erf().unwrap().sum_all().unwrap();
        l.backward().unwrap();
        l
    });
    let xv = Var::from_tensor(&x)?;
    let wv = Var::from_tensor(&w)?;
    time("fwd+bwd linear 2048x384 -> 1536", 5, || {
        let l = xv
            .as_tensor()
            .matmul(&wv.as_tensor().t().unwrap())
            .unwrap()
            .sum_all()
            .unwrap();
        l.backward().unwrap();
        l
    });
    let sv = Var::from_tensor(&s)?;
    time("fwd+bwd ours softmax", 5, || {
        let l = ops::softmax_last_dim(sv.as_tensor())
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap();
        l.backward().unwrap();
        l
    });
    Ok(())
}
