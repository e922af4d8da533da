//! Head/tail re-ranking of one user's scores, and the tail-share vs accuracy
//! trade-off as the knob moves.
//!
//! Two knobs:
//! * [`Knob::TailWeight`] `L`: scores are z-scored over the candidate
//!   (non-excluded) items, tail items get `+L`, and the top `k` of the
//!   adjusted scores is the list (in adjusted order). `L = 0` is the plain
//!   ranking; a larger `L` never removes a tail item from the list.
//! * [`Knob::TailShare`] `S`: greedy fill of the `k` slots in score order
//!   that reserves slots so the list holds at least `round(S·k)` tail items
//!   when that many candidates exist; the list stays in score order. A list
//!   that already has enough tail items is unchanged.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::metrics::{list_measures, ndcg_at, recall_at};
use super::scorer::{rank_cmp, score_user, top_k, Scorer};
use super::segments::Segments;
use super::split::{ItemIdx, RecSplit, Stage, UserIdx};
use crate::EvalError;

/// How strongly to favour tail items.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "knob", content = "value")]
pub enum Knob {
    TailWeight(f64),
    TailShare(f64),
}

impl Knob {
    pub fn kind(&self) -> &'static str {
        match self {
            Knob::TailWeight(_) => "tail_weight",
            Knob::TailShare(_) => "tail_share",
        }
    }

    pub fn value(&self) -> f64 {
        match *self {
            Knob::TailWeight(v) | Knob::TailShare(v) => v,
        }
    }
}

/// Default grids for the trade-off curves.
pub const WEIGHT_GRID: [f64; 11] = [0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0];
pub const SHARE_GRID: [f64; 11] = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];

/// Tail weights tried when one is chosen on validation: 0, 0.05, ..., 5 (finer than
/// [`WEIGHT_GRID`], whose steps move APLT@10 by 0.1-0.25 near 0.5; a 0-2 grid was too short:
/// on Office the choice sat on its edge).
pub fn selection_grid() -> Vec<f64> {
    (0..=100).map(|i| f64::from(i) / 20.0).collect()
}

/// The re-ranked top-`k` list. `scores` has excluded (seen) items at -inf;
/// they are never returned.
pub fn rerank(scores: &[f32], is_tail: &[bool], k: usize, knob: Knob) -> Vec<ItemIdx> {
    assert_eq!(scores.len(), is_tail.len());
    match knob {
        Knob::TailWeight(l) => top_k(&tail_weighted(scores, is_tail, l), k),
        Knob::TailShare(share) => {
            let want = ((share.clamp(0.0, 1.0) * k as f64).round() as usize).min(k);
            let top = top_k(scores, k);
            let have = top.iter().filter(|&&i| is_tail[i as usize]).count();
            if have >= want {
                return top;
            }
            // the best `want` tail candidates (fewer if the catalogue lacks them)
            let tail_only: Vec<f32> = scores
                .iter()
                .zip(is_tail)
                .map(|(&s, &t)| if t { s } else { f32::NEG_INFINITY })
                .collect();
            let tails = top_k(&tail_only, want);
            // remaining slots: best head items of the plain list (all tail items
            // of the plain list are among `tails`, see module docs)
            let heads = top
                .iter()
                .copied()
                .filter(|&i| !is_tail[i as usize])
                .take(k - tails.len());
            let mut list: Vec<ItemIdx> = tails.iter().copied().chain(heads).collect();
            list.sort_unstable_by(|&a, &b| rank_cmp(scores, a, b));
            list
        }
    }
}

/// The scores the [`Knob::TailWeight`] ranking sorts by: `z(s) + L` for tail items, `z(s)` for
/// head items, z-scored over the candidates (finite scores); excluded items stay -inf.
pub fn tail_weighted(scores: &[f32], is_tail: &[bool], l: f64) -> Vec<f32> {
    let cand = scores.iter().filter(|s| s.is_finite());
    let (n, sum, sq) = cand.fold((0usize, 0f64, 0f64), |(n, s, q), &x| {
        (n + 1, s + x as f64, q + (x as f64) * (x as f64))
    });
    let mean = sum / n.max(1) as f64;
    let sd = (sq / n.max(1) as f64 - mean * mean).max(0.0).sqrt();
    let sd = if sd > 0.0 { sd } else { 1.0 };
    scores
        .iter()
        .zip(is_tail)
        .map(|(&s, &t)| {
            if s.is_finite() {
                ((s as f64 - mean) / sd + if t { l } else { 0.0 }) as f32
            } else {
                s
            }
        })
        .collect()
}

/// A model re-ranked with a fixed tail weight, as a [`Scorer`], so the full metrics (not only
/// the trade-off curve's) can be reported for it. Its ranking is exactly
/// `rerank(.., Knob::TailWeight(weight))` of the inner model's scores.
pub struct TailWeighted<'a> {
    pub name: String,
    pub inner: &'a dyn Scorer,
    pub is_tail: &'a [bool],
    pub weight: f64,
}

impl Scorer for TailWeighted<'_> {
    fn name(&self) -> &str {
        &self.name
    }

    fn scores(&self, user: UserIdx, history: &[ItemIdx], out: &mut [f32]) {
        self.inner.scores(user, history, out);
        // z-score over the same candidates as `rerank`: history is not one of them.
        for &h in history {
            out[h as usize] = f32::NEG_INFINITY;
        }
        let adjusted = tail_weighted(out, self.is_tail, self.weight);
        out.copy_from_slice(&adjusted);
        // The evaluator excludes history itself and wants finite scores.
        for &h in history {
            out[h as usize] = 0.0;
        }
    }
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
    const K: usize = 10;
    let n = split.n_items();
    // per user: (target, one list per knob)
    let per_user: Vec<(ItemIdx, Vec<Vec<ItemIdx>>)> = split
        .eval_users()
        .into_par_iter()
        .map_init(
            || vec![0f32; n],
            |buf, user| {
                let target = score_user(split, scorer, stage, user, buf)?;
                let lists = knobs
                    .iter()
                    .map(|&knob| rerank(buf, &segments.is_tail_item, K, knob))
                    .collect();
                Ok((target, lists))
            },
        )
        .collect::<Result<_, EvalError>>()?;
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

    /// A deterministic synthetic user: 40 items, tail items score lower on
    /// average, a few excluded.
    fn synthetic() -> (Vec<f32>, Vec<bool>) {
        let n = 40;
        let is_tail: Vec<bool> = (0..n).map(|i| i % 3 == 0).collect();
        let scores = (0..n)
            .map(|i| {
                let noise = ((i * 37 % 17) as f32) / 17.0;
                let base = if is_tail[i] { 0.0 } else { 1.0 };
                if i % 11 == 5 {
                    f32::NEG_INFINITY
                } else {
                    base + noise
                }
            })
            .collect();
        (scores, is_tail)
    }

    fn tails(list: &[ItemIdx], is_tail: &[bool]) -> usize {
        list.iter().filter(|&&i| is_tail[i as usize]).count()
    }

    #[test]
    fn zero_knobs_give_the_plain_ranking() {
        let (s, t) = synthetic();
        let plain = top_k(&s, 10);
        assert_eq!(rerank(&s, &t, 10, Knob::TailWeight(0.0)), plain);
        assert_eq!(rerank(&s, &t, 10, Knob::TailShare(0.0)), plain);
    }

    #[test]
    fn tail_share_is_monotone_in_both_knobs_and_never_returns_excluded_items() {
        let (s, t) = synthetic();
        let mut last = 0;
        for &l in &WEIGHT_GRID {
            let list = rerank(&s, &t, 10, Knob::TailWeight(l));
            assert_eq!(list.len(), 10);
            assert!(list.iter().all(|&i| s[i as usize].is_finite()));
            let n = tails(&list, &t);
            assert!(n >= last, "weight {l}: {n} tail < {last}");
            last = n;
        }
        assert!(
            last > tails(&top_k(&s, 10), &t),
            "weights never moved the list"
        );
        let mut last = 0;
        for &share in &SHARE_GRID {
            let list = rerank(&s, &t, 10, Knob::TailShare(share));
            assert_eq!(list.len(), 10);
            let n = tails(&list, &t);
            assert!(n >= (share * 10.0).round() as usize, "share {share}: {n}");
            assert!(n >= last);
            last = n;
            // still in score order
            assert!(list
                .windows(2)
                .all(|w| s[w[0] as usize] >= s[w[1] as usize]));
        }
        assert_eq!(last, 10);
    }

    #[test]
    fn share_fills_with_head_items_when_tail_runs_out() {
        let s = vec![0.9, 0.8, 0.7, 0.1];
        let t = vec![false, false, false, true];
        let list = rerank(&s, &t, 3, Knob::TailShare(1.0));
        assert_eq!(list, vec![0, 1, 3]);
    }

    struct Fixed(Vec<f32>);
    impl Scorer for Fixed {
        fn name(&self) -> &str {
            "fixed"
        }
        fn scores(&self, _u: UserIdx, _h: &[ItemIdx], out: &mut [f32]) {
            out.copy_from_slice(&self.0);
        }
    }

    #[test]
    fn tail_weighted_scorer_ranks_like_rerank() {
        let (s, t) = synthetic();
        // the synthetic user's excluded items are its history
        let history: Vec<ItemIdx> = (0..s.len() as ItemIdx)
            .filter(|&i| !s[i as usize].is_finite())
            .collect();
        let raw: Vec<f32> = s
            .iter()
            .map(|&x| if x.is_finite() { x } else { 9.0 })
            .collect();
        let inner = Fixed(raw);
        for &l in &WEIGHT_GRID {
            let scorer = TailWeighted {
                name: "w".into(),
                inner: &inner,
                is_tail: &t,
                weight: l,
            };
            let mut out = vec![0f32; s.len()];
            scorer.scores(0, &history, &mut out);
            crate::rec::scorer::exclude_history("w", 0, &history, &mut out).unwrap();
            assert_eq!(
                top_k(&out, 10),
                rerank(&s, &t, 10, Knob::TailWeight(l)),
                "L={l}"
            );
        }
    }

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
