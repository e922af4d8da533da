//! The interest model as a longtail-rec [`Scorer`] (`longtail` in `eval-rec`).

use std::collections::HashMap;

use longtail_rec::{ItemIdx, Scorer, UserIdx};

use crate::error::Result;
use crate::index::InterestIndex;

/// Cosine similarity of the user vector (from `history`) to every item. User vectors of the
/// histories given to [`Self::precompute`] are computed once, in batches (a sequence model
/// otherwise runs one forward pass per user per evaluation).
pub struct InterestScorer<'a> {
    pub index: &'a InterestIndex,
    pub name: String,
    users: HashMap<Vec<ItemIdx>, Vec<f32>>,
}

impl<'a> InterestScorer<'a> {
    pub fn new(index: &'a InterestIndex, name: impl Into<String>) -> Self {
        Self {
            index,
            name: name.into(),
            users: HashMap::new(),
        }
    }

    /// Computes and keeps the user vectors of `histories` (empty ones are skipped).
    pub fn precompute(mut self, histories: &[Vec<ItemIdx>]) -> Result<Self> {
        for chunk in histories.chunks(512) {
            let h: Vec<Vec<usize>> = chunk
                .iter()
                .map(|h| h.iter().map(|&i| i as usize).collect())
                .collect();
            let refs: Vec<&[usize]> = h.iter().map(|v| v.as_slice()).collect();
            for (hist, v) in chunk.iter().zip(self.index.user_vectors(&refs)?) {
                if let Some(v) = v {
                    self.users.insert(hist.clone(), v);
                }
            }
        }
        Ok(self)
    }
}

impl Scorer for InterestScorer<'_> {
    fn name(&self) -> &str {
        &self.name
    }

    fn scores(&self, _user: UserIdx, history: &[ItemIdx], out: &mut [f32]) {
        if let Some(u) = self.users.get(history) {
            out.copy_from_slice(&self.index.scores_of(u));
            return;
        }
        let h: Vec<usize> = history.iter().map(|&i| i as usize).collect();
        // No history: all zeros (ties broken by item index), as the evaluator expects.
        if let Some(s) = self.index.scores(&h) {
            out.copy_from_slice(&s);
        }
    }
}
