//! longtail's own CUDA kernels (`kernels/*.cu`): compiled ahead of time by build.rs into one
//! fatbin the binary embeds (SASS for sm_80 and sm_90, PTX the driver can take to newer GPUs),
//! loaded once per device. Nothing is compiled at run time. `kernels/all.cu` lists them:
//! dropout (this crate) and AdamW (longtail-train).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use candle_core::cuda_backend::cudarc::driver::{
    CudaFunction, CudaModule, CudaSlice, DeviceRepr, LaunchConfig, PushKernelArg,
};
use candle_core::cuda_backend::cudarc::nvrtc::Ptx;
use candle_core::cuda_backend::{CudaDevice, DeviceId, WrapErr};
use candle_core::{Layout, Result};

static FATBIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/longtail_kernels.fatbin"));

type Modules = Mutex<HashMap<DeviceId, Arc<CudaModule>>>;

/// Kernel `name` of the fatbin, on `dev`.
pub fn function(dev: &CudaDevice, name: &str) -> Result<CudaFunction> {
    static MODULES: OnceLock<Modules> = OnceLock::new();
    let mut modules = MODULES.get_or_init(Default::default).lock().unwrap();
    let module = match modules.get(&dev.id()) {
        Some(m) => m.clone(),
        None => {
            let m = dev
                .cuda_stream()
                .context()
                .load_module(Ptx::from_binary(FATBIN.to_vec()))
                .w()?;
            modules.insert(dev.id(), m.clone());
            m
        }
    };
    module.load_function(name).w()
}

/// `dst` updated in place by kernel `name` of signature
/// `(T* dst, const T* inputs..., uint64_t n, T scalars...)`, one thread per element: the shape
/// of the AdamW passes (`kernels/adamw.cu`), which longtail-train (no unsafe code) launches
/// through this.
pub fn launch_in_place<T: DeviceRepr>(
    dev: &CudaDevice,
    name: &str,
    (dst, dst_l): (&mut CudaSlice<T>, &Layout),
    inputs: &[(&CudaSlice<T>, &Layout)],
    scalars: &[T],
) -> Result<()> {
    let range = |l: &Layout| match l.contiguous_offsets() {
        Some(r) => Ok(r),
        None => Err(candle_core::Error::Msg(format!(
            "{name}: needs contiguous tensors"
        ))),
    };
    let (a, b) = range(dst_l)?;
    let n = b - a;
    let mut views = Vec::with_capacity(inputs.len());
    for (s, l) in inputs {
        let (ia, ib) = range(l)?;
        if ib - ia != n {
            candle_core::bail!("{name}: tensors of different sizes ({} and {n})", ib - ia)
        }
        views.push(s.slice(ia..ib));
    }
    let mut d = dst.slice_mut(a..b);
    let n64 = n as u64;
    let func = function(dev, name)?;
    let stream = dev.cuda_stream();
    let mut args = stream.launch_builder(&func);
    args.arg(&mut d);
    for v in &views {
        args.arg(v);
    }
    args.arg(&n64);
    for s in scalars {
        args.arg(s);
    }
    let cfg = LaunchConfig::for_num_elems(n.clamp(1, u32::MAX as usize) as u32);
    // SAFETY: the caller names a kernel whose signature is the one documented above.
    unsafe { args.launch(cfg) }.w()?;
    Ok(())
}
