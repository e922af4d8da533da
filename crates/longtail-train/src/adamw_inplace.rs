//! The AdamW update as three in-place CPU passes (`m`, `v`, then the parameter), with no
//! temporaries. The tensor-op formula allocates about ten parameter-sized tensors per
//! parameter; for a 30522 x 384 word embedding that is ~470 MB of transient memory at every
//! step, which set the peak RSS of a training run. Same arithmetic, same order, so the result
//! equals the tensor-op path (tested in `adamw.rs`). With the `cuda` feature the same three
//! passes run as CUDA kernels (longtail-model's `kernels/adamw.cu`, explicitly rounded, so the
//! GPU's numbers are the CPU's bit for bit): three launches per parameter instead of about
//! fifteen tensor ops and their temporaries.

use candle_core::{bail, CpuStorage, InplaceOp2, InplaceOp3, Layout, Result, Tensor};
use rayon::prelude::*;

/// Elements per parallel task.
const CHUNK: usize = 1 << 15;

/// Moment update: `m = m + (1 - beta1) (g - m)` (`First`) or `v = beta2 v + ((1 - beta2) g) g`
/// (`Second`).
enum Moment {
    First { beta1: f64 },
    Second { beta2: f64 },
}

impl InplaceOp2 for Moment {
    fn name(&self) -> &'static str {
        "longtail-adamw-moment"
    }
    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        g: &CpuStorage,
        gl: &Layout,
    ) -> Result<()> {
        match (dst, g) {
            (CpuStorage::F32(d), CpuStorage::F32(g)) => {
                self.apply(slice_mut(d, dst_l)?, slice(g, gl)?)
            }
            (CpuStorage::F64(d), CpuStorage::F64(g)) => {
                self.apply(slice_mut(d, dst_l)?, slice(g, gl)?)
            }
            _ => bail!("{}: f32/f64 tensors of one dtype only", self.name()),
        }
        Ok(())
    }
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        dst: &mut candle_core::CudaStorage,
        dst_l: &Layout,
        g: &candle_core::CudaStorage,
        gl: &Layout,
    ) -> Result<()> {
        cuda::moment(self, dst, dst_l, g, gl)
    }
}

impl Moment {
    fn apply<T: Float>(&self, d: &mut [T], g: &[T]) {
        match *self {
            Moment::First { beta1 } => {
                let w = T::of(1.0 - beta1);
                par_zip(d, g, |m, g| *m = (g - *m) * w + *m);
            }
            Moment::Second { beta2 } => {
                let (b2, w) = (T::of(beta2), T::of(1.0 - beta2));
                par_zip(d, g, |v, g| *v = *v * b2 + (g * w) * g);
            }
        }
    }
}

/// The scalars of one parameter's update at its step `t`, shared by the in-place kernels and
/// the tensor-op path. As an in-place op it is the parameter update
/// `p = p decay + (m (-step_size)) / (sqrt(v) (1 / bc2_sqrt) + eps)` (candle's `tensor / f64`
/// multiplies by the reciprocal; kept so both paths agree bit for bit).
pub(crate) struct Coefficients {
    pub(crate) beta1: f64,
    pub(crate) beta2: f64,
    /// `1 - lr * weight_decay` (decoupled weight decay).
    pub(crate) decay: f64,
    /// `lr / (1 - beta1^t)`.
    pub(crate) step_size: f64,
    /// `sqrt(1 - beta2^t)`.
    pub(crate) bias_correction2_sqrt: f64,
    pub(crate) eps: f64,
}

impl Coefficients {
    pub(crate) fn new(
        lr: f64,
        weight_decay: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        t: u64,
    ) -> Self {
        let t = t as f64;
        Self {
            beta1,
            beta2,
            decay: 1.0 - lr * weight_decay,
            step_size: lr / (1.0 - beta1.powf(t)),
            bias_correction2_sqrt: (1.0 - beta2.powf(t)).sqrt(),
            eps,
        }
    }
}

impl InplaceOp3 for Coefficients {
    fn name(&self) -> &'static str {
        "longtail-adamw-param"
    }
    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        m: &CpuStorage,
        ml: &Layout,
        v: &CpuStorage,
        vl: &Layout,
    ) -> Result<()> {
        match (dst, m, v) {
            (CpuStorage::F32(p), CpuStorage::F32(m), CpuStorage::F32(v)) => {
                self.apply(slice_mut(p, dst_l)?, slice(m, ml)?, slice(v, vl)?)
            }
            (CpuStorage::F64(p), CpuStorage::F64(m), CpuStorage::F64(v)) => {
                self.apply(slice_mut(p, dst_l)?, slice(m, ml)?, slice(v, vl)?)
            }
            _ => bail!("{}: f32/f64 tensors of one dtype only", self.name()),
        }
        Ok(())
    }
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        dst: &mut candle_core::CudaStorage,
        dst_l: &Layout,
        m: &candle_core::CudaStorage,
        ml: &Layout,
        v: &candle_core::CudaStorage,
        vl: &Layout,
    ) -> Result<()> {
        cuda::param(self, dst, dst_l, m, ml, v, vl)
    }
}

impl Coefficients {
    fn apply<T: Float>(&self, p: &mut [T], m: &[T], v: &[T]) {
        let (decay, step, inv_bc2, eps) = (
            T::of(self.decay),
            T::of(-self.step_size),
            T::of(1.0 / self.bias_correction2_sqrt),
            T::of(self.eps),
        );
        p.par_chunks_mut(CHUNK)
            .zip(m.par_chunks(CHUNK).zip(v.par_chunks(CHUNK)))
            .for_each(|(p, (m, v))| {
                for ((p, &m), &v) in p.iter_mut().zip(m).zip(v) {
                    *p = *p * decay + (m * step) / (v.sqrt_() * inv_bc2 + eps);
                }
            });
    }
}

/// One AdamW update of `param` in place; `exp_avg`/`exp_avg_sq` are updated in place too.
/// All four tensors must be contiguous CPU f32/f64 of one shape.
pub(crate) fn adamw_step(
    param: &Tensor,
    grad: &Tensor,
    exp_avg: &Tensor,
    exp_avg_sq: &Tensor,
    c: &Coefficients,
) -> Result<()> {
    exp_avg.inplace_op2(grad, &Moment::First { beta1: c.beta1 })?;
    exp_avg_sq.inplace_op2(grad, &Moment::Second { beta2: c.beta2 })?;
    param.inplace_op3(exp_avg, exp_avg_sq, c)
}

/// Whether [`adamw_step`] handles this parameter (else the tensor-op path runs): contiguous
/// f32/f64 on the CPU, or on a GPU with the `cuda` feature.
pub(crate) fn supported(t: &Tensor) -> bool {
    (t.device().is_cpu() || (cfg!(feature = "cuda") && t.device().is_cuda()))
        && matches!(t.dtype(), candle_core::DType::F32 | candle_core::DType::F64)
        && t.is_contiguous()
}

/// The launches of `kernels/adamw.cu` (through longtail-model, which holds the kernels).
#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::CudaStorageSlice;
    use candle_core::{bail, CudaStorage, Layout, Result};
    use longtail_model::cuda_kernels::launch_in_place;

    use super::{Coefficients, Moment};

    pub(super) fn moment(
        op: &Moment,
        dst: &mut CudaStorage,
        dst_l: &Layout,
        g: &CudaStorage,
        gl: &Layout,
    ) -> Result<()> {
        let dev = dst.device().clone();
        match (&mut dst.slice, &g.slice, op) {
            (CudaStorageSlice::F32(d), CudaStorageSlice::F32(g), Moment::First { beta1 }) => {
                let s = [(1.0 - beta1) as f32];
                launch_in_place(&dev, "adamw_m_f32", (d, dst_l), &[(g, gl)], &s)
            }
            (CudaStorageSlice::F64(d), CudaStorageSlice::F64(g), Moment::First { beta1 }) => {
                launch_in_place(&dev, "adamw_m_f64", (d, dst_l), &[(g, gl)], &[1.0 - beta1])
            }
            (CudaStorageSlice::F32(d), CudaStorageSlice::F32(g), Moment::Second { beta2 }) => {
                let s = [*beta2 as f32, (1.0 - beta2) as f32];
                launch_in_place(&dev, "adamw_v_f32", (d, dst_l), &[(g, gl)], &s)
            }
            (CudaStorageSlice::F64(d), CudaStorageSlice::F64(g), Moment::Second { beta2 }) => {
                let s = [*beta2, 1.0 - beta2];
                launch_in_place(&dev, "adamw_v_f64", (d, dst_l), &[(g, gl)], &s)
            }
            _ => bail!("longtail-adamw-moment: f32/f64 tensors of one dtype only"),
        }
    }

    pub(super) fn param(
        c: &Coefficients,
        dst: &mut CudaStorage,
        dst_l: &Layout,
        m: &CudaStorage,
        ml: &Layout,
        v: &CudaStorage,
        vl: &Layout,
    ) -> Result<()> {
        let dev = dst.device().clone();
        // The CPU's scalars, rounded to the dtype as `Float::of` rounds them.
        let s = [c.decay, -c.step_size, 1.0 / c.bias_correction2_sqrt, c.eps];
        match (&mut dst.slice, &m.slice, &v.slice) {
            (CudaStorageSlice::F32(p), CudaStorageSlice::F32(m), CudaStorageSlice::F32(v)) => {
                let s = s.map(|x| x as f32);
                launch_in_place(&dev, "adamw_p_f32", (p, dst_l), &[(m, ml), (v, vl)], &s)
            }
            (CudaStorageSlice::F64(p), CudaStorageSlice::F64(m), CudaStorageSlice::F64(v)) => {
                launch_in_place(&dev, "adamw_p_f64", (p, dst_l), &[(m, ml), (v, vl)], &s)
            }
            _ => bail!("longtail-adamw-param: f32/f64 tensors of one dtype only"),
        }
    }
}

trait Float:
    Copy
    + Send
    + Sync
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
{
    fn of(x: f64) -> Self;
    fn sqrt_(self) -> Self;
}

impl Float for f32 {
    fn of(x: f64) -> Self {
        x as f32
    }
    fn sqrt_(self) -> Self {
        self.sqrt()
    }
}

impl Float for f64 {
    fn of(x: f64) -> Self {
        x
    }
    fn sqrt_(self) -> Self {
        self.sqrt()
    }
}

fn par_zip<T: Float>(d: &mut [T], g: &[T], f: impl Fn(&mut T, T) + Sync) {
    d.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK))
        .for_each(|(d, g)| d.iter_mut().zip(g).for_each(|(d, &g)| f(d, g)));
}

fn slice<'a, T>(v: &'a [T], l: &Layout) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => bail!("adamw: contiguous tensors only"),
    }
}

fn slice_mut<'a, T>(v: &'a mut [T], l: &Layout) -> Result<&'a mut [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&mut v[a..b]),
        None => bail!("adamw: contiguous tensors only"),
    }
}
