//! [`Scorer`]: a checkpoint plus its tokenizer, template and `max_len`, scoring items in
//! length-sorted batches under a padded-token budget.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use candle_core::{Device, Tensor};
use longtail_model::{
    BertForSequenceClassification, Checkpoint, ClassifierOptions, Pooling, Precision,
};
use longtail_tokenize::{bucket_batches, BucketConfig, Encoded, FieldSource, ItemTokenizer};

use crate::error::{InferError, Result};

/// How a [`Scorer`] is built; `None` fields come from the checkpoint's `train_args.toml`.
#[derive(Debug, Clone)]
pub struct ScorerOptions {
    pub max_len: Option<usize>,
    pub template: Option<String>,
    /// Upper bound on `rows * longest_row` per forward pass; `None`:
    /// [`default_max_batch_tokens`] for the precision.
    pub max_batch_tokens: Option<usize>,
    /// Upper bound on rows per forward pass.
    pub max_batch_size: usize,
    /// Dedicated tokenization pool size; `None` uses the caller's rayon pool.
    pub tokenize_threads: Option<usize>,
    /// Batches of up to this many rows, each allowed the full `max_len` (the trainer's
    /// validation batches); overrides `max_batch_tokens` and `max_batch_size`.
    pub batch_rows: Option<usize>,
    /// The encoder's linear layers in f32 (default), int8 (CPU) or bf16 (mixed, for a GPU).
    pub precision: Precision,
    /// Where the model runs (int8 is CPU-only).
    pub device: Device,
}

/// Padded tokens per forward pass unless set: 8192, and 4096 for int8, whose smaller
/// activations (u8 inputs, a quarter of the f32 bytes) leave the layer's working set in cache
/// at half the batch: 7-12% faster on Office than 8192 (Intel Xeon, 2 threads, paired runs;
/// docs/score.md). fp32 keeps 8192: its scores stay byte-identical across releases, and the
/// padding, hence the last bits, changes with the batch.
pub fn default_max_batch_tokens(precision: Precision) -> usize {
    match precision {
        Precision::Int8 => 4096,
        _ => 8192,
    }
}

impl Default for ScorerOptions {
    fn default() -> Self {
        Self {
            max_len: None,
            template: None,
            max_batch_tokens: None,
            max_batch_size: 256,
            tokenize_threads: None,
            batch_rows: None,
            precision: Precision::Fp32,
            device: Device::Cpu,
        }
    }
}

/// Tail probabilities (and optionally pooled embeddings) in input order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scores {
    pub p_tail: Vec<f32>,
    /// `(rows, hidden)` when requested.
    pub embeddings: Option<Vec<Vec<f32>>>,
}

/// What the forward passes did so far: for throughput and GFLOP/s reports.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ForwardStats {
    pub batches: u64,
    pub rows: u64,
    /// Tokens including padding.
    pub padded_tokens: u64,
    /// Real (unpadded) tokens.
    pub tokens: u64,
    /// Multiply-adds x 2 of the encoder's matmuls on the padded batches.
    pub flops: f64,
    /// Wall time inside forward passes.
    pub seconds: f64,
}

impl ForwardStats {
    pub fn gflops_per_second(&self) -> f64 {
        self.flops / self.seconds.max(1e-12) / 1e9
    }
}

/// Tail probabilities and (when asked) pooled embeddings of one batch, in batch order.
type BatchOut = (Vec<f32>, Option<Vec<Vec<f32>>>);

/// A loaded checkpoint ready to score.
pub struct Scorer {
    stats: Mutex<ForwardStats>,
    model: BertForSequenceClassification,
    tokenizer: ItemTokenizer,
    tail: usize,
    batch: BucketConfig,
    checkpoint: PathBuf,
}

impl Scorer {
    /// Loads a `longtail train` output directory (or one of its `checkpoint-N`) with the
    /// template and `max_len` it was trained with.
    pub fn from_checkpoint(path: impl AsRef<Path>) -> Result<Self> {
        Self::with_options(path, &ScorerOptions::default())
    }

    pub fn with_options(path: impl AsRef<Path>, opts: &ScorerOptions) -> Result<Self> {
        let dir = path.as_ref();
        if !dir.join(longtail_model::checkpoint::CONFIG_FILE).is_file() {
            return Err(InferError::checkpoint(
                dir,
                "no config.json: pass the --out of `longtail train` or one of its checkpoint-N",
            ));
        }
        let checkpoint = Checkpoint::open(dir)?;
        let args = checkpoint.training_args()?.unwrap_or_default();
        let (mut model, _) = BertForSequenceClassification::from_files(
            checkpoint.files(),
            &ClassifierOptions::default(),
            &opts.device,
        )?;
        model.set_precision(opts.precision)?;
        let tail = model
            .labels()
            .iter()
            .position(|l| l == "tail")
            .ok_or_else(|| {
                InferError::checkpoint(
                    dir,
                    format!("no `tail` label (labels {:?})", model.labels()),
                )
            })?;
        let max_len = opts.max_len.unwrap_or_else(|| args.max_len_or_default());
        let template = opts
            .template
            .as_deref()
            .unwrap_or_else(|| args.template_or_default());
        let tokenizer = checkpoint.item_tokenizer(template, max_len, opts.tokenize_threads)?;
        let (max_batch_tokens, max_batch_size) = match opts.batch_rows {
            Some(rows) => (rows * tokenizer.max_len().max(1), rows),
            None => (
                opts.max_batch_tokens
                    .unwrap_or_else(|| default_max_batch_tokens(opts.precision)),
                opts.max_batch_size,
            ),
        };
        if max_batch_tokens == 0 || max_batch_size == 0 {
            return Err(InferError::Invalid(
                "max_batch_tokens, max_batch_size and batch_rows must be >= 1".into(),
            ));
        }
        Ok(Self {
            stats: Mutex::new(ForwardStats::default()),
            model,
            tokenizer,
            tail,
            batch: BucketConfig {
                max_batch_tokens,
                max_batch_size: Some(max_batch_size),
                window: usize::MAX,
                shuffle_seed: None,
            },
            checkpoint: dir.to_path_buf(),
        })
    }

    pub fn tokenizer(&self) -> &ItemTokenizer {
        &self.tokenizer
    }

    pub fn model(&self) -> &BertForSequenceClassification {
        &self.model
    }

    pub fn precision(&self) -> Precision {
        self.model.bert().precision()
    }

    pub fn checkpoint(&self) -> &Path {
        &self.checkpoint
    }

    /// Totals over every forward pass so far.
    pub fn stats(&self) -> ForwardStats {
        *self.stats.lock().expect("stats lock")
    }

    /// Encoder matmul FLOPs of one padded `(b, s)` batch: per layer and token the Q/K/V/output
    /// projections (4 h^2), the feed-forward (2 h i) and the two attention products (2 s h).
    /// Under CLS pooling the last layer computes only the first token after its keys and
    /// values (2 h^2 per token, plus one row of everything else).
    pub fn encoder_flops(&self, b: usize, s: usize) -> f64 {
        let c = self.model.config();
        let (h, i, l) = (
            c.hidden_size as f64,
            c.intermediate_size as f64,
            c.num_hidden_layers as f64,
        );
        let (b, s) = (b as f64, s as f64);
        let full_row = 4.0 * h * h + 2.0 * h * i + 2.0 * s * h;
        let last = if self.model.pooling() == Pooling::Mean {
            b * s * full_row
        } else {
            b * (s * 2.0 * h * h + full_row - 2.0 * h * h)
        };
        2.0 * ((l - 1.0) * b * s * full_row + last)
    }

    pub fn max_len(&self) -> usize {
        self.tokenizer.max_len()
    }

    /// Name of the label with the highest probability for a given `p_tail` at `threshold`.
    pub fn label(&self, p_tail: f32, threshold: f32) -> &str {
        let labels = self.model.labels();
        if p_tail >= threshold {
            &labels[self.tail]
        } else {
            // Two-label checkpoints: the other one; more labels: the first non-tail.
            labels
                .iter()
                .enumerate()
                .find(|(i, _)| *i != self.tail)
                .map_or(labels[self.tail].as_str(), |(_, l)| l.as_str())
        }
    }

    /// Tail probabilities of plain texts (each is the template's `text` fallback).
    pub fn score<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<Vec<f32>> {
        let encoded = self.tokenizer.install(|| {
            use rayon::prelude::*;
            texts
                .par_iter()
                .map(|t| self.tokenizer.encode_item(t.as_ref()))
                .collect::<longtail_tokenize::Result<Vec<_>>>()
        })?;
        Ok(self.score_encoded(&encoded, false)?.p_tail)
    }

    /// Tail probabilities of records rendered through the template.
    pub fn score_items<F: FieldSource + Sync>(&self, items: &[F]) -> Result<Vec<f32>> {
        let encoded = self.tokenizer.encode_batch_parallel(items)?;
        Ok(self.score_encoded(&encoded, false)?.p_tail)
    }

    /// Scores already tokenized rows: batches of similar length under the token budget,
    /// results put back in input order.
    pub fn score_encoded(&self, encoded: &[Encoded], embeddings: bool) -> Result<Scores> {
        let lengths: Vec<usize> = encoded.iter().map(Encoded::len).collect();
        let mut p_tail = vec![0f32; encoded.len()];
        let mut emb = embeddings.then(|| vec![Vec::new(); encoded.len()]);
        for indices in bucket_batches(&lengths, &self.batch)? {
            let (p, e) = self.forward_batch(encoded, &indices, embeddings)?;
            for (row, &i) in indices.iter().enumerate() {
                p_tail[i] = p[row];
            }
            if let (Some(all), Some(e)) = (emb.as_mut(), e) {
                for (row, v) in indices.iter().zip(e) {
                    all[*row] = v;
                }
            }
        }
        Ok(Scores {
            p_tail,
            embeddings: emb,
        })
    }

    /// One forward pass over the rows `indices` (padded to the longest of them).
    fn forward_batch(
        &self,
        encoded: &[Encoded],
        indices: &[usize],
        embeddings: bool,
    ) -> Result<BatchOut> {
        let started = Instant::now();
        let batch = self.tokenizer.pad_batch(encoded, indices)?;
        let shape = batch.shape();
        let real_tokens: usize = indices.iter().map(|&i| encoded[i].len()).sum();
        let device = self.model.device();
        let ids = Tensor::from_vec(batch.input_ids, shape, device)?;
        let types = Tensor::from_vec(batch.token_type_ids, shape, device)?;
        let mask = Tensor::from_vec(batch.attention_mask, shape, device)?;
        let (pooled, logits) =
            self.model
                .forward_inference_pooled(&ids, Some(&types), Some(&mask))?;
        // The same softmax as the trainer's validation (`longtail_classify::predict`).
        let probs = candle_nn::ops::softmax_last_dim(&logits)?.to_vec2::<f32>()?;
        let p = probs
            .iter()
            .map(|row| row[self.tail].clamp(0.0, 1.0))
            .collect();
        let e = if embeddings {
            Some(pooled.to_vec2::<f32>()?)
        } else {
            None
        };
        let mut st = self.stats.lock().expect("stats lock");
        st.batches += 1;
        st.rows += shape.0 as u64;
        st.padded_tokens += (shape.0 * shape.1) as u64;
        st.tokens += real_tokens as u64;
        st.flops += self.encoder_flops(shape.0, shape.1);
        st.seconds += started.elapsed().as_secs_f64();
        Ok((p, e))
    }
}
