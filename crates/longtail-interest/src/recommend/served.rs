//! [`ServedScorer`]: a [`Recommender`]'s ranking as a longtail-rec [`Scorer`], for
//! `eval-rec --plan`.

use longtail_rec::{ItemIdx, Scorer};

use super::Recommender;

/// A plan's (or a checkpoint's) ranking as a longtail-rec [`Scorer`]: `eval-rec --plan`'s
/// `served` row ranks through exactly the code [`Recommender::recommend`] runs.
pub struct ServedScorer<'a> {
    pub rec: &'a Recommender,
    pub name: String,
}

impl Scorer for ServedScorer<'_> {
    fn name(&self) -> &str {
        &self.name
    }

    fn scores(&self, _user: longtail_rec::UserIdx, history: &[ItemIdx], out: &mut [f32]) {
        let h: Vec<usize> = history.iter().map(|&i| i as usize).collect();
        // No history (not evaluated) or an error: all zeros, ties broken by item index.
        if let Ok(Some(s)) = self.rec.ranking_scores(&h) {
            out.copy_from_slice(&s);
        }
    }
}
