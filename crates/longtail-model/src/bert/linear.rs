//! [`Linear`]: the dense layer of the encoder (fused CPU op, 2-D GEMM, int8 or bf16), and
//! the bf16-aware matmul the attention products share.

use std::sync::Arc;

use candle_core::{DType, Tensor};
use longtail_int8::QuantizedLinear;

use crate::error::{ModelError, Result};
use crate::params::{Init, ParamBuilder};

/// `y = x W^T + b` with `W` of shape `(out, in)` (PyTorch layout). On CPU one fused op
/// ([`crate::fused_linear`]); elsewhere inputs of any rank are flattened to 2-D so the matmul
/// is one GEMM and its weight gradient one GEMM too (no broadcast copy of `W` per batch
/// element as `candle_nn::Linear` does for 3-D inputs). Once quantized ([`crate::int8`]),
/// the integer layer instead (inference only).
#[derive(Debug, Clone)]
pub(crate) struct Linear {
    pub(crate) weight: Tensor,
    pub(crate) bias: Tensor,
    pub(super) int8: Option<Arc<QuantizedLinear>>,
    /// Mixed precision ([`Precision::Bf16`](crate::config::Precision::Bf16)): the matmul reads
    /// bf16 copies of input and weight.
    pub(super) bf16: bool,
}

/// `a b`; with `bf16`, of bf16 copies of both, the result cast back to `a`'s dtype. cuBLAS
/// accumulates such a product in f32 on tensor cores. The casts are differentiable, so the
/// gradient reaches the f32 weights (the master copy) through them.
pub(super) fn matmul_in(a: &Tensor, b: &Tensor, bf16: bool) -> Result<Tensor> {
    if !bf16 {
        return Ok(a.matmul(b)?);
    }
    Ok(a.to_dtype(DType::BF16)?
        .matmul(&b.to_dtype(DType::BF16)?)?
        .to_dtype(a.dtype())?)
}

impl Linear {
    pub(crate) fn new(pb: &ParamBuilder, in_dim: usize, out_dim: usize, std: f64) -> Result<Self> {
        Ok(Self {
            weight: pb.get(&[out_dim, in_dim], "weight", Init::Normal { std })?,
            bias: pb.get(&[out_dim], "bias", Init::Zeros)?,
            int8: None,
            bf16: false,
        })
    }

    pub(super) fn quantize_int8(&mut self) -> Result<()> {
        self.int8 = Some(crate::int8::quantize(&self.weight, &self.bias)?);
        Ok(())
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if let Some(q) = &self.int8 {
            return crate::int8::linear(x, q);
        }
        if !self.bf16 && crate::fused::supported(x) && self.weight.device().is_cpu() {
            return Ok(crate::fused_linear::linear(x, &self.weight, &self.bias)?);
        }
        let dims = x.dims().to_vec();
        let in_dim = *dims
            .last()
            .ok_or_else(|| ModelError::Input("linear on a scalar".into()))?;
        let x2 = if dims.len() == 2 {
            x.clone()
        } else {
            x.reshape(((), in_dim))?
        };
        let y = matmul_in(&x2, &self.weight.t()?, self.bf16)?.broadcast_add(&self.bias)?;
        if dims.len() == 2 {
            Ok(y)
        } else {
            let mut out = dims;
            *out.last_mut().unwrap() = self.weight.dim(0)?;
            Ok(y.reshape(out)?)
        }
    }
}
