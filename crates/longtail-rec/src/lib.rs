//! longtail-rec: everything a recommender needs at serving time, shared by `longtail
//! recommend`, `longtail eval-rec` and the interest model.
//!
//! * [`interactions`]: the one reader of `interactions.csv` ([`Interactions`]: per-user,
//!   time-ordered, de-duplicated sequences; rows with unknown items are counted) and the
//!   leave-last-out split built on it ([`RecSplit`]).
//! * [`scorer`]: the [`Scorer`] trait, [`top_k`] (one ranking order, one NaN policy) and
//!   history exclusion.
//! * [`rerank`]: the head/tail knobs ([`Knob`]: tail weight, tail share), [`rerank`] and
//!   [`TailWeighted`].
//! * [`popular`], [`itemknn`], [`ease`]: ID models; [`item_item`]: a fitted item-item model
//!   as saved and served; [`baselines`]: the list eval-rec reports and plan offers;
//!   [`blend`]: the z-scored blend of several scorers.
//! * [`plan`]: the served plan's description (`plan.json`): components, weights, knob and the
//!   validation numbers that chose them.

#![forbid(unsafe_code)]

pub mod baselines;
pub mod blend;
pub mod ease;
mod error;
pub mod interactions;
pub mod item_item;
pub mod itemknn;
pub mod plan;
pub mod popular;
pub mod rerank;
pub mod scorer;

pub use baselines::{Fitted, IdBaseline, ID_BASELINES};
pub use blend::{add_zscored, zscore_excluding, zstats, ZBlend};
pub use ease::Ease;
pub use error::RecError;
pub use interactions::{Event, Interactions, RecSplit, SplitStats, Stage, Targets};
pub use item_item::ItemItem;
pub use itemknn::ItemKnn;
pub use plan::{ComponentKind, Plan, PlanComponent};
pub use popular::MostPopular;
pub use rerank::{rerank, tail_weighted, Knob, KnobError, TailWeighted};
pub use scorer::{exclude_history, rank_cmp, top_k, top_k_excluding, Scorer};

/// Index of an item in the catalogue (`items.jsonl` line - 1).
pub type ItemIdx = u32;
/// Index of a user (order of first appearance in the interaction log).
pub type UserIdx = u32;

/// `sqrt(m (1 - m) / n)`: the standard-error bound of a mean `m` of `n` values in [0, 1]
/// (validation noise of a recall or NDCG: the refresh gate's tolerance, the tune's margin).
pub fn standard_error(m: f64, n: u64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    (m.clamp(0.0, 1.0) * (1.0 - m.clamp(0.0, 1.0)) / n as f64).sqrt()
}
