//! The encoder's linear layers in integer arithmetic ([`longtail_int8`]), as a candle op for
//! the inference path. Weights are quantized once ([`crate::BertModel::quantize_int8`]);
//! every call quantizes its input rows, runs the integer GEMM for this CPU and applies bias
//! (and GELU for the FFN's first layer) on each output tile. No backward: a quantized model
//! refuses the training forward pass.

use std::sync::{Arc, OnceLock};

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp1, Layout, Shape, Tensor};
use longtail_int8::{Kernel, QuantizedLinear};

use crate::error::Result;

/// The kernel for this process: `LONGTAIL_INT8_KERNEL` (`avx512-vnni`, `avx-vnni`, `avx2`,
/// `portable`; for benchmarks and tests) when set and runnable here, else the fastest.
pub fn kernel() -> Kernel {
    static KERNEL: OnceLock<Kernel> = OnceLock::new();
    *KERNEL.get_or_init(|| {
        let want = std::env::var("LONGTAIL_INT8_KERNEL").ok();
        Kernel::available()
            .into_iter()
            .find(|k| want.as_deref().is_none_or(|w| w == k.name()))
            .unwrap_or_else(Kernel::detect)
    })
}

/// Quantizes a `(out, in)` f32 weight and its bias.
pub(crate) fn quantize(weight: &Tensor, bias: &Tensor) -> Result<Arc<QuantizedLinear>> {
    let (out, k) = weight.dims2()?;
    let w = weight.flatten_all()?.to_vec1::<f32>()?;
    let b = bias.to_vec1::<f32>()?;
    Ok(Arc::new(QuantizedLinear::new(&w, out, k, &b)))
}

/// `x (..., in)` → `(..., out)` through the integer layer; with `gelu`, erf GELU on the output.
pub(crate) fn linear(x: &Tensor, layer: &Arc<QuantizedLinear>, gelu: bool) -> Result<Tensor> {
    let x = x.contiguous()?;
    Ok(x.apply_op1_no_bwd(&Int8Linear {
        layer: layer.clone(),
        gelu,
    })?)
}

struct Int8Linear {
    layer: Arc<QuantizedLinear>,
    gelu: bool,
}

impl CustomOp1 for Int8Linear {
    fn name(&self) -> &'static str {
        "longtail-int8-linear"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(v) = s else {
            bail!("{}: f32 input only, got {:?}", self.name(), s.dtype())
        };
        let Some((start, end)) = l.contiguous_offsets() else {
            bail!("{}: the input must be contiguous", self.name())
        };
        let dims = l.dims();
        let k = self.layer.in_features();
        if dims.last() != Some(&k) {
            bail!("{}: input {dims:?} is not (..., {k})", self.name())
        }
        let n = dims[..dims.len() - 1].iter().product::<usize>();
        let epilogue: &(dyn Fn(&mut [f32]) + Sync) = if self.gelu {
            &crate::fused::gelu_erf_in_place
        } else {
            &|_: &mut [f32]| {}
        };
        let y = self.layer.forward(&v[start..end], n, kernel(), epilogue);
        let mut out = dims.to_vec();
        *out.last_mut().unwrap() = self.layer.out_features();
        Ok((CpuStorage::F32(y), Shape::from(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The FFN's GELU applied per output tile equals the whole-tensor inference kernel.
    #[test]
    fn fused_gelu_equals_separate_gelu() {
        let (n, k, out) = (50, 40, 70);
        let w: Vec<f32> = (0..out * k)
            .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
            .collect();
        let b: Vec<f32> = (0..out).map(|i| i as f32 / 70.0 - 0.5).collect();
        let x: Vec<f32> = (0..n * k)
            .map(|i| ((i * 13) % 89) as f32 / 44.0 - 1.0)
            .collect();
        let layer = quantize(
            &Tensor::from_vec(w, (out, k), &Device::Cpu).unwrap(),
            &Tensor::from_vec(b, out, &Device::Cpu).unwrap(),
        )
        .unwrap();
        let x = Tensor::from_vec(x, (n, k), &Device::Cpu).unwrap();
        let fused = linear(&x, &layer, true).unwrap();
        let separate =
            crate::fused::gelu_erf_inference(&linear(&x, &layer, false).unwrap()).unwrap();
        assert_eq!(
            fused.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            separate.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
    }
}
