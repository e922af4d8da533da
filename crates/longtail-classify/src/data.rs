//! Tokenized splits, length-bucketed batches and batch tensors.

use candle_core::{Device, Tensor};
use longtail_data::{Label, PreparedItem};
use longtail_model::BertForSequenceClassification;
use longtail_tokenize::{bucket_batches, BucketConfig, Encoded, ItemTokenizer};

use crate::error::Result;

/// Label ids of the classifier: `0 = head`, `1 = tail` (torso counts as not-tail).
pub const LABELS: [&str; 2] = ["head", "tail"];

/// Class id of an item's label (tail = 1, everything else = 0).
pub fn label_id(label: Label) -> u32 {
    u32::from(label == Label::Tail)
}

/// One split, tokenized: encodings and class ids in item order.
pub struct EncodedSplit {
    pub encoded: Vec<Encoded>,
    pub labels: Vec<u32>,
}

impl EncodedSplit {
    pub fn encode(tokenizer: &ItemTokenizer, items: &[&PreparedItem]) -> Result<Self> {
        let encoded = tokenizer.encode_batch_parallel(items)?;
        let labels = items.iter().map(|i| label_id(i.label)).collect();
        Ok(Self { encoded, labels })
    }

    pub fn len(&self) -> usize {
        self.encoded.len()
    }

    pub fn is_empty(&self) -> bool {
        self.encoded.is_empty()
    }

    pub fn lengths(&self) -> Vec<usize> {
        self.encoded.iter().map(Encoded::len).collect()
    }

    /// Count per class id (`[head, tail]`).
    pub fn class_counts(&self) -> [u64; 2] {
        let tail = self.labels.iter().filter(|&&l| l == 1).count() as u64;
        [self.labels.len() as u64 - tail, tail]
    }
}

/// SplitMix64 finaliser: a per-epoch shuffle seed from the run seed.
fn mix(seed: u64, epoch: u64) -> u64 {
    let mut z = seed
        .wrapping_add(0x9E37_79B9_7F4A_7C15u64.wrapping_mul(epoch.wrapping_add(1)))
        .wrapping_add(0x5851_F42D_4C95_7F2D);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Training batches of epoch `epoch`: shuffled with a seed derived from `(seed, epoch)`, sorted
/// by length inside windows of 50 batches, cut into batches of `batch_size`, batch order
/// shuffled. The same `(seed, epoch)` always gives the same batches.
pub fn train_batches(
    lengths: &[usize],
    batch_size: usize,
    max_len: usize,
    seed: u64,
    epoch: u64,
) -> Result<Vec<Vec<usize>>> {
    let cfg = BucketConfig {
        max_batch_tokens: batch_size * max_len.max(1),
        max_batch_size: Some(batch_size),
        window: batch_size * 50,
        shuffle_seed: Some(mix(seed, epoch)),
    };
    Ok(bucket_batches(lengths, &cfg)?)
}

/// Evaluation batches: length-sorted, no shuffling.
pub fn eval_batches(
    lengths: &[usize],
    batch_size: usize,
    max_len: usize,
) -> Result<Vec<Vec<usize>>> {
    let cfg = BucketConfig {
        max_batch_tokens: batch_size * max_len.max(1),
        max_batch_size: Some(batch_size),
        window: usize::MAX,
        shuffle_seed: None,
    };
    Ok(bucket_batches(lengths, &cfg)?)
}

/// `(input_ids, token_type_ids, attention_mask)` of the rows `indices`, each `(b, seq_len)`.
pub fn batch_tensors(
    tokenizer: &ItemTokenizer,
    split: &EncodedSplit,
    indices: &[usize],
    device: &Device,
) -> Result<(Tensor, Tensor, Tensor)> {
    let batch = tokenizer.pad_batch(&split.encoded, indices)?;
    let shape = batch.shape();
    Ok((
        Tensor::from_vec(batch.input_ids, shape, device)?,
        Tensor::from_vec(batch.token_type_ids, shape, device)?,
        Tensor::from_vec(batch.attention_mask, shape, device)?,
    ))
}

/// Tail probabilities of every item of `split` (dropout off, inference kernels), in item order,
/// and the mean unweighted cross-entropy.
pub fn predict(
    model: &BertForSequenceClassification,
    tokenizer: &ItemTokenizer,
    split: &EncodedSplit,
    batch_size: usize,
) -> Result<(Vec<f64>, f64)> {
    let device = model.device().clone();
    let mut probs = vec![0.0f64; split.len()];
    let mut loss_sum = 0.0f64;
    let tail = model
        .labels()
        .iter()
        .position(|l| l == "tail")
        .unwrap_or(model.num_labels() - 1);
    for indices in eval_batches(&split.lengths(), batch_size, tokenizer.max_len())? {
        let (ids, types, mask) = batch_tensors(tokenizer, split, &indices, &device)?;
        let logits = model.forward_inference(&ids, Some(&types), Some(&mask))?;
        let p = candle_nn::ops::softmax_last_dim(&logits)?;
        let p = p.to_vec2::<f32>()?;
        for (row, &i) in indices.iter().enumerate() {
            probs[i] = f64::from(p[row][tail]).clamp(0.0, 1.0);
        }
        if model.num_labels() == LABELS.len() {
            let labels: Vec<u32> = indices.iter().map(|&i| split.labels[i]).collect();
            let labels = Tensor::from_vec(labels, indices.len(), &device)?;
            let loss = model.loss(&logits, &labels, &Default::default())?;
            loss_sum += f64::from(loss.to_scalar::<f32>()?) * indices.len() as f64;
        }
    }
    Ok((probs, loss_sum / split.len().max(1) as f64))
}
