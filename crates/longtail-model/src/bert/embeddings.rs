//! [`Embeddings`]: word + position + token-type embeddings, LayerNorm and dropout.

use candle_core::Tensor;

use super::{Ctx, LayerNorm};
use crate::config::BertConfig;
use crate::error::Result;
use crate::params::{Init, ParamBuilder};

#[derive(Debug, Clone)]
pub(super) struct Embeddings {
    pub(super) word: Tensor,
    position: Tensor,
    token_type: Tensor,
    layer_norm: LayerNorm,
    dropout: f64,
    pad_token_id: usize,
}

impl Embeddings {
    pub(super) fn new(pb: &ParamBuilder, cfg: &BertConfig) -> Result<Self> {
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

    pub(super) fn forward(
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
