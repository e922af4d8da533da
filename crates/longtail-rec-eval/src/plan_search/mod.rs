//! The choices `longtail plan` makes on the validation split, in two stages:
//!
//! 1. **Relevance**: the weights of a z-scored blend of candidate scorers, by coordinate
//!    ascent on validation NDCG@10 ([`search_weights`]).
//! 2. **Tail, within a relevance budget**: the weights again, now by coordinate ascent on the
//!    validation tail-item Recall@10 of the *served* ranking (the blend re-ranked with the
//!    largest tail weight whose validation NDCG@10 stays within the budget of stage 1's best),
//!    never leaving the budget ([`search_tail`]). A blend that leans a little more on the text
//!    components can buy more tail recall per point of NDCG than the tail weight alone.
//!
//! Test targets are never read here.
//!
//! The weight search ranks each user's candidates only: the union of every component's top
//! [`SearchOptions::top_m`] unseen items, plus the target. An item outside that union scores
//! at most `sum_c w_c tau_c` (`tau_c`: component c's M-th best z-score), so the target's rank
//! among the candidates is exact whenever the target scores above that bound; users where it
//! does not and the target still ranks in the top 10 are counted (`uncertain_users`). The
//! chosen weights are then measured on the full catalogue by the caller.

use longtail_progress::Event;
use rayon::prelude::*;

use longtail_rec::plan::{BlendStep, TailPoint};
use longtail_rec::{exclude_history, top_k, zscore_excluding, ItemIdx, RecSplit, Scorer, Stage};

use super::metrics::ndcg_at;

mod tail;
use super::tradeoff::TradeoffPoint;
use crate::RecEvalError;
use tail::UserTail;
pub use tail::{search_tail, TailChoice, TAIL_SEARCH_RULE};

/// Settings of the weight search.
#[derive(Debug, Clone)]
pub struct SearchOptions {
    /// Items per component kept as a user's candidates.
    pub top_m: usize,
    /// Values each weight is tried at (relative: only ratios matter after z-scoring).
    pub grid: Vec<f64>,
    /// Passes over the components; the search stops earlier when a pass changes nothing.
    pub max_rounds: usize,
    /// Smallest validation NDCG@10 gain that moves a weight (gains below are noise).
    pub min_gain: f64,
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self {
            top_m: 100,
            grid: vec![0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0],
            max_rounds: 4,
            min_gain: 1e-4,
        }
    }
}

pub const BLEND_RULE: &str = "coordinate ascent on validation NDCG@10 from the best single \
candidate: each pass tries every candidate's weight at each grid value with the others fixed \
and keeps the best if it gains at least min_gain; stops when a pass changes nothing; weights \
normalised to sum 1; candidates at weight 0 are dropped";

pub const TAIL_BUDGET_RULE: &str = "the largest tail weight L such that every grid weight up to \
L keeps validation NDCG@10 >= (1 - relevance_budget) x the best validation NDCG@10 (of the \
relevance blend and of the curve); budget 0 serves pure relevance";

/// One user's candidates and their z-scores.
struct UserCandidates {
    items: Vec<ItemIdx>,
    target: ItemIdx,
    /// `items.len() x components`, item-major.
    z: Vec<f32>,
    /// Per component: the M-th best z-score (bound for items outside `items`).
    tau: Vec<f32>,
    tail: Option<UserTail>,
}

/// The validation candidates of every evaluated user, ready for many weight vectors.
pub struct CandidateTable {
    users: Vec<UserCandidates>,
    k: usize,
    /// Users whose target is a tail item of the measures (tables with tail data).
    tail_users: usize,
}

/// The M-th best value of `scores` restricted to `keep` (and its indices), or -inf when fewer.
fn top_where(scores: &[f32], keep: impl Fn(usize) -> bool, m: usize) -> (Vec<ItemIdx>, f32) {
    let masked: Vec<f32> = scores
        .iter()
        .enumerate()
        .map(|(i, &s)| if keep(i) { s } else { f32::NEG_INFINITY })
        .collect();
    let top: Vec<ItemIdx> = top_k(&masked, m)
        .into_iter()
        .filter(|&i| masked[i as usize].is_finite())
        .collect();
    let tau = if top.len() == m {
        masked[top[m - 1] as usize]
    } else {
        f32::NEG_INFINITY
    };
    (top, tau)
}

impl CandidateTable {
    /// Scores every evaluated user at validation with each component (history excluded,
    /// z-scored over unseen items) and keeps the candidates.
    pub fn build(
        split: &RecSplit,
        components: &[&dyn Scorer],
        top_m: usize,
    ) -> Result<Self, RecEvalError> {
        Self::build_inner(split, components, top_m, None)
    }

    /// [`CandidateTable::build`] plus what [`search_tail`] needs: `favoured` marks the items
    /// the served re-ranking adds the tail weight to, `measured_tail` the tail items of the
    /// measures. Each component's best `top_m` favoured items join the candidates too.
    pub fn build_with_tail(
        split: &RecSplit,
        components: &[&dyn Scorer],
        top_m: usize,
        favoured: &[bool],
        measured_tail: &[bool],
    ) -> Result<Self, RecEvalError> {
        Self::build_inner(split, components, top_m, Some((favoured, measured_tail)))
    }

    fn build_inner(
        split: &RecSplit,
        components: &[&dyn Scorer],
        top_m: usize,
        tail: Option<(&[bool], &[bool])>,
    ) -> Result<Self, RecEvalError> {
        let n = split.n_items();
        let k = components.len();
        if let Some((f, m)) = tail {
            assert!(
                f.len() == n && m.len() == n,
                "tail labels per catalogue item"
            );
        }
        let users = split
            .eval_users()
            .into_par_iter()
            .map_init(
                || vec![0f32; n],
                |buf, user| -> Result<UserCandidates, RecEvalError> {
                    let target = split.target(user, Stage::Validation).expect("evaluated");
                    let history = split.history(user, Stage::Validation);
                    let mut zs: Vec<Vec<f32>> = Vec::with_capacity(k);
                    let mut items: Vec<ItemIdx> = Vec::new();
                    let mut tau = Vec::with_capacity(k);
                    let mut tau_favoured = Vec::with_capacity(k);
                    let mut seen = vec![false; if tail.is_some() { n } else { 0 }];
                    for &h in &history {
                        if let Some(s) = seen.get_mut(h as usize) {
                            *s = true;
                        }
                    }
                    for c in components {
                        buf.iter_mut().for_each(|s| *s = 0.0);
                        c.scores(user, &history, buf);
                        exclude_history(c.name(), user, &history, buf)?;
                        zscore_excluding(buf, &history);
                        let top = top_k(buf, top_m);
                        tau.push(if top.len() == top_m {
                            buf[top[top_m - 1] as usize]
                        } else {
                            f32::NEG_INFINITY
                        });
                        items.extend_from_slice(&top);
                        if let Some((favoured, _)) = tail {
                            let (top_f, tau_f) = top_where(buf, |i| favoured[i] && !seen[i], top_m);
                            items.extend_from_slice(&top_f);
                            tau_favoured.push(tau_f);
                        }
                        zs.push(buf.clone());
                    }
                    items.push(target);
                    items.sort_unstable();
                    items.dedup();
                    let z = items
                        .iter()
                        .flat_map(|&i| zs.iter().map(move |s| s[i as usize]))
                        .collect();
                    let tail = tail.map(|(favoured, measured)| {
                        let unseen = (n - history.len()).max(1) as f64;
                        let mut mean = vec![0f64; k];
                        let mut moment = vec![0f64; k * k];
                        for a in 0..k {
                            mean[a] = zs[a]
                                .iter()
                                .zip(&seen)
                                .filter(|(_, &s)| !s)
                                .map(|(&x, _)| f64::from(x))
                                .sum::<f64>()
                                / unseen;
                            for b in a..k {
                                let m = zs[a]
                                    .iter()
                                    .zip(&zs[b])
                                    .zip(&seen)
                                    .filter(|(_, &s)| !s)
                                    .map(|((&x, &y), _)| f64::from(x) * f64::from(y))
                                    .sum::<f64>()
                                    / unseen;
                                moment[a * k + b] = m;
                                moment[b * k + a] = m;
                            }
                        }
                        UserTail {
                            favoured: items.iter().map(|&i| favoured[i as usize]).collect(),
                            target_tail: measured[target as usize],
                            mean,
                            moment,
                            tau_favoured,
                        }
                    });
                    Ok(UserCandidates {
                        items,
                        target,
                        z,
                        tau,
                        tail,
                    })
                },
            )
            .collect::<Result<Vec<_>, _>>()?;
        let tail_users = users
            .iter()
            .filter(|u| u.tail.as_ref().is_some_and(|t| t.target_tail))
            .count();
        Ok(Self {
            users,
            k,
            tail_users,
        })
    }

    pub fn users(&self) -> usize {
        self.users.len()
    }

    /// Mean validation NDCG@10 of the blend `weights` (non-negative), and the users whose
    /// rank could not be proven exact (see the module docs).
    pub fn ndcg_10(&self, weights: &[f64]) -> (f64, usize) {
        assert_eq!(weights.len(), self.k);
        let w: Vec<f32> = weights.iter().map(|&x| x as f32).collect();
        // Per-user values collected in user order, then summed in that order: the same
        // number on every run (a parallel reduce sums in the order threads finish).
        let per_user: Vec<(f64, usize)> = self
            .users
            .par_iter()
            .map(|u| {
                let blended = |row: &[f32]| -> f32 { row.iter().zip(&w).map(|(z, w)| z * w).sum() };
                let rows = u.z.chunks_exact(self.k);
                let pos = u.items.binary_search(&u.target).expect("target kept");
                let t = blended(&u.z[pos * self.k..(pos + 1) * self.k]);
                let mut rank = 1u32;
                for (&item, row) in u.items.iter().zip(rows) {
                    let b = blended(row);
                    if b > t || (b == t && item < u.target) {
                        rank += 1;
                    }
                }
                let bound: f32 = u
                    .tau
                    .iter()
                    .zip(&w)
                    .filter(|(_, &w)| w > 0.0)
                    .map(|(tau, w)| tau * w)
                    .sum();
                let unsure = rank <= 10 && t <= bound;
                (ndcg_at(rank, 10), usize::from(unsure))
            })
            .collect();
        let (sum, uncertain) = per_user
            .iter()
            .fold((0.0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        (sum / self.users.len().max(1) as f64, uncertain)
    }
}

/// Coordinate ascent over the weights `w` (both stages' search): each pass tries every
/// coordinate at each grid value with the others fixed; among the values whose `value` (None:
/// not allowed) `gains` over `current`, the `better`-most is taken and reported to `accepted`
/// (pass from 1, coordinate, value, the new weights, its value). Stops after a pass that
/// moves nothing, or after `opts.max_rounds`. An all-zero vector is never tried.
fn coordinate_ascent<V>(
    w: &mut [f64],
    current: &mut V,
    opts: &SearchOptions,
    mut value: impl FnMut(&[f64]) -> Option<V>,
    gains: impl Fn(&V, &V) -> bool,
    better: impl Fn(&V, &V) -> bool,
    mut accepted: impl FnMut(usize, usize, f64, &[f64], &V),
) {
    for round in 0..opts.max_rounds {
        let mut moved = false;
        for c in 0..w.len() {
            let mut coord_best: Option<(f64, V)> = None;
            for &g in &opts.grid {
                if g == w[c] {
                    continue;
                }
                let mut trial = w.to_vec();
                trial[c] = g;
                if trial.iter().all(|&x| x == 0.0) {
                    continue;
                }
                let Some(v) = value(&trial) else {
                    continue;
                };
                if gains(&v, current) && coord_best.as_ref().is_none_or(|(_, b)| better(&v, b)) {
                    coord_best = Some((g, v));
                }
            }
            if let Some((g, v)) = coord_best {
                w[c] = g;
                accepted(round + 1, c, g, w, &v);
                *current = v;
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
}

/// The outcome of the weight search.
#[derive(Debug, Clone, PartialEq)]
pub struct BlendChoice {
    /// Weight per candidate, normalised to sum 1 (0: dropped).
    pub weights: Vec<f64>,
    /// Validation NDCG@10 of each candidate alone (candidate ranking).
    pub singles: Vec<f64>,
    /// Accepted steps, the first being the best single candidate.
    pub path: Vec<BlendStep>,
    pub evaluations: usize,
    /// Users whose candidate rank was not provably exact at the chosen weights.
    pub uncertain_users: usize,
}

/// Coordinate ascent over the weights of `table`'s components ([`BLEND_RULE`]).
pub fn search_weights(
    table: &CandidateTable,
    opts: &SearchOptions,
    log: &dyn Fn(Event<'_>),
) -> Result<BlendChoice, RecEvalError> {
    let k = table.k;
    if k == 0 {
        return Err(RecEvalError::Option(
            "a plan needs at least one candidate".into(),
        ));
    }
    let mut evaluations = 0usize;
    let mut eval = |w: &[f64]| {
        evaluations += 1;
        table.ndcg_10(w).0
    };
    let singles: Vec<f64> = (0..k)
        .map(|c| {
            let mut w = vec![0.0; k];
            w[c] = 1.0;
            eval(&w)
        })
        .collect();
    // Ties: the earlier candidate.
    let start = (0..k).fold(0, |b, c| if singles[c] > singles[b] { c } else { b });
    let mut w = vec![0.0; k];
    w[start] = 1.0;
    let mut best = singles[start];
    let mut path = vec![BlendStep {
        weights: w.clone(),
        ndcg_10: best,
    }];
    coordinate_ascent(
        &mut w,
        &mut best,
        opts,
        |trial| Some(eval(trial)),
        |v, cur| *v >= cur + opts.min_gain,
        |v, b| v > b,
        |round, c, g, w, v| {
            path.push(BlendStep {
                weights: w.to_vec(),
                ndcg_10: *v,
            });
            log(Event::Message(&format!(
                "pass {round}: weight of candidate {c} -> {g}: validation NDCG@10 {v:.4}"
            )));
        },
    );
    let (_, uncertain_users) = table.ndcg_10(&w);
    let total: f64 = w.iter().sum();
    let weights = w.iter().map(|x| x / total).collect();
    Ok(BlendChoice {
        weights,
        singles,
        path,
        evaluations,
        uncertain_users,
    })
}

/// The served tail weight by [`TAIL_BUDGET_RULE`] from a validation curve of tail weights
/// (sorted or not); `reference_best`: the relevance blend's validation NDCG@10 (the floor is
/// relative to the better of it and the curve's best). `None`: pure relevance (budget 0, or
/// no positive weight qualifies).
pub fn choose_tail_by_budget(
    curve: &[TailPoint],
    relevance_budget: f64,
    reference_best: f64,
) -> Option<f64> {
    if relevance_budget <= 0.0 || curve.is_empty() {
        return None;
    }
    let best = curve
        .iter()
        .map(|p| p.ndcg_10)
        .fold(reference_best, f64::max);
    let floor = (1.0 - relevance_budget) * best;
    let mut points = curve.to_vec();
    points.sort_by(|a, b| a.tail_weight.total_cmp(&b.tail_weight));
    let chosen = points
        .iter()
        .take_while(|p| p.ndcg_10 >= floor)
        .last()
        .map(|p| p.tail_weight)?;
    (chosen > 0.0).then_some(chosen)
}

/// A trade-off curve of tail weights as the plan records it.
pub fn tail_points(curve: &[TradeoffPoint]) -> Vec<TailPoint> {
    curve
        .iter()
        .filter_map(|p| match p.knob {
            longtail_rec::Knob::TailWeight(l) => Some(TailPoint {
                tail_weight: l,
                ndcg_10: p.ndcg_10,
                tail_recall_10: p.tail_recall_10,
            }),
            longtail_rec::Knob::TailShare(_) => None,
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use longtail_rec::{Event, UserIdx, ZBlend};

    use crate::{evaluate, Segments};

    /// 30 items, 40 users with 4-6 items each in a fixed pseudo-random pattern.
    pub(crate) fn split() -> RecSplit {
        let items: Vec<String> = (0..30).map(|i| format!("i{i}")).collect();
        let users: Vec<String> = (0..40).map(|u| format!("u{u}")).collect();
        let mut events = Vec::new();
        for u in 0..40usize {
            let len = 4 + u % 3;
            for j in 0..len {
                let item = (u * 7 + j * (3 + u % 5)) % 30;
                events.push(Event {
                    user: u as UserIdx,
                    item: item as ItemIdx,
                    timestamp: (u * 100 + j) as i64,
                });
            }
        }
        RecSplit::from_events(items, users, &events)
    }

    /// A scorer from a fixed function of (user history, item).
    struct Formula(&'static str, fn(&[ItemIdx], usize) -> f32);
    impl Scorer for Formula {
        fn name(&self) -> &str {
            self.0
        }
        fn scores(&self, _u: UserIdx, h: &[ItemIdx], out: &mut [f32]) {
            for (i, o) in out.iter_mut().enumerate() {
                *o = (self.1)(h, i);
            }
        }
    }

    fn near_last(h: &[ItemIdx], i: usize) -> f32 {
        let last = *h.last().unwrap() as f32;
        -((i as f32 - last).abs())
    }
    fn pop(_h: &[ItemIdx], i: usize) -> f32 {
        ((i * 13) % 30) as f32
    }
    fn stride(h: &[ItemIdx], i: usize) -> f32 {
        let last = *h.last().unwrap() as usize;
        if (i + 30 - last) % 30 <= 8 {
            1.0 + (i % 4) as f32
        } else {
            0.0
        }
    }

    /// Three scorers of different shapes: nearness to the last item, a fixed popularity, a
    /// window after the last item.
    fn formulas() -> [Formula; 3] {
        [
            Formula("a", near_last),
            Formula("b", pop),
            Formula("c", stride),
        ]
    }

    #[test]
    fn candidate_ndcg_equals_the_full_ranking_when_every_item_is_a_candidate() {
        let split = split();
        let segments = Segments::new(&split, &Default::default(), 0.2);
        let formulas = formulas();
        let parts: Vec<&dyn Scorer> = formulas.iter().map(|f| f as &dyn Scorer).collect();
        // top_m = catalogue: every item is a candidate, so the numbers are exact.
        let table = CandidateTable::build(&split, &parts, 30).unwrap();
        for w in [[1.0, 0.0, 0.0], [0.2, 0.5, 0.3], [0.0, 0.4, 0.6]] {
            let blend = ZBlend {
                name: "b".into(),
                parts: parts.iter().zip(w).map(|(s, w)| (*s, w as f32)).collect(),
            };
            let full = evaluate(&split, &segments, &blend, Stage::Validation)
                .unwrap()
                .overall
                .ndcg_10;
            let (cand, unsure) = table.ndcg_10(&w);
            assert!((cand - full).abs() < 1e-9, "{w:?}: {cand} vs {full}");
            assert_eq!(unsure, 0);
        }
        // With few candidates the bound still flags every user it cannot prove.
        let small = CandidateTable::build(&split, &parts, 3).unwrap();
        let (_, unsure) = small.ndcg_10(&[0.3, 0.3, 0.4]);
        assert!(unsure <= small.users());
    }

    #[test]
    fn the_search_starts_at_the_best_single_and_never_loses_ground() {
        let split = split();
        let formulas = formulas();
        let parts: Vec<&dyn Scorer> = formulas.iter().map(|f| f as &dyn Scorer).collect();
        let table = CandidateTable::build(&split, &parts, 30).unwrap();
        let choice = search_weights(&table, &SearchOptions::default(), &|_| {}).unwrap();
        let best_single = choice.singles.iter().cloned().fold(f64::MIN, f64::max);
        assert_eq!(choice.path[0].ndcg_10, best_single);
        assert!(choice.path.windows(2).all(|p| p[1].ndcg_10 > p[0].ndcg_10));
        let last = choice.path.last().unwrap().ndcg_10;
        assert!((table.ndcg_10(&choice.weights).0 - last).abs() < 1e-9);
        assert!((choice.weights.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(choice.weights.iter().all(|&w| w >= 0.0));
    }

    /// Every item a candidate (top 30 of 30): the candidate numbers are exact.
    fn tail_table(
        split: &RecSplit,
        parts: &[&dyn Scorer],
        favoured: &[bool],
        segments: &Segments,
    ) -> CandidateTable {
        CandidateTable::build_with_tail(split, parts, 30, favoured, &segments.is_tail_item).unwrap()
    }

    fn labels() -> (Vec<bool>, Segments) {
        let split = split();
        let favoured: Vec<bool> = (0..30).map(|i| i % 3 == 0 || i > 24).collect();
        (favoured, Segments::new(&split, &Default::default(), 0.2))
    }

    #[test]
    fn the_served_curve_equals_the_full_catalogue_curve_when_every_item_is_a_candidate() {
        let split = split();
        let (favoured, segments) = labels();
        let formulas = formulas();
        let parts: Vec<&dyn Scorer> = formulas.iter().map(|f| f as &dyn Scorer).collect();
        let table = tail_table(&split, &parts, &favoured, &segments);
        assert!(table.tail_users() > 0, "the fixture has tail targets");
        let grid = [0.0, 0.25, 0.5, 1.0, 2.0, 4.0];
        let knobs: Vec<longtail_rec::Knob> = grid
            .iter()
            .map(|&l| longtail_rec::Knob::TailWeight(l))
            .collect();
        for w in [[1.0, 0.0, 0.0], [0.2, 0.5, 0.3], [0.0, 0.45, 0.55]] {
            let blend = ZBlend {
                name: "b".into(),
                parts: parts.iter().zip(w).map(|(s, w)| (*s, w as f32)).collect(),
            };
            let full = crate::tradeoff_curve_labelled(
                &split,
                &segments,
                &blend,
                Stage::Validation,
                &knobs,
                &favoured,
            )
            .unwrap();
            let cand = table.served_curve(&w, &grid);
            for (f, c) in full.iter().zip(&cand) {
                assert!(
                    (f.ndcg_10 - c.0).abs() < 1e-9,
                    "{w:?} {:?}: {f:?} vs {c:?}",
                    f.knob
                );
                assert!((f.tail_recall_10 - c.1).abs() < 1e-9, "{w:?} {:?}", f.knob);
            }
            // Every item is a candidate: nothing outside can outrank anyone.
            assert_eq!(table.served_uncertain_users(&w, 1.0), 0);
        }
    }

    #[test]
    fn the_tail_stage_gains_tail_recall_and_never_leaves_the_budget() {
        let split = split();
        let (favoured, segments) = labels();
        let formulas = formulas();
        let parts: Vec<&dyn Scorer> = formulas.iter().map(|f| f as &dyn Scorer).collect();
        let table = tail_table(&split, &parts, &favoured, &segments);
        let opts = SearchOptions::default();
        let relevance = search_weights(&table, &opts, &|_| {}).unwrap();
        let grid = crate::selection_grid();
        for budget in [0.05, 0.2, 0.5] {
            let tail =
                search_tail(&table, &relevance.weights, &opts, &grid, budget, &|_| {}).unwrap();
            let best = table
                .served_curve(&relevance.weights, &grid)
                .iter()
                .map(|p| p.0)
                .fold(f64::MIN, f64::max);
            assert!((tail.floor - (1.0 - budget) * best).abs() < 1e-12);
            assert!(!tail.path.is_empty());
            assert_eq!(tail.path[0].weights, relevance.weights);
            assert!(tail.path.iter().all(|p| p.ndcg_10 >= tail.floor));
            assert!(tail
                .path
                .windows(2)
                .all(|p| p[1].tail_recall_10 > p[0].tail_recall_10));
            // The chosen point is what the budget rule gives its weights.
            let curve = table.served_curve(&tail.weights, &grid);
            let j = tail::budget_index(curve.iter().map(|p| p.0), tail.floor).unwrap();
            let last = tail.path.last().unwrap();
            assert_eq!(grid[j], tail.tail_weight);
            assert!((curve[j].1 - last.tail_recall_10).abs() < 1e-12);
            assert!((tail.weights.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            if tail.path.len() == 1 {
                assert_eq!(tail.weights, relevance.weights, "unmoved: the start itself");
            }
        }
        // A generous budget moves the fixture's weights; budget 0 never does.
        let loose = search_tail(&table, &relevance.weights, &opts, &grid, 0.5, &|_| {}).unwrap();
        assert!(loose.path.len() > 1, "{:?}", loose.path);
        let none = search_tail(&table, &relevance.weights, &opts, &grid, 0.0, &|_| {}).unwrap();
        assert!(none.path.is_empty());
        assert_eq!(none.weights, relevance.weights);
        assert_eq!(none.tail_weight, 0.0);
    }

    fn tp(l: f64, ndcg: f64) -> TailPoint {
        TailPoint {
            tail_weight: l,
            ndcg_10: ndcg,
            tail_recall_10: l,
        }
    }

    #[test]
    fn the_budget_keeps_the_largest_weight_of_the_unbroken_prefix() {
        let curve = [
            tp(0.0, 0.100),
            tp(0.5, 0.101),
            tp(1.0, 0.099),
            tp(1.5, 0.096),
            tp(2.0, 0.100), // back within budget, but after a miss: not reachable
        ];
        // best 0.101: floor 0.98 * 0.101 = 0.09898
        assert_eq!(choose_tail_by_budget(&curve, 0.02, 0.0), Some(1.0));
        assert_eq!(choose_tail_by_budget(&curve, 0.05, 0.0), Some(2.0));
        assert_eq!(
            choose_tail_by_budget(&curve, 0.0, 0.0),
            None,
            "budget 0: pure relevance"
        );
        assert_eq!(
            choose_tail_by_budget(&[tp(0.0, 0.1), tp(0.5, 0.05)], 0.02, 0.0),
            None
        );
    }
}
