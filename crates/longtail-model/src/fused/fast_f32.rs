//! Vectorisable f32 approximations of erf and exp (AVX2 + FMA when the CPU has them), and the
//! inference-only GELU built on them.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::slice;

// ---------------------------------------------------------------- inference-only GELU (f32)

/// `a * b + c`, fused only when `FMA`: `f32::mul_add` without the `fma` target feature is a
/// call into libm's scalar `fmaf` (it cost a quarter of the whole scoring run before this).
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `erf(x)` for f32 as a rational function of `x` on `[-4, 4]` (erf(4) rounds to 1 in f32),
/// the approximation Eigen and XLA use: plain arithmetic, so the loop below vectorises (the
/// libm `erff` candle calls is scalar and branchy). Within 1e-6 of the exact erf (tested).
#[inline(always)]
pub(super) fn erf_fast_f32<const FMA: bool>(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = madd::<FMA>(x2, -2.726_142_3e-10, 2.770_681_4e-8);
    for c in [
        -2.101_024e-6,
        -5.692_506_4e-5,
        -7.349_906_3e-4,
        -2.954_6e-3,
        -1.609_603_3e-2,
    ] {
        p = madd::<FMA>(x2, p, c);
    }
    p *= x;
    let mut q = madd::<FMA>(x2, -1.456_607_2e-5, -2.133_740_6e-4);
    for c in [-1.682_827e-3, -7.373_329e-3, -1.426_474e-2] {
        q = madd::<FMA>(x2, q, c);
    }
    p / q
}

/// `exp(x)` for f32 as `2^n * p(r)`, `x = n ln2 + r`, `|r| <= ln2 / 2`, with Cephes' degree-6
/// polynomial (within 2 ulp of libm's `expf`, tested): integer and float arithmetic only, so
/// a loop of it vectorises, where libm's `expf` is one scalar call per element. Inputs below
/// -87.3 (masked attention scores among them) give exactly 0.
#[inline(always)]
fn exp_fast_f32<const FMA: bool>(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let xc = x.clamp(-87.3, 88.7);
    let t = madd::<FMA>(xc, std::f32::consts::LOG2_E, MAGIC);
    let n = t - MAGIC;
    let ni = (t.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    let r = madd::<FMA>(n, -0.693_359_4, xc);
    let r = madd::<FMA>(n, 2.121_944_4e-4, r);
    let mut p = 1.987_569_1e-4;
    for c in [1.398_2e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5] {
        p = madd::<FMA>(p, r, c);
    }
    let y = madd::<FMA>(p, r * r, r) + 1.0;
    let scale = f32::from_bits(((ni + 127) as u32) << 23);
    if x < -87.3 {
        0.0
    } else {
        y * scale
    }
}

#[inline(always)]
fn exp_shifted_chunk<const FMA: bool>(row: &mut [f32], shift: f32) {
    row.iter_mut()
        .for_each(|v| *v = exp_fast_f32::<FMA>(*v - shift));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_shifted_avx2(row: &mut [f32], shift: f32) {
    exp_shifted_chunk::<true>(row, shift)
}

pub(super) fn exp_shifted_dispatch(row: &mut [f32], shift: f32) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function was compiled for (checked above).
        return unsafe { exp_shifted_avx2(row, shift) };
    }
    exp_shifted_chunk::<false>(row, shift)
}

#[inline(always)]
fn gelu_fast_chunk<const FMA: bool>(out: &mut [f32], x: &[f32]) {
    let s = std::f32::consts::FRAC_1_SQRT_2;
    for (o, &v) in out.iter_mut().zip(x) {
        *o = 0.5 * v * (1.0 + erf_fast_f32::<FMA>(v * s));
    }
}

/// The same loop compiled for AVX2 + FMA (8 lanes, fused multiply-adds), chosen at run time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_fast_chunk_avx2(out: &mut [f32], x: &[f32]) {
    gelu_fast_chunk::<true>(out, x)
}

fn gelu_fast_chunk_dispatch(out: &mut [f32], x: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function was compiled for (checked above).
        return unsafe { gelu_fast_chunk_avx2(out, x) };
    }
    gelu_fast_chunk::<false>(out, x)
}

/// Erf GELU in place on one contiguous piece (the int8 FFN's output epilogue); the same
/// formula and kernels as [`gelu_erf_inference`].
pub(crate) fn gelu_erf_in_place(v: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function was compiled for (checked above).
        return unsafe { gelu_in_place_avx2(v) };
    }
    gelu_in_place_chunk::<false>(v)
}

#[inline(always)]
fn gelu_in_place_chunk<const FMA: bool>(v: &mut [f32]) {
    let s = std::f32::consts::FRAC_1_SQRT_2;
    for x in v.iter_mut() {
        *x = 0.5 * *x * (1.0 + erf_fast_f32::<FMA>(*x * s));
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_in_place_avx2(v: &mut [f32]) {
    gelu_in_place_chunk::<true>(v)
}

fn gelu_fast_fwd(x: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(16384)
        .zip(x.par_chunks(16384))
        .for_each(|(o, x)| gelu_fast_chunk_dispatch(o, x));
    out
}

struct GeluFast;

impl CustomOp1 for GeluFast {
    fn name(&self) -> &'static str {
        "longtail-gelu-erf-fast"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        match s {
            CpuStorage::F32(v) => Ok((
                CpuStorage::F32(gelu_fast_fwd(slice(v, l, self.name())?)),
                l.shape().clone(),
            )),
            s => bail!("{}: f32 only, got {:?}", self.name(), s.dtype()),
        }
    }
}

/// Erf GELU for inference: f32 CPU tensors only, parallel and vectorised, **no backward**.
/// Other dtypes/devices fall back to candle's `gelu_erf`.
pub(crate) fn gelu_erf_inference(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        x.contiguous()?.apply_op1_no_bwd(&GeluFast)
    } else {
        x.gelu_erf()
    }
}

#[cfg(test)]
mod fast_gelu_tests {
    use super::*;
    use crate::fused::gelu_erf;
    use candle_core::Device;

    #[test]
    fn fast_erf_matches_exact_erf() {
        let mut worst = 0f32;
        for i in -100_000..=100_000 {
            let x = i as f32 * 6e-5;
            let exact = candle_core::cpu::erf::erf_f32(x);
            let d = (erf_fast_f32::<true>(x) - exact).abs();
            let d_plain = (erf_fast_f32::<false>(x) - exact).abs();
            worst = worst.max(d).max(d_plain);
        }
        assert!(worst < 1e-6, "max |erf error| {worst}");
    }

    /// Relative error against f64 `exp` over the range softmax sees, both compilations, and
    /// exact zeros below the cut-off.
    #[test]
    fn fast_exp_matches_exp() {
        let mut worst = 0f64;
        for i in -870_000..=880_000 {
            let x = i as f32 * 1e-4;
            let exact = (x as f64).exp();
            for v in [exp_fast_f32::<true>(x), exp_fast_f32::<false>(x)] {
                worst = worst.max((v as f64 - exact).abs() / exact);
            }
        }
        assert!(worst < 3e-7, "max relative exp error {worst}");
        assert_eq!(exp_fast_f32::<true>(f32::MIN), 0.0);
        assert_eq!(exp_fast_f32::<false>(-100.0), 0.0);
        let mut row = vec![1.0f32, 2.0, -3.0];
        exp_shifted_dispatch(&mut row, 2.0);
        let want = [(-1f32).exp(), 1.0, (-5f32).exp()];
        for (a, b) in row.iter().zip(want) {
            assert!((a - b).abs() <= 2e-7 * b, "{a} vs {b}");
        }
    }

    #[test]
    fn fast_gelu_matches_the_differentiable_gelu() {
        let x = Tensor::randn(0f32, 3., (37, 1536), &Device::Cpu).unwrap();
        let fast = gelu_erf_inference(&x).unwrap();
        let exact = gelu_erf(&x).unwrap();
        let d = (fast - exact)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d < 1e-5, "max |gelu diff| {d}");
    }
}
