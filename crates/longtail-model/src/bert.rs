//! The BERT encoder, built from differentiable ops only (see [`crate::ops`]), with Hugging Face
//! parameter names and real, seedable dropout.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use longtail_int8::QuantizedLinear;

use crate::config::{BertConfig, HiddenAct, Precision};
use crate::dropout::{DropoutRng, DropoutRngState, MaskStream};
use crate::error::{ModelError, Result};
use crate::ops;
use crate::params::{Init, ParamBuilder};

/// Per-forward-pass state: the dropout stream (training only) and whether fused inference
/// kernels may be used.
pub(crate) struct Ctx {
    stream: Option<MaskStream>,
    fused: bool,
}

impl Ctx {
    pub(crate) fn new(rng: &DropoutRng, train: bool) -> Self {
        Self {
            stream: train.then(|| rng.next_stream()),
            fused: false,
        }
    }

    pub(crate) fn inference() -> Self {
        Self {
            stream: None,
            fused: true,
        }
    }

    /// Keep flags for `n` attention probabilities, when dropout is on (training, `p > 0`).
    fn prob_dropout(&mut self, n: usize, p: f64) -> Option<crate::fused_attention::ProbDropout> {
        let stream = self.stream.as_mut().filter(|_| p > 0.0)?;
        let (keep, scale) = stream.keep_flags(n, p);
        Some(crate::fused_attention::ProbDropout {
            keep: std::sync::Arc::new(keep),
            scale,
        })
    }

    pub(crate) fn dropout(&mut self, x: &Tensor, p: f64) -> Result<Tensor> {
        match &mut self.stream {
            Some(s) => s.dropout(x, p),
            None => Ok(x.clone()),
        }
    }
}

/// `y = x W^T + b` with `W` of shape `(out, in)` (PyTorch layout). On CPU one fused op
/// ([`crate::fused_linear`]); elsewhere inputs of any rank are flattened to 2-D so the matmul
/// is one GEMM and its weight gradient one GEMM too (no broadcast copy of `W` per batch
/// element as `candle_nn::Linear` does for 3-D inputs). Once quantized ([`crate::int8`]),
/// the integer layer instead (inference only).
#[derive(Debug, Clone)]
pub(crate) struct Linear {
    pub(crate) weight: Tensor,
    pub(crate) bias: Tensor,
    int8: Option<Arc<QuantizedLinear>>,
    /// Mixed precision ([`Precision::Bf16`]): the matmul reads bf16 copies of input and weight.
    bf16: bool,
}

/// `a b`; with `bf16`, of bf16 copies of both, the result cast back to `a`'s dtype. cuBLAS
/// accumulates such a product in f32 on tensor cores. The casts are differentiable, so the
/// gradient reaches the f32 weights (the master copy) through them.
fn matmul_in(a: &Tensor, b: &Tensor, bf16: bool) -> Result<Tensor> {
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

    fn quantize_int8(&mut self) -> Result<()> {
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

#[derive(Debug, Clone)]
struct Embeddings {
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    layer_norm: LayerNorm,
    dropout: f64,
    pad_token_id: usize,
}

impl Embeddings {
    fn new(pb: &ParamBuilder, cfg: &BertConfig) -> Result<Self> {
        let std = cfg.initializer_range;
        let h = cfg.hidden_size;
        let word =
            pb.pp("word_embeddings")
                .get(&[cfg.vocab_size, h], "weight", Init::Normal { std })?;
        Ok(Self {
            word,
            position: pb.pp("position_embeddings").get(
                &[cfg.max_position_embeddings, h],
                "weight",
                Init::Normal { std },
            )?,
            token_type: pb.pp("token_type_embeddings").get(
                &[cfg.type_vocab_size, h],
                "weight",
                Init::Normal { std },
            )?,
            layer_norm: LayerNorm::new(&pb.pp("LayerNorm"), h, cfg.layer_norm_eps)?,
            dropout: cfg.hidden_dropout_prob,
            pad_token_id: cfg.pad_token_id,
        })
    }

    fn forward(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        ctx: &mut Ctx,
    ) -> Result<Tensor> {
        let (b, s) = input_ids.dims2()?;
        let h = self.word.dim(1)?;
        let ids = input_ids.flatten_all()?;
        let mut words = self.word.index_select(&ids, 0)?;
        if !ctx.fused && self.pad_token_id < self.word.dim(0)? {
            // nn.Embedding(padding_idx=pad) semantics: the padding row gets no gradient.
            let is_pad = ids
                .eq(self.pad_token_id as u32)?
                .unsqueeze(1)?
                .broadcast_as((b * s, h))?;
            words = is_pad.where_cond(&words.detach(), &words)?;
        }
        let words = words.reshape((b, s, h))?;
        let positions = self.position.narrow(0, 0, s)?;
        let mut emb = words.broadcast_add(&positions)?;
        emb = match token_type_ids {
            Some(tt) => {
                let tt = self
                    .token_type
                    .index_select(&tt.flatten_all()?, 0)?
                    .reshape((b, s, h))?;
                (emb + tt)?
            }
            None => emb.broadcast_add(&self.token_type.narrow(0, 0, 1)?)?,
        };
        let emb = self.layer_norm.forward(&emb, ctx)?;
        ctx.dropout(&emb, self.dropout)
    }
}

#[derive(Debug, Clone)]
struct SelfAttention {
    query: Linear,
    key: Linear,
    value: Linear,
    heads: usize,
    head_dim: usize,
    dropout: f64,
    /// The two attention products in bf16 ([`Precision::Bf16`]).
    bf16: bool,
}

impl SelfAttention {
    fn new(pb: &ParamBuilder, cfg: &BertConfig) -> Result<Self> {
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
    fn forward(
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

#[derive(Debug, Clone)]
pub(crate) struct Layer {
    attention: SelfAttention,
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
    fn linears_mut(&mut self) -> [&mut Linear; 6] {
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
    fn forward_rows(
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

/// A BERT encoder (embeddings, `num_hidden_layers` transformer layers, optional pooler) whose
/// every weight is a `Var` in the `VarMap` of the [`ParamBuilder`] it was built with.
///
/// Parameter names are those of `transformers.BertModel` under the builder's prefix:
/// `embeddings.word_embeddings.weight`, `encoder.layer.N.attention.self.query.weight`, ...,
/// `pooler.dense.weight`.
#[derive(Debug)]
pub struct BertModel {
    config: BertConfig,
    embeddings: Embeddings,
    layers: Vec<Layer>,
    pooler: Option<Linear>,
    rng: DropoutRng,
    precision: Precision,
}

impl BertModel {
    /// Builds the encoder; with `with_pooler` also `pooler.dense`. Dropout masks come from a
    /// stream seeded with `dropout_seed`.
    pub fn new(
        config: &BertConfig,
        pb: &ParamBuilder,
        with_pooler: bool,
        dropout_seed: u64,
    ) -> Result<Self> {
        config.validate()?;
        let embeddings = Embeddings::new(&pb.pp("embeddings"), config)?;
        let enc = pb.pp("encoder").pp("layer");
        let layers = (0..config.num_hidden_layers)
            .map(|i| Layer::new(&enc.pp(i), config))
            .collect::<Result<Vec<_>>>()?;
        let pooler = if with_pooler {
            let h = config.hidden_size;
            Some(Linear::new(
                &pb.pp("pooler").pp("dense"),
                h,
                h,
                config.initializer_range,
            )?)
        } else {
            None
        };
        Ok(Self {
            config: config.clone(),
            embeddings,
            layers,
            pooler,
            rng: DropoutRng::new(dropout_seed),
            precision: Precision::Fp32,
        })
    }

    /// Switches the transformer layers' linear layers to int8 ([`Precision::Int8`]) for
    /// inference: weights are quantized now, once; embeddings, LayerNorms, softmax and the
    /// pooler stay f32. Only the inference entry points work afterwards (a training forward
    /// pass is refused: the integer op has no gradient). Needs f32 weights on the CPU.
    pub fn quantize_int8(&mut self) -> Result<()> {
        if !self.device().is_cpu() || self.embeddings.word.dtype() != DType::F32 {
            return Err(ModelError::Input(
                "--precision int8 runs on the CPU only (integer kernels for x86); use --device \
                 cpu, or fp32 on a GPU"
                    .into(),
            ));
        }
        for layer in &mut self.layers {
            for linear in layer.linears_mut() {
                linear.quantize_int8()?;
            }
        }
        self.precision = Precision::Int8;
        Ok(())
    }

    /// Mixed precision ([`Precision::Bf16`]): every matmul of the transformer layers (the six
    /// linear layers and the two attention products) reads bf16 copies of its inputs; the
    /// weights stay f32 (the master copy the optimizer updates), and so do embeddings,
    /// LayerNorm, softmax, GELU, residuals, the pooler and the head. Trainable. It pays on a
    /// GPU with bf16 tensor cores; the CPU widens bf16 back to f32 and only gets slower.
    pub fn autocast_bf16(&mut self) -> Result<()> {
        if self.precision == Precision::Int8 {
            return Err(ModelError::Input(
                "an int8 model cannot also run bf16".into(),
            ));
        }
        for layer in &mut self.layers {
            layer.attention.bf16 = true;
            for linear in layer.linears_mut() {
                linear.bf16 = true;
            }
        }
        self.precision = Precision::Bf16;
        Ok(())
    }

    /// [`Self::quantize_int8`] or [`Self::autocast_bf16`] by `precision` (fp32: unchanged).
    pub fn set_precision(&mut self, precision: Precision) -> Result<()> {
        match precision {
            Precision::Fp32 => Ok(()),
            Precision::Int8 => self.quantize_int8(),
            Precision::Bf16 => self.autocast_bf16(),
        }
    }

    /// Where the weights live.
    pub fn device(&self) -> &Device {
        self.embeddings.word.device()
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// A quantized model takes the inference path only.
    fn check_trainable(&self, ctx: &Ctx) -> Result<()> {
        if self.precision == Precision::Int8 && !ctx.fused {
            return Err(ModelError::Input(format!(
                "a {} model runs inference only (no gradients through integer layers)",
                self.precision
            )));
        }
        Ok(())
    }

    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    pub fn has_pooler(&self) -> bool {
        self.pooler.is_some()
    }

    /// Dropout RNG state, to store in a training checkpoint.
    pub fn dropout_rng_state(&self) -> DropoutRngState {
        self.rng.state()
    }

    /// Restores the dropout RNG (seed and number of training forward passes so far).
    pub fn set_dropout_rng_state(&self, state: DropoutRngState) {
        self.rng.set_state(state)
    }

    pub(crate) fn rng(&self) -> &DropoutRng {
        &self.rng
    }

    /// Last hidden states `(b, s, hidden)`.
    ///
    /// `input_ids` `(b, s)` (u32 or i64), `token_type_ids` `(b, s)` (default all 0),
    /// `attention_mask` `(b, s)` with 1 for real tokens and 0 for padding (default all 1).
    /// With `train == true` dropout is active (masks from the model's seeded stream); every op
    /// is differentiable in both modes.
    pub fn forward_t(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        attention_mask: Option<&Tensor>,
        train: bool,
    ) -> Result<Tensor> {
        let mut ctx = Ctx::new(&self.rng, train);
        self.forward_ctx(input_ids, token_type_ids, attention_mask, &mut ctx)
    }

    /// Last hidden states with candle's fused softmax / layer-norm / GELU kernels: faster, same
    /// values (tested to 1e-5), but **no gradient flows through them**. For scoring only.
    pub fn forward_inference(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        attention_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let mut ctx = Ctx::inference();
        self.forward_ctx(input_ids, token_type_ids, attention_mask, &mut ctx)
    }

    pub(crate) fn forward_ctx(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        attention_mask: Option<&Tensor>,
        ctx: &mut Ctx,
    ) -> Result<Tensor> {
        self.encode(input_ids, token_type_ids, attention_mask, ctx, false)
    }

    /// The last hidden state of the first ([CLS]) token only, `(b, hidden)`: the same values as
    /// row 0 of [`Self::forward_ctx`], but the last layer computes only that row after its
    /// keys and values (about a seventh of a 6-layer encoder's FLOPs saved), forward and
    /// backward. What CLS pooling needs.
    pub(crate) fn forward_cls_ctx(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        attention_mask: Option<&Tensor>,
        ctx: &mut Ctx,
    ) -> Result<Tensor> {
        let h = self.encode(input_ids, token_type_ids, attention_mask, ctx, true)?;
        Ok(h.squeeze(1)?)
    }

    fn check_inputs(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        attention_mask: Option<&Tensor>,
    ) -> Result<()> {
        let (b, s) = input_ids.dims2()?;
        if input_ids.dtype().is_float() {
            return Err(ModelError::Input(
                "input_ids must be an integer tensor".into(),
            ));
        }
        if s > self.config.max_position_embeddings {
            return Err(ModelError::Input(format!(
                "sequence length {s} exceeds max_position_embeddings {}",
                self.config.max_position_embeddings
            )));
        }
        for (name, t) in [
            ("token_type_ids", token_type_ids),
            ("attention_mask", attention_mask),
        ] {
            if let Some(t) = t {
                if t.dims() != [b, s] {
                    return Err(ModelError::Input(format!(
                        "{name} has shape {:?}, input_ids {:?}",
                        t.dims(),
                        input_ids.dims()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Runs every layer; with `cls_only` the last one only for row 0 (output `(b, 1, h)`).
    fn encode(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        attention_mask: Option<&Tensor>,
        ctx: &mut Ctx,
        cls_only: bool,
    ) -> Result<Tensor> {
        self.check_inputs(input_ids, token_type_ids, attention_mask)?;
        self.check_trainable(ctx)?;
        let dtype = self.embeddings.word.dtype();
        let mask = match attention_mask {
            Some(m) => Some(extended_attention_mask(m, dtype)?),
            None => None,
        };
        let mut hidden = self.embeddings.forward(input_ids, token_type_ids, ctx)?;
        let last = self.layers.len().saturating_sub(1);
        for (i, layer) in self.layers.iter().enumerate() {
            if ctx.fused {
                // Inference: drop the autograd graph (weights are Vars, so every op records
                // one) so activations of earlier layers are freed as we go.
                hidden = hidden.detach();
            }
            hidden = if cls_only && i == last {
                let cls = hidden.narrow(1, 0, 1)?;
                layer.forward_rows(&cls, &hidden, mask.as_ref(), ctx)?
            } else {
                layer.forward(&hidden, mask.as_ref(), ctx)?
            };
        }
        if cls_only && self.layers.is_empty() {
            hidden = hidden.narrow(1, 0, 1)?;
        }
        Ok(hidden)
    }

    /// Hidden states after the embeddings and the first `layers` transformer layers, with the
    /// fused inference kernels and no graph (detached). With [`Self::forward_layers_t`] this
    /// splits the encoder so a frozen bottom can be computed once and cached while only the
    /// top layers are trained.
    pub fn forward_bottom_inference(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        attention_mask: Option<&Tensor>,
        layers: usize,
    ) -> Result<Tensor> {
        if layers > self.layers.len() {
            return Err(ModelError::Input(format!(
                "bottom of {layers} layers requested, the model has {}",
                self.layers.len()
            )));
        }
        let mut ctx = Ctx::inference();
        let mask = match attention_mask {
            Some(m) => Some(extended_attention_mask(m, self.embeddings.word.dtype())?),
            None => None,
        };
        let mut hidden = self
            .embeddings
            .forward(input_ids, token_type_ids, &mut ctx)?
            .detach();
        for layer in &self.layers[..layers] {
            hidden = layer.forward(&hidden, mask.as_ref(), &mut ctx)?.detach();
        }
        Ok(hidden)
    }

    /// Runs layers `from..` on `hidden` `(b, s, h)` (e.g. from [`Self::forward_bottom_inference`]).
    /// `train` turns dropout on; every op is differentiable (no fused kernels), so gradients
    /// reach the parameters of layers `from..` only.
    pub fn forward_layers_t(
        &self,
        hidden: &Tensor,
        attention_mask: Option<&Tensor>,
        from: usize,
        train: bool,
    ) -> Result<Tensor> {
        if from > self.layers.len() {
            return Err(ModelError::Input(format!(
                "layer {from} requested, the model has {}",
                self.layers.len()
            )));
        }
        let mut ctx = Ctx::new(&self.rng, train);
        self.check_trainable(&ctx)?;
        let mask = match attention_mask {
            Some(m) => Some(extended_attention_mask(m, hidden.dtype())?),
            None => None,
        };
        let mut hidden = hidden.clone();
        for layer in &self.layers[from..] {
            hidden = layer.forward(&hidden, mask.as_ref(), &mut ctx)?;
        }
        Ok(hidden)
    }

    /// `tanh(pooler.dense(hidden[:, 0]))`, `(b, hidden)`; an error if built without pooler.
    pub fn pool(&self, hidden: &Tensor) -> Result<Tensor> {
        let cls = hidden.narrow(1, 0, 1)?.squeeze(1)?;
        self.pool_cls(&cls)
    }

    /// The pooler on first-token states `(b, hidden)`.
    pub(crate) fn pool_cls(&self, cls: &Tensor) -> Result<Tensor> {
        let pooler = self
            .pooler
            .as_ref()
            .ok_or_else(|| ModelError::Config("this model was built without a pooler".into()))?;
        Ok(pooler.forward(cls)?.tanh()?)
    }
}

/// `(1 - mask) * f32::MIN` shaped `(b, 1, 1, s)`: added to the attention scores, it gives padded
/// keys zero weight after the softmax (what `transformers` does with `torch.finfo.min`).
pub fn extended_attention_mask(mask: &Tensor, dtype: DType) -> Result<Tensor> {
    let (b, s) = mask.dims2()?;
    let m = mask.to_dtype(dtype)?;
    let add = ((m.ones_like()? - m)? * f32::MIN as f64)?;
    Ok(add.reshape((b, 1, 1, s))?)
}

/// `hidden[:, 0]`: the `[CLS]` state, `(b, hidden)`.
pub fn cls_state(hidden: &Tensor) -> Result<Tensor> {
    Ok(hidden.narrow(1, 0, 1)?.squeeze(1)?)
}

/// The mean of the token states over the attention mask, `(b, hidden)`.
pub fn mean_pool(hidden: &Tensor, attention_mask: Option<&Tensor>) -> Result<Tensor> {
    match attention_mask {
        Some(m) => ops::masked_mean(hidden, m),
        None => Ok(hidden.mean(1)?),
    }
}
