//! Layer norm over the last dimension, with backward ops for the input and for the weight and
//! bias.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{dispatch2, dispatch3, last_dim, rows_per_task, slice, Real};

// ---------------------------------------------------------------- layer norm

fn row_stats<T: Real>(x: &[T], eps: f64) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().map(|v| v.to_f64()).sum::<f64>() / n;
    let var = x.iter().map(|v| (v.to_f64() - mean).powi(2)).sum::<f64>() / n;
    (mean, 1.0 / (var + eps).sqrt())
}

fn layer_norm_fwd<T: Real>(x: &[T], w: &[T], b: &[T], eps: f64) -> Vec<T> {
    let n = w.len();
    let mut out = vec![T::zero(); x.len()];
    let c = n * rows_per_task(n);
    out.par_chunks_mut(c)
        .zip(x.par_chunks(c))
        .for_each(|(o, x)| {
            for (o, x) in o.chunks_mut(n).zip(x.chunks(n)) {
                let (mean, rstd) = row_stats(x, eps);
                for i in 0..n {
                    let xh = (x[i].to_f64() - mean) * rstd;
                    o[i] = T::from_f64(xh * w[i].to_f64() + b[i].to_f64());
                }
            }
        });
    out
}

/// `dx = rstd * (dxh - mean(dxh) - xh * mean(dxh * xh))` with `dxh = g * w`.
fn layer_norm_bwd_dx<T: Real>(x: &[T], w: &[T], g: &[T], eps: f64) -> Vec<T> {
    let n = w.len();
    let mut out = vec![T::zero(); x.len()];
    let c = n * rows_per_task(n);
    out.par_chunks_mut(c)
        .zip(x.par_chunks(c).zip(g.par_chunks(c)))
        .for_each(|(o, (x, g))| {
            for ((o, x), g) in o.chunks_mut(n).zip(x.chunks(n)).zip(g.chunks(n)) {
                let (mean, rstd) = row_stats(x, eps);
                let (mut a, mut b) = (0f64, 0f64);
                for i in 0..n {
                    let xh = (x[i].to_f64() - mean) * rstd;
                    let d = g[i].to_f64() * w[i].to_f64();
                    a += d;
                    b += d * xh;
                }
                let (a, b) = (a / n as f64, b / n as f64);
                for i in 0..n {
                    let xh = (x[i].to_f64() - mean) * rstd;
                    let d = g[i].to_f64() * w[i].to_f64();
                    o[i] = T::from_f64(rstd * (d - a - xh * b));
                }
            }
        });
    out
}

/// `[dw; db]` = `[sum_rows(g * xh); sum_rows(g)]`, shape `(2, n)`.
fn layer_norm_bwd_params<T: Real>(x: &[T], g: &[T], n: usize, eps: f64) -> Vec<T> {
    let c = n * rows_per_task(n);
    let acc = x
        .par_chunks(c)
        .zip(g.par_chunks(c))
        .map(|(x, g)| {
            let mut acc = vec![0f64; 2 * n];
            for (x, g) in x.chunks(n).zip(g.chunks(n)) {
                let (mean, rstd) = row_stats(x, eps);
                for i in 0..n {
                    let gi = g[i].to_f64();
                    acc[i] += gi * (x[i].to_f64() - mean) * rstd;
                    acc[n + i] += gi;
                }
            }
            acc
        })
        .reduce(
            || vec![0f64; 2 * n],
            |mut a, b| {
                a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
                a
            },
        );
    acc.into_iter().map(T::from_f64).collect()
}

struct LayerNorm {
    eps: f64,
}
struct LayerNormBwdDx {
    eps: f64,
}
struct LayerNormBwdParams {
    eps: f64,
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "longtail-layer-norm"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let eps = self.eps;
        Ok((
            dispatch3!(s1, l1, s2, l2, s3, l3, self.name(), |x, w, b| {
                layer_norm_fwd(x, w, b, eps)
            }),
            l1.shape().clone(),
        ))
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = grad.contiguous()?;
        let dx = x.apply_op3_no_bwd(w, &g, &LayerNormBwdDx { eps: self.eps })?;
        let p = x.apply_op2_no_bwd(&g, &LayerNormBwdParams { eps: self.eps })?;
        Ok((Some(dx), Some(p.get(0)?), Some(p.get(1)?)))
    }
}

impl CustomOp3 for LayerNormBwdDx {
    fn name(&self) -> &'static str {
        "longtail-layer-norm-bwd-dx"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let eps = self.eps;
        Ok((
            dispatch3!(s1, l1, s2, l2, s3, l3, self.name(), |x, w, g| {
                layer_norm_bwd_dx(x, w, g, eps)
            }),
            l1.shape().clone(),
        ))
    }
}

impl CustomOp2 for LayerNormBwdParams {
    fn name(&self) -> &'static str {
        "longtail-layer-norm-bwd-params"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let n = last_dim(l1)?;
        let eps = self.eps;
        Ok((
            dispatch2!(s1, l1, s2, l2, self.name(), |x, g| layer_norm_bwd_params(
                x, g, n, eps
            )),
            Shape::from((2, n)),
        ))
    }
}

/// Layer norm over the last dimension (CPU, f32/f64), differentiable in `x`, `w` and `b`.
pub(crate) fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    let n = x.dims().last().copied().unwrap_or(0);
    if w.dims() != [n] || b.dims() != [n] {
        bail!(
            "layer_norm: weight {:?} / bias {:?} do not match the last dim {n}",
            w.dims(),
            b.dims()
        )
    }
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, LayerNorm { eps })
}
