//! One checkpoint layout. Every model directory longtail reads or writes (`longtail train`'s
//! output and its `checkpoint-N`, an interest checkpoint, a base model placed by `model fetch`
//! or found in the Hugging Face cache) uses the file names below; [`Checkpoint`] finds the
//! files of one and reads its config, tokenizer and training arguments.

use std::path::{Path, PathBuf};

use longtail_tokenize::{FieldTemplate, ItemTokenizer, TokenizeConfig, CATALOGUE_TEMPLATE};
use serde::Deserialize;

use crate::config::BertConfig;
use crate::error::{ModelError, Result};
use crate::pretrained::{hub_file, HubOptions, PretrainedFiles};

pub use crate::pretrained::{CONFIG_FILE, WEIGHTS_FILE, WEIGHTS_INDEX_FILE};
/// The Hugging Face `tokenizers` file.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// The effective arguments of the training run (TOML).
pub const TRAIN_ARGS_FILE: &str = "train_args.toml";
/// `transformers`' `TrainerState` (step, log history, best metric, RNG state).
pub const TRAINER_STATE_FILE: &str = "trainer_state.json";
/// Optimizer state: metadata and per-parameter moments.
pub const OPTIMIZER_JSON_FILE: &str = "optimizer.json";
pub const OPTIMIZER_TENSORS_FILE: &str = "optimizer.safetensors";
/// One JSON object per logging step and per evaluation of a training run.
pub const METRICS_FILE: &str = "metrics.jsonl";

/// What a model directory needs to be loaded and scored: what `model fetch` downloads and
/// what a training run exports to the top of its output directory.
pub const MODEL_FILES: [&str; 3] = [CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE];

/// Tokens per item when a checkpoint records no `max_len` (the classifier trainer's default).
pub const DEFAULT_MAX_LEN: usize = 128;

/// The keys of `train_args.toml` that loading a checkpoint for scoring needs; the trainer
/// writes more, which are ignored here.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct TrainingArgs {
    pub max_len: Option<usize>,
    pub template: Option<String>,
    pub pooling: Option<String>,
}

impl TrainingArgs {
    /// The recorded `max_len`, else [`DEFAULT_MAX_LEN`].
    pub fn max_len_or_default(&self) -> usize {
        self.max_len.unwrap_or(DEFAULT_MAX_LEN)
    }

    /// The recorded field template, else the catalogue template.
    pub fn template_or_default(&self) -> &str {
        self.template.as_deref().unwrap_or(CATALOGUE_TEMPLATE)
    }
}

/// A model directory: config and weights (always), tokenizer and training arguments (when
/// present).
#[derive(Debug, Clone)]
pub struct Checkpoint {
    dir: PathBuf,
    files: PretrainedFiles,
    config: BertConfig,
}

impl Checkpoint {
    /// A local directory holding [`CONFIG_FILE`] and the weights.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let files = PretrainedFiles::from_dir(dir)?;
        Self::from_files(dir, files)
    }

    /// A local directory if `name_or_path` is one, else a hub id whose [`MODEL_FILES`] are
    /// taken from the Hugging Face cache or (unless offline) downloaded into it.
    pub fn resolve(name_or_path: &str, hub: &HubOptions) -> Result<Self> {
        let p = Path::new(name_or_path);
        if p.is_dir() {
            return Self::open(p);
        }
        if p.exists() || name_or_path.starts_with('.') || name_or_path.starts_with('/') {
            return Err(ModelError::checkpoint(p, "not a checkpoint directory"));
        }
        Self::fetch_files(name_or_path, hub, false, false)
    }

    /// The [`MODEL_FILES`] of the hub model `repo_id`, from the cache or downloaded into it
    /// (with progress bars on stderr if `progress`).
    pub fn fetch(repo_id: &str, hub: &HubOptions, progress: bool) -> Result<Self> {
        Self::fetch_files(repo_id, hub, progress, true)
    }

    /// As [`Self::fetch`]; without `need_tokenizer` a missing tokenizer is only an error when
    /// [`Self::tokenizer_path`] is asked for (an encoder can load without one).
    fn fetch_files(
        repo_id: &str,
        hub: &HubOptions,
        progress: bool,
        need_tokenizer: bool,
    ) -> Result<Self> {
        let mut dir = None;
        for file in MODEL_FILES {
            let found = hub_file(repo_id, hub, file, progress);
            if file == TOKENIZER_FILE && !need_tokenizer && found.is_err() {
                continue;
            }
            let path = found.map_err(|e| match e {
                ModelError::Hub(m) if file == WEIGHTS_FILE => ModelError::Hub(format!(
                    "{m} (only single-file {WEIGHTS_FILE} checkpoints are fetched from the hub)"
                )),
                other => other,
            })?;
            dir = path.parent().map(Path::to_path_buf);
        }
        // The cache keeps a revision's files side by side in one snapshot directory.
        let dir = dir.expect("MODEL_FILES is not empty");
        Self::open(&dir)
    }

    fn from_files(dir: &Path, files: PretrainedFiles) -> Result<Self> {
        let config = files.read_config()?;
        Ok(Self {
            dir: dir.to_path_buf(),
            files,
            config,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `file` inside the checkpoint directory.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    pub fn files(&self) -> &PretrainedFiles {
        &self.files
    }

    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// The checkpoint's [`TOKENIZER_FILE`]; an error naming the directory if it has none.
    pub fn tokenizer_path(&self) -> Result<PathBuf> {
        let path = self.path(TOKENIZER_FILE);
        if path.is_file() {
            Ok(path)
        } else {
            Err(ModelError::checkpoint(
                &self.dir,
                format!(
                    "no {TOKENIZER_FILE} in the checkpoint (the model directory must contain one)"
                ),
            ))
        }
    }

    /// The tokenizer rendering items through `template`, truncating to `max_len` tokens (at
    /// most the model's position embeddings), on `threads` dedicated threads if given.
    pub fn item_tokenizer(
        &self,
        template: &str,
        max_len: usize,
        threads: Option<usize>,
    ) -> Result<ItemTokenizer> {
        let path = self.tokenizer_path()?;
        let template = FieldTemplate::parse(template)?;
        let max_len = max_len.min(self.config.max_position_embeddings);
        let mut config = TokenizeConfig::new(template, max_len);
        if let Some(n) = threads {
            config = config.with_threads(n);
        }
        Ok(ItemTokenizer::from_file(&path, config)?)
    }

    /// `file` in the checkpoint directory or its parent (a `checkpoint-N` inside a training
    /// output, whose run-level files sit one level up).
    pub fn find_up(&self, file: &str) -> Option<PathBuf> {
        [Some(self.dir.as_path()), self.dir.parent()]
            .into_iter()
            .flatten()
            .map(|d| d.join(file))
            .find(|p| p.is_file())
    }

    /// The checkpoint's [`TRAIN_ARGS_FILE`] (see [`Self::find_up`]), if any.
    pub fn training_args(&self) -> Result<Option<TrainingArgs>> {
        let Some(path) = self.find_up(TRAIN_ARGS_FILE) else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
        toml::from_str(&text).map(Some).map_err(|e| {
            ModelError::checkpoint(&path, format!("not valid training arguments: {e}"))
        })
    }

    /// Copies the [`MODEL_FILES`] into `dir` (created if needed), each file atomically.
    pub fn export_model(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
        for file in MODEL_FILES {
            let src = self.path(file);
            longtail_fs::write_atomic_with(&dir.join(file), |tmp| {
                std::fs::copy(&src, tmp)
                    .map(drop)
                    .map_err(|e| ModelError::io(&src, e))
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_config(dir: &Path) {
        let config = serde_json::json!({
            "vocab_size": 30, "hidden_size": 8, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 16,
            "max_position_embeddings": 64, "type_vocab_size": 2,
        });
        std::fs::write(dir.join(CONFIG_FILE), config.to_string()).unwrap();
    }

    #[test]
    fn training_args_come_from_the_checkpoint_or_its_parent() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path();
        let ckpt = run.join("checkpoint-4");
        std::fs::create_dir_all(&ckpt).unwrap();
        write_config(&ckpt);
        std::fs::write(ckpt.join(WEIGHTS_FILE), b"").unwrap();
        let c = Checkpoint::open(&ckpt).unwrap();
        assert_eq!(c.training_args().unwrap(), None);
        assert_eq!(c.config().max_position_embeddings, 64);

        std::fs::write(
            run.join(TRAIN_ARGS_FILE),
            "max_len = 32\ntemplate = \"{title}\"\npooling = \"cls\"\nseed = 3\n",
        )
        .unwrap();
        let args = c.training_args().unwrap().unwrap();
        assert_eq!(args.max_len_or_default(), 32);
        assert_eq!(args.template_or_default(), "{title}");
        assert_eq!(args.pooling.as_deref(), Some("cls"));

        std::fs::write(ckpt.join(TRAIN_ARGS_FILE), "max_len = \"x\"\n").unwrap();
        let err = c.training_args().unwrap_err().to_string();
        assert!(
            err.contains("checkpoint-4") && err.contains(TRAIN_ARGS_FILE),
            "{err}"
        );
        assert_eq!(
            TrainingArgs::default().max_len_or_default(),
            DEFAULT_MAX_LEN
        );
        assert_eq!(
            TrainingArgs::default().template_or_default(),
            CATALOGUE_TEMPLATE
        );
    }

    #[test]
    fn missing_files_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let err = Checkpoint::open(tmp.path()).unwrap_err().to_string();
        assert!(err.contains(CONFIG_FILE), "{err}");
        write_config(tmp.path());
        std::fs::write(tmp.path().join(WEIGHTS_FILE), b"").unwrap();
        let c = Checkpoint::open(tmp.path()).unwrap();
        let err = c.tokenizer_path().unwrap_err().to_string();
        assert!(err.contains(TOKENIZER_FILE), "{err}");
        assert!(c.export_model(&tmp.path().join("out")).is_err());
    }

    #[test]
    fn export_copies_the_model_files_only() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        write_config(&src);
        std::fs::write(src.join(WEIGHTS_FILE), b"w").unwrap();
        std::fs::write(src.join(TOKENIZER_FILE), b"t").unwrap();
        std::fs::write(src.join(OPTIMIZER_JSON_FILE), b"o").unwrap();
        let out = tmp.path().join("out");
        Checkpoint::open(&src).unwrap().export_model(&out).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, [CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE]);
        assert_eq!(std::fs::read(out.join(TOKENIZER_FILE)).unwrap(), b"t");
    }
}
