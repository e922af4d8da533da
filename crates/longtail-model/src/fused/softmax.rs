//! Softmax over the last dimension, forward and backward, plus the per-row kernels the fused
//! attention shares.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{dispatch1, dispatch2, last_dim, rows_per_task, slice, Real};

// ---------------------------------------------------------------- softmax

/// Softmax of one row, in place (max and sum in f64).
pub(crate) fn softmax_row<T: Real>(row: &mut [T]) {
    let max = row.iter().fold(f64::NEG_INFINITY, |m, v| m.max(v.to_f64()));
    T::exp_shifted(row, T::from_f64(max));
    let sum: f64 = row.iter().map(|v| v.to_f64()).sum();
    let inv = T::from_f64(1.0 / sum);
    row.iter_mut().for_each(|v| *v *= inv);
}

/// Softmax backward of one row, in place: `g` (the output gradient) becomes
/// `y * (g - sum(g * y))`.
pub(crate) fn softmax_row_bwd<T: Real>(g: &mut [T], y: &[T]) {
    let dot: f64 = y
        .iter()
        .zip(g.iter())
        .map(|(a, b)| a.to_f64() * b.to_f64())
        .sum();
    let dot = T::from_f64(dot);
    for (g, &y) in g.iter_mut().zip(y) {
        *g = y * (*g - dot);
    }
}

fn softmax_fwd<T: Real>(x: &[T], n: usize) -> Vec<T> {
    let mut out = vec![T::zero(); x.len()];
    out.par_chunks_mut(n * rows_per_task(n))
        .zip(x.par_chunks(n * rows_per_task(n)))
        .for_each(|(o, x)| {
            o.copy_from_slice(x);
            o.chunks_mut(n).for_each(softmax_row);
        });
    out
}

/// `dx = y * (g - sum(g * y))` per row.
fn softmax_bwd<T: Real>(y: &[T], g: &[T], n: usize) -> Vec<T> {
    let mut out = vec![T::zero(); y.len()];
    let c = n * rows_per_task(n);
    out.par_chunks_mut(c)
        .zip(y.par_chunks(c).zip(g.par_chunks(c)))
        .for_each(|(o, (y, g))| {
            o.copy_from_slice(g);
            for (o, y) in o.chunks_mut(n).zip(y.chunks(n)) {
                softmax_row_bwd(o, y);
            }
        });
    out
}

struct Softmax;
struct SoftmaxBwd;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "longtail-softmax"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let n = last_dim(l)?;
        Ok((
            dispatch1!(s, l, self.name(), |x| softmax_fwd(x, n)),
            l.shape().clone(),
        ))
    }
    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let g = grad.contiguous()?;
        Ok(Some(res.apply_op2_no_bwd(&g, &SoftmaxBwd)?))
    }
}

impl CustomOp2 for SoftmaxBwd {
    fn name(&self) -> &'static str {
        "longtail-softmax-bwd"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let n = last_dim(l1)?;
        Ok((
            dispatch2!(s1, l1, s2, l2, self.name(), |y, g| softmax_bwd(y, g, n)),
            l1.shape().clone(),
        ))
    }
}

/// Softmax over the last dimension (CPU, f32/f64), differentiable.
pub(crate) fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Softmax)
}
