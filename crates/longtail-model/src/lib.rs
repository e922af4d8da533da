//! longtail-model: a trainable BERT-family encoder in candle, with a sequence-classification
//! head, Hugging Face checkpoint loading/saving and seeded dropout.
//!
//! Why not `candle_transformers::models::bert`? Its LayerNorm is `candle_nn::LayerNorm`, which
//! on contiguous input runs the fused `candle_nn::ops::layer_norm` through `apply_op3_no_bwd`
//! (no backward recorded: the gradient stops there, silently), and its `Dropout` is a no-op.
//! Fine-tuning through it updates the head only. Here every op on the training path has a
//! backward (see [`ops`]); [`BertModel::forward_inference`] may use the fused kernels because
//! it is never differentiated.
//!
//! Typical use (the trainer lives elsewhere):
//! ```no_run
//! use candle_core::Device;
//! use candle_nn::{AdamW, Optimizer, ParamsAdamW};
//! use longtail_model::{BertForSequenceClassification, ClassifierOptions, CrossEntropy, HubOptions};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let opts = ClassifierOptions { labels: Some(vec!["head".into(), "tail".into()]), ..Default::default() };
//! let (model, report) = BertForSequenceClassification::from_pretrained(
//!     "checkpoints/base/all-MiniLM-L6-v2", &opts, &HubOptions::default(), &Device::Cpu)?;
//! let mut opt = AdamW::new(model.trainable_vars(), ParamsAdamW { lr: 2e-5, ..Default::default() })?;
//! # let (ids, mask, labels): (candle_core::Tensor, candle_core::Tensor, candle_core::Tensor) = todo!();
//! let logits = model.forward_t(&ids, None, Some(&mask), true)?;
//! let loss = model.loss(&logits, &labels, &CrossEntropy::default())?;
//! opt.backward_step(&loss)?;
//! model.save_pretrained("runs/x/checkpoint")?;
//! # Ok(()) }
//! ```

pub mod bert;
pub mod causal;
pub mod checkpoint;
pub mod classifier;
pub mod config;
#[cfg(feature = "cuda")]
pub mod cuda_kernels;
pub mod device;
pub mod dropout;
pub mod error;
mod fused;
mod fused_attention;
mod fused_linear;
mod fused_residual;
pub mod int8;
pub mod ops;
pub mod params;
pub mod philox;
pub mod pretrained;

pub use bert::{cls_state, extended_attention_mask, mean_pool, BertModel};
pub use candle_core::Device;
pub use causal::CausalEncoder;
pub use checkpoint::{Checkpoint, TrainingArgs};
pub use classifier::{BertForSequenceClassification, ClassifierOptions};
pub use config::{BertConfig, HiddenAct, Pooling, Precision};
pub use device::{cuda_compiled, device_name, single_thread_settings, DeviceError, DeviceSpec};
pub use dropout::{DropoutRng, DropoutRngState, MaskGenerator};
pub use error::{ModelError, Result};
#[doc(hidden)]
pub use fused::with_composite_ops;
pub use ops::{cross_entropy, CrossEntropy};
pub use params::{named_vars, save_varmap_safetensors, Init, LoadReport, ParamBuilder};
pub use pretrained::{HubOptions, PretrainedBert, PretrainedFiles};

/// Process-wide CPU settings; call first thing in `main`, before any tensor work.
///
/// candle's element-wise worker pool spins 25,000 times before it sleeps
/// (`CANDLE_BARRIER_POOL_SPIN_LIMIT`); on a 2-core machine the spinning worker takes cycles
/// from the GEMM threads (measured ~3% of a MiniLM training step). A value set in the
/// environment is left alone.
pub fn configure_cpu_runtime() {
    const SPIN: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";
    if std::env::var_os(SPIN).is_none() {
        std::env::set_var(SPIN, "2000");
    }
}

/// Helpers shared by the unit tests of the kernels.
#[cfg(test)]
pub(crate) mod test_util {
    use candle_core::backprop::GradStore;
    use candle_core::{DType, Tensor, Var};

    /// Compares the gradients of `sum(ours * c)` and `sum(theirs * c)` (`c` random, so every
    /// output element weighs in) for each of `vars`: shapes equal, values within `tol`.
    /// Returns the gradients of `ours`.
    pub(crate) fn assert_same_grads(
        ours: Tensor,
        theirs: Tensor,
        c: &Tensor,
        vars: &[&Var],
        tol: f64,
        what: &str,
    ) -> GradStore {
        let grads = |y: Tensor| (y * c).unwrap().sum_all().unwrap().backward().unwrap();
        let (go, gt) = (grads(ours), grads(theirs));
        for v in vars {
            let (a, e) = (
                go.get(v.as_tensor()).unwrap(),
                gt.get(v.as_tensor()).unwrap(),
            );
            assert_eq!(a.dims(), e.dims(), "{what}");
            let d = max_abs_diff(a, e);
            assert!(d <= tol, "gradient {what} {:?}: {d}", a.dims());
        }
        go
    }

    /// Largest absolute element-wise difference, as f64.
    pub(crate) fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b)
            .and_then(|d| d.abs()?.flatten_all()?.max(0)?.to_dtype(DType::F64))
            .and_then(|d| d.to_scalar::<f64>())
            .unwrap()
    }
}
