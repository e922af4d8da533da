//! The tail-share vs accuracy trade-off as a re-ranking knob ([`longtail_rec::Knob`]) moves,
//! and the validation rule that picks a tail weight from such a curve.

use longtail_rec::{rerank, top_k, ItemIdx, Knob, RecSplit, Scorer, Stage};
use serde::{Deserialize, Serialize};

use super::metrics::{list_measures, map_users, ndcg_at, recall_at};
use super::segments::Segments;
use crate::RecEvalError;

/// Default grids for the trade-off curves.
pub const WEIGHT_GRID: [f64; 11] = [0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0];
pub const SHARE_GRID: [f64; 11] = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];

/// Tail weights tried when one is chosen on validation: 0, 0.05, ..., 5 (finer than
/// [`WEIGHT_GRID`], whose steps move APLT@10 by 0.1-0.25 near 0.5; a 0-2 grid was too short:
/// on Office the choice sat on its edge).
pub fn selection_grid() -> Vec<f64> {
    (0..=100).map(|i| f64::from(i) / 20.0).collect()
}

/// The selection rule of a tail weight on a validation curve: the largest tail-item Recall@10
/// among the points with NDCG@10 >= `ndcg_floor` (ties: the smaller weight). `None` when no
/// point meets the floor.
pub fn choose_tail_weight(validation: &[TradeoffPoint], ndcg_floor: f64) -> Option<f64> {
    validation
        .iter()
        .filter_map(|p| match p.knob {
            Knob::TailWeight(l) if p.ndcg_10 >= ndcg_floor => Some((l, p.tail_recall_10)),
            _ => None,
        })
        .fold(None, |best: Option<(f64, f64)>, (l, r)| match best {
            Some((bl, br)) if br > r || (br == r && bl <= l) => Some((bl, br)),
            _ => Some((l, r)),
        })
        .map(|(l, _)| l)
}

/// One point of a trade-off curve (lists of length 10).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TradeoffPoint {
    #[serde(flatten)]
    pub knob: Knob,
    #[serde(rename = "aplt@10")]
    pub aplt_10: f64,
    #[serde(rename = "ndcg@10")]
    pub ndcg_10: f64,
    #[serde(rename = "recall@10")]
    pub recall_10: f64,
    #[serde(rename = "tail_recall@10")]
    pub tail_recall_10: f64,
    #[serde(rename = "coverage@10")]
    pub coverage_10: f64,
}

/// Re-ranks every evaluated user's scores with each knob; scores are
/// computed once per user.
pub fn tradeoff_curve(
    split: &RecSplit,
    segments: &Segments,
    scorer: &dyn Scorer,
    stage: Stage,
    knobs: &[Knob],
) -> Result<Vec<TradeoffPoint>, RecEvalError> {
    tradeoff_curve_labelled(
        split,
        segments,
        scorer,
        stage,
        knobs,
        &segments.is_tail_item,
    )
}

/// [`tradeoff_curve`] whose re-ranking favours the items `rerank_tail` marks (e.g. the
/// prepared labels a served plan re-ranks by); the measures still use `segments`.
pub fn tradeoff_curve_labelled(
    split: &RecSplit,
    segments: &Segments,
    scorer: &dyn Scorer,
    stage: Stage,
    knobs: &[Knob],
    rerank_tail: &[bool],
) -> Result<Vec<TradeoffPoint>, RecEvalError> {
    const K: usize = 10;
    let weights: Vec<f64> = knobs
        .iter()
        .filter_map(|k| match k {
            Knob::TailWeight(l) => Some(*l),
            Knob::TailShare(_) => None,
        })
        .collect();
    // per user: (target, one list per knob)
    let per_user: Vec<(ItemIdx, Vec<Vec<ItemIdx>>)> =
        map_users(split, scorer, stage, |_, target, scores| {
            let mut by_weight = tail_weight_lists(scores, rerank_tail, K, &weights).into_iter();
            let lists = knobs
                .iter()
                .map(|&knob| match knob {
                    Knob::TailWeight(_) => by_weight.next().expect("one list per weight"),
                    Knob::TailShare(_) => rerank(scores, rerank_tail, K, knob),
                })
                .collect();
            (target, lists)
        })?;
    let mut points = Vec::with_capacity(knobs.len());
    for (j, &knob) in knobs.iter().enumerate() {
        let (mut ndcg, mut recall, mut tail_hits, mut tail_users) = (0.0, 0.0, 0.0, 0usize);
        for (target, lists) in &per_user {
            let rank = lists[j]
                .iter()
                .position(|i| i == target)
                .map_or(u32::MAX, |p| p as u32 + 1);
            ndcg += ndcg_at(rank, K);
            recall += recall_at(rank, K);
            if segments.item_is_tail(*target) {
                tail_users += 1;
                tail_hits += recall_at(rank, K);
            }
        }
        let users = per_user.len().max(1) as f64;
        let (coverage, aplt, _) = list_measures(
            per_user.iter().map(|(_, l)| l[j].as_slice()),
            &segments.is_tail_item,
            K,
        );
        points.push(TradeoffPoint {
            knob,
            aplt_10: aplt,
            ndcg_10: ndcg / users,
            recall_10: recall / users,
            tail_recall_10: tail_hits / tail_users.max(1) as f64,
            coverage_10: coverage,
        });
    }
    Ok(points)
}

/// `rerank(scores, is_tail, k, Knob::TailWeight(l))` for every `l` of `weights`, computed
/// from the best `k + 10` head and `k + 10` tail items only: adding `l` to tail items keeps
/// the order within each group, so a top-`k` list is drawn from those two shortlists (the 10
/// extra per group absorb rounding ties of the adjusted f32 scores). Same arithmetic as
/// [`longtail_rec::tail_weighted`], so the lists are the same (tested); one pass over the
/// catalogue per user instead of one per weight.
pub fn tail_weight_lists(
    scores: &[f32],
    is_tail: &[bool],
    k: usize,
    weights: &[f64],
) -> Vec<Vec<ItemIdx>> {
    if weights.is_empty() {
        return Vec::new();
    }
    let (n, sum, sq) = scores
        .iter()
        .filter(|s| s.is_finite())
        .fold((0usize, 0f64, 0f64), |(n, s, q), &x| {
            (n + 1, s + x as f64, q + (x as f64) * (x as f64))
        });
    let mean = sum / n.max(1) as f64;
    let sd = (sq / n.max(1) as f64 - mean * mean).max(0.0).sqrt();
    let sd = if sd > 0.0 { sd } else { 1.0 };
    let group = |tail: bool| -> Vec<ItemIdx> {
        let masked: Vec<f32> = scores
            .iter()
            .zip(is_tail)
            .map(|(&s, &t)| {
                if t == tail && s.is_finite() {
                    s
                } else {
                    f32::NEG_INFINITY
                }
            })
            .collect();
        top_k(&masked, k + 10)
    };
    let short: Vec<(ItemIdx, f64, bool)> = group(false)
        .into_iter()
        .map(|i| (i, (scores[i as usize] as f64 - mean) / sd, false))
        .chain(
            group(true)
                .into_iter()
                .map(|i| (i, (scores[i as usize] as f64 - mean) / sd, true)),
        )
        .collect();
    weights
        .iter()
        .map(|&l| {
            let mut adj: Vec<(ItemIdx, f32)> = short
                .iter()
                .map(|&(i, z, t)| (i, (z + if t { l } else { 0.0 }) as f32))
                .collect();
            adj.sort_unstable_by(|a, b| {
                b.1.partial_cmp(&a.1)
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then(a.0.cmp(&b.0))
            });
            adj.truncate(k);
            adj.into_iter().map(|(i, _)| i).collect()
        })
        .collect()
}

/// Both default curves: tail weight over [`WEIGHT_GRID`], tail share over
/// [`SHARE_GRID`].
pub fn default_knobs() -> Vec<Knob> {
    WEIGHT_GRID
        .iter()
        .map(|&l| Knob::TailWeight(l))
        .chain(SHARE_GRID.iter().map(|&s| Knob::TailShare(s)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(l: f64, ndcg: f64, tail: f64) -> TradeoffPoint {
        TradeoffPoint {
            knob: Knob::TailWeight(l),
            aplt_10: 0.0,
            ndcg_10: ndcg,
            recall_10: 0.0,
            tail_recall_10: tail,
            coverage_10: 0.0,
        }
    }

    #[test]
    fn shortlisted_tail_weight_lists_equal_the_full_rerank() {
        // Pseudo-random scores with many exact ties (ID models score 0 for most items),
        // excluded items, and every tail share.
        for seed in 0..40u64 {
            let n = 200 + (seed as usize * 37) % 300;
            let mut x = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let mut next = || {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 33) as u32
            };
            let scores: Vec<f32> = (0..n)
                .map(|_| match next() % 10 {
                    0 => f32::NEG_INFINITY,
                    1..=4 => 0.0,
                    5 => 1.0,
                    _ => (next() % 1000) as f32 / 37.0,
                })
                .collect();
            let tail_every = 2 + (seed as u32 % 5);
            let is_tail: Vec<bool> = (0..n).map(|_| next() % tail_every == 0).collect();
            let weights = selection_grid();
            let fast = tail_weight_lists(&scores, &is_tail, 10, &weights);
            for (l, list) in weights.iter().zip(&fast) {
                let full = rerank(&scores, &is_tail, 10, Knob::TailWeight(*l));
                assert_eq!(list, &full, "seed {seed}, weight {l}");
            }
        }
    }

    #[test]
    fn tail_weight_choice_respects_the_ndcg_floor() {
        let curve = [
            point(0.0, 0.050, 0.04),
            point(0.5, 0.045, 0.07),
            point(1.0, 0.040, 0.07),
            point(2.0, 0.030, 0.10),
        ];
        // 2.0 has the most tail recall but is below the floor; 0.5 and 1.0 tie: smaller wins.
        assert_eq!(choose_tail_weight(&curve, 0.035), Some(0.5));
        assert_eq!(choose_tail_weight(&curve, 0.0), Some(2.0));
        assert_eq!(choose_tail_weight(&curve, 0.046), Some(0.0));
        assert_eq!(choose_tail_weight(&curve, 0.06), None);
        let mut share = point(0.0, 0.09, 0.5);
        share.knob = Knob::TailShare(0.5);
        assert_eq!(
            choose_tail_weight(&[share], 0.0),
            None,
            "only tail weights count"
        );
    }
}
