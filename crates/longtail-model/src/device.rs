//! `--device`: the one place a setting becomes a candle [`Device`].
//!
//! Every command takes the flag; libraries take the resolved `Device` (or a [`DeviceSpec`] in
//! serialisable configs) and never pick one themselves. Tensors loaded from files are staged on
//! the host and moved once; host-side randomness (the seeded dropout stream, parameter init)
//! is drawn on the CPU so that a run is reproducible whatever the device, and uploaded.

use std::fmt;
use std::str::FromStr;

use candle_core::Device;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where the model runs: `auto`, `cpu`, `cuda` (GPU 0) or `cuda:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// CUDA GPU 0 when this binary was built with CUDA and a GPU answers; the CPU otherwise.
    #[default]
    Auto,
    Cpu,
    /// CUDA GPU by ordinal.
    Cuda(usize),
}

/// `--device` could not be honoured; the message says what to do instead.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("invalid device {0:?}: expected auto, cpu, cuda or cuda:N")]
    Parse(String),
    #[error(
        "--device {0}: this longtail was built without CUDA; build the CUDA binary with \
         `make build-cuda` (cargo build --release --features cuda), or use --device cpu"
    )]
    NotCompiled(DeviceSpec),
    #[error(
        "--device {spec}: no usable CUDA GPU {ordinal} on this machine ({reason}); check \
         `nvidia-smi` and CUDA_VISIBLE_DEVICES, or use --device cpu"
    )]
    NoGpu {
        spec: DeviceSpec,
        ordinal: usize,
        reason: String,
    },
    #[error("LONGTAIL_CUDA_POOL_RELEASE_THRESHOLD={0:?}: expected a number of bytes or max")]
    PoolThreshold(String),
}

/// Whether this binary has the CUDA backend compiled in.
pub const fn cuda_compiled() -> bool {
    cfg!(feature = "cuda")
}

impl DeviceSpec {
    /// The candle device; [`DeviceSpec::Auto`] never fails (it falls back to the CPU). A CUDA
    /// device gets its memory pool setting ([`pool_release_threshold`]).
    pub fn resolve(self) -> Result<Device, DeviceError> {
        let device = self.resolve_plain()?;
        #[cfg(feature = "cuda")]
        if let Device::Cuda(d) = &device {
            let bytes = pool_release_threshold()?;
            // A device without stream-ordered memory pools (cudarc then allocates without one)
            // still runs; it only misses the setting, so say so and go on.
            if let Err(reason) = cuda_settings::set_pool_release_threshold(d, bytes) {
                eprintln!("warning: {self}: memory pool release threshold not set ({reason})");
            }
        }
        Ok(device)
    }

    fn resolve_plain(self) -> Result<Device, DeviceError> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Auto if !cuda_compiled() => Ok(Device::Cpu),
            Self::Auto => Ok(Device::new_cuda(0).unwrap_or(Device::Cpu)),
            Self::Cuda(_) if !cuda_compiled() => Err(DeviceError::NotCompiled(self)),
            Self::Cuda(ordinal) => Device::new_cuda(ordinal).map_err(|e| DeviceError::NoGpu {
                spec: self,
                ordinal,
                reason: driver_reason(&e.to_string()),
            }),
        }
    }
}

/// Bytes of freed memory the CUDA memory pool keeps for reuse instead of returning them to the
/// driver at each synchronisation: `LONGTAIL_CUDA_POOL_RELEASE_THRESHOLD` (bytes, or `max`, the
/// default; `0` is CUDA's own default, which hands everything back and re-allocates it on the
/// next step). Read for every CUDA device; exists for A/B measurements.
pub fn pool_release_threshold() -> Result<u64, DeviceError> {
    match std::env::var("LONGTAIL_CUDA_POOL_RELEASE_THRESHOLD") {
        Ok(v) if v.trim() != "max" => v.trim().parse().map_err(|_| DeviceError::PoolThreshold(v)),
        _ => Ok(u64::MAX),
    }
}

/// Whether cudarc tracks every tensor's uses with CUDA events (two events created and
/// destroyed per allocation), what makes a tensor safe to use from several threads, each with
/// its own per-thread stream. `LONGTAIL_CUDA_EVENT_TRACKING=1` keeps it; the default for
/// [`single_thread_settings`] turns it off.
pub fn event_tracking_wanted() -> bool {
    std::env::var("LONGTAIL_CUDA_EVENT_TRACKING").is_ok_and(|v| v.trim() == "1")
}

/// For a run where one thread issues all the GPU work (training): event tracking off unless
/// [`event_tracking_wanted`]. Call it before the first tensor is created on `device` (tensors
/// made earlier keep tracking). Returns the settings for the log; `None` on the CPU.
pub fn single_thread_settings(device: &Device) -> Option<String> {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(d) = device {
        if !event_tracking_wanted() {
            // SAFETY: candle issues a device's work on one stream, and the caller promises that
            // one thread issues all of it, so no tensor crosses streams.
            unsafe { d.disable_event_tracking() };
        }
        let threshold = match pool_release_threshold() {
            Ok(u64::MAX) => "max".to_string(),
            Ok(b) => format!("{b} bytes"),
            Err(e) => e.to_string(),
        };
        return Some(format!(
            "cuda runtime: event tracking {}, memory pool release threshold {threshold} \
             (LONGTAIL_CUDA_EVENT_TRACKING, LONGTAIL_CUDA_POOL_RELEASE_THRESHOLD)",
            if d.is_event_tracking() { "on" } else { "off" }
        ));
    }
    let _ = device;
    None
}

#[cfg(feature = "cuda")]
mod cuda_settings {
    use candle_core::cuda_backend::cudarc::driver::{result, sys};
    use candle_core::CudaDevice;

    pub(super) fn set_pool_release_threshold(dev: &CudaDevice, bytes: u64) -> Result<(), String> {
        let stream = dev.cuda_stream();
        let ctx = stream.context();
        ctx.bind_to_thread().map_err(|e| format!("{e:?}"))?;
        let pools = ctx
            .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED)
            .map_err(|e| format!("{e:?}"))?;
        if pools == 0 {
            return Err("the device has no memory pools".into());
        }
        let mut value = bytes;
        // SAFETY: the device is the context's; the attribute takes a u64 (cuuint64_t).
        unsafe {
            let pool = result::device::get_default_mem_pool(ctx.cu_device())
                .map_err(|e| format!("{e:?}"))?;
            result::mem_pool::set_attribute(
                pool,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                (&mut value as *mut u64).cast(),
            )
            .map_err(|e| format!("{e:?}"))
        }
    }
}

/// The driver's error name (`CUDA_ERROR_NO_DEVICE`) when the message has one, else its first
/// line: candle's message wraps it in cudarc's debug output.
fn driver_reason(message: &str) -> String {
    if let Some(at) = message.find("CUDA_ERROR_") {
        let name: String = message[at..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        return name;
    }
    message.lines().next().unwrap_or_default().to_string()
}

/// How a resolved device is named in logs and reports (`cpu`, `cuda:0`).
pub fn device_name(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl FromStr for DeviceSpec {
    type Err = DeviceError;
    fn from_str(s: &str) -> Result<Self, DeviceError> {
        let bad = || DeviceError::Parse(s.to_string());
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(bad),
        }
    }
}

impl Serialize for DeviceSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeviceSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_every_form() {
        for (s, want) in [
            ("auto", DeviceSpec::Auto),
            ("cpu", DeviceSpec::Cpu),
            ("CPU", DeviceSpec::Cpu),
            ("cuda", DeviceSpec::Cuda(0)),
            ("cuda:3", DeviceSpec::Cuda(3)),
        ] {
            assert_eq!(s.parse::<DeviceSpec>().unwrap(), want, "{s}");
        }
        assert_eq!(DeviceSpec::Cuda(3).to_string(), "cuda:3");
        assert_eq!(
            "cuda:0".parse::<DeviceSpec>().unwrap().to_string(),
            "cuda:0"
        );
        for bad in ["", "tpu", "cuda:", "cuda:x", "cuda:-1"] {
            let e = bad.parse::<DeviceSpec>().unwrap_err().to_string();
            assert!(
                e.contains("expected auto, cpu, cuda or cuda:N"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn serde_uses_the_flag_spelling() {
        #[derive(Serialize, Deserialize)]
        struct T {
            device: DeviceSpec,
        }
        let t: T = toml::from_str("device = \"cuda:1\"").unwrap();
        assert_eq!(t.device, DeviceSpec::Cuda(1));
        assert_eq!(
            toml::to_string(&T {
                device: DeviceSpec::Cpu
            })
            .unwrap()
            .trim(),
            "device = \"cpu\""
        );
        assert!(toml::from_str::<T>("device = \"tpu\"").is_err());
    }

    #[test]
    fn cpu_and_auto_resolve_without_a_gpu_build() {
        assert!(DeviceSpec::Cpu.resolve().unwrap().is_cpu());
        if !cuda_compiled() {
            assert!(DeviceSpec::Auto.resolve().unwrap().is_cpu());
        }
        assert_eq!(device_name(&Device::Cpu), "cpu");
    }

    #[test]
    fn driver_errors_are_named_by_their_code() {
        let m = "DriverError(CUDA_ERROR_NO_DEVICE, \"<Failure when calling cuGetErrorString()>\")";
        assert_eq!(driver_reason(m), "CUDA_ERROR_NO_DEVICE");
        assert_eq!(driver_reason("no cuda\nmore"), "no cuda");
    }

    /// The CPU build names the fix (the CUDA build is exercised by scripts/gpu_check.sh).
    #[test]
    #[cfg(not(feature = "cuda"))]
    fn cuda_on_a_cpu_build_says_how_to_build_it() {
        let e = DeviceSpec::Cuda(0).resolve().unwrap_err().to_string();
        assert!(e.contains("built without CUDA"), "{e}");
        assert!(e.contains("make build-cuda"), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }
}
