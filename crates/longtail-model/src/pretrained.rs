//! Finding a checkpoint (local directory or Hugging Face hub id) and loading it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device};
use candle_nn::VarMap;

use crate::bert::BertModel;
use crate::config::BertConfig;
use crate::error::{ModelError, Result};
use crate::params::{LoadReport, ParamBuilder, WeightSource};

/// The model's `config.json` (HF names, `id2label`).
pub const CONFIG_FILE: &str = "config.json";
/// The weights (f32, HF names).
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Index of sharded weights (read only).
pub const WEIGHTS_INDEX_FILE: &str = "model.safetensors.index.json";

/// Where and how to look up hub ids.
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// The HF cache (default: `$HF_HOME/hub`, i.e. `~/.cache/huggingface/hub`).
    pub cache_dir: Option<PathBuf>,
    /// Branch, tag or commit (default `main`).
    pub revision: Option<String>,
    /// Use only the cache, never the network (default: `HF_HUB_OFFLINE=1` in the environment).
    pub offline: bool,
}

impl Default for HubOptions {
    fn default() -> Self {
        let offline = std::env::var("HF_HUB_OFFLINE")
            .map(|v| matches!(v.as_str(), "1" | "true" | "TRUE" | "yes"))
            .unwrap_or(false);
        Self {
            cache_dir: None,
            revision: None,
            offline,
        }
    }
}

/// The local path of `file` of the hub model `repo_id`: from the HF cache, or (unless
/// `hub.offline`) downloaded into it, with a progress bar on stderr if `progress`.
pub fn hub_file(repo_id: &str, hub: &HubOptions, file: &str, progress: bool) -> Result<PathBuf> {
    use hf_hub::{Cache, Repo, RepoType};
    let cache = match &hub.cache_dir {
        Some(d) => Cache::new(d.clone()),
        None => Cache::from_env(),
    };
    let revision = hub.revision.clone().unwrap_or_else(|| "main".into());
    let repo = Repo::with_revision(repo_id.to_string(), RepoType::Model, revision.clone());
    if let Some(p) = cache.repo(repo.clone()).get(file) {
        return Ok(p);
    }
    if hub.offline {
        return Err(ModelError::Hub(format!(
            "{repo_id}: {file} is not in the Hugging Face cache {} and hub access is off \
             (offline). Pass a local directory with {CONFIG_FILE} and {WEIGHTS_FILE} instead",
            cache.path().display()
        )));
    }
    let api = hf_hub::api::sync::ApiBuilder::from_cache(cache)
        .with_progress(progress)
        .build()
        .map_err(|e| ModelError::Hub(format!("cannot set up the Hugging Face hub client: {e}")))?;
    api.repo(repo).get(file).map_err(|e| {
        ModelError::Hub(format!(
            "could not download {file} of {repo_id}@{revision} from the Hugging Face hub: {e}. \
             If this machine is offline, copy the model directory here and pass its path \
             (or set HF_HUB_OFFLINE=1 to use only the cache)"
        ))
    })
}

/// The files of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PretrainedFiles {
    pub config: PathBuf,
    /// One `model.safetensors`, or the shards listed by `model.safetensors.index.json`.
    pub weights: Vec<PathBuf>,
}

impl PretrainedFiles {
    /// The files of a local checkpoint directory.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let config = dir.join(CONFIG_FILE);
        if !config.is_file() {
            return Err(ModelError::checkpoint(
                dir,
                format!("no {CONFIG_FILE} in this directory"),
            ));
        }
        let single = dir.join(WEIGHTS_FILE);
        if single.is_file() {
            return Ok(Self {
                config,
                weights: vec![single],
            });
        }
        let index = dir.join(WEIGHTS_INDEX_FILE);
        if index.is_file() {
            let text = std::fs::read_to_string(&index).map_err(|e| ModelError::io(&index, e))?;
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|source| ModelError::Json {
                    path: index.clone(),
                    source,
                })?;
            let map = v["weight_map"]
                .as_object()
                .ok_or_else(|| ModelError::checkpoint(&index, "no weight_map object"))?;
            let mut files: Vec<String> = map
                .values()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect();
            files.sort();
            files.dedup();
            if files.is_empty() {
                return Err(ModelError::checkpoint(
                    &index,
                    "the weight_map names no file",
                ));
            }
            // An index from an untrusted download must not reach outside its directory.
            if let Some(bad) = files.iter().find(|f| !is_plain_relative(f)) {
                return Err(ModelError::checkpoint(
                    &index,
                    format!("weight file {bad:?} is not a file name inside the checkpoint"),
                ));
            }
            return Ok(Self {
                config,
                weights: files.into_iter().map(|f| dir.join(f)).collect(),
            });
        }
        let hint = if dir.join("pytorch_model.bin").is_file() {
            " (only pytorch_model.bin found: convert it to safetensors first)"
        } else {
            ""
        };
        Err(ModelError::checkpoint(
            dir,
            format!("no {WEIGHTS_FILE} or {WEIGHTS_INDEX_FILE}{hint}"),
        ))
    }

    pub fn read_config(&self) -> Result<BertConfig> {
        BertConfig::from_file(&self.config)
    }
}

/// A relative path that stays below its directory: no root, no `..`, no drive prefix.
fn is_plain_relative(name: &str) -> bool {
    let path = Path::new(name);
    !name.is_empty()
        && path
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// Errors if a parameter outside the `allowed` prefixes was not in the checkpoint.
pub(crate) fn check_missing(report: &LoadReport, allowed: &[&str], path: &Path) -> Result<()> {
    let bad: Vec<&String> = report
        .missing
        .iter()
        .filter(|n| !allowed.iter().any(|p| n.starts_with(p)))
        .collect();
    if bad.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = bad.iter().take(8).map(|s| s.as_str()).collect();
    Err(ModelError::checkpoint(
        path,
        format!(
            "checkpoint lacks {} encoder weight(s), e.g. {} (is this a BERT checkpoint matching its config.json?)",
            bad.len(),
            shown.join(", ")
        ),
    ))
}

pub(crate) fn open_source(
    files: &PretrainedFiles,
    reinit: Vec<String>,
) -> Result<Arc<WeightSource>> {
    Ok(Arc::new(WeightSource::open(&files.weights, reinit)?))
}

/// A pretrained encoder with its parameters (unprefixed HF names, e.g.
/// `embeddings.word_embeddings.weight`) in a fresh `VarMap`.
pub struct PretrainedBert {
    pub model: BertModel,
    pub varmap: VarMap,
    pub report: LoadReport,
}

impl PretrainedBert {
    /// Loads the encoder (and pooler, if `with_pooler`; a pooler missing from the checkpoint is
    /// initialised and listed in `report.missing`). Missing encoder weights are an error.
    pub fn load(
        files: &PretrainedFiles,
        with_pooler: bool,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let config = files.read_config()?;
        let varmap = VarMap::new();
        let source = open_source(files, Vec::new())?;
        let pb = ParamBuilder::new(&varmap, dtype, device, 0).with_source(source.clone());
        let model = BertModel::new(&config, &pb, with_pooler, 0)?;
        let report = source.report();
        check_missing(&report, &["pooler."], &files.weights[0])?;
        Ok(Self {
            model,
            varmap,
            report,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A weight index from an untrusted download: an empty map, `../` and absolute paths are
    /// errors (not a panic at `weights[0]`, not a read outside the checkpoint).
    #[test]
    fn a_weight_index_stays_inside_its_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), "{}").unwrap();
        let index = dir.path().join(WEIGHTS_INDEX_FILE);
        let files_of = |map: &str| {
            std::fs::write(&index, format!("{{\"weight_map\": {map}}}")).unwrap();
            PretrainedFiles::from_dir(dir.path())
        };
        for bad in [
            "{}",
            r#"{"a": "../outside.safetensors"}"#,
            r#"{"a": "model-1.safetensors", "b": "/etc/passwd"}"#,
            r#"{"a": "shards/../../x.safetensors"}"#,
            r#"{"a": ""}"#,
        ] {
            let err = files_of(bad).unwrap_err().to_string();
            assert!(err.contains(WEIGHTS_INDEX_FILE), "{bad}: {err}");
        }
        let ok = files_of(r#"{"a": "model-2.safetensors", "b": "model-1.safetensors", "c": "model-1.safetensors"}"#)
            .unwrap();
        assert_eq!(
            ok.weights,
            ["model-1.safetensors", "model-2.safetensors"].map(|f| dir.path().join(f))
        );
    }
}
