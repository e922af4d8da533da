//! Inference: `layer_norm(a + residual)` in one pass over each row, instead of materialising
//! the sum and reading it back in candle's fused LayerNorm. The arithmetic is candle's, in
//! its order (f32 sums in a sequential loop, `var = E[x²] - mean²`), so the output is the same
//! to the bit (tested): scores do not change.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

struct AddLayerNorm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

impl CustomOp2 for AddLayerNorm {
    fn name(&self) -> &'static str {
        "longtail-add-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(a), CpuStorage::F32(r)) = (s1, s2) else {
            bail!("{}: f32 only, got {:?}", self.name(), s1.dtype())
        };
        let (Some((a0, a1)), Some((r0, r1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            bail!("{}: inputs must be contiguous", self.name())
        };
        if l1.dims() != l2.dims() {
            bail!(
                "{}: shapes {:?} and {:?}",
                self.name(),
                l1.dims(),
                l2.dims()
            )
        }
        let dim = self.weight.len();
        if l1.dims().last() != Some(&dim) {
            bail!("{}: rows of {:?}, weight of {dim}", self.name(), l1.dims())
        }
        let (a, r) = (&a[a0..a1], &r[r0..r1]);
        let mut dst = vec![0f32; a.len()];
        dst.par_chunks_mut(dim)
            .zip(a.par_chunks(dim).zip(r.par_chunks(dim)))
            .for_each(|(d, (a, r))| {
                // The sum candle's `a + r` would have written (IEEE addition commutes).
                let mut sum = 0f32;
                let mut sum2 = 0f32;
                for ((d, &a), &r) in d.iter_mut().zip(a).zip(r) {
                    let v = a + r;
                    *d = v;
                    sum += v;
                    sum2 += v * v;
                }
                let mean = sum / dim as f32;
                let var = sum2 / dim as f32 - mean * mean;
                let inv_std = (var + self.eps).sqrt().recip();
                for ((d, &w), &b) in d.iter_mut().zip(&self.weight).zip(&self.bias) {
                    *d = (*d - mean) * inv_std * w + b;
                }
            });
        Ok((CpuStorage::F32(dst), l1.shape().clone()))
    }
}

/// `layer_norm(a + residual)` with candle's inference kernel's values, when both are
/// contiguous f32 CPU tensors of one shape; `None` otherwise (the caller adds and normalises).
pub(crate) fn add_layer_norm(
    a: &Tensor,
    residual: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f32,
) -> Result<Option<Tensor>> {
    let usable = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32 && t.is_contiguous();
    if !(usable(a) && usable(residual) && a.dims() == residual.dims()) {
        return Ok(None);
    }
    let op = AddLayerNorm {
        weight: weight.to_vec1()?,
        bias: bias.to_vec1()?,
        eps,
    };
    Ok(Some(a.apply_op2_no_bwd(residual, &op)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn equals_candle_layer_norm_of_the_sum_bit_for_bit() {
        let dev = Device::Cpu;
        for (rows, dim) in [(1, 8), (7, 384), (33, 100)] {
            let t = |seed: u64, n: usize| {
                let v: Vec<f32> = (0..n)
                    .map(|i| (((i as u64 * 2654435761 + seed) % 1000) as f32 / 250.0 - 2.0).powi(3))
                    .collect();
                v
            };
            let a = Tensor::from_vec(t(1, rows * dim), (rows, dim), &dev).unwrap();
            let r = Tensor::from_vec(t(7, rows * dim), (rows, dim), &dev).unwrap();
            let w = Tensor::from_vec(t(3, dim), dim, &dev).unwrap();
            let b = Tensor::from_vec(t(5, dim), dim, &dev).unwrap();
            let fused = add_layer_norm(&a, &r, &w, &b, 1e-12).unwrap().unwrap();
            let sum = (&a + &r).unwrap();
            let want = candle_nn::ops::layer_norm(&sum, &w, &b, 1e-12).unwrap();
            assert_eq!(
                fused.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                want.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                "{rows}x{dim}"
            );
        }
    }
}
