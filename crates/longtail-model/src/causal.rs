//! A causal (left-to-right) transformer over a sequence of input vectors, SASRec-style: learned
//! position embeddings, LayerNorm and dropout on the input, then BERT layers (the same
//! [`Layer`](crate::bert) as the text encoder: post-LN, GELU) under a causal mask, so position
//! `t` sees positions `<= t` only. Used by the sequence interest model: the inputs are item
//! vectors of a user's history and the output at the last position is the user vector.
//!
//! Sequences are **left-padded**: the last column is always the most recent real input, so
//! "the output at the last position" is one column for the whole batch. A padded position sees
//! only itself (its output is finite and ignored); a real position never sees padding.
//!
//! Parameter names (under the builder's prefix): `position_embeddings.weight`,
//! `LayerNorm.{weight,bias}`, `layer.N.*` with BERT's names.

use candle_core::{DType, Tensor};

use crate::bert::{Ctx, Layer, LayerNorm};
use crate::config::BertConfig;
use crate::dropout::{DropoutRng, DropoutRngState};
use crate::error::{ModelError, Result};
use crate::params::{Init, ParamBuilder};

/// Additive score for a masked (query, key) pair: far below any real score, yet finite so that
/// two of them added never make `-inf - -inf = NaN`.
const MASKED: f64 = -1e9;

#[derive(Debug)]
pub struct CausalEncoder {
    config: BertConfig,
    position: Tensor,
    norm: LayerNorm,
    layers: Vec<Layer>,
    dropout: f64,
    rng: DropoutRng,
}

impl CausalEncoder {
    /// `config`: `hidden_size`, `num_hidden_layers`, `num_attention_heads`,
    /// `intermediate_size`, `hidden_act`, the two dropouts, `max_position_embeddings` (longest
    /// sequence), `layer_norm_eps`, `initializer_range`; token fields are ignored.
    pub fn new(config: &BertConfig, pb: &ParamBuilder, dropout_seed: u64) -> Result<Self> {
        config.validate()?;
        let h = config.hidden_size;
        let position = pb.pp("position_embeddings").get(
            &[config.max_position_embeddings, h],
            "weight",
            Init::Normal {
                std: config.initializer_range,
            },
        )?;
        let norm = LayerNorm::new(&pb.pp("LayerNorm"), h, config.layer_norm_eps)?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| Layer::new(&pb.pp("layer").pp(i), config))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            config: config.clone(),
            position,
            norm,
            layers,
            dropout: config.hidden_dropout_prob,
            rng: DropoutRng::new(dropout_seed),
        })
    }

    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    pub fn dropout_rng_state(&self) -> DropoutRngState {
        self.rng.state()
    }

    pub fn set_dropout_rng_state(&self, state: DropoutRngState) {
        self.rng.set_state(state)
    }

    /// Hidden states `(b, s, h)` of left-padded inputs `x` `(b, s, h)` with `mask` `(b, s)`
    /// (1 = real, 0 = padding; u32). With `train` dropout is on (seeded stream); every op is
    /// differentiable.
    pub fn forward_t(&self, x: &Tensor, mask: &Tensor, train: bool) -> Result<Tensor> {
        let mut ctx = Ctx::new(&self.rng, train);
        self.forward_ctx(x, mask, &mut ctx)
    }

    /// [`Self::forward_t`] without dropout and with the inference kernels (no backward).
    pub fn forward_inference(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        self.forward_ctx(x, mask, &mut Ctx::inference())
    }

    fn forward_ctx(&self, x: &Tensor, mask: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let (b, s, h) = x.dims3()?;
        if h != self.config.hidden_size {
            return Err(ModelError::Input(format!(
                "causal encoder: inputs of width {h}, the model's is {}",
                self.config.hidden_size
            )));
        }
        if s > self.config.max_position_embeddings {
            return Err(ModelError::Input(format!(
                "causal encoder: sequence of {s} positions, the model has {}",
                self.config.max_position_embeddings
            )));
        }
        if mask.dims() != [b, s] {
            return Err(ModelError::Input(format!(
                "causal encoder: mask {:?} for inputs ({b}, {s}, {h})",
                mask.dims()
            )));
        }
        let bias = causal_mask(mask, x.dtype())?;
        // Left padding: the last column gets the last position embedding, so a sequence's
        // positions count back from its most recent item whatever its length.
        let positions = self
            .position
            .narrow(0, self.config.max_position_embeddings - s, s)?;
        let hidden = x.broadcast_add(&positions)?;
        let hidden = self.norm.forward(&hidden, ctx)?;
        let mut hidden = ctx.dropout(&hidden, self.dropout)?;
        for layer in &self.layers {
            hidden = layer.forward(&hidden, Some(&bias), ctx)?;
        }
        Ok(hidden)
    }
}

/// Additive attention bias `(b, 1, s, s)`: query `q` may attend key `k` iff `k <= q` and `k` is
/// real, or `k == q` (so a padded query sees itself and its softmax stays finite).
pub fn causal_mask(mask: &Tensor, dtype: DType) -> Result<Tensor> {
    let (b, s) = mask.dims2()?;
    let real = mask.to_dtype(DType::U32)?.to_vec2::<u32>()?;
    let mut bias = vec![0f64; b * s * s];
    for (bi, row) in real.iter().enumerate() {
        for q in 0..s {
            for k in 0..s {
                let allowed = k == q || (k < q && row[k] != 0);
                if !allowed {
                    bias[(bi * s + q) * s + k] = MASKED;
                }
            }
        }
    }
    Ok(Tensor::from_vec(bias, (b, 1, s, s), mask.device())?.to_dtype(dtype)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use candle_nn::VarMap;

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    }

    fn encoder(dtype: DType) -> (CausalEncoder, VarMap) {
        let mut cfg = BertConfig::tiny(1, 8, 2, 2);
        cfg.intermediate_size = 16;
        cfg.max_position_embeddings = 6;
        cfg.initializer_range = 0.3;
        let vm = VarMap::new();
        let pb = ParamBuilder::new(&vm, dtype, &Device::Cpu, 3);
        (CausalEncoder::new(&cfg, &pb, 7).unwrap(), vm)
    }

    #[test]
    fn mask_is_causal_and_hides_padding() {
        let m = Tensor::new(&[[0u32, 1, 1], [1, 1, 1]], &Device::Cpu).unwrap();
        let b = causal_mask(&m, DType::F64).unwrap();
        let v = b.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let allowed = |bi: usize, q: usize, k: usize| v[(bi * 3 + q) * 3 + k] == 0.0;
        assert!(allowed(0, 0, 0)); // a padded query sees itself
        assert!(!allowed(0, 1, 0) && allowed(0, 1, 1) && !allowed(0, 1, 2));
        assert!(allowed(0, 2, 1) && allowed(0, 2, 2) && !allowed(0, 2, 0));
        assert!(allowed(1, 2, 0) && !allowed(1, 0, 1));
    }

    /// The output at position t depends on inputs <= t only, and not on padding.
    #[test]
    fn outputs_do_not_see_the_future_or_the_padding() {
        let (enc, _) = encoder(DType::F64);
        let dev = Device::Cpu;
        let x = Tensor::randn(0f64, 1.0, (1, 4, 8), &dev).unwrap();
        let mask = Tensor::new(&[[0u32, 1, 1, 1]], &dev).unwrap();
        let y = enc.forward_t(&x, &mask, false).unwrap();
        // Change the future (position 3) and the padding (position 0).
        let x2 = x.to_vec3::<f64>().unwrap();
        let mut x2 = x2[0].clone();
        x2[3] = vec![5.0; 8];
        x2[0] = vec![-3.0; 8];
        let x2 = Tensor::new(x2, &dev).unwrap().unsqueeze(0).unwrap();
        let y2 = enc.forward_t(&x2, &mask, false).unwrap();
        let d = max_diff(&y.narrow(1, 1, 2).unwrap(), &y2.narrow(1, 1, 2).unwrap());
        assert!(d < 1e-12, "{d}");
        // Shorter left padding gives the same last output (positions count from the end).
        let short = x.narrow(1, 1, 3).unwrap();
        let ys = enc
            .forward_t(&short, &Tensor::new(&[[1u32, 1, 1]], &dev).unwrap(), false)
            .unwrap();
        let d = max_diff(&ys.narrow(1, 2, 1).unwrap(), &y.narrow(1, 3, 1).unwrap());
        assert!(d < 1e-12, "{d}");
    }

    #[test]
    fn inference_equals_training_mode_without_dropout() {
        let (enc, _) = encoder(DType::F32);
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (2, 5, 8), &dev).unwrap();
        let mask = Tensor::new(&[[0u32, 0, 1, 1, 1], [1, 1, 1, 1, 1]], &dev).unwrap();
        let a = enc.forward_t(&x, &mask, false).unwrap();
        let b = enc.forward_inference(&x, &mask).unwrap();
        let d = max_diff(&a, &b);
        assert!(d < 1e-4, "{d}");
        assert!(enc
            .forward_t(&x.narrow(1, 0, 4).unwrap(), &mask, false)
            .is_err());
    }
}
