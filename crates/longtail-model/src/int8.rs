//! The encoder's linear layers in integer arithmetic ([`longtail_int8`]) for the inference
//! path. Weights are quantized once ([`crate::BertModel::quantize_int8`]); every call
//! quantizes its input rows, runs the integer GEMM for this CPU and applies bias on each output
//! tile (the FFN also GELU and the second layer's quantization). No backward: a quantized
//! model refuses the training forward pass.

use std::sync::{Arc, OnceLock};

use candle_core::{CpuStorage, Tensor};
use longtail_int8::{Kernel, QuantizedLinear, QuantizedRows};

use crate::error::Result;

/// The kernel for this process: `LONGTAIL_INT8_KERNEL` (`avx512-vnni`, `avx-vnni`, `avx2`,
/// `portable`; for benchmarks and tests) when set and runnable here, else the fastest.
pub fn kernel() -> Kernel {
    static KERNEL: OnceLock<Kernel> = OnceLock::new();
    *KERNEL.get_or_init(Kernel::from_env)
}

/// Quantizes a `(out, in)` f32 weight and its bias.
pub(crate) fn quantize(weight: &Tensor, bias: &Tensor) -> Result<Arc<QuantizedLinear>> {
    let (out, k) = weight.dims2()?;
    let w = weight.flatten_all()?.to_vec1::<f32>()?;
    let b = bias.to_vec1::<f32>()?;
    Ok(Arc::new(QuantizedLinear::new(&w, out, k, &b)))
}

/// `x (..., in)` → `(..., out)` through the integer layer.
pub(crate) fn linear(x: &Tensor, layer: &Arc<QuantizedLinear>) -> Result<Tensor> {
    let x = x.contiguous()?;
    let rows = quantize_input(&x, layer)?;
    output(&x, layer, &rows)
}

/// The feed-forward block `second(gelu(first(x)))` in integers: GELU and the quantization of
/// `second`'s input run on each block of rows while it is in cache
/// ([`QuantizedLinear::forward_rows_into`]), so the wide f32 intermediate is never written
/// out. Same values as [`linear`], erf GELU, [`linear`].
pub(crate) fn feed_forward_gelu(
    x: &Tensor,
    first: &Arc<QuantizedLinear>,
    second: &Arc<QuantizedLinear>,
) -> Result<Tensor> {
    let x = x.contiguous()?;
    let rows = quantize_input(&x, first)?;
    let mid = first.forward_rows_into(&rows, kernel(), &crate::fused::gelu_erf_in_place, second);
    output(&x, second, &mid)
}

/// `layer` on `rows` (quantized from `x (..., in)`) as a tensor `(..., out)`.
fn output(x: &Tensor, layer: &QuantizedLinear, rows: &QuantizedRows) -> Result<Tensor> {
    let y = layer.forward_rows(rows, kernel(), &|_: &mut [f32]| {});
    let mut dims = x.dims().to_vec();
    *dims.last_mut().expect("checked by quantize_input") = layer.out_features();
    Ok(Tensor::from_vec(y, dims, x.device())?)
}

/// The rows of a contiguous f32 CPU `x (..., in)` quantized for `layer` (and any layer of its
/// input width).
fn quantize_input(x: &Tensor, layer: &QuantizedLinear) -> Result<QuantizedRows> {
    let dims = x.dims();
    let k = layer.in_features();
    if dims.last() != Some(&k) {
        return Err(crate::error::ModelError::Input(format!(
            "int8: input {dims:?} does not match the layer's width {k}"
        )));
    }
    let n = dims[..dims.len() - 1].iter().product::<usize>();
    let (storage, layout) = x.storage_and_layout();
    let (candle_core::Storage::Cpu(CpuStorage::F32(v)), Some((start, end))) =
        (&*storage, layout.contiguous_offsets())
    else {
        return Err(crate::error::ModelError::Input(
            "int8: a contiguous f32 CPU input is needed".into(),
        ));
    };
    Ok(layer.quantize_input(&v[start..end], n))
}

/// Several integer layers of one input width on the same `x (..., in)`: the input is
/// quantized once (Q, K and V read the same hidden states). Same values as [`linear`] each.
pub(crate) fn linears_same_input(
    x: &Tensor,
    layers: &[&Arc<QuantizedLinear>],
) -> Result<Vec<Tensor>> {
    let x = x.contiguous()?;
    let k = layers[0].in_features();
    if layers.iter().any(|l| l.in_features() != k) {
        return Err(crate::error::ModelError::Input(format!(
            "int8: layers of different input widths share an input {:?}",
            x.dims()
        )));
    }
    let rows = quantize_input(&x, layers[0])?;
    layers.iter().map(|l| output(&x, l, &rows)).collect()
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
            let alone = linear(&x, layer).unwrap();
            assert_eq!(
                y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                alone.flatten_all().unwrap().to_vec1::<f32>().unwrap()
            );
        }
    }

    /// The integer FFN (GELU and the second layer's quantization per block of rows) equals
    /// its steps run one after another, over several row tiles, for a 3-D input.
    #[test]
    fn feed_forward_equals_linear_gelu_linear() {
        let (n, k, mid, out) = (150, 40, 70, 24);
        let t = |seed: usize, len: usize, shape: &[usize]| {
            let v: Vec<f32> = (0..len)
                .map(|i| ((i * 37 + seed * 13) % 101) as f32 / 50.0 - 1.0)
                .collect();
            Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
        };
        let first = quantize(&t(1, mid * k, &[mid, k]), &t(2, mid, &[mid])).unwrap();
        let second = quantize(&t(3, out * mid, &[out, mid]), &t(4, out, &[out])).unwrap();
        let x = t(5, n * k, &[3, n / 3, k]);
        let fused = feed_forward_gelu(&x, &first, &second).unwrap();
        let mid_f32 = crate::fused::gelu_erf_inference(&linear(&x, &first).unwrap()).unwrap();
        let separate = linear(&mid_f32, &second).unwrap();
        assert_eq!(fused.dims(), &[3, n / 3, out]);
        assert_eq!(
            fused.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            separate.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
    }
}
