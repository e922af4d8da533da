//! The tail-share vs accuracy trade-off as a re-ranking knob ([`longtail_rec::Knob`]) moves,
//! and the validation rule that picks a tail weight from such a curve.

use longtail_rec::{rerank, ItemIdx, Knob, RecSplit, Scorer, Stage};
use serde::{Deserialize, Serialize};

use super::metrics::{list_measures, map_users, ndcg_at, recall_at};
use super::segments::Segments;
use crate::EvalError;

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
) -> Result<Vec<TradeoffPoint>, EvalError> {
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
) -> Result<Vec<TradeoffPoint>, EvalError> {
    const K: usize = 10;
    // per user: (target, one list per knob)
    let per_user: Vec<(ItemIdx, Vec<Vec<ItemIdx>>)> =
        map_users(split, scorer, stage, |_, target, scores| {
            let lists = knobs
                .iter()
                .map(|&knob| rerank(scores, rerank_tail, K, knob))
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
