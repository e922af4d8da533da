//! `train-interest`: trains the architecture of the configuration (a resumed run keeps its
//! checkpoint's). Both trainers are objectives of longtail-train's `Learner`.

use longtail_model::ModelError;
use longtail_train::Event;

use crate::config::TrainInterestConfig;
use crate::error::Result;
use crate::model::{Architecture, InterestMeta, INTEREST_FILE};
use crate::outcome::TrainInterestOutcome;

/// Trains the architecture `cfg.architecture` (a resumed run keeps its checkpoint's).
pub fn train_interest(
    cfg: &TrainInterestConfig,
    progress: &mut dyn FnMut(Event<'_>),
) -> Result<TrainInterestOutcome> {
    // One run per --out: two would replace each other's checkpoints.
    let _lock = longtail_fs::OutputLock::acquire(&cfg.out)?;
    let architecture = match &cfg.resume_from {
        Some(dir) => longtail_fs::read_json::<InterestMeta>(&dir.join(INTEREST_FILE))?.architecture,
        None => cfg.architecture,
    };
    let device = cfg.device.resolve().map_err(ModelError::from)?;
    // One thread issues all of a training run's GPU work: cudarc's event tracking can go.
    if let Some(line) = longtail_model::single_thread_settings(&device) {
        progress(Event::Message(&line));
    }
    match architecture {
        Architecture::Sequence => crate::train_sequence::train_sequence(cfg, &device, progress),
        Architecture::BiEncoder => {
            crate::train_bi_encoder::train_bi_encoder(cfg, &device, progress)
        }
    }
}
