//! Stage 3: length-bucketed batching under a padded-token budget.
//!
//! Sequences are sorted by length inside consecutive windows of `window` sequences, then cut
//! greedily into batches whose padded size (`batch_size * longest`) stays within
//! `max_batch_tokens`. Sorting only inside a window keeps the input order roughly intact
//! (a sequence moves at most `window - 1` places), which the streaming scorer needs, while
//! still grouping similar lengths so little padding is wasted.
//!
//! With `shuffle_seed` (training), the order is shuffled first and the batches are shuffled
//! afterwards, both with a small self-contained PRNG so a seed gives the same batches on every
//! platform and dependency version.

use crate::error::{Result, TokenizeError};

/// How to group sequences into batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketConfig {
    /// Upper bound on `batch_size * longest_in_batch`. A single sequence longer than this still
    /// gets a batch of its own.
    pub max_batch_tokens: usize,
    /// Optional cap on the number of sequences per batch.
    pub max_batch_size: Option<usize>,
    /// Sort window in sequences (>= 1). 1 keeps the input order exactly; `usize::MAX` sorts
    /// globally.
    pub window: usize,
    /// `Some(seed)`: shuffle before windowing and shuffle the batch order (training).
    pub shuffle_seed: Option<u64>,
}

impl Default for BucketConfig {
    fn default() -> Self {
        Self {
            max_batch_tokens: 8192,
            max_batch_size: None,
            window: 1024,
            shuffle_seed: None,
        }
    }
}

/// Groups sequence indices `0..lengths.len()` into batches; every index appears exactly once.
pub fn bucket_batches(lengths: &[usize], config: &BucketConfig) -> Result<Vec<Vec<usize>>> {
    if config.max_batch_tokens == 0 {
        return Err(TokenizeError::BucketConfig(
            "max_batch_tokens must be > 0".into(),
        ));
    }
    if config.window == 0 {
        return Err(TokenizeError::BucketConfig("window must be >= 1".into()));
    }
    if config.max_batch_size == Some(0) {
        return Err(TokenizeError::BucketConfig(
            "max_batch_size must be > 0".into(),
        ));
    }
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    let mut rng = config.shuffle_seed.map(SplitMix64::new);
    if let Some(rng) = rng.as_mut() {
        rng.shuffle(&mut order);
    }
    // Sort inside each window, alternating direction (ascending, descending, ...) so the
    // long end of one window meets the long end of the next and batches can run across
    // window boundaries without mixing very different lengths.
    for (w, window) in order.chunks_mut(config.window).enumerate() {
        // Stable sort: equal lengths keep their (possibly shuffled) order.
        if w % 2 == 0 {
            window.sort_by_key(|&i| lengths[i]);
        } else {
            window.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
        }
    }
    let max_size = config.max_batch_size.unwrap_or(usize::MAX);
    let mut batches = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut longest = 0usize;
    for &i in &order {
        let len = lengths[i];
        let grown = longest.max(len);
        if !current.is_empty()
            && ((current.len() + 1) * grown > config.max_batch_tokens
                || current.len() + 1 > max_size)
        {
            batches.push(std::mem::take(&mut current));
            longest = 0;
        }
        longest = longest.max(len);
        current.push(i);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    if let Some(rng) = rng.as_mut() {
        rng.shuffle(&mut batches);
    }
    Ok(batches)
}

/// SplitMix64 (Steele et al. 2014): tiny, fast, and fixed forever, unlike library shuffles
/// whose output may change between versions.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; the bias is < n / 2^64, negligible here).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Fisher-Yates.
    fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = self.below(i + 1);
            xs.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lengths(n: usize, seed: u64) -> Vec<usize> {
        let mut rng = SplitMix64::new(seed);
        (0..n).map(|_| 3 + rng.below(126)).collect()
    }

    fn check_cover_and_budget(lens: &[usize], batches: &[Vec<usize>], cfg: &BucketConfig) {
        let mut seen = vec![0u32; lens.len()];
        for b in batches {
            assert!(!b.is_empty());
            let longest = b.iter().map(|&i| lens[i]).max().unwrap();
            assert!(
                b.len() * longest <= cfg.max_batch_tokens || b.len() == 1,
                "batch of {} x {longest} over budget {}",
                b.len(),
                cfg.max_batch_tokens
            );
            if let Some(m) = cfg.max_batch_size {
                assert!(b.len() <= m);
            }
            for &i in b {
                seen[i] += 1;
            }
        }
        assert!(seen.iter().all(|&c| c == 1), "every index exactly once");
    }

    #[test]
    fn covers_every_index_within_budget() {
        let lens = lengths(1000, 1);
        for cfg in [
            BucketConfig {
                max_batch_tokens: 1024,
                max_batch_size: None,
                window: 100,
                shuffle_seed: None,
            },
            BucketConfig {
                max_batch_tokens: 2048,
                max_batch_size: Some(16),
                window: usize::MAX,
                shuffle_seed: Some(7),
            },
            BucketConfig {
                max_batch_tokens: 500,
                max_batch_size: None,
                window: 1,
                shuffle_seed: None,
            },
        ] {
            let batches = bucket_batches(&lens, &cfg).unwrap();
            check_cover_and_budget(&lens, &batches, &cfg);
        }
    }

    #[test]
    fn window_one_preserves_order() {
        let lens = lengths(200, 2);
        let cfg = BucketConfig {
            max_batch_tokens: 600,
            window: 1,
            ..Default::default()
        };
        let flat: Vec<usize> = bucket_batches(&lens, &cfg)
            .unwrap()
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(flat, (0..200).collect::<Vec<_>>());
    }

    #[test]
    fn windows_keep_rough_order_and_sort_inside() {
        let lens = lengths(300, 3);
        let cfg = BucketConfig {
            max_batch_tokens: 4096,
            window: 50,
            ..Default::default()
        };
        let flat: Vec<usize> = bucket_batches(&lens, &cfg)
            .unwrap()
            .into_iter()
            .flatten()
            .collect();
        // Every sequence stays inside its window; windows alternate sort direction.
        for (w, chunk) in flat.chunks(50).enumerate() {
            assert!(chunk.iter().all(|&i| i / 50 == w));
            let l: Vec<usize> = chunk.iter().map(|&i| lens[i]).collect();
            if w % 2 == 0 {
                assert!(l.windows(2).all(|p| p[0] <= p[1]));
            } else {
                assert!(l.windows(2).all(|p| p[0] >= p[1]));
            }
        }
    }

    #[test]
    fn sorting_reduces_padding() {
        let lens = lengths(2000, 4);
        // Pad tokens: padded size minus real tokens.
        let waste = |batches: &[Vec<usize>]| -> usize {
            batches
                .iter()
                .map(|b| {
                    let longest = b.iter().map(|&i| lens[i]).max().unwrap();
                    b.iter().map(|&i| longest - lens[i]).sum::<usize>()
                })
                .sum()
        };
        let base = BucketConfig {
            max_batch_tokens: 4096,
            ..Default::default()
        };
        let unsorted = bucket_batches(&lens, &BucketConfig { window: 1, ..base }).unwrap();
        let sorted = bucket_batches(
            &lens,
            &BucketConfig {
                window: 500,
                ..base
            },
        )
        .unwrap();
        let (w_sorted, w_unsorted) = (waste(&sorted), waste(&unsorted));
        assert!(
            w_sorted * 4 < w_unsorted,
            "sorted waste {w_sorted} vs unsorted {w_unsorted}"
        );
        assert!(sorted.len() < unsorted.len());
    }

    #[test]
    fn shuffle_is_deterministic_per_seed() {
        let lens = lengths(500, 5);
        let cfg = |seed| BucketConfig {
            max_batch_tokens: 2048,
            max_batch_size: Some(32),
            window: 64,
            shuffle_seed: Some(seed),
        };
        let a = bucket_batches(&lens, &cfg(42)).unwrap();
        let b = bucket_batches(&lens, &cfg(42)).unwrap();
        let c = bucket_batches(&lens, &cfg(43)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        check_cover_and_budget(&lens, &a, &cfg(42));
        check_cover_and_budget(&lens, &c, &cfg(43));
    }

    #[test]
    fn oversized_sequence_gets_its_own_batch() {
        let lens = [10, 300, 10];
        let cfg = BucketConfig {
            max_batch_tokens: 100,
            ..Default::default()
        };
        let batches = bucket_batches(&lens, &cfg).unwrap();
        assert!(batches.contains(&vec![1]));
        check_cover_and_budget(&lens, &batches, &cfg);
    }

    #[test]
    fn rejects_bad_config() {
        let bad = [
            BucketConfig {
                max_batch_tokens: 0,
                ..Default::default()
            },
            BucketConfig {
                window: 0,
                ..Default::default()
            },
            BucketConfig {
                max_batch_size: Some(0),
                ..Default::default()
            },
        ];
        for cfg in bad {
            assert!(bucket_batches(&[1, 2], &cfg).is_err());
        }
        assert!(bucket_batches(&[], &BucketConfig::default())
            .unwrap()
            .is_empty());
    }
}
