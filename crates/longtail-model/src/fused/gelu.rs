//! Exact (erf) GELU, forward and backward.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{dispatch1, dispatch2, slice, Real};

// ---------------------------------------------------------------- GELU (erf)

const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

fn gelu_fwd<T: Real>(x: &[T]) -> Vec<T> {
    let half = T::from_f64(0.5);
    let one = T::one();
    let s = T::from_f64(std::f64::consts::FRAC_1_SQRT_2);
    let mut out = vec![T::zero(); x.len()];
    out.par_chunks_mut(32768)
        .zip(x.par_chunks(32768))
        .for_each(|(o, x)| {
            for (o, &v) in o.iter_mut().zip(x) {
                *o = half * v * (one + (v * s).erf_());
            }
        });
    out
}

/// `g * (Phi(x) + x phi(x))`.
fn gelu_bwd<T: Real>(x: &[T], g: &[T]) -> Vec<T> {
    let half = T::from_f64(0.5);
    let one = T::one();
    let s = T::from_f64(std::f64::consts::FRAC_1_SQRT_2);
    let k = T::from_f64(FRAC_1_SQRT_2PI);
    let mhalf = T::from_f64(-0.5);
    let mut out = vec![T::zero(); x.len()];
    out.par_chunks_mut(32768)
        .zip(x.par_chunks(32768).zip(g.par_chunks(32768)))
        .for_each(|(o, (x, g))| {
            for ((o, &v), &g) in o.iter_mut().zip(x).zip(g) {
                let cdf = half * (one + (v * s).erf_());
                let pdf = k * (mhalf * v * v).exp_();
                *o = g * (cdf + v * pdf);
            }
        });
    out
}

struct Gelu;
struct GeluBwd;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "longtail-gelu-erf"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        Ok((
            dispatch1!(s, l, self.name(), |x| gelu_fwd(x)),
            l.shape().clone(),
        ))
    }
    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let g = grad.contiguous()?;
        Ok(Some(arg.apply_op2_no_bwd(&g, &GeluBwd)?))
    }
}

impl CustomOp2 for GeluBwd {
    fn name(&self) -> &'static str {
        "longtail-gelu-erf-bwd"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        Ok((
            dispatch2!(s1, l1, s2, l2, self.name(), |x, g| gelu_bwd(x, g)),
            l1.shape().clone(),
        ))
    }
}

/// Exact (erf) GELU (CPU, f32/f64), differentiable.
pub(crate) fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Gelu)
}
