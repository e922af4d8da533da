//! Most-popular baseline: every user gets items by training interaction count.

use crate::scorer::Scorer;
use crate::{ItemIdx, RecSplit, UserIdx};

pub struct MostPopular {
    counts: Vec<f32>,
}

impl MostPopular {
    pub fn fit(split: &RecSplit) -> Self {
        Self::from_counts(split.train_counts().iter().map(|&c| c as f32).collect())
    }

    /// Scores = `counts` (a plan's saved training counts).
    pub fn from_counts(counts: Vec<f32>) -> Self {
        Self { counts }
    }

    pub fn counts(&self) -> &[f32] {
        &self.counts
    }
}

impl Scorer for MostPopular {
    fn name(&self) -> &str {
        "most_popular"
    }

    fn scores(&self, _user: UserIdx, _history: &[ItemIdx], out: &mut [f32]) {
        // Items listed after the fit (past the counts) keep 0.
        for (o, &c) in out.iter_mut().zip(&self.counts) {
            *o = c;
        }
    }
}
