//! The model interface, the ranking order and top-K with seen-item exclusion.
//!
//! NaN policy (the one every ranking in longtail follows): a score of `-inf` marks an
//! excluded item and a NaN score is no score at all; [`top_k`] never returns either. Evaluation
//! is stricter: [`exclude_history`] rejects any non-finite score a model produced.

use std::cmp::Ordering;

use crate::{ItemIdx, RecError, UserIdx};

/// Anything that scores every catalogue item for a user. Higher is better.
///
/// `history` is what the user has interacted with before the target (at evaluation: training
/// items, plus the validation item at test time), in chronological order. `out` has one slot
/// per catalogue item and arrives filled with zeros. Scores must be finite; history items are
/// excluded by the caller afterwards, whatever score they get.
pub trait Scorer: Sync {
    /// Name used as the key in the report's `models` map.
    fn name(&self) -> &str;
    fn scores(&self, user: UserIdx, history: &[ItemIdx], out: &mut [f32]);
}

/// A shared model scores as the model (e.g. a fitted matrix that is also saved).
impl<T: Scorer + Send + ?Sized> Scorer for std::sync::Arc<T> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn scores(&self, user: UserIdx, history: &[ItemIdx], out: &mut [f32]) {
        (**self).scores(user, history, out)
    }
}

/// Ranking order: score descending, then item index ascending (the deterministic tie break
/// every model and the Python checker share). Only meaningful for non-NaN scores.
#[inline]
pub fn rank_cmp(scores: &[f32], a: ItemIdx, b: ItemIdx) -> Ordering {
    scores[b as usize]
        .partial_cmp(&scores[a as usize])
        .unwrap_or(Ordering::Equal)
        .then(a.cmp(&b))
}

/// Checks scores are finite, then marks `history` as excluded (-inf).
pub fn exclude_history(
    model: &str,
    user: UserIdx,
    history: &[ItemIdx],
    scores: &mut [f32],
) -> Result<(), RecError> {
    if let Some((item, &value)) = scores.iter().enumerate().find(|(_, s)| !s.is_finite()) {
        return Err(RecError::NonFiniteScore {
            model: model.to_string(),
            user,
            item: item as u32,
            value,
        });
    }
    for &h in history {
        scores[h as usize] = f32::NEG_INFINITY;
    }
    Ok(())
}

/// The best `k` items in ranking order ([`rank_cmp`]); items scored `-inf` (excluded) or NaN
/// are never returned. Linear-time selection, then a sort of the `k` winners.
pub fn top_k(scores: &[f32], k: usize) -> Vec<ItemIdx> {
    let mut cand: Vec<ItemIdx> = (0..scores.len() as ItemIdx)
        .filter(|&i| {
            let s = scores[i as usize];
            s != f32::NEG_INFINITY && !s.is_nan()
        })
        .collect();
    let k = k.min(cand.len());
    if k == 0 {
        return Vec::new();
    }
    if k < cand.len() {
        cand.select_nth_unstable_by(k - 1, |&a, &b| rank_cmp(scores, a, b));
        cand.truncate(k);
    }
    cand.sort_unstable_by(|&a, &b| rank_cmp(scores, a, b));
    // The candidates held the whole catalogue: keep k slots, not n (a trade-off curve keeps
    // one list per user and knob: 101 knobs x 22k users x 12k items of capacity was 100 GB).
    cand.shrink_to_fit();
    cand
}

/// [`top_k`] of `scores` with the items in `exclude` left out, with their scores.
pub fn top_k_excluding(scores: &[f32], k: usize, exclude: &[usize]) -> Vec<(usize, f32)> {
    let mut masked = scores.to_vec();
    for &e in exclude {
        if let Some(s) = masked.get_mut(e) {
            *s = f32::NEG_INFINITY;
        }
    }
    top_k(&masked, k)
        .into_iter()
        .map(|i| (i as usize, scores[i as usize]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_with_ties_and_exclusions() {
        let mut s = vec![0.5, 0.9, 0.5, 0.1, 0.9, 0.7];
        exclude_history("m", 0, &[4], &mut s).unwrap();
        // order: 1 (0.9), 5 (0.7), 0 (0.5), 2 (0.5), 3 (0.1); 4 excluded
        assert_eq!(top_k(&s, 3), vec![1, 5, 0]);
        assert_eq!(top_k(&s, 10), vec![1, 5, 0, 2, 3]);
        assert!(top_k(&s, 0).is_empty());
    }

    #[test]
    fn non_finite_scores_are_errors() {
        let mut s = vec![0.5, f32::NAN];
        assert!(exclude_history("m", 3, &[], &mut s).is_err());
    }

    #[test]
    fn nan_and_excluded_items_are_never_returned() {
        let s = [
            f32::NAN,
            0.2,
            f32::NEG_INFINITY,
            f32::NAN,
            -5.0,
            f32::INFINITY,
        ];
        // NaN anywhere must not disturb the order of the others, whatever k.
        assert_eq!(top_k(&s, 10), vec![5, 1, 4]);
        assert_eq!(top_k(&s, 2), vec![5, 1]);
        let all_nan = [f32::NAN; 4];
        assert!(top_k(&all_nan, 3).is_empty());
        assert_eq!(top_k_excluding(&s, 10, &[5]), vec![(1, 0.2), (4, -5.0)]);
    }

    #[test]
    fn excluding_agrees_with_a_brute_force_sort() {
        let s = [0.1, 0.9, 0.5, 0.9, -1.0, 0.7];
        assert_eq!(
            top_k_excluding(&s, 3, &[]),
            vec![(1, 0.9), (3, 0.9), (5, 0.7)]
        );
        assert_eq!(
            top_k_excluding(&s, 3, &[1, 5, 99]),
            vec![(3, 0.9), (2, 0.5), (0, 0.1)]
        );
        assert_eq!(top_k_excluding(&s, 10, &[0, 1, 2, 3]).len(), 2);
        let big: Vec<f32> = (0..500).map(|i| ((i * 7919) % 1000) as f32 / 7.0).collect();
        let excl: Vec<usize> = (0..500).step_by(3).collect();
        let mut brute: Vec<(usize, f32)> = big
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 != 0)
            .map(|(i, &v)| (i, v))
            .collect();
        brute.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        brute.truncate(20);
        assert_eq!(top_k_excluding(&big, 20, &excl), brute);
    }
}
