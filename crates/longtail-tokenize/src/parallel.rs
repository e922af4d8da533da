//! Stage 5: parallel encoding of many items, order preserved.

use rayon::prelude::*;

use crate::error::Result;
use crate::fields::FieldSource;
use crate::tokenizer::{Encoded, ItemTokenizer};

impl ItemTokenizer {
    /// Encodes `items` on the tokenizer's dedicated pool (`TokenizeConfig::num_threads`) or, if
    /// none was configured, on the current rayon pool. `out[i]` is the encoding of `items[i]`.
    /// Stops at the first error.
    pub fn encode_batch_parallel<F: FieldSource + Sync>(
        &self,
        items: &[F],
    ) -> Result<Vec<Encoded>> {
        self.install(|| items.par_iter().map(|it| self.encode_item(it)).collect())
    }

    /// Runs `f` on the dedicated pool if there is one, else in place.
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }

    /// Threads `encode_batch_parallel` uses.
    pub fn num_threads(&self) -> usize {
        self.pool
            .as_ref()
            .map_or_else(rayon::current_num_threads, |p| p.current_num_threads())
    }
}
