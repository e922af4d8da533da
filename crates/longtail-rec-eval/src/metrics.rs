//! Leave-last-out ranking metrics over all catalogue items.
//!
//! One target per user, so Recall@K is a hit indicator (`rank <= K`) and
//! NDCG@K is `1 / log2(rank + 1)` when `rank <= K`, else 0 (the ideal DCG is
//! 1). Segment values are means over the users of the segment:
//! `overall` = every evaluated user, `tail_items` / `head_items` = users whose
//! target is a tail / head item, `tail_users` = short-history users. An empty
//! segment reports 0 with `users: 0`.
//!
//! List-level measures use each user's top-10 list: `coverage@10` = distinct
//! recommended items / catalogue size, `aplt@10` = mean share of tail items in
//! a list, `gini@10` = Gini coefficient of how often each catalogue item
//! (including never-shown ones) appears in the lists.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use longtail_rec::{exclude_history, top_k, ItemIdx, RecSplit, Scorer, Stage, UserIdx};

use super::segments::Segments;
use crate::RecEvalError;

/// The list length of coverage, APLT and Gini.
pub const LIST_K: usize = 10;
/// Longest cut-off kept per user.
pub const MAX_K: usize = 20;

/// Fills `scores` with `scorer`'s scores for `user` at `stage` (history excluded, all checked
/// finite) and returns the user's target item: the step every ranking metric starts from.
pub fn score_user(
    split: &RecSplit,
    scorer: &dyn Scorer,
    stage: Stage,
    user: UserIdx,
    scores: &mut [f32],
) -> Result<ItemIdx, RecEvalError> {
    let target = split.target(user, stage).expect("evaluated user");
    let history = split.history(user, stage);
    scores.iter_mut().for_each(|s| *s = 0.0);
    scorer.scores(user, &history, scores);
    exclude_history(scorer.name(), user, &history, scores)?;
    Ok(target)
}

/// 1-based rank of `target` among non-excluded items (scores of excluded items are -inf and
/// never counted).
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

/// What one user's ranking produced.
#[derive(Debug, Clone, PartialEq)]
pub struct UserOutcome {
    pub user: UserIdx,
    pub target: ItemIdx,
    /// 1-based rank of the target among non-excluded items.
    pub rank: u32,
    /// The top [`MAX_K`] items (fewer if the catalogue runs out).
    pub top: Vec<ItemIdx>,
}

/// Metrics over one group of users.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SegmentMetrics {
    pub users: u64,
    #[serde(rename = "recall@10")]
    pub recall_10: f64,
    #[serde(rename = "recall@20")]
    pub recall_20: f64,
    #[serde(rename = "ndcg@10")]
    pub ndcg_10: f64,
    #[serde(rename = "ndcg@20")]
    pub ndcg_20: f64,
}

/// One model's entry in the report's `models` map.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelMetrics {
    pub overall: SegmentMetrics,
    pub tail_items: SegmentMetrics,
    pub head_items: SegmentMetrics,
    pub tail_users: SegmentMetrics,
    #[serde(rename = "coverage@10")]
    pub coverage_10: f64,
    #[serde(rename = "aplt@10")]
    pub aplt_10: f64,
    #[serde(rename = "gini@10")]
    pub gini_10: f64,
}

pub fn recall_at(rank: u32, k: usize) -> f64 {
    if rank as usize <= k {
        1.0
    } else {
        0.0
    }
}

pub fn ndcg_at(rank: u32, k: usize) -> f64 {
    if rank as usize <= k {
        1.0 / (rank as f64 + 1.0).log2()
    } else {
        0.0
    }
}

/// Scores every evaluated user at `stage` in parallel (one score buffer per thread, history
/// excluded) and maps each user, target and scores through `f`.
pub fn map_users<T: Send>(
    split: &RecSplit,
    scorer: &dyn Scorer,
    stage: Stage,
    f: impl Fn(UserIdx, ItemIdx, &[f32]) -> T + Sync,
) -> Result<Vec<T>, RecEvalError> {
    let n = split.n_items();
    split
        .eval_users()
        .into_par_iter()
        .map_init(
            || vec![0f32; n],
            |buf, user| {
                let target = score_user(split, scorer, stage, user, buf)?;
                Ok(f(user, target, buf))
            },
        )
        .collect()
}

/// Ranks every evaluated user's target at `stage` (parallel over users).
pub fn rank_users(
    split: &RecSplit,
    scorer: &dyn Scorer,
    stage: Stage,
) -> Result<Vec<UserOutcome>, RecEvalError> {
    map_users(split, scorer, stage, |user, target, scores| UserOutcome {
        user,
        target,
        rank: target_rank(scores, target),
        top: top_k(scores, MAX_K),
    })
}

fn segment<'a>(outcomes: impl Iterator<Item = &'a UserOutcome>) -> SegmentMetrics {
    let mut m = SegmentMetrics::default();
    for o in outcomes {
        m.users += 1;
        m.recall_10 += recall_at(o.rank, 10);
        m.recall_20 += recall_at(o.rank, 20);
        m.ndcg_10 += ndcg_at(o.rank, 10);
        m.ndcg_20 += ndcg_at(o.rank, 20);
    }
    if m.users > 0 {
        let n = m.users as f64;
        m.recall_10 /= n;
        m.recall_20 /= n;
        m.ndcg_10 /= n;
        m.ndcg_20 /= n;
    }
    m
}

/// Coverage, APLT and Gini of the given lists (each truncated to `k`).
pub fn list_measures<'a>(
    lists: impl Iterator<Item = &'a [ItemIdx]>,
    is_tail_item: &[bool],
    k: usize,
) -> (f64, f64, f64) {
    let mut exposure = vec![0u64; is_tail_item.len()];
    let (mut aplt, mut n_lists) = (0.0, 0usize);
    for list in lists {
        let list = &list[..list.len().min(k)];
        if list.is_empty() {
            continue;
        }
        n_lists += 1;
        let tails = list.iter().filter(|&&i| is_tail_item[i as usize]).count();
        aplt += tails as f64 / list.len() as f64;
        for &i in list {
            exposure[i as usize] += 1;
        }
    }
    let covered = exposure.iter().filter(|&&c| c > 0).count();
    let coverage = covered as f64 / is_tail_item.len().max(1) as f64;
    let aplt = if n_lists > 0 {
        aplt / n_lists as f64
    } else {
        0.0
    };
    (coverage, aplt, longtail_data::gini(&exposure))
}

/// All report metrics from ranked outcomes.
pub fn summarize(outcomes: &[UserOutcome], segments: &Segments) -> ModelMetrics {
    let (coverage_10, aplt_10, gini_10) = list_measures(
        outcomes.iter().map(|o| o.top.as_slice()),
        &segments.is_tail_item,
        LIST_K,
    );
    ModelMetrics {
        overall: segment(outcomes.iter()),
        tail_items: segment(outcomes.iter().filter(|o| segments.item_is_tail(o.target))),
        head_items: segment(outcomes.iter().filter(|o| !segments.item_is_tail(o.target))),
        tail_users: segment(outcomes.iter().filter(|o| segments.user_is_tail(o.user))),
        coverage_10,
        aplt_10,
        gini_10,
    }
}

/// Ranks and summarises one model at one stage.
pub fn evaluate(
    split: &RecSplit,
    segments: &Segments,
    scorer: &dyn Scorer,
    stage: Stage,
) -> Result<ModelMetrics, RecEvalError> {
    Ok(summarize(&rank_users(split, scorer, stage)?, segments))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segments::SegmentInfo;

    fn outcome(user: u32, target: u32, rank: u32, top: Vec<u32>) -> UserOutcome {
        UserOutcome {
            user,
            target,
            rank,
            top,
        }
    }

    #[test]
    fn hand_computed_segments_and_list_measures() {
        // 4 items, items 2 and 3 are tail; user 1 is a tail user
        let seg = Segments {
            is_tail_item: vec![false, false, true, true],
            is_tail_user: vec![false, true, false],
            info: SegmentInfo {
                tail_rule: "x".into(),
                head_items: 2,
                tail_items: 2,
                tail_user_fraction: 0.2,
                tail_user_max_train: 1,
                tail_users: 1,
            },
        };
        let outs = vec![
            outcome(0, 0, 1, vec![0, 1]),
            outcome(1, 2, 3, vec![0, 1, 2]),
            outcome(2, 3, 15, vec![0, 2]),
        ];
        let m = summarize(&outs, &seg);
        let n3 = 1.0 / 4f64.log2(); // rank 3 -> 1/log2(4) = 0.5
        assert_eq!(m.overall.users, 3);
        assert!((m.overall.recall_10 - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.overall.recall_20 - 1.0).abs() < 1e-12);
        assert!((m.overall.ndcg_10 - (1.0 + n3) / 3.0).abs() < 1e-12);
        let n15 = 1.0 / 16f64.log2(); // 0.25
        assert!((m.overall.ndcg_20 - (1.0 + n3 + n15) / 3.0).abs() < 1e-12);
        assert_eq!(m.tail_items.users, 2);
        assert!((m.tail_items.recall_10 - 0.5).abs() < 1e-12);
        assert!((m.tail_items.ndcg_10 - 0.25).abs() < 1e-12);
        assert_eq!(m.head_items.users, 1);
        assert_eq!(m.head_items.ndcg_10, 1.0);
        assert_eq!(m.tail_users.users, 1);
        assert_eq!(m.tail_users.recall_10, 1.0);
        // items shown: 0,1,2 -> coverage 3/4
        assert!((m.coverage_10 - 0.75).abs() < 1e-12);
        // tail shares 0, 1/3, 1/2
        assert!((m.aplt_10 - (1.0 / 3.0 + 0.5) / 3.0).abs() < 1e-12);
        // exposure [3,2,2,0]: sorted 0,2,2,3; sum (2i-n-1)x = -3*0 -1*2 +1*2 +3*3 = 9; /(4*7)
        assert!((m.gini_10 - 9.0 / 28.0).abs() < 1e-12);
    }

    #[test]
    fn target_rank_counts_ties_by_index_and_skips_excluded_items() {
        let mut s = vec![0.5, 0.9, 0.5, 0.1, 0.9, 0.7];
        exclude_history("m", 0, &[4], &mut s).unwrap();
        // order: 1 (0.9), 5 (0.7), 0 (0.5), 2 (0.5), 3 (0.1); 4 excluded
        assert_eq!(target_rank(&s, 1), 1);
        assert_eq!(target_rank(&s, 0), 3);
        assert_eq!(target_rank(&s, 2), 4);
        assert_eq!(target_rank(&s, 3), 5);
        assert_eq!(top_k(&s, 5).iter().position(|&i| i == 2), Some(3));
    }

    #[test]
    fn ndcg_and_recall_cutoffs() {
        assert_eq!(ndcg_at(1, 10), 1.0);
        assert_eq!(ndcg_at(11, 10), 0.0);
        assert_eq!(recall_at(10, 10), 1.0);
        assert_eq!(recall_at(11, 10), 0.0);
    }
}
