//! Explanations of a blend's list: the history item whose removal lowers each item's blended
//! score most (leave-one-out).

use longtail_rec::{zstats, ItemIdx};

use super::{interest_of, Part, Recommender, Source};
use crate::error::Result;

/// Histories the leave-one-out explanation of a blend considers (the most recent ones).
const EXPLAIN_WINDOW: usize = 50;

impl Recommender {
    /// Leave-one-out over the last [`EXPLAIN_WINDOW`] history items: the one whose removal
    /// lowers the blended score of each item most, each component's change measured on its
    /// z-score scale for the full history.
    pub(super) fn explain_blend(
        &self,
        parts: &[Part],
        history: &[usize],
        items: &[usize],
        raw: &[Vec<f32>],
    ) -> Result<Vec<Option<usize>>> {
        let window = &history[history.len() - history.len().min(EXPLAIN_WINDOW)..];
        if window.len() == 1 {
            return Ok(vec![Some(window[0]); items.len()]);
        }
        let h: Vec<ItemIdx> = history.iter().map(|&i| i as ItemIdx).collect();
        // drop[j][t]: the blended score item t loses when window[j] is removed
        let mut drop = vec![vec![0f32; items.len()]; window.len()];
        let variants: Vec<Vec<usize>> = (0..window.len())
            .map(|j| {
                let skip = history.len() - window.len() + j;
                history
                    .iter()
                    .enumerate()
                    .filter(|&(i, _)| i != skip)
                    .map(|(_, &x)| x)
                    .collect()
            })
            .collect();
        for (p, s) in parts.iter().zip(raw) {
            let Some((_, sd)) = zstats(s, &h) else {
                continue;
            };
            let scale = p.weight / sd as f32;
            if let Some(index) = interest_of(&self.index, &p.source) {
                let refs: Vec<&[usize]> = variants.iter().map(|v| v.as_slice()).collect();
                for (j, u) in index.user_vectors(&refs)?.into_iter().enumerate() {
                    let without = match u {
                        Some(u) => index.score_items(&u, items),
                        None => vec![0.0; items.len()],
                    };
                    for (t, &item) in items.iter().enumerate() {
                        drop[j][t] += scale * (s[item] - without[t]);
                    }
                }
            } else if let Source::ItemItem(m) = &p.source {
                // Removing item r lowers every score by its row: B[r, item].
                let fitted = m.n();
                for (j, &removed) in window.iter().enumerate() {
                    for (t, &item) in items.iter().enumerate() {
                        if removed < fitted && item < fitted {
                            drop[j][t] += scale * m.matrix()[removed * fitted + item];
                        }
                    }
                }
            }
            // Popularity does not depend on the history.
        }
        Ok((0..items.len())
            .map(|t| {
                (0..window.len())
                    .map(|j| (window[j], drop[j][t]))
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(item, _)| item)
            })
            .collect())
    }
}
