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
//! * [`popular`], [`itemknn`], [`ease`]: ID models; [`blend`]: the z-scored blend of two
//!   scorers.

#![forbid(unsafe_code)]

pub mod blend;
pub mod ease;
mod error;
pub mod interactions;
pub mod itemknn;
pub mod popular;
pub mod rerank;
pub mod scorer;

pub use blend::{zscore_excluding, ZBlend};
pub use ease::Ease;
pub use error::RecError;
pub use interactions::{Event, Interactions, RecSplit, SplitStats, Stage, Targets};
pub use itemknn::ItemKnn;
pub use popular::MostPopular;
pub use rerank::{rerank, tail_weighted, Knob, TailWeighted};
pub use scorer::{exclude_history, rank_cmp, top_k, top_k_excluding, Scorer};

/// Index of an item in the catalogue (`items.jsonl` line - 1).
pub type ItemIdx = u32;
/// Index of a user (order of first appearance in the interaction log).
pub type UserIdx = u32;
