//! The interest model as a longtail-rec [`Scorer`] (`longtail` in `eval-rec`).

use longtail_rec::{ItemIdx, Scorer, UserIdx};

use crate::index::InterestIndex;

/// Cosine similarity of the user vector (from `history`) to every item.
pub struct InterestScorer<'a> {
    pub index: &'a InterestIndex,
    pub name: String,
}

impl Scorer for InterestScorer<'_> {
    fn name(&self) -> &str {
        &self.name
    }

    fn scores(&self, _user: UserIdx, history: &[ItemIdx], out: &mut [f32]) {
        let h: Vec<usize> = history.iter().map(|&i| i as usize).collect();
        // No history: all zeros (ties broken by item index), as the evaluator expects.
        if let Some(s) = self.index.scores(&h) {
            out.copy_from_slice(&s);
        }
    }
}
