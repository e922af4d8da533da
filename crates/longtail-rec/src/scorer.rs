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
/// are never returned. A short list out of a long catalogue (every evaluation's case) is one
/// pass that keeps the best `k` sorted and skips anything below the current `k`-th score; a
/// long list is a linear-time selection, then a sort of the `k` winners. Both give the same
/// list.
pub fn top_k(scores: &[f32], k: usize) -> Vec<ItemIdx> {
    if k == 0 {
        return Vec::new();
    }
    if k <= 512 && scores.len() >= 8 * k {
        return top_k_scan(scores, k);
    }
    top_k_select(scores, k)
}

/// One pass over `scores`, the best `k` kept sorted: O(n) comparisons with one float each, plus
/// about `k log(n / k)` insertions for scores in random order; no allocation of `n`.
fn top_k_scan(scores: &[f32], k: usize) -> Vec<ItemIdx> {
    let mut best: Vec<ItemIdx> = Vec::with_capacity(k);
    // The k-th best score once `best` is full: anything below it cannot enter.
    let mut floor = f32::NEG_INFINITY;
    for (i, &s) in scores.iter().enumerate() {
        if s == f32::NEG_INFINITY || s.is_nan() || (best.len() == k && s < floor) {
            continue;
        }
        let i = i as ItemIdx;
        if best.len() == k {
            // Equal to the floor: a later index ranks after it (ties break by index).
            if rank_cmp(scores, i, best[k - 1]) != Ordering::Less {
                continue;
            }
            best.pop();
        }
        let at = best.partition_point(|&b| rank_cmp(scores, b, i) == Ordering::Less);
        best.insert(at, i);
        if best.len() == k {
            floor = scores[best[k - 1] as usize];
        }
    }
    best
}

fn top_k_select(scores: &[f32], k: usize) -> Vec<ItemIdx> {
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

    /// The scan and the selection give the same lists, ties, NaN and exclusions included.
    #[test]
    fn the_scan_and_the_selection_agree() {
        let mut state = 7u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            (state >> 33) as u32
        };
        for case in 0..300 {
            let n = 50 + (next() % 3000) as usize;
            let scores: Vec<f32> = (0..n)
                .map(|_| match next() % 20 {
                    0 => f32::NAN,
                    1 => f32::NEG_INFINITY,
                    2 => f32::INFINITY,
                    // few distinct values: many ties
                    r if case % 2 == 0 => (r % 5) as f32,
                    _ => (next() % 10_000) as f32 / 77.0 - 50.0,
                })
                .collect();
            for k in [1, 2, 5, 10, 20, 37, 100] {
                assert_eq!(
                    top_k_scan(&scores, k),
                    top_k_select(&scores, k),
                    "case {case} n {n} k {k}"
                );
            }
        }
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
