//! longtail-interest: a user-interest bi-encoder on longtail-model's trainable BERT.
//!
//! * [`model`]: item tower (mean-pooled, L2-normalised encoder output) and user tower
//!   (recency-weighted mean of the user's last N item embeddings), checkpoint files;
//! * [`loss`]: InfoNCE with in-batch negatives, temperature and logQ popularity correction;
//! * [`train`]: the `train-interest` loop (frozen cached bottom, trained top layers);
//! * [`calibrate`]: Platt scaling of `P(interest | user, item)`;
//! * [`recommend`]: cached item embeddings, exact top-K with seen items excluded, explanations;
//! * [`pseudo`]: keyed (HMAC-SHA256) pseudonymisation of user ids;
//! * [`interactions`]: interaction sequences and the leave-last-out split.

#![forbid(unsafe_code)]

pub mod calibrate;
pub mod error;
pub mod interactions;
pub mod loss;
pub mod model;
pub mod pseudo;
pub mod recommend;
pub mod scorer;
pub mod topk;
pub mod train;

pub use calibrate::Platt;
pub use error::{InterestError, Result};
pub use interactions::{Interactions, Targets};
pub use model::{InterestMeta, InterestModel, UserRepr};
pub use pseudo::Pseudonymiser;
pub use train::{train_interest, Event, TrainInterestConfig, TrainInterestOutcome};
