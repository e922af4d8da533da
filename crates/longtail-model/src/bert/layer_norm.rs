//! [`LayerNorm`]: differentiable for training, fused (with the residual add) at inference.

use candle_core::Tensor;

use super::Ctx;
use crate::error::Result;
use crate::ops;
use crate::params::{Init, ParamBuilder};

#[derive(Debug, Clone)]
pub(crate) struct LayerNorm {
    pub(crate) weight: Tensor,
    pub(crate) bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    pub(crate) fn new(pb: &ParamBuilder, dim: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: pb.get(&[dim], "weight", Init::Ones)?,
            bias: pb.get(&[dim], "bias", Init::Zeros)?,
            eps,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        if ctx.fused {
            // No backward: used only by the inference entry points.
            let x = x.contiguous()?;
            return Ok(candle_nn::ops::layer_norm(
                &x,
                &self.weight,
                &self.bias,
                self.eps as f32,
            )?);
        }
        ops::layer_norm(x, &self.weight, &self.bias, self.eps)
    }

    /// `self.forward(a + residual)`; at inference one pass per row when the shapes allow.
    pub(crate) fn forward_residual(
        &self,
        a: &Tensor,
        residual: &Tensor,
        ctx: &Ctx,
    ) -> Result<Tensor> {
        if ctx.fused {
            let eps = self.eps as f32;
            if let Some(y) =
                crate::fused_residual::add_layer_norm(a, residual, &self.weight, &self.bias, eps)?
            {
                return Ok(y);
            }
        }
        self.forward(&(a + residual)?, ctx)
    }
}
