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
            .iter()
            .copied()
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

/// Several integer layers of one input width on the same `x (..., in)`: the input is
/// quantized once (Q, K and V read the same hidden states). Same values as [`linear`] each.
pub(crate) fn linears_same_input(
    x: &Tensor,
    layers: &[&Arc<QuantizedLinear>],
) -> Result<Vec<Tensor>> {
    let x = x.contiguous()?;
    let dims = x.dims().to_vec();
    let k = layers[0].in_features();
    if dims.last() != Some(&k) || layers.iter().any(|l| l.in_features() != k) {
        return Err(crate::error::ModelError::Input(format!(
            "int8: input {dims:?} does not match the layers' width {k}"
        )));
    }
    let n = dims[..dims.len() - 1].iter().product::<usize>();
    let rows = {
        let (storage, layout) = x.storage_and_layout();
        let (candle_core::Storage::Cpu(CpuStorage::F32(v)), Some((start, end))) =
            (&*storage, layout.contiguous_offsets())
        else {
            return Err(crate::error::ModelError::Input(
                "int8: a contiguous f32 CPU input is needed".into(),
            ));
        };
        layers[0].quantize_input(&v[start..end], n)
    };
    layers
        .iter()
        .map(|l| {
            let y = l.forward_rows(&rows, kernel(), &|_: &mut [f32]| {});
            let mut out = dims.clone();
            *out.last_mut().unwrap() = l.out_features();
            Ok(Tensor::from_vec(y, out, x.device())?)
        })
        .collect()
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

    /// Q, K and V from one quantization of their input equal three separate layers.
    #[test]
    fn shared_input_quantization_equals_separate_layers() {
        let (n, k) = (37, 24);
        let t = |seed: usize, len: usize, shape: &[usize]| {
            let v: Vec<f32> = (0..len)
                .map(|i| ((i * 31 + seed * 17) % 97) as f32 / 48.0 - 1.0)
                .collect();
            Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
        };
        let layers: Vec<_> = [(1, 24), (2, 40), (3, 8)]
            .iter()
            .map(|&(seed, out)| {
                quantize(&t(seed, out * k, &[out, k]), &t(seed + 5, out, &[out])).unwrap()
            })
            .collect();
        let x = t(9, n * k, &[n, k]);
        let refs: Vec<&Arc<QuantizedLinear>> = layers.iter().collect();
        let shared = linears_same_input(&x, &refs).unwrap();
        for (layer, y) in layers.iter().zip(&shared) {
            let alone = linear(&x, layer, false).unwrap();
            assert_eq!(
                y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                alone.flatten_all().unwrap().to_vec1::<f32>().unwrap()
            );
        }
    }

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
