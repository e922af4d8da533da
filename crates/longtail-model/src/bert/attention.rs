//! [`SelfAttention`]: multi-head self-attention, one fused op on the CPU, composite elsewhere.

use candle_core::{DType, Tensor};

use super::linear::matmul_in;
use super::{Ctx, Linear};
use crate::config::BertConfig;
use crate::error::Result;
use crate::ops;
use crate::params::ParamBuilder;

#[derive(Debug, Clone)]
pub(super) struct SelfAttention {
    pub(super) query: Linear,
    pub(super) key: Linear,
    pub(super) value: Linear,
    heads: usize,
    head_dim: usize,
    dropout: f64,
    /// The two attention products in bf16 ([`Precision::Bf16`](crate::config::Precision::Bf16)).
    pub(super) bf16: bool,
}

impl SelfAttention {
    pub(super) fn new(pb: &ParamBuilder, cfg: &BertConfig) -> Result<Self> {
        let h = cfg.hidden_size;
        let std = cfg.initializer_range;
        Ok(Self {
            query: Linear::new(&pb.pp("query"), h, h, std)?,
            key: Linear::new(&pb.pp("key"), h, h, std)?,
            value: Linear::new(&pb.pp("value"), h, h, std)?,
            heads: cfg.num_attention_heads,
            head_dim: cfg.head_dim(),
            dropout: cfg.attention_probs_dropout_prob,
            bf16: false,
        })
    }

    /// Queries from `xq` `(b, sq, h)`, keys and values from `x` `(b, s, h)`; `mask` additive
    /// `(b, 1, 1, s)` (per key) or `(b, 1, sq, s)` (per query and key). Returns `(b, sq, h)`.
    /// `xq` is `x` itself, or a prefix of its rows when
    /// only those outputs are needed (the last layer under CLS pooling).
    pub(super) fn forward(
        &self,
        xq: &Tensor,
        x: &Tensor,
        mask: Option<&Tensor>,
        ctx: &mut Ctx,
    ) -> Result<Tensor> {
        let (b, s, h) = x.dims3()?;
        let sq = xq.dim(1)?;
        // A per-query mask `(b, 1, sq, s)` (causal) takes the composite path; the fused kernel
        // handles per-key masks `(b, 1, 1, s)`.
        let per_key_mask = mask.is_none_or(|m| m.dims().get(2) == Some(&1));
        if per_key_mask
            && !self.bf16
            && crate::fused::supported(x)
            && self.query.weight.device().is_cpu()
        {
            // One op for scores, mask, softmax, dropout and the weighted sum (same maths).
            let mask = match mask {
                Some(m) => Some(std::sync::Arc::new(
                    m.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?,
                )),
                None => None,
            };
            let dropout = ctx.prob_dropout(b * self.heads * sq * s, self.dropout);
            let (q, k, v) = match (&self.query.int8, &self.key.int8, &self.value.int8) {
                // One quantization of the hidden states for all three integer layers.
                (Some(wq), Some(wk), Some(wv)) if xq.id() == x.id() => {
                    let mut qkv = crate::int8::linears_same_input(x, &[wq, wk, wv])?.into_iter();
                    let mut next = || qkv.next().expect("three outputs");
                    (next(), next(), next())
                }
                _ => (
                    self.query.forward(xq)?,
                    self.key.forward(x)?,
                    self.value.forward(x)?,
                ),
            };
            return Ok(crate::fused_attention::attention(
                &q, &k, &v, self.heads, mask, dropout,
            )?);
        }
        let split = |t: Tensor, rows: usize| {
            t.reshape((b, rows, self.heads, self.head_dim))?
                .transpose(1, 2)
        };
        // Scaling q by 1/sqrt(d) (instead of the (b, heads, s, s) scores) is the same maths on
        // fewer elements, and the affine makes the head-major copy the matmul needs anyway.
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let q = split(self.query.forward(xq)?, sq)?.affine(scale, 0.)?;
        let k = split(self.key.forward(x)?, s)?.contiguous()?;
        let v = split(self.value.forward(x)?, s)?.contiguous()?;
        let mut scores = matmul_in(&q, &k.t()?, self.bf16)?;
        if let Some(m) = mask {
            scores = scores.broadcast_add(m)?;
        }
        let probs = if ctx.fused {
            candle_nn::ops::softmax_last_dim(&scores)?
        } else {
            ops::softmax_last_dim(&scores)?
        };
        let probs = ctx.dropout(&probs, self.dropout)?;
        let context = matmul_in(&probs, &v, self.bf16)?;
        Ok(context.transpose(1, 2)?.reshape((b, sq, h))?)
    }
}
