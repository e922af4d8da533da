//! Per-row dynamic quantization of activations.

use rayon::prelude::*;

use crate::{ACT_MAX, ACT_ZERO};

/// Rows of activations on the integer grid, stored as `q + ACT_ZERO` (`u8`), each padded to
/// `stride` bytes with `ACT_ZERO` (zero).
#[derive(Debug, Clone)]
pub struct QuantizedRows {
    pub n: usize,
    pub stride: usize,
    pub data: Vec<u8>,
    /// Per row: the real value of one integer step.
    pub scale: Vec<f32>,
}

/// Quantizes `x (n, k)` row by row: scale `max|x_row| / ACT_MAX`, round to nearest even.
pub fn quantize_rows(x: &[f32], n: usize, k: usize, stride: usize) -> QuantizedRows {
    assert_eq!(x.len(), n * k, "input is not ({n}, {k})");
    assert!(
        stride >= k && stride.is_multiple_of(crate::K_ALIGN),
        "bad row stride {stride} for width {k}"
    );
    let mut data = vec![ACT_ZERO; n * stride];
    let mut scale = vec![0f32; n];
    if k > 0 {
        data.par_chunks_mut(stride)
            .zip(scale.par_iter_mut())
            .zip(x.par_chunks(k))
            .for_each(|((q, s), row)| *s = quantize_row(row, &mut q[..k]));
    }
    QuantizedRows {
        n,
        stride,
        data,
        scale,
    }
}

/// Quantizes one row into `q`, returns its scale. The AVX2 build of the same code rounds and
/// converts 8 lanes at a time (the baseline x86-64 target has no vector rounding and calls
/// `rintf` per element: that alone took longer than the integer GEMM).
pub(crate) fn quantize_row(row: &[f32], q: &mut [u8]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has the feature the function was compiled for (checked above).
        return unsafe { quantize_row_avx2(row, q) };
    }
    quantize_row_generic(row, q)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn quantize_row_avx2(row: &[f32], q: &mut [u8]) -> f32 {
    quantize_row_generic(row, q)
}

#[inline(always)]
fn quantize_row_generic(row: &[f32], q: &mut [u8]) -> f32 {
    let amax = abs_max(row);
    let s = if amax > 0.0 {
        amax / ACT_MAX as f32
    } else {
        1.0
    };
    let inv = 1.0 / s;
    let lim = ACT_MAX as f32;
    for (d, &v) in q.iter_mut().zip(row) {
        let r = (v * inv).round_ties_even();
        // Two selects instead of `clamp` + a saturating cast (which stays scalar): a NaN fails
        // the first comparison and lands on -ACT_MAX, so `r` is always a whole number in range.
        let r = if r >= -lim { r } else { -lim };
        let r = if r <= lim { r } else { lim };
        // SAFETY: `r` is finite and within [-ACT_MAX, ACT_MAX] (see above).
        *d = (unsafe { r.to_int_unchecked::<i32>() } + ACT_ZERO as i32) as u8;
    }
    s
}

/// `max |v|` in 16 independent lanes (a compare-and-select the compiler vectorises, where a
/// fold over `f32::max` stays scalar for its NaN rules).
#[inline(always)]
fn abs_max(row: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    let mut chunks = row.chunks_exact(16);
    for c in &mut chunks {
        for (m, v) in lanes.iter_mut().zip(c) {
            let a = v.abs();
            *m = if a > *m { a } else { *m };
        }
    }
    let tail = chunks.remainder().iter().fold(0f32, |m, v| m.max(v.abs()));
    lanes.iter().fold(tail, |m, &v| m.max(v))
}
