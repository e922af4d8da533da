//! Head/tail re-ranking of one user's scores.
//!
//! Two knobs:
//! * [`Knob::TailWeight`] `L`: scores are z-scored over the candidate (non-excluded) items,
//!   tail items get `+L`, and the top `k` of the adjusted scores is the list (in adjusted
//!   order). `L = 0` is the plain ranking; a larger `L` never removes a tail item from the
//!   list.
//! * [`Knob::TailShare`] `S`: greedy fill of the `k` slots in score order that reserves slots
//!   so the list holds at least `round(S·k)` tail items when that many candidates exist; the
//!   list stays in score order. A list that already has enough tail items is unchanged.

use serde::{Deserialize, Serialize};

use crate::scorer::{rank_cmp, top_k, Scorer};
use crate::{ItemIdx, UserIdx};

/// How strongly to favour tail items.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "knob", content = "value")]
pub enum Knob {
    TailWeight(f64),
    TailShare(f64),
}

/// A knob value out of its range (the one check `recommend`, `serve` and plan loading use).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KnobError {
    #[error("tail_weight must be a finite number >= 0, got {0}")]
    TailWeight(f64),
    #[error("tail_share must be in [0, 1], got {0}")]
    TailShare(f64),
    #[error("give at most one of tail_weight and tail_share")]
    Both,
}

impl Knob {
    /// The knob of a request or command line that may give either value (or neither).
    pub fn from_options(
        tail_weight: Option<f64>,
        tail_share: Option<f64>,
    ) -> Result<Option<Knob>, KnobError> {
        match (tail_weight, tail_share) {
            (Some(_), Some(_)) => Err(KnobError::Both),
            (Some(l), None) => Knob::TailWeight(l).validated().map(Some),
            (None, Some(s)) => Knob::TailShare(s).validated().map(Some),
            (None, None) => Ok(None),
        }
    }

    /// The knob itself when its value is in range: a tail weight is finite and >= 0, a tail
    /// share in [0, 1].
    pub fn validated(self) -> Result<Knob, KnobError> {
        match self {
            Knob::TailWeight(l) if !(l.is_finite() && l >= 0.0) => Err(KnobError::TailWeight(l)),
            Knob::TailShare(s) if !(0.0..=1.0).contains(&s) => Err(KnobError::TailShare(s)),
            k => Ok(k),
        }
    }

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

/// The re-ranked top-`k` list. `scores` has excluded (seen) items at -inf; they are never
/// returned. `knob` must be [`Knob::validated`] (callers check their input once, up front).
pub fn rerank(scores: &[f32], is_tail: &[bool], k: usize, knob: Knob) -> Vec<ItemIdx> {
    assert_eq!(scores.len(), is_tail.len());
    debug_assert!(knob.validated().is_ok(), "unvalidated {knob:?}");
    match knob {
        Knob::TailWeight(l) => top_k(&tail_weighted(scores, is_tail, l), k),
        Knob::TailShare(share) => {
            let want = ((share * k as f64).round() as usize).min(k);
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
            // remaining slots: best head items of the plain list (all tail items of the plain
            // list are among `tails`, see module docs)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scorer::exclude_history;

    const WEIGHTS: [f64; 11] = [0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0];
    const SHARES: [f64; 11] = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];

    /// A deterministic synthetic user: 40 items, tail items score lower on average, a few
    /// excluded.
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
        for &l in &WEIGHTS {
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
        for &share in &SHARES {
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
        for &l in &WEIGHTS {
            let scorer = TailWeighted {
                name: "w".into(),
                inner: &inner,
                is_tail: &t,
                weight: l,
            };
            let mut out = vec![0f32; s.len()];
            scorer.scores(0, &history, &mut out);
            exclude_history("w", 0, &history, &mut out).unwrap();
            assert_eq!(
                top_k(&out, 10),
                rerank(&s, &t, 10, Knob::TailWeight(l)),
                "L={l}"
            );
        }
    }

    #[test]
    fn knobs_are_validated_once_here() {
        assert_eq!(Knob::from_options(None, None), Ok(None));
        assert_eq!(
            Knob::from_options(Some(0.5), None),
            Ok(Some(Knob::TailWeight(0.5)))
        );
        assert_eq!(
            Knob::from_options(None, Some(1.0)),
            Ok(Some(Knob::TailShare(1.0)))
        );
        assert_eq!(
            Knob::from_options(None, Some(2.0)),
            Err(KnobError::TailShare(2.0)),
            "a share over 1 is refused, not clamped"
        );
        assert_eq!(
            Knob::from_options(Some(-1.0), None),
            Err(KnobError::TailWeight(-1.0))
        );
        assert!(Knob::from_options(Some(f64::NAN), None).is_err());
        assert!(Knob::from_options(Some(f64::INFINITY), None).is_err());
        assert_eq!(
            Knob::from_options(Some(1.0), Some(0.5)),
            Err(KnobError::Both)
        );
        assert!(Knob::TailShare(-0.1).validated().is_err());
        assert_eq!(
            KnobError::TailShare(2.0).to_string(),
            "tail_share must be in [0, 1], got 2"
        );
    }
}
