//! [`Layer`]: one post-LN transformer block (self-attention, then the feed-forward network).

use candle_core::Tensor;

use super::attention::SelfAttention;
use super::{Ctx, LayerNorm, Linear};
use crate::config::{BertConfig, HiddenAct};
use crate::error::Result;
use crate::ops;
use crate::params::ParamBuilder;

#[derive(Debug, Clone)]
pub(crate) struct Layer {
    pub(super) attention: SelfAttention,
    attention_output: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
    act: HiddenAct,
    dropout: f64,
}

impl Layer {
    /// The six linear layers of the block (Q, K, V, attention output, FFN in, FFN out).
    pub(super) fn linears_mut(&mut self) -> [&mut Linear; 6] {
        [
            &mut self.attention.query,
            &mut self.attention.key,
            &mut self.attention.value,
            &mut self.attention_output,
            &mut self.intermediate,
            &mut self.output,
        ]
    }

    pub(crate) fn new(pb: &ParamBuilder, cfg: &BertConfig) -> Result<Self> {
        let h = cfg.hidden_size;
        let std = cfg.initializer_range;
        let att = pb.pp("attention");
        Ok(Self {
            attention: SelfAttention::new(&att.pp("self"), cfg)?,
            attention_output: Linear::new(&att.pp("output").pp("dense"), h, h, std)?,
            attention_norm: LayerNorm::new(
                &att.pp("output").pp("LayerNorm"),
                h,
                cfg.layer_norm_eps,
            )?,
            intermediate: Linear::new(
                &pb.pp("intermediate").pp("dense"),
                h,
                cfg.intermediate_size,
                std,
            )?,
            output: Linear::new(&pb.pp("output").pp("dense"), cfg.intermediate_size, h, std)?,
            output_norm: LayerNorm::new(&pb.pp("output").pp("LayerNorm"), h, cfg.layer_norm_eps)?,
            act: cfg.activation()?,
            dropout: cfg.hidden_dropout_prob,
        })
    }

    pub(crate) fn forward(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        ctx: &mut Ctx,
    ) -> Result<Tensor> {
        self.forward_rows(x, x, mask, ctx)
    }

    /// The layer's output for the rows of `xq` only (a prefix of `x`'s rows, or `x`): every
    /// row attends to all of `x`, and everything after attention is per row.
    pub(super) fn forward_rows(
        &self,
        xq: &Tensor,
        x: &Tensor,
        mask: Option<&Tensor>,
        ctx: &mut Ctx,
    ) -> Result<Tensor> {
        let a = self.attention.forward(xq, x, mask, ctx)?;
        let a = self.attention_output.forward(&a)?;
        let a = ctx.dropout(&a, self.dropout)?;
        let a = self.attention_norm.forward_residual(&a, xq, ctx)?;
        let o = match (&self.intermediate.int8, &self.output.int8, self.act) {
            // The integer FFN: GELU and the second layer's input quantization on each block
            // of rows while it is in cache.
            (Some(q1), Some(q2), HiddenAct::Gelu) => crate::int8::feed_forward_gelu(&a, q1, q2)?,
            _ => {
                let i = self.intermediate.forward(&a)?;
                let i = match self.act {
                    // Inference: the vectorised parallel erf kernel (candle's is scalar).
                    HiddenAct::Gelu if ctx.fused => crate::fused::gelu_erf_inference(&i)?,
                    HiddenAct::Gelu => ops::gelu_erf(&i)?,
                    HiddenAct::GeluTanh => i.gelu()?,
                    HiddenAct::Relu => i.relu()?,
                };
                self.output.forward(&i)?
            }
        };
        let o = ctx.dropout(&o, self.dropout)?;
        self.output_norm.forward_residual(&o, &a, ctx)
    }
}
