//! longtail-interest: a user-interest bi-encoder on longtail-model's trainable BERT.
//!
//! * [`model`]: item tower (mean-pooled, L2-normalised encoder output) and user tower
//!   (recency-weighted mean of the user's last N item embeddings), checkpoint files;
//! * [`loss`]: InfoNCE with in-batch negatives, temperature and logQ popularity correction;
//! * [`config`]: the `train-interest` settings of both architectures; [`train`]: the entry
//!   point; [`train_sequence`] and [`train_bi_encoder`]: each architecture as an objective of
//!   longtail-train's `Learner` (one loop for every trainer); [`outcome`]: what a run reports;
//! * [`calibrate`]: Platt scaling of `P(interest | user, item)`;
//! * [`index`]: cached item embeddings, user vectors, cosine scores and explanations;
//!   [`scorer`]: the model as a longtail-rec `Scorer`;
//! * [`recommend`]: the serving API ([`Recommender`]): load once, then top-K per request with
//!   seen items excluded, head/tail re-ranking, the EASE blend and explanations;
//! * [`plan_files`]: a served plan's artefacts and sha256 checks (the plan itself is
//!   [`longtail_rec::plan::Plan`]; [`Recommender::load_plan`] serves it);
//! * [`pseudo`]: keyed (HMAC-SHA256) pseudonymisation of user ids;
//! * [`tune`]: `train-interest --tune N`, successive halving over the sequence recipe.
//!
//! Interaction sequences and the leave-last-out split are longtail-rec's
//! ([`longtail_rec::Interactions`]).

#![forbid(unsafe_code)]

pub mod calibrate;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod index;
pub mod loss;
pub mod model;
pub mod outcome;
pub mod plan_files;
pub mod pseudo;
pub mod recommend;
pub mod scorer;
pub mod sequence;
pub mod sequence_inputs;
pub mod train;
pub mod train_bi_encoder;
pub mod train_sequence;
pub mod tune;

pub use calibrate::Platt;
pub use checkpoint::InterestCheckpoint;
pub use config::TrainInterestConfig;
pub use error::{InterestError, Result};
pub use index::{CacheStatus, InterestIndex};
pub use model::{Architecture, InterestMeta, InterestModel, UserRepr};
pub use outcome::{TrainInterestOutcome, ValMetrics};
pub use pseudo::Pseudonymiser;
pub use recommend::{
    EaseBlend, LoadInfo, Recommendation, Recommender, RecommenderOptions, ServedScorer,
};
pub use sequence::{ItemFeatures, SequenceMeta, SequenceModel};
pub use train::train_interest;
