//! Stage 2 of the plan search: the weights moved for the validation tail-item Recall@10 of
//! the served ranking (the blend re-ranked with the tail weight the budget rule gives it),
//! within the relevance budget. The per-user data it needs rides in the parent's
//! [`CandidateTable`] (built with [`CandidateTable::build_with_tail`]).

use longtail_progress::Event;
use rayon::prelude::*;

use longtail_rec::plan::TailStep;
use longtail_rec::ItemIdx;

use super::{coordinate_ascent, CandidateTable, SearchOptions};
use crate::metrics::ndcg_at;
use crate::RecEvalError;

pub const TAIL_SEARCH_RULE: &str = "from the relevance blend, coordinate ascent on the validation \
tail-item Recall@10 of the served ranking (each weight vector served with its tail weight by \
the budget rule, floor fixed by the relevance blend): each pass tries every candidate's weight \
at each grid value with the others fixed and keeps the best if it gains at least one \
tail-target user; a weight vector whose plain blend is below the floor is never taken; \
budget 0 skips this stage";

/// What the tail stage needs of one user (tables built with [`CandidateTable::build_with_tail`]).
pub(super) struct UserTail {
    /// Per candidate item: favoured by the served re-ranking (the prepared tail label).
    pub(super) favoured: Vec<bool>,
    /// The target is a tail item of the measures (tail-item Recall@10 counts this user).
    pub(super) target_tail: bool,
    /// Per component: mean of its z-scores over the unseen items (0 unless its scores were
    /// constant), and `k x k` second moments `E[z_a z_b]` over the same items: the served
    /// re-ranking z-scores the blend over them, and `mean`/`moment` give that blend's mean
    /// and sd for any weights without the full catalogue.
    pub(super) mean: Vec<f64>,
    pub(super) moment: Vec<f64>,
    /// Per component: the M-th best z-score among favoured items (bound for favoured items
    /// outside `items`).
    pub(super) tau_favoured: Vec<f32>,
}

/// The served tail weight's index on a curve over an ascending grid that starts at 0: the
/// last point of the unbroken prefix whose NDCG@10 is >= `floor`; `None` when the first point
/// (no tail weight) is already below it.
pub(super) fn budget_index(ndcg: impl IntoIterator<Item = f64>, floor: f64) -> Option<usize> {
    ndcg.into_iter()
        .take_while(|&v| v >= floor)
        .count()
        .checked_sub(1)
}

fn dot(z: &[f32], w: &[f64]) -> f64 {
    z.iter().zip(w).map(|(&z, &w)| f64::from(z) * w).sum()
}

impl UserTail {
    /// Mean and sd of the blend `weights` over the user's unseen items (sd 1 when constant,
    /// as [`longtail_rec::tail_weighted`]).
    fn blend_stats(&self, weights: &[f64]) -> (f64, f64) {
        let k = weights.len();
        let mean: f64 = self.mean.iter().zip(weights).map(|(m, w)| m * w).sum();
        let mut second = 0.0;
        for a in 0..k {
            for b in 0..k {
                second += weights[a] * weights[b] * self.moment[a * k + b];
            }
        }
        let var = second - mean * mean;
        (mean, if var > 0.0 { var.sqrt() } else { 1.0 })
    }
}

impl CandidateTable {
    /// Users ranked in the top 10 of the served ranking (blend `weights`, tail weight `l`)
    /// among their candidates whom an item outside the candidates might outrank (its bound:
    /// every component's M-th best z-score, among favoured items for a favoured one).
    pub fn served_uncertain_users(&self, weights: &[f64], l: f64) -> usize {
        let k = self.k;
        self.users
            .par_iter()
            .filter(|u| {
                let t = u.tail.as_ref().expect("a table built with tail data");
                let (mean, sd) = t.blend_stats(weights);
                let pos = u.items.binary_search(&u.target).expect("target kept");
                let served = |row: &[f32], favoured: bool| {
                    (dot(row, weights) - mean) / sd + if favoured { l } else { 0.0 }
                };
                let score = |j: usize| served(&u.z[j * k..(j + 1) * k], t.favoured[j]);
                let target = score(pos);
                let rank = 1
                    + (0..u.items.len())
                        .filter(|&j| j != pos && score(j) > target)
                        .count();
                let bound = |tau: &[f32]| {
                    tau.iter()
                        .zip(weights)
                        .filter(|(_, &w)| w > 0.0)
                        .map(|(&tau, &w)| f64::from(tau) * w)
                        .sum::<f64>()
                };
                let outside =
                    ((bound(&u.tau) - mean) / sd).max((bound(&t.tau_favoured) - mean) / sd + l);
                rank <= 10 && target <= outside
            })
            .count()
    }

    /// Users whose target is a tail item of the measures.
    pub fn tail_users(&self) -> usize {
        self.tail_users
    }

    /// Validation (NDCG@10, tail-item Recall@10) of the served ranking for each tail weight
    /// `L` of `tail_grid`: the blend `weights` z-scored over the user's unseen items, favoured
    /// items `+L` (the arithmetic of [`longtail_rec::tail_weighted`]). Ranks are among the
    /// candidates. Needs a table from [`CandidateTable::build_with_tail`].
    pub fn served_curve(&self, weights: &[f64], tail_grid: &[f64]) -> Vec<(f64, f64)> {
        assert_eq!(weights.len(), self.k);
        let k = self.k;
        let per_user: Vec<Vec<(f64, bool)>> = self
            .users
            .par_iter()
            .map(|u| {
                let t = u.tail.as_ref().expect("a table built with tail data");
                let (mean, sd) = t.blend_stats(weights);
                let z: Vec<f64> =
                    u.z.chunks_exact(k)
                        .map(|row| (dot(row, weights) - mean) / sd)
                        .collect();
                let pos = u.items.binary_search(&u.target).expect("target kept");
                let (zt, favoured_target) = (z[pos], t.favoured[pos]);
                // Items of the target's own group keep their order to it at every L; items
                // of the other group pass it as L grows (plain target) or fall behind it
                // (favoured target): only the 10 closest to passing can matter.
                let mut same_above = 0u32;
                let mut other: Vec<(f64, ItemIdx)> = Vec::new();
                for (j, (&item, &zi)) in u.items.iter().zip(&z).enumerate() {
                    if j == pos {
                        continue;
                    }
                    if t.favoured[j] == favoured_target {
                        if zi > zt || (zi == zt && item < u.target) {
                            same_above += 1;
                        }
                    } else {
                        other.push((zi - zt, item));
                    }
                }
                let closest = |a: &(f64, ItemIdx), b: &(f64, ItemIdx)| {
                    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
                };
                if other.len() > 10 {
                    other.select_nth_unstable_by(9, closest);
                    other.truncate(10);
                }
                tail_grid
                    .iter()
                    .map(|&l| {
                        // a plain item passes a favoured target iff d > L, a favoured item
                        // passes a plain target iff d + L > 0 (ties: the lower index first)
                        let threshold = if favoured_target { l } else { -l };
                        let passing = other
                            .iter()
                            .filter(|&&(d, item)| {
                                d > threshold || (d == threshold && item < u.target)
                            })
                            .count() as u32;
                        let rank = 1 + same_above + passing;
                        (ndcg_at(rank, 10), t.target_tail && rank <= 10)
                    })
                    .collect()
            })
            .collect();
        let users = self.users.len().max(1) as f64;
        let tail_users = self.tail_users.max(1) as f64;
        (0..tail_grid.len())
            .map(|j| {
                let (ndcg, hits) = per_user.iter().fold((0.0, 0usize), |(s, h), u| {
                    (s + u[j].0, h + usize::from(u[j].1))
                });
                (ndcg / users, hits as f64 / tail_users)
            })
            .collect()
    }
}

/// The outcome of the tail stage.
#[derive(Debug, Clone, PartialEq)]
pub struct TailChoice {
    /// Weight per candidate, normalised to sum 1 (0: dropped); `start` itself when no step
    /// was accepted.
    pub weights: Vec<f64>,
    /// The tail weight the budget rule gives those weights on the candidate table (the caller
    /// re-chooses it on the full catalogue).
    pub tail_weight: f64,
    /// Validation NDCG@10 no served point may fall below.
    pub floor: f64,
    /// Accepted steps, the first being the relevance blend served with its tail weight.
    pub path: Vec<TailStep>,
    pub evaluations: usize,
    /// Users whose candidate rank was not provably exact at the chosen point.
    pub uncertain_users: usize,
}

/// Stage 2 ([`TAIL_SEARCH_RULE`]): from the relevance blend `start`, moves the weights to
/// raise the validation tail-item Recall@10 of the served ranking, each weight vector served
/// with the tail weight of `tail_grid` (ascending, from 0) the budget rule gives it.
pub fn search_tail(
    table: &CandidateTable,
    start: &[f64],
    opts: &SearchOptions,
    tail_grid: &[f64],
    relevance_budget: f64,
    log: &dyn Fn(Event<'_>),
) -> Result<TailChoice, RecEvalError> {
    let k = table.k;
    if table.users.first().is_some_and(|u| u.tail.is_none()) {
        return Err(RecEvalError::Option(
            "the tail search needs a candidate table built with tail labels".into(),
        ));
    }
    if start.len() != k || tail_grid.first() != Some(&0.0) {
        return Err(RecEvalError::Option(
            "the tail search needs one start weight per candidate and a tail grid from 0".into(),
        ));
    }
    let mut evaluations = 0usize;
    let start_curve = table.served_curve(start, tail_grid);
    evaluations += 1;
    let best = start_curve.iter().map(|p| p.0).fold(f64::MIN, f64::max);
    let floor = (1.0 - relevance_budget) * best;
    // (tail weight, NDCG@10, tail R@10) of weights served by the budget rule
    let served = |curve: &[(f64, f64)]| {
        budget_index(curve.iter().map(|p| p.0), floor)
            .map(|j| (tail_grid[j], curve[j].0, curve[j].1))
    };
    let step = |w: &[f64], p: (f64, f64, f64)| TailStep {
        weights: w.to_vec(),
        tail_weight: p.0,
        ndcg_10: p.1,
        tail_recall_10: p.2,
    };
    let Some(mut current) = served(&start_curve).filter(|_| relevance_budget > 0.0) else {
        return Ok(TailChoice {
            weights: start.to_vec(),
            tail_weight: 0.0,
            floor,
            path: Vec::new(),
            evaluations,
            uncertain_users: 0,
        });
    };
    let mut w = start.to_vec();
    let mut path = vec![step(&w, current)];
    // one more tail-target user in the top 10
    let min_gain = 1.0 / table.tail_users.max(1) as f64 - 1e-12;
    coordinate_ascent(
        &mut w,
        &mut current,
        opts,
        |trial| {
            evaluations += 1;
            served(&table.served_curve(trial, tail_grid))
        },
        // a gain of one tail-target user; among those, more tail recall, then more NDCG@10
        |p, cur| p.2 >= cur.2 + min_gain,
        |p, b| p.2 > b.2 || (p.2 == b.2 && p.1 > b.1),
        |round, c, g, w, p| {
            path.push(step(w, *p));
            log(Event::Message(&format!(
                "tail pass {round}: weight of candidate {c} -> {g}: served with tail weight {}, \
                 validation tail-item R@10 {:.4}, NDCG@10 {:.4} (floor {floor:.4})",
                p.0, p.2, p.1
            )));
        },
    );
    let total: f64 = w.iter().sum();
    Ok(TailChoice {
        uncertain_users: table.served_uncertain_users(&w, current.0),
        // unmoved: `start` itself, not a renormalised copy
        weights: if path.len() == 1 {
            start.to_vec()
        } else {
            w.iter().map(|x| x / total).collect()
        },
        tail_weight: current.0,
        floor,
        path,
        evaluations,
    })
}
