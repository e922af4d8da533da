//! The BERT encoder, built from differentiable ops only (see [`crate::ops`]), with Hugging Face
//! parameter names and real, seedable dropout.

mod attention;
mod ctx;
mod embeddings;
mod layer;
mod layer_norm;
mod linear;

use candle_core::{DType, Device, Tensor};

use crate::config::{BertConfig, Precision};
use crate::dropout::{DropoutRng, DropoutRngState};
use crate::error::{ModelError, Result};
use crate::ops;
use crate::params::ParamBuilder;
use embeddings::Embeddings;

pub(crate) use ctx::Ctx;
pub(crate) use layer::Layer;
pub(crate) use layer_norm::LayerNorm;
pub(crate) use linear::Linear;

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
