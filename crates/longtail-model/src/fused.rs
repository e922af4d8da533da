//! CPU kernels for softmax, layer norm and exact GELU as candle `CustomOp`s **with** a backward
//! pass. candle's own fused kernels have none (`apply_op*_no_bwd`); the composite versions in
//! [`crate::ops`] are exact but make 5-10 passes over memory, each allocating a tensor, and
//! their backward graphs are larger still. These run one pass forward and one backward.
//!
//! Each op's backward is itself a no-backward custom op (second derivatives are not needed).
//! Only CPU storage in f32/f64 is handled; [`crate::ops`] falls back to the composite ops on
//! other devices and dtypes. Equality with the composite ops (values and gradients) is tested.

use candle_core::backend::BackendStorage;
use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor,
    WithDType,
};
use rayon::prelude::*;

/// Scalar type of the kernels. Reductions accumulate in f64.
pub(crate) trait Real: WithDType + Send + Sync + std::ops::MulAssign {
    fn exp_(self) -> Self;
    fn erf_(self) -> Self;
    /// `v = exp(v - shift)` for every element (a softmax row).
    fn exp_shifted(row: &mut [Self], shift: Self) {
        row.iter_mut().for_each(|v| *v = (*v - shift).exp_());
    }
}

impl Real for f32 {
    fn exp_(self) -> Self {
        self.exp()
    }
    fn exp_shifted(row: &mut [Self], shift: Self) {
        exp_shifted_dispatch(row, shift)
    }
    fn erf_(self) -> Self {
        // The rational approximation (within 1e-6 of erf, tested): libm's erff/erfc were 7% of
        // a training step; f64 keeps the exact erf for the gradient checks.
        erf_fast_f32::<false>(self)
    }
}

impl Real for f64 {
    fn exp_(self) -> Self {
        self.exp()
    }
    fn erf_(self) -> Self {
        candle_core::cpu::erf::erf_f64(self)
    }
}

fn slice<'a, T>(v: &'a [T], l: &Layout, what: &str) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => bail!("{what}: fused kernel needs a contiguous input"),
    }
}

/// Rows per parallel task: about 32k elements each.
fn rows_per_task(n: usize) -> usize {
    (32768 / n.max(1)).max(1)
}

fn last_dim(l: &Layout) -> Result<usize> {
    match l.dims().last() {
        Some(&n) if n > 0 => Ok(n),
        _ => bail!("fused kernel on an empty or scalar tensor"),
    }
}

macro_rules! dispatch1 {
    ($s:expr, $l:expr, $name:expr, |$v:ident| $body:expr) => {
        match $s {
            CpuStorage::F32(v) => {
                let $v = slice(v, $l, $name)?;
                CpuStorage::F32($body)
            }
            CpuStorage::F64(v) => {
                let $v = slice(v, $l, $name)?;
                CpuStorage::F64($body)
            }
            s => bail!("{}: unsupported dtype {:?}", $name, s.dtype()),
        }
    };
}

macro_rules! dispatch2 {
    ($s1:expr, $l1:expr, $s2:expr, $l2:expr, $name:expr, |$a:ident, $b:ident| $body:expr) => {
        match ($s1, $s2) {
            (CpuStorage::F32(a), CpuStorage::F32(b)) => {
                let ($a, $b) = (slice(a, $l1, $name)?, slice(b, $l2, $name)?);
                CpuStorage::F32($body)
            }
            (CpuStorage::F64(a), CpuStorage::F64(b)) => {
                let ($a, $b) = (slice(a, $l1, $name)?, slice(b, $l2, $name)?);
                CpuStorage::F64($body)
            }
            (s, _) => bail!("{}: unsupported or mixed dtypes ({:?})", $name, s.dtype()),
        }
    };
}

macro_rules! dispatch3 {
    ($s1:expr, $l1:expr, $s2:expr, $l2:expr, $s3:expr, $l3:expr, $name:expr, |$a:ident, $b:ident, $c:ident| $body:expr) => {
        match ($s1, $s2, $s3) {
            (CpuStorage::F32(a), CpuStorage::F32(b), CpuStorage::F32(c)) => {
                let ($a, $b, $c) = (
                    slice(a, $l1, $name)?,
                    slice(b, $l2, $name)?,
                    slice(c, $l3, $name)?,
                );
                CpuStorage::F32($body)
            }
            (CpuStorage::F64(a), CpuStorage::F64(b), CpuStorage::F64(c)) => {
                let ($a, $b, $c) = (
                    slice(a, $l1, $name)?,
                    slice(b, $l2, $name)?,
                    slice(c, $l3, $name)?,
                );
                CpuStorage::F64($body)
            }
            (s, _, _) => bail!("{}: unsupported or mixed dtypes ({:?})", $name, s.dtype()),
        }
    };
}

// ---------------------------------------------------------------- softmax

/// Softmax of one row, in place (max and sum in f64).
pub(crate) fn softmax_row<T: Real>(row: &mut [T]) {
    let max = row.iter().fold(f64::NEG_INFINITY, |m, v| m.max(v.to_f64()));
    T::exp_shifted(row, T::from_f64(max));
    let sum: f64 = row.iter().map(|v| v.to_f64()).sum();
    let inv = T::from_f64(1.0 / sum);
    row.iter_mut().for_each(|v| *v *= inv);
}

/// Softmax backward of one row, in place: `g` (the output gradient) becomes
/// `y * (g - sum(g * y))`.
pub(crate) fn softmax_row_bwd<T: Real>(g: &mut [T], y: &[T]) {
    let dot: f64 = y
        .iter()
        .zip(g.iter())
        .map(|(a, b)| a.to_f64() * b.to_f64())
        .sum();
    let dot = T::from_f64(dot);
    for (g, &y) in g.iter_mut().zip(y) {
        *g = y * (*g - dot);
    }
}

fn softmax_fwd<T: Real>(x: &[T], n: usize) -> Vec<T> {
    let mut out = vec![T::zero(); x.len()];
    out.par_chunks_mut(n * rows_per_task(n))
        .zip(x.par_chunks(n * rows_per_task(n)))
        .for_each(|(o, x)| {
            o.copy_from_slice(x);
            o.chunks_mut(n).for_each(softmax_row);
        });
    out
}

/// `dx = y * (g - sum(g * y))` per row.
fn softmax_bwd<T: Real>(y: &[T], g: &[T], n: usize) -> Vec<T> {
    let mut out = vec![T::zero(); y.len()];
    let c = n * rows_per_task(n);
    out.par_chunks_mut(c)
        .zip(y.par_chunks(c).zip(g.par_chunks(c)))
        .for_each(|(o, (y, g))| {
            o.copy_from_slice(g);
            for (o, y) in o.chunks_mut(n).zip(y.chunks(n)) {
                softmax_row_bwd(o, y);
            }
        });
    out
}

struct Softmax;
struct SoftmaxBwd;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "longtail-softmax"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let n = last_dim(l)?;
        Ok((
            dispatch1!(s, l, self.name(), |x| softmax_fwd(x, n)),
            l.shape().clone(),
        ))
    }
    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let g = grad.contiguous()?;
        Ok(Some(res.apply_op2_no_bwd(&g, &SoftmaxBwd)?))
    }
}

impl CustomOp2 for SoftmaxBwd {
    fn name(&self) -> &'static str {
        "longtail-softmax-bwd"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let n = last_dim(l1)?;
        Ok((
            dispatch2!(s1, l1, s2, l2, self.name(), |y, g| softmax_bwd(y, g, n)),
            l1.shape().clone(),
        ))
    }
}

/// Softmax over the last dimension (CPU, f32/f64), differentiable.
pub(crate) fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Softmax)
}

// ---------------------------------------------------------------- layer norm

fn row_stats<T: Real>(x: &[T], eps: f64) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().map(|v| v.to_f64()).sum::<f64>() / n;
    let var = x.iter().map(|v| (v.to_f64() - mean).powi(2)).sum::<f64>() / n;
    (mean, 1.0 / (var + eps).sqrt())
}

fn layer_norm_fwd<T: Real>(x: &[T], w: &[T], b: &[T], eps: f64) -> Vec<T> {
    let n = w.len();
    let mut out = vec![T::zero(); x.len()];
    let c = n * rows_per_task(n);
    out.par_chunks_mut(c)
        .zip(x.par_chunks(c))
        .for_each(|(o, x)| {
            for (o, x) in o.chunks_mut(n).zip(x.chunks(n)) {
                let (mean, rstd) = row_stats(x, eps);
                for i in 0..n {
                    let xh = (x[i].to_f64() - mean) * rstd;
                    o[i] = T::from_f64(xh * w[i].to_f64() + b[i].to_f64());
                }
            }
        });
    out
}

/// `dx = rstd * (dxh - mean(dxh) - xh * mean(dxh * xh))` with `dxh = g * w`.
fn layer_norm_bwd_dx<T: Real>(x: &[T], w: &[T], g: &[T], eps: f64) -> Vec<T> {
    let n = w.len();
    let mut out = vec![T::zero(); x.len()];
    let c = n * rows_per_task(n);
    out.par_chunks_mut(c)
        .zip(x.par_chunks(c).zip(g.par_chunks(c)))
        .for_each(|(o, (x, g))| {
            for ((o, x), g) in o.chunks_mut(n).zip(x.chunks(n)).zip(g.chunks(n)) {
                let (mean, rstd) = row_stats(x, eps);
                let (mut a, mut b) = (0f64, 0f64);
                for i in 0..n {
                    let xh = (x[i].to_f64() - mean) * rstd;
                    let d = g[i].to_f64() * w[i].to_f64();
                    a += d;
                    b += d * xh;
                }
                let (a, b) = (a / n as f64, b / n as f64);
                for i in 0..n {
                    let xh = (x[i].to_f64() - mean) * rstd;
                    let d = g[i].to_f64() * w[i].to_f64();
                    o[i] = T::from_f64(rstd * (d - a - xh * b));
                }
            }
        });
    out
}

/// `[dw; db]` = `[sum_rows(g * xh); sum_rows(g)]`, shape `(2, n)`.
fn layer_norm_bwd_params<T: Real>(x: &[T], g: &[T], n: usize, eps: f64) -> Vec<T> {
    let c = n * rows_per_task(n);
    let acc = x
        .par_chunks(c)
        .zip(g.par_chunks(c))
        .map(|(x, g)| {
            let mut acc = vec![0f64; 2 * n];
            for (x, g) in x.chunks(n).zip(g.chunks(n)) {
                let (mean, rstd) = row_stats(x, eps);
                for i in 0..n {
                    let gi = g[i].to_f64();
                    acc[i] += gi * (x[i].to_f64() - mean) * rstd;
                    acc[n + i] += gi;
                }
            }
            acc
        })
        .reduce(
            || vec![0f64; 2 * n],
            |mut a, b| {
                a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
                a
            },
        );
    acc.into_iter().map(T::from_f64).collect()
}

struct LayerNorm {
    eps: f64,
}
struct LayerNormBwdDx {
    eps: f64,
}
struct LayerNormBwdParams {
    eps: f64,
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "longtail-layer-norm"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let eps = self.eps;
        Ok((
            dispatch3!(s1, l1, s2, l2, s3, l3, self.name(), |x, w, b| {
                layer_norm_fwd(x, w, b, eps)
            }),
            l1.shape().clone(),
        ))
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = grad.contiguous()?;
        let dx = x.apply_op3_no_bwd(w, &g, &LayerNormBwdDx { eps: self.eps })?;
        let p = x.apply_op2_no_bwd(&g, &LayerNormBwdParams { eps: self.eps })?;
        Ok((Some(dx), Some(p.get(0)?), Some(p.get(1)?)))
    }
}

impl CustomOp3 for LayerNormBwdDx {
    fn name(&self) -> &'static str {
        "longtail-layer-norm-bwd-dx"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let eps = self.eps;
        Ok((
            dispatch3!(s1, l1, s2, l2, s3, l3, self.name(), |x, w, g| {
                layer_norm_bwd_dx(x, w, g, eps)
            }),
            l1.shape().clone(),
        ))
    }
}

impl CustomOp2 for LayerNormBwdParams {
    fn name(&self) -> &'static str {
        "longtail-layer-norm-bwd-params"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let n = last_dim(l1)?;
        let eps = self.eps;
        Ok((
            dispatch2!(s1, l1, s2, l2, self.name(), |x, g| layer_norm_bwd_params(
                x, g, n, eps
            )),
            Shape::from((2, n)),
        ))
    }
}

/// Layer norm over the last dimension (CPU, f32/f64), differentiable in `x`, `w` and `b`.
pub(crate) fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    let n = x.dims().last().copied().unwrap_or(0);
    if w.dims() != [n] || b.dims() != [n] {
        bail!(
            "layer_norm: weight {:?} / bias {:?} do not match the last dim {n}",
            w.dims(),
            b.dims()
        )
    }
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, LayerNorm { eps })
}

// ---------------------------------------------------------------- GELU (erf)

const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

fn gelu_fwd<T: Real>(x: &[T]) -> Vec<T> {
    let half = T::from_f64(0.5);
    let one = T::one();
    let s = T::from_f64(std::f64::consts::FRAC_1_SQRT_2);
    let mut out = vec![T::zero(); x.len()];
    out.par_chunks_mut(32768)
        .zip(x.par_chunks(32768))
        .for_each(|(o, x)| {
            for (o, &v) in o.iter_mut().zip(x) {
                *o = half * v * (one + (v * s).erf_());
            }
        });
    out
}

/// `g * (Phi(x) + x phi(x))`.
fn gelu_bwd<T: Real>(x: &[T], g: &[T]) -> Vec<T> {
    let half = T::from_f64(0.5);
    let one = T::one();
    let s = T::from_f64(std::f64::consts::FRAC_1_SQRT_2);
    let k = T::from_f64(FRAC_1_SQRT_2PI);
    let mhalf = T::from_f64(-0.5);
    let mut out = vec![T::zero(); x.len()];
    out.par_chunks_mut(32768)
        .zip(x.par_chunks(32768).zip(g.par_chunks(32768)))
        .for_each(|(o, (x, g))| {
            for ((o, &v), &g) in o.iter_mut().zip(x).zip(g) {
                let cdf = half * (one + (v * s).erf_());
                let pdf = k * (mhalf * v * v).exp_();
                *o = g * (cdf + v * pdf);
            }
        });
    out
}

struct Gelu;
struct GeluBwd;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "longtail-gelu-erf"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        Ok((
            dispatch1!(s, l, self.name(), |x| gelu_fwd(x)),
            l.shape().clone(),
        ))
    }
    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let g = grad.contiguous()?;
        Ok(Some(arg.apply_op2_no_bwd(&g, &GeluBwd)?))
    }
}

impl CustomOp2 for GeluBwd {
    fn name(&self) -> &'static str {
        "longtail-gelu-erf-bwd"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        Ok((
            dispatch2!(s1, l1, s2, l2, self.name(), |x, g| gelu_bwd(x, g)),
            l1.shape().clone(),
        ))
    }
}

/// Exact (erf) GELU (CPU, f32/f64), differentiable.
pub(crate) fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Gelu)
}

// ---------------------------------------------------------------- dropout mask product

fn mask_mul<T: Real>(x: &[T], m: &[T]) -> Vec<T> {
    let mut out = vec![T::zero(); x.len()];
    out.par_chunks_mut(32768)
        .zip(x.par_chunks(32768).zip(m.par_chunks(32768)))
        .for_each(|(o, (x, m))| {
            for ((o, &x), &m) in o.iter_mut().zip(x).zip(m) {
                *o = x * m;
            }
        });
    out
}

/// `x * mask` where the mask is a constant: candle's `Mul` backward also computes (and
/// allocates, zero-fills and accumulates) the mask's gradient, a wasted pass per dropout.
struct MaskMul;

impl CustomOp2 for MaskMul {
    fn name(&self) -> &'static str {
        "longtail-mask-mul"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if l1.dims() != l2.dims() {
            bail!("mask {:?} does not match input {:?}", l2.dims(), l1.dims())
        }
        Ok((
            dispatch2!(s1, l1, s2, l2, self.name(), |x, m| mask_mul(x, m)),
            l1.shape().clone(),
        ))
    }
    fn bwd(
        &self,
        _x: &Tensor,
        mask: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((
            Some(grad.contiguous()?.apply_op2_no_bwd(mask, &MaskMul)?),
            None,
        ))
    }
}

/// `x * mask` (CPU, f32/f64, same shapes), differentiable in `x` only.
pub(crate) fn mask_mul_const(x: &Tensor, mask: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op2(&mask.contiguous()?, MaskMul)
}

thread_local! {
    static COMPOSITE_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with the fused CPU ops switched off on this thread: every op then takes its
/// composite path, as on devices without fused kernels. For tests that compare the two.
pub fn with_composite_ops<R>(f: impl FnOnce() -> R) -> R {
    let before = COMPOSITE_ONLY.with(|c| c.replace(true));
    let out = f();
    COMPOSITE_ONLY.with(|c| c.set(before));
    out
}

/// Whether the fused kernels handle this tensor.
pub(crate) fn supported(x: &Tensor) -> bool {
    x.device().is_cpu()
        && matches!(x.dtype(), DType::F32 | DType::F64)
        && !COMPOSITE_ONLY.with(|c| c.get())
}

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
fn erf_fast_f32<const FMA: bool>(x: f32) -> f32 {
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

fn exp_shifted_dispatch(row: &mut [f32], shift: f32) {
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

#[cfg(test)]
mod mask_mul_tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Same values and input gradient as candle's `x * mask`; the mask (a constant) gets none.
    #[test]
    fn mask_mul_matches_mul_and_leaves_the_mask_alone() {
        let dev = Device::Cpu;
        let x = Var::randn(0f32, 1., (3, 70000), &dev).unwrap();
        let mask = Tensor::rand(0f32, 1., (3, 70000), &dev)
            .unwrap()
            .ge(0.3)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        let c = Tensor::randn(0f32, 1., (3, 70000), &dev).unwrap();
        let ours = mask_mul_const(x.as_tensor(), &mask).unwrap();
        let theirs = (x.as_tensor() * &mask).unwrap();
        assert_eq!(
            ours.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            theirs.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
        // bit-identical gradient
        let go = crate::test_util::assert_same_grads(ours, theirs, &c, &[&x], 0.0, "mask_mul");
        assert!(go.get(&mask).is_none());
    }
}
