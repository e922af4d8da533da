//! Dropout with masks drawn from our own seeded RNG.
//!
//! candle's CPU backend cannot be seeded (`Device::Cpu.set_seed` bails: "cannot seed the CPU rng
//! with set_seed"; `Tensor::rand` uses `rand::rng()`, the thread RNG), so `candle_nn::ops::dropout`
//! is not reproducible. Here every training forward pass draws its masks from a ChaCha8 stream
//! chosen by `(seed, call counter)`: the masks of forward call `k` depend only on the seed and
//! `k`, never on what earlier calls consumed, so a trainer resumes bit-for-bit by saving and
//! restoring [`DropoutRngState`]. Masks are generated on the host and uploaded, which makes
//! them identical on every device. The draws are split into chunks filled in parallel, each
//! from its own position of the same stream ([`fill_in_parallel`]), so the values are those of
//! one sequential fill; a GPU gets one byte per element (keep or not) and scales on the device.

use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// The whole state of a [`DropoutRng`]: save it with a checkpoint, restore it on resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropoutRngState {
    pub seed: u64,
    /// Number of training forward passes run so far.
    pub calls: u64,
}

/// Source of dropout masks: one independent ChaCha8 stream per training forward pass.
#[derive(Debug)]
pub struct DropoutRng {
    seed: AtomicU64,
    calls: AtomicU64,
}

impl DropoutRng {
    pub fn new(seed: u64) -> Self {
        Self {
            seed: AtomicU64::new(seed),
            calls: AtomicU64::new(0),
        }
    }

    pub fn state(&self) -> DropoutRngState {
        DropoutRngState {
            seed: self.seed.load(Ordering::SeqCst),
            calls: self.calls.load(Ordering::SeqCst),
        }
    }

    pub fn set_state(&self, state: DropoutRngState) {
        self.seed.store(state.seed, Ordering::SeqCst);
        self.calls.store(state.calls, Ordering::SeqCst);
    }

    /// The stream of the next forward pass (and advances the counter).
    pub(crate) fn next_stream(&self) -> MaskStream {
        let seed = self.seed.load(Ordering::SeqCst);
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(call);
        MaskStream {
            rng,
            buf: Vec::new(),
        }
    }
}

/// Draws the masks of one forward pass, in the (deterministic) order the layers ask for them.
pub(crate) struct MaskStream {
    rng: ChaCha8Rng,
    buf: Vec<u32>,
}

impl MaskStream {
    /// `x * mask / (1 - p)` with `mask ~ Bernoulli(1 - p)` elementwise.
    pub(crate) fn dropout(&mut self, x: &Tensor, p: f64) -> Result<Tensor> {
        if p <= 0.0 {
            return Ok(x.clone());
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
        fill_in_parallel(&mut self.rng, &mut self.buf);
        // keep iff u >= p * 2^32, i.e. with probability 1 - p (to 2^-32).
        (p * 4294967296.0).round().min(u32::MAX as f64) as u32
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

    #[test]
    fn masks_are_reproducible_per_call_and_scaled() {
        let x = Tensor::ones((64, 256), DType::F32, &Device::Cpu).unwrap();
        let rng = DropoutRng::new(7);
        let a0 = rng.next_stream().dropout(&x, 0.25).unwrap();
        let a1 = rng.next_stream().dropout(&x, 0.25).unwrap();
        assert_eq!(rng.state(), DropoutRngState { seed: 7, calls: 2 });
        let again = DropoutRng::new(7);
        let b0 = again.next_stream().dropout(&x, 0.25).unwrap();
        assert_eq!(a0.to_vec2::<f32>().unwrap(), b0.to_vec2::<f32>().unwrap());
        assert_ne!(a0.to_vec2::<f32>().unwrap(), a1.to_vec2::<f32>().unwrap());
        // resume at call 1
        again.set_state(DropoutRngState { seed: 7, calls: 1 });
        let b1 = again.next_stream().dropout(&x, 0.25).unwrap();
        assert_eq!(a1.to_vec2::<f32>().unwrap(), b1.to_vec2::<f32>().unwrap());

        let v = a0.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let kept = v.iter().filter(|&&e| e != 0.0).count() as f64 / v.len() as f64;
        assert!((kept - 0.75).abs() < 0.02, "kept fraction {kept}");
        assert!(v.iter().all(|&e| e == 0.0 || (e - 1.0 / 0.75).abs() < 1e-6));
        // E[dropout(x)] = x
        let mean = v.iter().map(|&e| e as f64).sum::<f64>() / v.len() as f64;
        assert!((mean - 1.0).abs() < 0.03, "mean {mean}");
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
            let host = DropoutRng::new(9)
                .next_stream()
                .scaled_mask(&dims, dtype, p)
                .unwrap();
            let dev = DropoutRng::new(9)
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
            assert_eq!(bits(&host), bits(&dev), "{dtype:?}");
        }
    }

    #[test]
    fn zero_probability_is_identity() {
        let x = Tensor::ones((3, 4), DType::F32, &Device::Cpu).unwrap();
        let y = DropoutRng::new(0).next_stream().dropout(&x, 0.0).unwrap();
        assert_eq!(y.to_vec2::<f32>().unwrap(), x.to_vec2::<f32>().unwrap());
    }
}
