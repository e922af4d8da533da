//! The options several commands share: `--device`, `NAME=DIR` checkpoints, the library
//! defaults every flag shows and uses, and the command-line name of a `ValueEnum` value.
//! Commands import these; the command enum (`cli.rs`) imports the commands, never the reverse.

use clap::{Args, ValueEnum};
use longtail_classify::TrainConfig;
use longtail_data::PrepareOptions;
use longtail_model::DeviceSpec;
use std::path::PathBuf;

/// The library defaults the flags show and use.
pub(crate) mod defaults {
    use super::*;

    pub fn prepare() -> PrepareOptions {
        PrepareOptions::new("", "", "")
    }

    pub fn train() -> TrainConfig {
        TrainConfig::default()
    }

    pub fn eval_rec() -> longtail_rec_eval::RecOptions {
        longtail_rec_eval::RecOptions::default()
    }

    pub fn stream() -> longtail_infer::StreamOptions {
        longtail_infer::StreamOptions::new("", "")
    }
}

/// The name a `ValueEnum` value has on the command line.
pub fn value_name<T: ValueEnum>(v: &T) -> String {
    v.to_possible_value()
        .expect("no skipped variants")
        .get_name()
        .to_string()
}

/// `NAME=DIR`: a checkpoint and the row name it gets in a report.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedCheckpoint {
    pub name: String,
    pub dir: PathBuf,
}

impl std::str::FromStr for NamedCheckpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('=') {
            Some((name, dir)) if !name.trim().is_empty() && !dir.is_empty() => Ok(Self {
                name: name.trim().to_string(),
                dir: PathBuf::from(dir),
            }),
            _ => Err(format!("expected NAME=DIR, got {s:?}")),
        }
    }
}

/// Names the device for every command at once; a command's own `LONGTAIL_<COMMAND>_DEVICE`
/// wins over it.
pub const DEVICE_ENV: &str = "LONGTAIL_DEVICE";

/// `--device`, shared by every command that runs a model.
#[derive(Args, Debug, Clone)]
pub struct DeviceArg {
    /// Where the model runs: auto (a CUDA GPU when this binary was built with CUDA and one
    /// answers, else the CPU), cpu, cuda (GPU 0) or cuda:N. LONGTAIL_DEVICE sets it for every
    /// command.
    #[arg(long, value_name = "DEVICE", default_value_t = DeviceSpec::Auto)]
    pub device: DeviceSpec,
}

impl DeviceArg {
    /// The candle device, or a one-line error that says what to do instead.
    pub fn resolve(&self) -> anyhow::Result<longtail_model::Device> {
        Ok(self.device.resolve()?)
    }
}
