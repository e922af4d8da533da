//! Dropout whose mask is never stored: element `i` is kept iff Philox word `start + i` of the
//! forward pass's stream is at least the threshold, in forward and again in backward.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{dispatch1, slice, Real};
use crate::philox;

/// Where a mask lives in the Philox stream of one forward pass, and how it is applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PhiloxMask {
    pub key: [u32; 2],
    /// The forward pass (the stream of the generator).
    pub stream: u64,
    /// Word of element 0 (a multiple of 4).
    pub start: u64,
    /// Keep iff the word is `>= threshold`.
    pub threshold: u32,
    /// Value of a kept element's factor, `1 / (1 - p)` as the dtype's mask holds it.
    pub scale: f64,
}

fn apply<T: Real>(x: &[T], m: &PhiloxMask) -> Vec<T> {
    let scale = T::from_f64(m.scale);
    let mut out = vec![T::zero(); x.len()];
    out.par_chunks_mut(philox::CHUNK)
        .zip(x.par_chunks(philox::CHUNK))
        .enumerate()
        .for_each(|(c, (o, x))| {
            let mut words = vec![0u32; o.len()];
            philox::fill(
                m.key,
                m.stream,
                m.start + (c * philox::CHUNK) as u64,
                &mut words,
            );
            for ((o, &x), &w) in o.iter_mut().zip(x).zip(&words) {
                // x * 0 (not a literal 0) so the values equal `x * mask` bit for bit, NaN included.
                *o = x * if w >= m.threshold { scale } else { T::zero() };
            }
        });
    out
}

struct PhiloxDropout(PhiloxMask);

impl CustomOp1 for PhiloxDropout {
    fn name(&self) -> &'static str {
        "longtail-philox-dropout"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        Ok((
            dispatch1!(s, l, self.name(), |x| apply(x, &self.0)),
            l.shape().clone(),
        ))
    }
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        Ok((cuda::forward(&self.0, s, l)?, l.shape().clone()))
    }
    /// d(x * mask)/dx = mask: the same words, regenerated.
    fn bwd(&self, _x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            grad.contiguous()?
                .apply_op1_no_bwd(&PhiloxDropout(self.0))?,
        ))
    }
}

/// The CUDA launch of `kernels/dropout.cu`, one thread per block of four elements.
#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::{
        CudaSlice, DeviceRepr, LaunchConfig, PushKernelArg,
    };
    use candle_core::cuda_backend::{CudaStorageSlice, WrapErr};
    use candle_core::{bail, CudaStorage, Layout, Result};

    use super::PhiloxMask;

    fn launch<T: DeviceRepr, S: DeviceRepr>(
        dev: &candle_core::CudaDevice,
        name: &str,
        x: &CudaSlice<T>,
        l: &Layout,
        m: &PhiloxMask,
        scale: S,
    ) -> Result<CudaSlice<T>> {
        let Some((a, b)) = l.contiguous_offsets() else {
            bail!("philox dropout: needs a contiguous input")
        };
        let n = (b - a) as u64;
        let x = x.slice(a..b);
        // SAFETY: every element is written by the kernel below.
        let y = unsafe { dev.alloc::<T>(b - a)? };
        let func = crate::cuda_kernels::function(dev, name)?;
        let blocks = n.div_ceil(4).max(1);
        let cfg = LaunchConfig::for_num_elems(blocks.min(u32::MAX as u64) as u32);
        let stream = dev.cuda_stream();
        let mut args = stream.launch_builder(&func);
        args.arg(&x)
            .arg(&y)
            .arg(&n)
            .arg(&m.key[0])
            .arg(&m.key[1])
            .arg(&m.stream)
            .arg(&m.start)
            .arg(&m.threshold)
            .arg(&scale);
        // SAFETY: the kernel's signature is (const T*, T*, u64, u32, u32, u64, u64, u32, S).
        unsafe { args.launch(cfg) }.w()?;
        Ok(y)
    }

    pub(super) fn forward(m: &PhiloxMask, s: &CudaStorage, l: &Layout) -> Result<CudaStorage> {
        let dev = &s.device;
        let slice = match &s.slice {
            CudaStorageSlice::F32(x) => {
                CudaStorageSlice::F32(launch(dev, "philox_dropout_f32", x, l, m, m.scale as f32)?)
            }
            CudaStorageSlice::F64(x) => {
                CudaStorageSlice::F64(launch(dev, "philox_dropout_f64", x, l, m, m.scale)?)
            }
            CudaStorageSlice::BF16(x) => {
                let scale = half::bf16::from_f64(m.scale).to_f32();
                CudaStorageSlice::BF16(launch(dev, "philox_dropout_bf16", x, l, m, scale)?)
            }
            _ => bail!("philox dropout: unsupported dtype {:?}", s.dtype()),
        };
        Ok(CudaStorage {
            slice,
            device: dev.clone(),
        })
    }
}

/// Whether [`philox_dropout`] runs on `x` (CPU f32/f64 unless composite ops are forced; with
/// the `cuda` feature also CUDA f32/bf16/f64).
pub(crate) fn supported(x: &Tensor) -> bool {
    super::supported(x)
        || (cfg!(feature = "cuda")
            && x.device().is_cuda()
            && matches!(
                x.dtype(),
                candle_core::DType::F32 | candle_core::DType::BF16 | candle_core::DType::F64
            )
            && !super::composite_only())
}

/// `x * mask` with the mask of `m` (CPU f32/f64, CUDA f32/bf16/f64), differentiable in `x`.
pub(crate) fn philox_dropout(x: &Tensor, m: PhiloxMask) -> Result<Tensor> {
    x.contiguous()?.apply_op1(PhiloxDropout(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    /// The op equals `x * mask` with the mask built from the same words, in value and in the
    /// input's gradient (backward regenerates the mask).
    #[test]
    fn equals_the_stored_mask_product_and_its_gradient() {
        let dev = Device::Cpu;
        let n = 2 * philox::CHUNK + 13;
        for dtype in [DType::F32, DType::F64] {
            let m = PhiloxMask {
                key: philox::key_of(11),
                stream: 3,
                start: 8,
                threshold: (0.1 * 4294967296.0f64) as u32,
                scale: if dtype == DType::F64 {
                    1.0 / 0.9
                } else {
                    f64::from((1.0 / 0.9) as f32)
                },
            };
            let mut words = vec![0u32; n];
            philox::fill(m.key, m.stream, m.start, &mut words);
            let mask: Vec<f64> = words
                .iter()
                .map(|&w| if w >= m.threshold { m.scale } else { 0.0 })
                .collect();
            let mask = Tensor::from_vec(mask, n, &dev)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let randn = || {
                Tensor::randn(0f32, 1., n, &dev)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap()
            };
            let x = Var::from_tensor(&randn()).unwrap();
            let w = randn();
            let fused = philox_dropout(x.as_tensor(), m).unwrap();
            let plain = x.as_tensor().mul(&mask).unwrap();
            let bits = |t: &Tensor| t.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap();
            assert_eq!(bits(&fused), bits(&plain), "{dtype:?} forward");
            let g_fused = fused
                .mul(&w)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let g_plain = plain
                .mul(&w)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            assert_eq!(
                bits(g_fused.get(&x).unwrap()),
                bits(g_plain.get(&x).unwrap()),
                "{dtype:?} gradient"
            );
            let kept = bits(&mask).iter().filter(|&&v| v != 0.0).count() as f64 / n as f64;
            assert!((kept - 0.9).abs() < 0.01, "kept {kept}");
        }
    }
}
