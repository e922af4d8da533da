//! [`Ctx`]: the per-forward-pass state (dropout stream, fused-kernel switch) threaded through
//! every layer of the encoder.

use candle_core::Tensor;

use crate::dropout::{DropoutRng, MaskStream};
use crate::error::Result;

/// Per-forward-pass state: the dropout stream (training only) and whether fused inference
/// kernels may be used.
pub(crate) struct Ctx {
    stream: Option<MaskStream>,
    pub(super) fused: bool,
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
    pub(super) fn prob_dropout(
        &mut self,
        n: usize,
        p: f64,
    ) -> Option<crate::fused_attention::ProbDropout> {
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
