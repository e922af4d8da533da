//! `BertForSequenceClassification`: the encoder under `bert.*`, a configurable pooling, dropout
//! and `classifier.{weight,bias}`; saved checkpoints load in `transformers`.

use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;

use crate::bert::{mean_pool, BertModel, Ctx, Linear};
use crate::checkpoint::{Checkpoint, CONFIG_FILE, WEIGHTS_FILE};
use crate::config::{BertConfig, Pooling};
use crate::dropout::DropoutRngState;
use crate::error::{ModelError, Result};
use crate::ops::{cross_entropy, CrossEntropy};
use crate::params::{named_vars, save_varmap_safetensors, LoadReport, ParamBuilder};
use crate::pretrained::{check_missing, open_source, HubOptions, PretrainedFiles};

/// Choices made when building a classifier on top of a config or checkpoint.
#[derive(Debug, Clone)]
pub struct ClassifierOptions {
    /// Label names in id order. `None`: those of the checkpoint's `id2label`, else
    /// `LABEL_0`, `LABEL_1` (the `transformers` default).
    pub labels: Option<Vec<String>>,
    /// `None`: the checkpoint's `longtail_pooling`, else [`Pooling::ClsPooler`].
    pub pooling: Option<Pooling>,
    /// Overrides `classifier_dropout` of the config.
    pub classifier_dropout: Option<f64>,
    /// Seeds the initialisation of parameters the checkpoint lacks (e.g. the classifier).
    pub init_seed: u64,
    /// Seeds the dropout masks (see [`DropoutRngState`]).
    pub dropout_seed: u64,
    /// Parameter dtype: F32 for training; F64 is supported (gradient checks).
    pub dtype: DType,
}

impl Default for ClassifierOptions {
    fn default() -> Self {
        Self {
            labels: None,
            pooling: None,
            classifier_dropout: None,
            init_seed: 0,
            dropout_seed: 0,
            dtype: DType::F32,
        }
    }
}

/// A BERT encoder with a sequence-classification head, every weight a `Var` in one `VarMap`.
///
/// Names are those of `transformers.BertForSequenceClassification`: `bert.embeddings.*`,
/// `bert.encoder.layer.N.*`, `bert.pooler.dense.*`, `classifier.weight`, `classifier.bias`.
/// The pooler is always present (so checkpoints stay loadable by `transformers`) but is only
/// used, and only trainable, with [`Pooling::ClsPooler`].
pub struct BertForSequenceClassification {
    config: BertConfig,
    bert: BertModel,
    classifier: Linear,
    pooling: Pooling,
    classifier_dropout: f64,
    labels: Vec<String>,
    varmap: VarMap,
}

impl BertForSequenceClassification {
    /// A model with freshly initialised weights (normal(0, initializer_range) for matrices and
    /// embeddings, zero biases, unit LayerNorms, as `transformers` initialises BERT).
    pub fn new_random(
        config: &BertConfig,
        opts: &ClassifierOptions,
        device: &Device,
    ) -> Result<Self> {
        Self::build(config, opts, device, None).map(|(m, _)| m)
    }

    /// Loads a checkpoint directory (`config.json` + `model.safetensors`, with or without the
    /// `bert.` prefix) or a hub id (see [`HubOptions`]). The classifier is initialised if the
    /// checkpoint lacks it or has another number of labels; missing encoder weights are an error.
    pub fn from_pretrained(
        name_or_path: &str,
        opts: &ClassifierOptions,
        hub: &HubOptions,
        device: &Device,
    ) -> Result<(Self, LoadReport)> {
        let checkpoint = Checkpoint::resolve(name_or_path, hub)?;
        Self::from_files(checkpoint.files(), opts, device)
    }

    /// As [`Self::from_pretrained`] on already resolved files.
    pub fn from_files(
        files: &PretrainedFiles,
        opts: &ClassifierOptions,
        device: &Device,
    ) -> Result<(Self, LoadReport)> {
        let config = files.read_config()?;
        let (model, report) = Self::build(&config, opts, device, Some(files))?;
        Ok((model, report.expect("a report when loading")))
    }

    fn build(
        config: &BertConfig,
        opts: &ClassifierOptions,
        device: &Device,
        files: Option<&PretrainedFiles>,
    ) -> Result<(Self, Option<LoadReport>)> {
        let mut config = config.clone();
        let labels = match &opts.labels {
            Some(l) => l.clone(),
            None => config
                .labels()?
                .unwrap_or_else(|| vec!["LABEL_0".into(), "LABEL_1".into()]),
        };
        if labels.is_empty() {
            return Err(ModelError::Config(
                "a classifier needs at least one label".into(),
            ));
        }
        config.set_labels(&labels);
        let pooling = opts.pooling.or(config.longtail_pooling).unwrap_or_default();
        config.longtail_pooling = Some(pooling);
        if let Some(p) = opts.classifier_dropout {
            config.classifier_dropout = Some(p);
        }
        config.architectures = Some(vec!["BertForSequenceClassification".into()]);
        config.model_type = Some("bert".into());
        config.validate()?;

        let varmap = VarMap::new();
        let mut pb = ParamBuilder::new(&varmap, opts.dtype, device, opts.init_seed);
        let source = match files {
            Some(f) => {
                let s = open_source(f, vec!["classifier.".into()])?;
                pb = pb.with_source(s.clone());
                Some(s)
            }
            None => None,
        };
        let bert = BertModel::new(&config, &pb.pp("bert"), true, opts.dropout_seed)?;
        let classifier = Linear::new(
            &pb.pp("classifier"),
            config.hidden_size,
            labels.len(),
            config.initializer_range,
        )?;
        let report = match (&source, files) {
            (Some(s), Some(f)) => {
                let r = s.report();
                check_missing(&r, &["classifier.", "bert.pooler."], &f.weights[0])?;
                Some(r)
            }
            _ => None,
        };
        let classifier_dropout = config.classifier_dropout_prob();
        Ok((
            Self {
                config,
                bert,
                classifier,
                pooling,
                classifier_dropout,
                labels,
                varmap,
            },
            report,
        ))
    }

    /// Logits `(b, num_labels)`. Inputs as [`BertModel::forward_t`]; `train` turns dropout on.
    pub fn forward_t(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        attention_mask: Option<&Tensor>,
        train: bool,
    ) -> Result<Tensor> {
        let mut ctx = Ctx::new(self.bert.rng(), train);
        self.forward_ctx(input_ids, token_type_ids, attention_mask, &mut ctx)
    }

    /// Logits with fused inference kernels (no gradients), for scoring.
    pub fn forward_inference(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        attention_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let mut ctx = Ctx::inference();
        self.forward_ctx(input_ids, token_type_ids, attention_mask, &mut ctx)
    }

    /// `(pooled, logits)` with fused inference kernels: the pooled vector `(b, hidden)` is the
    /// classifier's input (the item embedding the scorer can export).
    pub fn forward_inference_pooled(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        attention_mask: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)> {
        let mut ctx = Ctx::inference();
        let pooled = self.pooled_ctx(input_ids, token_type_ids, attention_mask, &mut ctx)?;
        let logits = self.classifier.forward(&pooled)?;
        Ok((pooled, logits))
    }

    fn pooled_ctx(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        attention_mask: Option<&Tensor>,
        ctx: &mut Ctx,
    ) -> Result<Tensor> {
        let bert = &self.bert;
        match self.pooling {
            Pooling::ClsPooler => bert.pool_cls(&bert.forward_cls_ctx(
                input_ids,
                token_type_ids,
                attention_mask,
                ctx,
            )?),
            Pooling::Cls => bert.forward_cls_ctx(input_ids, token_type_ids, attention_mask, ctx),
            Pooling::Mean => {
                let hidden = bert.forward_ctx(input_ids, token_type_ids, attention_mask, ctx)?;
                mean_pool(&hidden, attention_mask)
            }
        }
    }

    fn forward_ctx(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        attention_mask: Option<&Tensor>,
        ctx: &mut Ctx,
    ) -> Result<Tensor> {
        let pooled = self.pooled_ctx(input_ids, token_type_ids, attention_mask, ctx)?;
        let pooled = ctx.dropout(&pooled, self.classifier_dropout)?;
        self.classifier.forward(&pooled)
    }

    /// Cross-entropy of `logits` against `labels` (PyTorch semantics, see [`cross_entropy`]).
    pub fn loss(&self, logits: &Tensor, labels: &Tensor, opts: &CrossEntropy) -> Result<Tensor> {
        cross_entropy(logits, labels, opts)
    }

    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    pub fn num_labels(&self) -> usize {
        self.labels.len()
    }

    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// The encoder in `precision` (see [`BertModel::set_precision`]: int8 for scoring, bf16
    /// mixed precision); the pooler and the classification head stay f32.
    pub fn set_precision(&mut self, precision: crate::Precision) -> Result<()> {
        self.bert.set_precision(precision)
    }

    pub fn bert(&self) -> &BertModel {
        &self.bert
    }

    pub fn device(&self) -> &Device {
        self.classifier.weight.device()
    }

    pub fn dtype(&self) -> DType {
        self.classifier.weight.dtype()
    }

    /// The `VarMap` holding every parameter (used or not).
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// Whether the parameter `name` takes part in the forward pass (the pooler does only with
    /// [`Pooling::ClsPooler`]).
    pub fn is_trainable(&self, name: &str) -> bool {
        self.pooling == Pooling::ClsPooler || !name.starts_with("bert.pooler.")
    }

    /// Parameters the forward pass uses, sorted by name: give these to the optimiser (the names
    /// allow groups, e.g. no weight decay on biases and LayerNorm).
    pub fn named_trainable_vars(&self) -> Vec<(String, Var)> {
        named_vars(&self.varmap)
            .into_iter()
            .filter(|(n, _)| self.is_trainable(n))
            .collect()
    }

    pub fn trainable_vars(&self) -> Vec<Var> {
        self.named_trainable_vars()
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    }

    pub fn dropout_rng_state(&self) -> DropoutRngState {
        self.bert.dropout_rng_state()
    }

    pub fn set_dropout_rng_state(&self, state: DropoutRngState) {
        self.bert.set_dropout_rng_state(state)
    }

    /// Writes every parameter (f32, HF names, `{"format": "pt"}` metadata) to `path`.
    pub fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<()> {
        save_varmap_safetensors(&self.varmap, path.as_ref())
    }

    /// Writes `config.json` (architectures `BertForSequenceClassification`, id2label, label2id,
    /// num_labels, pooling) and `model.safetensors` into `dir`, which
    /// `transformers.AutoModelForSequenceClassification.from_pretrained(dir)` loads. (Only
    /// `cls_pooler` models compute the same logits there: transformers always uses the pooler.)
    pub fn save_pretrained(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
        let mut config = self.config.clone();
        config
            .extra
            .insert("torch_dtype".into(), serde_json::Value::from("float32"));
        config.save(dir.join(CONFIG_FILE))?;
        self.save_safetensors(dir.join(WEIGHTS_FILE))
    }
}
