//! The dropout mask product `x * mask`, differentiable in `x` only.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{dispatch2, slice, Real};

// ---------------------------------------------------------------- dropout mask product

fn mask_mul<T: Real>(x: &[T], m: &[T]) -> Vec<T> {
    let mut out = vec![T::zero(); x.len()];
    out.par_chunks_mut(32768)
        .zip(x.par_chunks(32768).zip(m.par_chunks(32768)))
        .for_each(|(o, (x, m))| {
            for ((o, &x), &m) in o.iter_mut().zip(x).zip(m) {
                *o = x * m;
            }
        });
    out
}

/// `x * mask` where the mask is a constant: candle's `Mul` backward also computes (and
/// allocates, zero-fills and accumulates) the mask's gradient, a wasted pass per dropout.
struct MaskMul;

impl CustomOp2 for MaskMul {
    fn name(&self) -> &'static str {
        "longtail-mask-mul"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if l1.dims() != l2.dims() {
            bail!("mask {:?} does not match input {:?}", l2.dims(), l1.dims())
        }
        Ok((
            dispatch2!(s1, l1, s2, l2, self.name(), |x, m| mask_mul(x, m)),
            l1.shape().clone(),
        ))
    }
    fn bwd(
        &self,
        _x: &Tensor,
        mask: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((
            Some(grad.contiguous()?.apply_op2_no_bwd(mask, &MaskMul)?),
            None,
        ))
    }
}

/// `x * mask` (CPU, f32/f64, same shapes), differentiable in `x` only.
pub(crate) fn mask_mul_const(x: &Tensor, mask: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op2(&mask.contiguous()?, MaskMul)
}

#[cfg(test)]
mod mask_mul_tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    /// Same values and input gradient as candle's `x * mask`; the mask (a constant) gets none.
    #[test]
    fn mask_mul_matches_mul_and_leaves_the_mask_alone() {
        let dev = Device::Cpu;
        let x = Var::randn(0f32, 1., (3, 70000), &dev).unwrap();
        let mask = Tensor::rand(0f32, 1., (3, 70000), &dev)
            .unwrap()
            .ge(0.3)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        let c = Tensor::randn(0f32, 1., (3, 70000), &dev).unwrap();
        let ours = mask_mul_const(x.as_tensor(), &mask).unwrap();
        let theirs = (x.as_tensor() * &mask).unwrap();
        assert_eq!(
            ours.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            theirs.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
        // bit-identical gradient
        let go = crate::test_util::assert_same_grads(ours, theirs, &c, &[&x], 0.0, "mask_mul");
        assert!(go.get(&mask).is_none());
    }
}
