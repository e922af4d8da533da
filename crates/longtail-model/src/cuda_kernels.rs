//! longtail's own CUDA kernels (`kernels/*.cu`): compiled ahead of time by build.rs into one
//! fatbin the binary embeds (SASS for sm_80 and sm_90, PTX the driver can take to newer GPUs),
//! loaded once per device. Nothing is compiled at run time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use candle_core::cuda_backend::cudarc::driver::{CudaFunction, CudaModule};
use candle_core::cuda_backend::cudarc::nvrtc::Ptx;
use candle_core::cuda_backend::{CudaDevice, DeviceId, WrapErr};
use candle_core::Result;

static FATBIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/longtail_kernels.fatbin"));

type Modules = Mutex<HashMap<DeviceId, Arc<CudaModule>>>;

/// Kernel `name` of the fatbin, on `dev`.
pub(crate) fn function(dev: &CudaDevice, name: &str) -> Result<CudaFunction> {
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
