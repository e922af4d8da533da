//! Most-popular baseline: every user gets items by training interaction count.

use crate::scorer::Scorer;
use crate::{ItemIdx, RecSplit, UserIdx};

pub struct MostPopular {
    counts: Vec<f32>,
}

impl MostPopular {
    pub fn fit(split: &RecSplit) -> Self {
        Self {
            counts: split.train_counts().iter().map(|&c| c as f32).collect(),
        }
    }
}

impl Scorer for MostPopular {
    fn name(&self) -> &str {
        "most_popular"
    }

    fn scores(&self, _user: UserIdx, _history: &[ItemIdx], out: &mut [f32]) {
        out.copy_from_slice(&self.counts);
    }
}
