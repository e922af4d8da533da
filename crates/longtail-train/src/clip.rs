//! Gradient clipping by global L2 norm, like `torch.nn.utils.clip_grad_norm_`.

use candle_core::backprop::GradStore;
use candle_core::{DType, Var};

use crate::error::{Result, TrainError};

/// Global L2 norm of the gradients of `vars` (variables without a gradient
/// are ignored, like torch's `p.grad is None`). Returns 0 if none has one.
pub fn global_grad_norm(grads: &GradStore, vars: &[Var]) -> Result<f64> {
    // Per-tensor norm in f32 like torch's vector_norm, combined in f64. The norms are stacked
    // where the gradients live and read back in one copy: on a GPU, one synchronisation per
    // step instead of one per parameter.
    let norms = vars
        .iter()
        .filter_map(|var| grads.get(var.as_tensor()))
        .map(|g| g.to_dtype(DType::F32)?.sqr()?.sum_all()?.sqrt())
        .collect::<candle_core::Result<Vec<_>>>()?;
    if norms.is_empty() {
        return Ok(0.0);
    }
    let norms = candle_core::Tensor::stack(&norms, 0)?.to_vec1::<f32>()?;
    Ok(norms
        .iter()
        .map(|&n| f64::from(n) * f64::from(n))
        .sum::<f64>()
        .sqrt())
}

/// Clips the gradients of `vars` in `grads` in place so that their global L2
/// norm is at most `max_norm`, and returns the norm *before* clipping (what
/// the HF Trainer logs as `grad_norm`).
///
/// Same rule as `clip_grad_norm_`: `clip_coef = max_norm / (total_norm + 1e-6)`,
/// clamped to at most 1, and every gradient is multiplied by it. As in torch
/// (`error_if_nonfinite=False`), a NaN/inf norm is returned unchanged and
/// propagates into the gradients; the caller decides whether to skip the step.
pub fn clip_grad_norm(grads: &mut GradStore, vars: &[Var], max_norm: f64) -> Result<f64> {
    if max_norm.is_nan() || max_norm <= 0.0 {
        return Err(TrainError::invalid(format!(
            "max_grad_norm must be > 0 to clip, got {max_norm}"
        )));
    }
    let total_norm = global_grad_norm(grads, vars)?;
    let clip_coef = max_norm / (total_norm + 1e-6);
    // torch.clamp(clip_coef, max=1.0) keeps NaN; f64::min would turn it into 1.
    let clip_coef = if clip_coef.is_nan() {
        clip_coef
    } else {
        clip_coef.min(1.0)
    };
    if clip_coef != 1.0 {
        for var in vars {
            let id = var.as_tensor().id();
            if let Some(g) = grads.get_id(id) {
                let scaled = g.affine(clip_coef, 0.0)?;
                grads.insert_id(id, scaled);
            }
        }
    }
    Ok(total_norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    fn setup(ga: &[f32], gb: &[f32]) -> (GradStore, Vec<Var>) {
        let a = Var::zeros(ga.len(), DType::F32, &Device::Cpu).unwrap();
        let b = Var::zeros(gb.len(), DType::F32, &Device::Cpu).unwrap();
        let mut g = GradStore::default();
        g.insert(a.as_tensor(), Tensor::new(ga, &Device::Cpu).unwrap());
        g.insert(b.as_tensor(), Tensor::new(gb, &Device::Cpu).unwrap());
        (g, vec![a, b])
    }

    fn grad(g: &GradStore, v: &Var) -> Vec<f32> {
        g.get(v.as_tensor()).unwrap().to_vec1().unwrap()
    }

    #[test]
    fn norm_is_global_over_all_vars() {
        let (g, vars) = setup(&[3.0, 0.0], &[4.0]);
        assert!((global_grad_norm(&g, &vars).unwrap() - 5.0).abs() < 1e-12);
        // only the listed vars count
        assert!((global_grad_norm(&g, &vars[..1]).unwrap() - 3.0).abs() < 1e-12);
        assert_eq!(global_grad_norm(&g, &[]).unwrap(), 0.0);
    }

    #[test]
    fn clips_when_norm_exceeds_max() {
        let (mut g, vars) = setup(&[3.0, 0.0], &[4.0]);
        let pre = clip_grad_norm(&mut g, &vars, 1.0).unwrap();
        assert!((pre - 5.0).abs() < 1e-12, "returns pre-clip norm");
        let coef = 1.0 / (5.0 + 1e-6);
        let a = grad(&g, &vars[0]);
        let b = grad(&g, &vars[1]);
        assert!((a[0] as f64 - 3.0 * coef).abs() < 1e-7);
        assert_eq!(a[1], 0.0);
        assert!((b[0] as f64 - 4.0 * coef).abs() < 1e-7);
        let post = global_grad_norm(&g, &vars).unwrap();
        assert!((post - 1.0).abs() < 1e-5, "{post}");
    }

    #[test]
    fn leaves_small_gradients_untouched() {
        let (mut g, vars) = setup(&[0.3], &[0.4]);
        let pre = clip_grad_norm(&mut g, &vars, 1.0).unwrap();
        assert!((pre - 0.5).abs() < 1e-7);
        assert_eq!(grad(&g, &vars[0]), [0.3]);
        assert_eq!(grad(&g, &vars[1]), [0.4]);
    }

    #[test]
    fn does_not_touch_unlisted_gradients() {
        let (mut g, vars) = setup(&[30.0], &[40.0]);
        clip_grad_norm(&mut g, &vars[..1], 1.0).unwrap();
        assert!(grad(&g, &vars[0])[0] < 1.0);
        assert_eq!(grad(&g, &vars[1]), [40.0]);
    }

    #[test]
    fn nan_norm_propagates_like_torch() {
        let (mut g, vars) = setup(&[f32::NAN], &[1.0]);
        let pre = clip_grad_norm(&mut g, &vars, 1.0).unwrap();
        assert!(pre.is_nan());
        assert!(grad(&g, &vars[1])[0].is_nan());
    }

    #[test]
    fn rejects_non_positive_max_norm() {
        let (mut g, vars) = setup(&[1.0], &[1.0]);
        assert!(clip_grad_norm(&mut g, &vars, 0.0).is_err());
        assert!(clip_grad_norm(&mut g, &vars, f64::NAN).is_err());
    }
}
