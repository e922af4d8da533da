//! The interest checkpoint directory, the one place its file names live: trainers write
//! through it, `recommend`, `eval-rec`, `plan`, `serve` and the tuner read through it.

use std::path::{Path, PathBuf};

use crate::error::{InterestError, Result};
use crate::model::InterestMeta;

/// The settings of the checkpoint (`InterestMeta`: architecture, calibration, step, ...).
pub const INTEREST_FILE: &str = "interest.json";
/// The frozen encoder's embedding of every catalogue item, keyed by a catalogue hash.
pub const ITEM_EMBEDDINGS_FILE: &str = "item_embeddings.safetensors";
/// Weights of the sequence model (adaptor, ID embeddings, causal encoder).
pub const SEQUENCE_WEIGHTS_FILE: &str = "sequence.safetensors";
/// The sequence model's dropout stream, for an exact resume.
pub const DROPOUT_STATE_FILE: &str = "sequence_dropout_state.json";
/// The training arguments of the run.
pub const TRAIN_ARGS_FILE: &str = "train_interest_args.json";
pub use longtail_model::checkpoint::{CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE};

/// An interest checkpoint directory (the `--out` of `train-interest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterestCheckpoint {
    dir: PathBuf,
}

impl InterestCheckpoint {
    /// A checkpoint at `dir`, whether or not it exists yet.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The checkpoint at `dir`, or an error that says what to pass instead.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let c = Self::at(dir);
        if !c.exists() {
            return Err(InterestError::invalid(format!(
                "cannot load interest checkpoint {}: no {INTEREST_FILE} (pass the --out of \
                 `longtail train-interest`)",
                c.dir.display()
            )));
        }
        Ok(c)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the directory holds a checkpoint (its settings file).
    pub fn exists(&self) -> bool {
        self.settings_path().is_file()
    }

    pub fn settings_path(&self) -> PathBuf {
        self.dir.join(INTEREST_FILE)
    }

    pub fn item_embeddings_path(&self) -> PathBuf {
        self.dir.join(ITEM_EMBEDDINGS_FILE)
    }

    pub fn sequence_weights_path(&self) -> PathBuf {
        self.dir.join(SEQUENCE_WEIGHTS_FILE)
    }

    pub fn dropout_state_path(&self) -> PathBuf {
        self.dir.join(DROPOUT_STATE_FILE)
    }

    pub fn train_args_path(&self) -> PathBuf {
        self.dir.join(TRAIN_ARGS_FILE)
    }

    /// The checkpoint's settings.
    pub fn meta(&self) -> Result<InterestMeta> {
        Ok(longtail_fs::read_json(&self.settings_path())?)
    }

    /// The files whose bytes define what the checkpoint serves, in a fixed order (a plan
    /// records their sha256; serve reports it as the model version). Missing ones are skipped
    /// by [`longtail_fs::files_sha256`].
    pub const SERVED_FILES: [&'static str; 4] = [
        CONFIG_FILE,
        WEIGHTS_FILE,
        INTEREST_FILE,
        SEQUENCE_WEIGHTS_FILE,
    ];

    /// The files a plan pins: the settings and the learned user model.
    pub const PLAN_PINNED_FILES: [&'static str; 2] = [INTEREST_FILE, SEQUENCE_WEIGHTS_FILE];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_says_what_to_pass_when_the_directory_is_no_checkpoint() {
        let tmp = tempfile::tempdir().unwrap();
        let err = InterestCheckpoint::open(tmp.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no interest.json"), "{err}");
        assert!(err.contains("train-interest"), "{err}");
        std::fs::write(tmp.path().join(INTEREST_FILE), "{}").unwrap();
        let c = InterestCheckpoint::open(tmp.path()).unwrap();
        assert_eq!(
            c.sequence_weights_path(),
            tmp.path().join("sequence.safetensors")
        );
    }
}
