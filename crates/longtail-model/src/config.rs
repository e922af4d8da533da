//! `config.json` of a BERT-family checkpoint (BERT, MiniLM, bge, e5, ...), read the way Hugging
//! Face `transformers.BertConfig` reads it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// Activation of the feed-forward block (`hidden_act`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HiddenAct {
    /// `"gelu"`: the exact erf form, `0.5 x (1 + erf(x / sqrt 2))` (PyTorch `nn.GELU()`).
    Gelu,
    /// `"gelu_new"`, `"gelu_pytorch_tanh"`, `"gelu_fast"`: the tanh approximation.
    GeluTanh,
    /// `"relu"`.
    Relu,
}

impl HiddenAct {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gelu => "gelu",
            Self::GeluTanh => "gelu_pytorch_tanh",
            Self::Relu => "relu",
        }
    }
}

impl FromStr for HiddenAct {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "gelu" => Ok(Self::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Self::GeluTanh),
            "relu" => Ok(Self::Relu),
            other => Err(ModelError::Config(format!(
                "hidden_act {other:?} is not supported (supported: gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, relu)"
            ))),
        }
    }
}

/// How the classification head turns the token states into one vector per sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(
    feature = "clap",
    derive(clap::ValueEnum),
    value(rename_all = "snake_case")
)]
pub enum Pooling {
    /// `tanh(pooler.dense(h[CLS]))`: what `transformers.BertForSequenceClassification` does.
    #[default]
    ClsPooler,
    /// The raw `[CLS]` state, no pooler.
    Cls,
    /// Mean of the token states over the attention mask (sentence-transformers style).
    Mean,
}

impl Pooling {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClsPooler => "cls_pooler",
            Self::Cls => "cls",
            Self::Mean => "mean",
        }
    }
}

impl fmt::Display for Pooling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Pooling {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cls_pooler" => Ok(Self::ClsPooler),
            "cls" => Ok(Self::Cls),
            "mean" => Ok(Self::Mean),
            other => Err(ModelError::Config(format!(
                "unknown pooling {other:?} (expected cls_pooler, cls or mean)"
            ))),
        }
    }
}

fn default_hidden_act() -> String {
    "gelu".into()
}
fn default_dropout() -> f64 {
    0.1
}
/// The largest encoder a config may describe (8 GB of f32 weights).
const MAX_PARAMETERS: usize = 2_000_000_000;

fn default_max_positions() -> usize {
    512
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_init_range() -> f64 {
    0.02
}

/// The fields of a BERT `config.json` this crate uses. Unknown fields are kept in `extra` and
/// written back by [`BertConfig::to_json_value`], so a saved checkpoint keeps them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: usize,
    #[serde(default = "default_init_range")]
    pub initializer_range: f64,
    /// Dropout before the classifier; `None` means `hidden_dropout_prob` (as in `transformers`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classifier_dropout: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position_embedding_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architectures: Option<Vec<String>>,
    /// `{"0": "negative", "1": "positive"}` as written by `transformers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id2label: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label2id: Option<BTreeMap<String, i64>>,
    /// Pooling of the classification head, written by this crate only (transformers ignores it
    /// and always uses the pooler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longtail_pooling: Option<Pooling>,
    /// Every other field of the file, kept verbatim.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl BertConfig {
    /// Reads and validates a `config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        let cfg: Self = serde_json::from_str(&text).map_err(|source| ModelError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        cfg.validate()
            .map_err(|e| ModelError::checkpoint(path, e.to_string()))?;
        Ok(cfg)
    }

    /// Parses and validates a config from a JSON string.
    pub fn from_json_str(text: &str) -> Result<Self> {
        let cfg: Self = serde_json::from_str(text)
            .map_err(|e| ModelError::Config(format!("invalid config JSON: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// A small random-weight configuration for tests and examples.
    pub fn tiny(vocab_size: usize, hidden_size: usize, layers: usize, heads: usize) -> Self {
        Self {
            vocab_size,
            hidden_size,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            intermediate_size: 4 * hidden_size,
            hidden_act: default_hidden_act(),
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            max_position_embeddings: 64,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            pad_token_id: 0,
            initializer_range: 0.02,
            classifier_dropout: None,
            position_embedding_type: None,
            model_type: Some("bert".into()),
            architectures: None,
            id2label: None,
            label2id: None,
            longtail_pooling: None,
            extra: Default::default(),
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(ModelError::Config(m));
        if self.hidden_size == 0 || self.num_attention_heads == 0 {
            return bad("hidden_size and num_attention_heads must be positive".into());
        }
        if self.hidden_size / self.num_attention_heads * self.num_attention_heads
            != self.hidden_size
        {
            return bad(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.vocab_size == 0 || self.max_position_embeddings == 0 || self.type_vocab_size == 0 {
            return bad(
                "vocab_size, max_position_embeddings and type_vocab_size must be positive".into(),
            );
        }
        // Bounds far above any BERT-family checkpoint, so a hostile or mistyped config.json is
        // an error instead of an allocation that aborts the process.
        for (name, value, max) in [
            ("vocab_size", self.vocab_size, 1 << 20),
            ("hidden_size", self.hidden_size, 1 << 13),
            ("num_hidden_layers", self.num_hidden_layers, 256),
            ("num_attention_heads", self.num_attention_heads, 1 << 10),
            ("intermediate_size", self.intermediate_size, 1 << 16),
            (
                "max_position_embeddings",
                self.max_position_embeddings,
                1 << 16,
            ),
            ("type_vocab_size", self.type_vocab_size, 1 << 10),
        ] {
            if value > max {
                return bad(format!(
                    "{name} {value} is beyond the supported bound {max}"
                ));
            }
        }
        let params = (self.vocab_size + self.max_position_embeddings + self.type_vocab_size)
            * self.hidden_size
            + self.num_hidden_layers
                * (4 * self.hidden_size * self.hidden_size
                    + 2 * self.hidden_size * self.intermediate_size);
        if params > MAX_PARAMETERS {
            return bad(format!(
                "this config has about {:.1}e9 parameters; at most {:.1}e9 are supported",
                params as f64 / 1e9,
                MAX_PARAMETERS as f64 / 1e9
            ));
        }
        for (name, p) in [
            ("hidden_dropout_prob", Some(self.hidden_dropout_prob)),
            (
                "attention_probs_dropout_prob",
                Some(self.attention_probs_dropout_prob),
            ),
            ("classifier_dropout", self.classifier_dropout),
        ] {
            if let Some(p) = p {
                if !(0.0..1.0).contains(&p) {
                    return bad(format!("{name} must be in [0, 1), got {p}"));
                }
            }
        }
        if let Some(t) = &self.position_embedding_type {
            if t != "absolute" {
                return bad(format!(
                    "position_embedding_type {t:?} is not supported (only \"absolute\")"
                ));
            }
        }
        if let Some(t) = &self.model_type {
            if t != "bert" {
                // RoBERTa/XLM-R offset their position ids by padding_idx; other families lay
                // their weights out differently. Refuse early and clearly.
                return bad(format!(
                    "model_type {t:?} is not supported (only \"bert\": BERT, MiniLM, bge, e5, ...)"
                ));
            }
        }
        self.activation()?;
        self.labels()?;
        Ok(())
    }

    pub fn activation(&self) -> Result<HiddenAct> {
        self.hidden_act.parse()
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Dropout probability in front of the classifier.
    pub fn classifier_dropout_prob(&self) -> f64 {
        self.classifier_dropout.unwrap_or(self.hidden_dropout_prob)
    }

    /// Label names ordered by id, from `id2label` (or `num_labels` with `LABEL_i` names);
    /// `None` if the config names no labels.
    pub fn labels(&self) -> Result<Option<Vec<String>>> {
        if let Some(map) = &self.id2label {
            let mut pairs = Vec::with_capacity(map.len());
            for (k, v) in map {
                let id: usize = k.parse().map_err(|_| {
                    ModelError::Config(format!("id2label key {k:?} is not an integer"))
                })?;
                pairs.push((id, v.clone()));
            }
            pairs.sort();
            for (i, (id, _)) in pairs.iter().enumerate() {
                if *id != i {
                    return Err(ModelError::Config(format!(
                        "id2label ids must be 0..{}, found {id}",
                        pairs.len()
                    )));
                }
            }
            return Ok(Some(pairs.into_iter().map(|(_, v)| v).collect()));
        }
        if let Some(n) = self.extra.get("num_labels").and_then(|v| v.as_u64()) {
            return Ok(Some((0..n).map(|i| format!("LABEL_{i}")).collect()));
        }
        Ok(None)
    }

    /// Sets `id2label`, `label2id` and `num_labels`.
    pub fn set_labels<S: AsRef<str>>(&mut self, labels: &[S]) {
        self.id2label = Some(
            labels
                .iter()
                .enumerate()
                .map(|(i, l)| (i.to_string(), l.as_ref().to_string()))
                .collect(),
        );
        self.label2id = Some(
            labels
                .iter()
                .enumerate()
                .map(|(i, l)| (l.as_ref().to_string(), i as i64))
                .collect(),
        );
        self.extra
            .insert("num_labels".into(), serde_json::Value::from(labels.len()));
    }

    /// The config as JSON, unknown fields included.
    pub fn to_json_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("BertConfig serialises")
    }

    /// Writes the config as pretty JSON (atomically).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let mut text = serde_json::to_string_pretty(&self.to_json_value())
            .map_err(|e| ModelError::Config(e.to_string()))?;
        text.push('\n');
        Ok(longtail_fs::write_atomic(path, text.as_bytes())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINILM: &str = r#"{
      "_name_or_path": "nreimers/MiniLM-L6-H384-uncased",
      "architectures": ["BertModel"],
      "attention_probs_dropout_prob": 0.1,
      "gradient_checkpointing": false,
      "hidden_act": "gelu",
      "hidden_dropout_prob": 0.1,
      "hidden_size": 384,
      "initializer_range": 0.02,
      "intermediate_size": 1536,
      "layer_norm_eps": 1e-12,
      "max_position_embeddings": 512,
      "model_type": "bert",
      "num_attention_heads": 12,
      "num_hidden_layers": 6,
      "pad_token_id": 0,
      "position_embedding_type": "absolute",
      "transformers_version": "4.8.2",
      "type_vocab_size": 2,
      "use_cache": true,
      "vocab_size": 30522
    }"#;

    #[test]
    fn parses_minilm_config_and_keeps_unknown_fields() {
        let cfg = BertConfig::from_json_str(MINILM).unwrap();
        assert_eq!(cfg.hidden_size, 384);
        assert_eq!(cfg.num_hidden_layers, 6);
        assert_eq!(cfg.head_dim(), 32);
        assert_eq!(cfg.activation().unwrap(), HiddenAct::Gelu);
        assert_eq!(cfg.layer_norm_eps, 1e-12);
        assert_eq!(cfg.labels().unwrap(), None);
        assert_eq!(cfg.classifier_dropout_prob(), 0.1);
        let v = cfg.to_json_value();
        assert_eq!(v["use_cache"], serde_json::Value::Bool(true));
        assert_eq!(v["_name_or_path"], "nreimers/MiniLM-L6-H384-uncased");
        let back = BertConfig::from_json_str(&v.to_string()).unwrap();
        assert_eq!(back, cfg);
    }

    #[test]
    fn labels_roundtrip_in_hf_layout() {
        let mut cfg = BertConfig::from_json_str(MINILM).unwrap();
        cfg.set_labels(&["head", "tail", "x"]);
        let v = cfg.to_json_value();
        assert_eq!(v["id2label"]["1"], "tail");
        assert_eq!(v["label2id"]["x"], 2);
        assert_eq!(v["num_labels"], 3);
        let back = BertConfig::from_json_str(&v.to_string()).unwrap();
        assert_eq!(
            back.labels().unwrap().unwrap(),
            vec!["head".to_string(), "tail".into(), "x".into()]
        );
    }

    #[test]
    fn rejects_what_it_cannot_run() {
        let bad = MINILM.replace("\"num_attention_heads\": 12", "\"num_attention_heads\": 7");
        assert!(BertConfig::from_json_str(&bad).is_err());
        let bad = MINILM.replace("\"hidden_act\": \"gelu\"", "\"hidden_act\": \"swish\"");
        assert!(BertConfig::from_json_str(&bad).is_err());
        let bad = MINILM.replace("\"absolute\"", "\"relative_key\"");
        assert!(BertConfig::from_json_str(&bad).is_err());
        let bad = MINILM.replace(
            "\"hidden_dropout_prob\": 0.1",
            "\"hidden_dropout_prob\": 1.0",
        );
        assert!(BertConfig::from_json_str(&bad).is_err());
        let bad = MINILM.replace("\"vocab_size\": 30522", "\"vocab_size\": \"x\"");
        assert!(BertConfig::from_json_str(&bad).is_err());
        // sizes that would abort on allocation are errors
        for (from, to) in [
            ("\"vocab_size\": 30522", "\"vocab_size\": 1000000000000"),
            ("\"num_hidden_layers\": 6", "\"num_hidden_layers\": 100000"),
            (
                "\"intermediate_size\": 1536",
                "\"intermediate_size\": 70000",
            ),
        ] {
            assert!(MINILM.contains(from), "{from}");
            let err = BertConfig::from_json_str(&MINILM.replace(from, to)).unwrap_err();
            assert!(
                err.to_string().contains("bound") || err.to_string().contains("e9"),
                "{err}"
            );
        }
        // each size within its bound, together too many parameters
        let big = MINILM
            .replace("\"hidden_size\": 384", "\"hidden_size\": 8192")
            .replace("\"num_attention_heads\": 12", "\"num_attention_heads\": 64")
            .replace("\"num_hidden_layers\": 6", "\"num_hidden_layers\": 200");
        let err = BertConfig::from_json_str(&big).unwrap_err();
        assert!(err.to_string().contains("parameters"), "{err}");
    }

    #[test]
    fn pooling_names() {
        for p in [Pooling::ClsPooler, Pooling::Cls, Pooling::Mean] {
            assert_eq!(p.as_str().parse::<Pooling>().unwrap(), p);
            assert_eq!(
                serde_json::to_value(p).unwrap(),
                serde_json::Value::from(p.as_str())
            );
        }
        assert!("max".parse::<Pooling>().is_err());
    }
}

/// Arithmetic of the encoder's linear layers at inference. Training is always f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(
    feature = "clap",
    derive(clap::ValueEnum),
    value(rename_all = "snake_case")
)]
pub enum Precision {
    /// f32 everywhere (the default; bit-identical to earlier releases).
    #[default]
    Fp32,
    /// Q, K, V, attention output and both FFN layers in int8 (per-channel weights, per-token
    /// dynamic activations, i32 sums); embeddings, LayerNorm, softmax and the head stay f32.
    Int8,
    /// Mixed precision for a GPU: the transformer layers' matmuls read bf16 copies of their
    /// inputs (f32 accumulation); weights (the master copy), optimizer moments, LayerNorm,
    /// softmax, GELU, residuals and the head stay f32. For training and scoring.
    Bf16,
}

impl Precision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fp32 => "fp32",
            Self::Int8 => "int8",
            Self::Bf16 => "bf16",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
