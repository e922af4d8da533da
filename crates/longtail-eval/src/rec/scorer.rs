//! The model interface and full ranking with seen-item exclusion.

use std::cmp::Ordering;

use super::split::{ItemIdx, RecSplit, Stage, UserIdx};
use crate::EvalError;

/// Anything that scores every catalogue item for a user. Higher is better.
///
/// `history` is what the user has interacted with before the target
/// (training items; plus the validation item at test time), in
/// chronological order. `out` has one slot per catalogue item and arrives
/// filled with zeros. Scores must be finite; history items are excluded by
/// the evaluator afterwards, whatever score they get.
pub trait Scorer: Sync {
    /// Name used as the key in the report's `models` map.
    fn name(&self) -> &str;
    fn scores(&self, user: UserIdx, history: &[ItemIdx], out: &mut [f32]);
}

/// Ranking order: score descending, then item index ascending (the
/// deterministic tie break every model and the Python checker share).
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
) -> Result<(), EvalError> {
    if let Some((item, &value)) = scores.iter().enumerate().find(|(_, s)| !s.is_finite()) {
        return Err(EvalError::NonFiniteScore {
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

/// Fills `scores` with `scorer`'s scores for `user` at `stage` (history excluded, all checked
/// finite) and returns the user's target item: the step every ranking metric starts from.
pub fn score_user(
    split: &RecSplit,
    scorer: &dyn Scorer,
    stage: Stage,
    user: UserIdx,
    scores: &mut [f32],
) -> Result<ItemIdx, EvalError> {
    let target = split.target(user, stage).expect("evaluated user");
    let history = split.history(user, stage);
    scores.iter_mut().for_each(|s| *s = 0.0);
    scorer.scores(user, &history, scores);
    exclude_history(scorer.name(), user, &history, scores)?;
    Ok(target)
}

/// 1-based rank of `target` among non-excluded items (scores of excluded
/// items are -inf and never counted).
pub fn target_rank(scores: &[f32], target: ItemIdx) -> u32 {
    let t = scores[target as usize];
    let mut rank = 1u32;
    for (i, &s) in scores.iter().enumerate() {
        if s > t || (s == t && (i as ItemIdx) < target && s != f32::NEG_INFINITY) {
            rank += 1;
        }
    }
    rank
}

/// The best `k` non-excluded items in ranking order.
pub fn top_k(scores: &[f32], k: usize) -> Vec<ItemIdx> {
    let mut cand: Vec<ItemIdx> = (0..scores.len() as ItemIdx)
        .filter(|&i| scores[i as usize] != f32::NEG_INFINITY)
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
    cand
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
        assert_eq!(target_rank(&s, 1), 1);
        assert_eq!(target_rank(&s, 0), 3);
        assert_eq!(target_rank(&s, 2), 4);
        assert_eq!(target_rank(&s, 3), 5);
    }

    #[test]
    fn non_finite_scores_are_errors() {
        let mut s = vec![0.5, f32::NAN];
        assert!(exclude_history("m", 3, &[], &mut s).is_err());
    }
}
