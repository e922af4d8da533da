//! What [`Recommender::load`](super::Recommender::load) is given, and what it reports back.

use std::path::Path;

use candle_core::Device;

use super::{EaseBlend, EaseFit};
use crate::index::CacheStatus;

/// How [`Recommender::load`](super::Recommender::load) finds its pieces.
#[derive(Debug, Clone)]
pub struct RecommenderOptions<'a> {
    /// Item embedding cache (default: `item_embeddings.safetensors` in the checkpoint).
    pub embedding_cache: Option<&'a Path>,
    /// Items per inference batch when the cache must be (re)computed.
    pub batch_size: usize,
    pub ease: Option<EaseBlend>,
    /// Where the encoder and the sequence model run.
    pub device: Device,
}

impl Default for RecommenderOptions<'_> {
    fn default() -> Self {
        Self {
            embedding_cache: None,
            batch_size: 0,
            ease: None,
            device: Device::Cpu,
        }
    }
}

/// What loading did, for the caller to report.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadInfo {
    pub embeddings: CacheStatus,
    pub ease_fit: Option<EaseFit>,
}
