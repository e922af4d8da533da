//! [`Shard`]: which contiguous row blocks of the input one run scores.

use crate::error::{InferError, Result};

/// Shard `index` of `count` (0-based, as Kubernetes' JOB_COMPLETION_INDEX and Slurm's
/// SLURM_ARRAY_TASK_ID with `--array=0-(N-1)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Default for Shard {
    fn default() -> Self {
        Self { index: 0, count: 1 }
    }
}

impl Shard {
    /// Parses `k/N` with `0 <= k < N`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || InferError::Invalid(format!("shard {s:?}: expected k/N with 0 <= k < N"));
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u64 = k.trim().parse().map_err(|_| bad())?;
        let count: u64 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }

    /// Rows `[start, end)` of this shard in an input of `total` rows cut into blocks of
    /// `block` rows.
    pub fn row_range(self, total: u64, block: u64) -> (u64, u64) {
        let blocks = total.div_ceil(block);
        let first = self.index * blocks / self.count;
        let last = (self.index + 1) * blocks / self.count;
        ((first * block).min(total), (last * block).min(total))
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}
