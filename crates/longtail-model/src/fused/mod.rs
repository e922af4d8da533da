//! CPU kernels for softmax, layer norm and exact GELU as candle `CustomOp`s **with** a backward
//! pass. candle's own fused kernels have none (`apply_op*_no_bwd`); the composite versions in
//! [`crate::ops`] are exact but make 5-10 passes over memory, each allocating a tensor, and
//! their backward graphs are larger still. These run one pass forward and one backward.
//!
//! Each op's backward is itself a no-backward custom op (second derivatives are not needed).
//! Only CPU storage in f32/f64 is handled; [`crate::ops`] falls back to the composite ops on
//! other devices and dtypes. Equality with the composite ops (values and gradients) is tested.

mod fast_f32;
mod gelu;
mod layer_norm;
mod mask_mul;
mod philox_dropout;
mod softmax;

use candle_core::{bail, DType, Layout, Result, Tensor, WithDType};

use fast_f32::{erf_fast_f32, exp_shifted_dispatch};
pub(crate) use fast_f32::{gelu_erf_in_place, gelu_erf_inference};
pub(crate) use gelu::gelu_erf;
pub(crate) use layer_norm::layer_norm;
pub(crate) use mask_mul::mask_mul_const;
pub(crate) use philox_dropout::supported as philox_dropout_supported;
pub(crate) use philox_dropout::{philox_dropout, PhiloxMask};
pub(crate) use softmax::{softmax_last_dim, softmax_row, softmax_row_bwd};

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

// The kernel modules name the dispatch macros by path.
use {dispatch1, dispatch2, dispatch3};

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
    x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64) && !composite_only()
}

/// Inside [`with_composite_ops`].
fn composite_only() -> bool {
    COMPOSITE_ONLY.with(|c| c.get())
}
