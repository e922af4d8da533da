//! Dropout with masks drawn from our own seeded generator.
//!
//! candle's CPU backend cannot be seeded (`Device::Cpu.set_seed` bails: "cannot seed the CPU rng
//! with set_seed"; `Tensor::rand` uses `rand::rng()`, the thread RNG), so `candle_nn::ops::dropout`
//! is not reproducible. Here every training forward pass draws its masks from a stream chosen
//! by `(seed, call counter)`: the masks of forward call `k` depend only on the seed and `k`,
//! never on what earlier calls consumed, so a trainer resumes bit-for-bit by saving and
//! restoring [`DropoutRngState`].
//!
//! Two generators ([`MaskGenerator`]): new runs use Philox4x32-10 ([`crate::philox`]), counter
//! based, so on the CPU the mask of an f32/f64 tensor is computed inside the product and again
//! in backward, never stored, and a device kernel can draw the same words. Checkpoints written
//! before it (no generator recorded) resume with ChaCha8, the generator they were trained with.
//! Masks that are materialised (other dtypes, other devices, the attention kernel's keep flags)
//! are drawn on the host from the same words: identical on every device. A GPU gets one byte per
//! element (keep or not) and scales on the device.

use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::philox;

/// Which generator draws the masks; recorded in checkpoints so a resumed run keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum MaskGenerator {
    /// ChaCha8 stream `call` of `seed`, words in order. Checkpoints written before the
    /// generator was recorded used it (version 1).
    #[default]
    Chacha8,
    /// Philox4x32-10, key = seed, stream = call, words addressed by position (version 2); a
    /// mask starts on a block boundary. The default of new runs.
    Philox4x32_10,
}

impl MaskGenerator {
    /// What a new run uses.
    pub const NEW_RUNS: Self = Self::Philox4x32_10;

    /// The number a checkpoint records (counters are integers).
    pub fn version(self) -> u64 {
        match self {
            Self::Chacha8 => 1,
            Self::Philox4x32_10 => 2,
        }
    }

    /// The generator of a recorded version; `None` for one this build does not know.
    pub fn from_version(v: u64) -> Option<Self> {
        match v {
            1 => Some(Self::Chacha8),
            2 => Some(Self::Philox4x32_10),
            _ => None,
        }
    }
}

/// The whole state of a [`DropoutRng`]: save it with a checkpoint, restore it on resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropoutRngState {
    pub seed: u64,
    /// Number of training forward passes run so far.
    pub calls: u64,
    /// Absent in states saved before it existed: those were ChaCha8.
    #[serde(default)]
    pub generator: MaskGenerator,
}

/// Source of dropout masks: one independent stream per training forward pass.
#[derive(Debug)]
pub struct DropoutRng {
    seed: AtomicU64,
    calls: AtomicU64,
    generator: AtomicU64,
}

impl DropoutRng {
    /// A new run's generator ([`MaskGenerator::NEW_RUNS`]).
    pub fn new(seed: u64) -> Self {
        Self {
            seed: AtomicU64::new(seed),
            calls: AtomicU64::new(0),
            generator: AtomicU64::new(MaskGenerator::NEW_RUNS.version()),
        }
    }

    pub fn state(&self) -> DropoutRngState {
        DropoutRngState {
            seed: self.seed.load(Ordering::SeqCst),
            calls: self.calls.load(Ordering::SeqCst),
            generator: self.generator(),
        }
    }

    pub fn set_state(&self, state: DropoutRngState) {
        self.seed.store(state.seed, Ordering::SeqCst);
        self.calls.store(state.calls, Ordering::SeqCst);
        self.generator
            .store(state.generator.version(), Ordering::SeqCst);
    }

    fn generator(&self) -> MaskGenerator {
        MaskGenerator::from_version(self.generator.load(Ordering::SeqCst))
            .expect("only set from a MaskGenerator")
    }

    /// `x` through the first dropout of the next forward pass's stream (the counter advances):
    /// the mask a training pass's first dropout applies, for checks across devices and dtypes.
    pub fn dropout_next(&self, x: &Tensor, p: f64) -> Result<Tensor> {
        self.next_stream().dropout(x, p)
    }

    /// The stream of the next forward pass (and advances the counter).
    pub(crate) fn next_stream(&self) -> MaskStream {
        let seed = self.seed.load(Ordering::SeqCst);
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        let source = match self.generator() {
            MaskGenerator::Chacha8 => {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                rng.set_stream(call);
                Source::Chacha8(Box::new(rng))
            }
            MaskGenerator::Philox4x32_10 => Source::Philox {
                key: philox::key_of(seed),
                stream: call,
                word: 0,
            },
        };
        MaskStream {
            source,
            buf: Vec::new(),
        }
    }
}

enum Source {
    Chacha8(Box<ChaCha8Rng>),
    /// The next mask starts at `word` (a multiple of 4).
    Philox {
        key: [u32; 2],
        stream: u64,
        word: u64,
    },
}

/// Draws the masks of one forward pass, in the (deterministic) order the layers ask for them.
pub(crate) struct MaskStream {
    source: Source,
    buf: Vec<u32>,
}

impl MaskStream {
    /// `x * mask / (1 - p)` with `mask ~ Bernoulli(1 - p)` elementwise.
    pub(crate) fn dropout(&mut self, x: &Tensor, p: f64) -> Result<Tensor> {
        if p <= 0.0 {
            return Ok(x.clone());
        }
        if let Source::Philox { .. } = self.source {
            if crate::fused::philox_dropout_supported(x) {
                let m = self.philox_mask(x.elem_count(), x.dtype(), p);
                return Ok(crate::fused::philox_dropout(x, m)?);
            }
        }
        let mask = self.mask(x.dims(), x.dtype(), x.device(), p)?;
        if crate::fused::supported(x) {
            return Ok(crate::fused::mask_mul_const(x, &mask)?);
        }
        Ok((x * mask)?)
    }

    /// The next `n` keep flags (`true` with probability `1 - p`), as [`Self::dropout`] draws
    /// them, and the scale `1 / (1 - p)` of kept entries. For kernels that apply dropout
    /// themselves (fused attention).
    pub(crate) fn keep_flags(&mut self, n: usize, p: f64) -> (Vec<bool>, f64) {
        let threshold = self.draw(n, p);
        (
            self.buf.par_iter().map(|&u| u >= threshold).collect(),
            1.0 / (1.0 - p),
        )
    }

    /// Fills `buf` with the next `n` draws; returns the keep threshold for `p`.
    fn draw(&mut self, n: usize, p: f64) -> u32 {
        self.buf.resize(n, 0);
        match &mut self.source {
            Source::Chacha8(rng) => fill_in_parallel(rng, &mut self.buf),
            Source::Philox { key, stream, word } => {
                philox::fill_parallel(*key, *stream, *word, &mut self.buf);
                *word += next_block(n);
            }
        }
        keep_threshold(p)
    }

    /// The place of the next `n` draws in the Philox stream, as [`Self::draw`] would take
    /// them, without drawing them (the product draws them itself, twice).
    fn philox_mask(&mut self, n: usize, dtype: DType, p: f64) -> crate::fused::PhiloxMask {
        let Source::Philox { key, stream, word } = &mut self.source else {
            unreachable!("philox_mask on a ChaCha8 stream")
        };
        let start = *word;
        *word += next_block(n);
        crate::fused::PhiloxMask {
            key: *key,
            stream: *stream,
            start,
            threshold: keep_threshold(p),
            scale: mask_scale(dtype, p),
        }
    }

    fn mask(&mut self, dims: &[usize], dtype: DType, device: &Device, p: f64) -> Result<Tensor> {
        if device.is_cpu() {
            self.scaled_mask(dims, dtype, p)
        } else {
            self.flag_mask(dims, dtype, device, p)
        }
    }

    /// The mask built on the host: `1 / (1 - p)` where kept, else 0.
    fn scaled_mask(&mut self, dims: &[usize], dtype: DType, p: f64) -> Result<Tensor> {
        let threshold = self.draw(dims.iter().product(), p);
        let scale = mask_scale(dtype, p);
        let t = match dtype {
            DType::F64 => {
                let v: Vec<f64> = self
                    .buf
                    .par_iter()
                    .map(|&u| if u >= threshold { scale } else { 0.0 })
                    .collect();
                Tensor::from_vec(v, dims, &Device::Cpu)?
            }
            _ => {
                let s = scale as f32;
                let v: Vec<f32> = self
                    .buf
                    .par_iter()
                    .map(|&u| if u >= threshold { s } else { 0.0 })
                    .collect();
                Tensor::from_vec(v, dims, &Device::Cpu)?.to_dtype(dtype)?
            }
        };
        Ok(t)
    }

    /// The same mask for another device: one byte per element crosses to the device (a quarter
    /// of an f32 mask), which turns it into `dtype` and scales it there. `0 * s` and `1 * s`
    /// are exact, so the values equal [`Self::scaled_mask`]'s.
    fn flag_mask(
        &mut self,
        dims: &[usize],
        dtype: DType,
        device: &Device,
        p: f64,
    ) -> Result<Tensor> {
        let threshold = self.draw(dims.iter().product(), p);
        let flags: Vec<u8> = self
            .buf
            .par_iter()
            .map(|&u| u8::from(u >= threshold))
            .collect();
        Ok(Tensor::from_vec(flags, dims, device)?
            .to_dtype(dtype)?
            .affine(mask_scale(dtype, p), 0.0)?)
    }
}

/// Keep iff the word is `>= p * 2^32`, i.e. with probability `1 - p` (to 2^-32).
fn keep_threshold(p: f64) -> u32 {
    (p * 4294967296.0).round().min(u32::MAX as f64) as u32
}

/// Words a mask of `n` elements takes: whole Philox blocks, so the next mask starts on a block
/// boundary (a device thread then draws one block for four neighbouring elements).
fn next_block(n: usize) -> u64 {
    (n as u64).div_ceil(4) * 4
}

/// The value of a kept element, `1 / (1 - p)`: in f64 for f64 masks, else rounded to f32 (the
/// host builds every other dtype's mask in f32 first).
fn mask_scale(dtype: DType, p: f64) -> f64 {
    let scale = 1.0 / (1.0 - p);
    match dtype {
        DType::F64 => scale,
        _ => f64::from(scale as f32),
    }
}

/// Words of the stream one parallel task fills.
const FILL_CHUNK: usize = 1 << 15;

/// `rng.fill(buf)`, in parallel: chunk `i` is drawn by a copy of `rng` moved to the word where
/// a sequential fill would be at that chunk, and `rng` ends where the sequential fill would.
fn fill_in_parallel(rng: &mut ChaCha8Rng, buf: &mut [u32]) {
    if buf.len() <= FILL_CHUNK {
        rng.fill(buf);
        return;
    }
    let start = rng.get_word_pos();
    let base = rng.clone();
    buf.par_chunks_mut(FILL_CHUNK)
        .enumerate()
        .for_each(|(i, chunk)| {
            let mut r = base.clone();
            r.set_word_pos(start + (i * FILL_CHUNK) as u128);
            r.fill(chunk);
        });
    rng.set_word_pos(start + buf.len() as u128);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(seed: u64, generator: MaskGenerator) -> DropoutRng {
        let rng = DropoutRng::new(seed);
        rng.set_state(DropoutRngState {
            seed,
            calls: 0,
            generator,
        });
        rng
    }

    const BOTH: [MaskGenerator; 2] = [MaskGenerator::Chacha8, MaskGenerator::Philox4x32_10];

    #[test]
    fn masks_are_reproducible_per_call_and_scaled() {
        for generator in BOTH {
            let x = Tensor::ones((64, 256), DType::F32, &Device::Cpu).unwrap();
            let rng = rng(7, generator);
            let a0 = rng.next_stream().dropout(&x, 0.25).unwrap();
            let a1 = rng.next_stream().dropout(&x, 0.25).unwrap();
            let at = |calls| DropoutRngState {
                seed: 7,
                calls,
                generator,
            };
            assert_eq!(rng.state(), at(2));
            let again = DropoutRng::new(0);
            again.set_state(at(0));
            let b0 = again.next_stream().dropout(&x, 0.25).unwrap();
            assert_eq!(a0.to_vec2::<f32>().unwrap(), b0.to_vec2::<f32>().unwrap());
            assert_ne!(a0.to_vec2::<f32>().unwrap(), a1.to_vec2::<f32>().unwrap());
            // resume at call 1
            again.set_state(at(1));
            let b1 = again.next_stream().dropout(&x, 0.25).unwrap();
            assert_eq!(a1.to_vec2::<f32>().unwrap(), b1.to_vec2::<f32>().unwrap());

            let v = a0.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let kept = v.iter().filter(|&&e| e != 0.0).count() as f64 / v.len() as f64;
            assert!(
                (kept - 0.75).abs() < 0.02,
                "{generator:?}: kept fraction {kept}"
            );
            assert!(v.iter().all(|&e| e == 0.0 || (e - 1.0 / 0.75).abs() < 1e-6));
            // E[dropout(x)] = x
            let mean = v.iter().map(|&e| e as f64).sum::<f64>() / v.len() as f64;
            assert!((mean - 1.0).abs() < 0.03, "{generator:?}: mean {mean}");
        }
    }

    /// A state saved before the generator was recorded reads as ChaCha8 and replays exactly
    /// ChaCha8 stream `calls` of the seed (what those runs trained with); new runs use Philox
    /// and record it.
    #[test]
    fn old_states_resume_with_chacha8_and_new_runs_record_philox() {
        let old: DropoutRngState = serde_json::from_str(r#"{"seed": 7, "calls": 3}"#).unwrap();
        assert_eq!(old.generator, MaskGenerator::Chacha8);
        let r = DropoutRng::new(0);
        r.set_state(old);
        let x = Tensor::ones(1000, DType::F32, &Device::Cpu).unwrap();
        let got = r
            .next_stream()
            .dropout(&x, 0.5)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let mut chacha = ChaCha8Rng::seed_from_u64(7);
        chacha.set_stream(3);
        let want: Vec<f32> = (0..1000)
            .map(|_| {
                if chacha.random::<u32>() >= 1 << 31 {
                    2.0
                } else {
                    0.0
                }
            })
            .collect();
        assert_eq!(got, want);

        let new = DropoutRng::new(7).state();
        assert_eq!(new.generator, MaskGenerator::Philox4x32_10);
        let json = serde_json::to_string(&new).unwrap();
        assert!(json.contains(r#""generator":"philox4x32-10""#), "{json}");
        for g in BOTH {
            assert_eq!(MaskGenerator::from_version(g.version()), Some(g));
        }
        assert_eq!(MaskGenerator::from_version(9), None);
    }

    /// Philox masks are words `0, 4k, ...` of stream `call`: each mask starts on a block
    /// boundary, the layout a device kernel reproduces. The fused product (mask never stored)
    /// equals the materialised mask, in f32 and f64, and both equal the keep flags.
    #[test]
    fn philox_masks_sit_at_block_boundaries_and_the_fused_product_equals_the_mask() {
        for dtype in [DType::F32, DType::F64] {
            let x = Tensor::ones(4 * 37 + 2, dtype, &Device::Cpu).unwrap();
            let p = 0.2;
            let draws = |composite: bool| {
                let run = || {
                    let mut s = DropoutRng::new(5).next_stream();
                    let a = s.dropout(&x, p).unwrap();
                    let b = s.dropout(&x, p).unwrap();
                    let (flags, _) = s.keep_flags(10, p);
                    (a, b, flags)
                };
                if composite {
                    crate::fused::with_composite_ops(run)
                } else {
                    run()
                }
            };
            let (fa, fb, fflags) = draws(false);
            let (ca, cb, cflags) = draws(true);
            let v = |t: &Tensor| t.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap();
            assert_eq!(v(&fa), v(&ca), "{dtype:?}");
            assert_eq!(v(&fb), v(&cb), "{dtype:?}");
            assert_eq!(fflags, cflags);
            // the words by hand: mask 1 at 0, mask 2 at 152 (150 rounded up), flags at 304
            let mut w = vec![0u32; 314];
            philox::fill(philox::key_of(5), 0, 0, &mut w);
            let t = keep_threshold(p);
            let kept = |i: usize| w[i] >= t;
            assert!((0..150).all(|i| (v(&fa)[i] != 0.0) == kept(i)));
            assert!((0..150).all(|i| (v(&fb)[i] != 0.0) == kept(152 + i)));
            assert!((0..10).all(|i| fflags[i] == kept(304 + i)));
        }
    }

    #[test]
    fn the_parallel_fill_is_the_sequential_fill() {
        let mut seq = ChaCha8Rng::seed_from_u64(3);
        seq.set_stream(5);
        let mut par = seq.clone();
        // Not a multiple of the chunk, then a small draw that continues the stream.
        for n in [3 * FILL_CHUNK + 17, 5, FILL_CHUNK + 1] {
            let mut a = vec![0u32; n];
            let mut b = vec![0u32; n];
            seq.fill(&mut a[..]);
            fill_in_parallel(&mut par, &mut b);
            assert_eq!(a, b, "n = {n}");
            assert_eq!(seq.get_word_pos(), par.get_word_pos());
        }
    }

    #[test]
    fn the_device_mask_equals_the_host_mask() {
        // flag_mask is what a GPU gets; built here on the CPU it must equal scaled_mask.
        let dims = [4, 3 * FILL_CHUNK / 16 + 5];
        for (dtype, p) in [(DType::F32, 0.1), (DType::F64, 0.25), (DType::BF16, 0.1)] {
            for generator in BOTH {
                let host = rng(9, generator)
                    .next_stream()
                    .scaled_mask(&dims, dtype, p)
                    .unwrap();
                let dev = rng(9, generator)
                    .next_stream()
                    .flag_mask(&dims, dtype, &Device::Cpu, p)
                    .unwrap();
                let bits = |t: &Tensor| {
                    t.to_dtype(DType::F64)
                        .unwrap()
                        .flatten_all()
                        .unwrap()
                        .to_vec1::<f64>()
                        .unwrap()
                };
                assert_eq!(bits(&host), bits(&dev), "{dtype:?} {generator:?}");
            }
        }
    }

    #[test]
    fn zero_probability_is_identity() {
        let x = Tensor::ones((3, 4), DType::F32, &Device::Cpu).unwrap();
        let y = DropoutRng::new(0).next_stream().dropout(&x, 0.0).unwrap();
        assert_eq!(y.to_vec2::<f32>().unwrap(), x.to_vec2::<f32>().unwrap());
    }
}
