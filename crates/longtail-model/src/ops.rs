//! Differentiable building blocks made only of candle ops that have a backward pass
//! (matmul, broadcast arithmetic, exp, log, sqrt, recip, erf, sums), plus the cross-entropy loss.
//!
//! candle's own `candle_nn::ops::{softmax_last_dim, layer_norm, rms_norm}` and
//! `candle_nn::LayerNorm` on a contiguous input run fused kernels through `apply_op*_no_bwd`:
//! the result has no backward op recorded, so no gradient flows through them and nothing
//! reports it. Nothing on the training path of this crate uses them.
//!
//! On CPU (f32/f64) softmax, layer norm and GELU run as one-pass kernels with an exact backward
//! (`crate::fused`); elsewhere, or through the `*_composite` functions, as compositions of
//! basic ops. Both give the same values and gradients (tested below).

use candle_core::{DType, Tensor, D};

use crate::error::{ModelError, Result};

/// Softmax over the last dimension: `exp(x - max) / sum(exp(x - max))`.
///
/// The max is detached: softmax is invariant to the shift, so its gradient is exact without
/// differentiating through the max.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if crate::fused::supported(x) {
        return Ok(crate::fused::softmax_last_dim(x)?);
    }
    softmax_last_dim_composite(x)
}

/// [`softmax_last_dim`] from basic ops only (any device and dtype).
pub fn softmax_last_dim_composite(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    let s = e.sum_keepdim(D::Minus1)?;
    Ok(e.broadcast_div(&s)?)
}

/// Log-softmax over the last dimension: `(x - max) - log(sum(exp(x - max)))`.
pub fn log_softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let shifted = x.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    Ok(shifted.broadcast_sub(&lse)?)
}

/// Layer normalisation over the last dimension with the biased variance, as PyTorch's
/// `nn.LayerNorm`: `(x - mean) / sqrt(var + eps) * weight + bias`.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    if crate::fused::supported(x) && weight.device().is_cpu() && bias.device().is_cpu() {
        return Ok(crate::fused::layer_norm(x, weight, bias, eps)?);
    }
    layer_norm_composite(x, weight, bias, eps)
}

/// [`layer_norm`] from basic ops only (any device and dtype).
pub fn layer_norm_composite(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let centered = x.broadcast_sub(&mean)?;
    let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
    let inv_std = (var + eps)?.sqrt()?.recip()?;
    Ok(centered
        .broadcast_mul(&inv_std)?
        .broadcast_mul(weight)?
        .broadcast_add(bias)?)
}

/// Exact GELU, `0.5 x (1 + erf(x / sqrt 2))`, from `erf` (whose backward is the exact
/// `2/sqrt(pi) exp(-x^2)`) and arithmetic. candle's fused `gelu_erf` has a backward too, but
/// with a 6-digit constant; this form keeps f64 finite-difference checks tight.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    if crate::fused::supported(x) {
        return Ok(crate::fused::gelu_erf(x)?);
    }
    gelu_erf_composite(x)
}

/// [`gelu_erf`] from basic ops only (any device and dtype).
pub fn gelu_erf_composite(x: &Tensor) -> Result<Tensor> {
    let cdf = x
        .affine(std::f64::consts::FRAC_1_SQRT_2, 0.)?
        .erf()?
        .affine(0.5, 0.5)?;
    Ok((x * cdf)?)
}

/// Mean of `hidden` `(b, s, h)` over the positions where `mask` `(b, s)` is 1, as
/// sentence-transformers' mean pooling (denominator clamped at 1e-9).
pub fn masked_mean(hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let mask = mask.to_dtype(hidden.dtype())?.unsqueeze(D::Minus1)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    let count = mask.sum(1)?.clamp(1e-9, f64::INFINITY)?;
    Ok(summed.broadcast_div(&count)?)
}

/// Options of [`cross_entropy`], with PyTorch's `nn.CrossEntropyLoss` semantics.
#[derive(Debug, Clone, Default)]
pub struct CrossEntropy {
    /// Per-class weights `(num_classes,)`, like `CrossEntropyLoss(weight=...)`: the mean is
    /// weighted, i.e. divided by the sum of the weights of the samples' true classes.
    pub class_weights: Option<Tensor>,
    /// Label smoothing `eps` in `[0, 1)`: the target is `(1 - eps) one_hot + eps / C`.
    pub label_smoothing: f64,
}

/// Mean cross-entropy of `logits` `(n, c)` against integer `labels` `(n,)` (u32 or i64), with
/// optional class weights and label smoothing, exactly as PyTorch's
/// `F.cross_entropy(logits, labels, weight=w, label_smoothing=eps, reduction="mean")`:
///
/// `loss = -sum_i sum_c t_ic w_c log p_ic / sum_i w_{y_i}` with `t_ic = (1-eps) [c = y_i] + eps/C`.
///
/// Every op is differentiable; labels out of range are an error.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor, opts: &CrossEntropy) -> Result<Tensor> {
    let (n, c) = logits.dims2()?;
    if labels.dims() != [n] {
        return Err(ModelError::Input(format!(
            "labels have shape {:?}, expected [{n}] for logits {:?}",
            labels.dims(),
            logits.dims()
        )));
    }
    let eps = opts.label_smoothing;
    if !(0.0..1.0).contains(&eps) {
        return Err(ModelError::Input(format!(
            "label_smoothing must be in [0, 1), got {eps}"
        )));
    }
    let labels = labels.to_dtype(DType::U32)?;
    let max_label = labels.max(0)?.to_scalar::<u32>()? as usize;
    if max_label >= c {
        return Err(ModelError::Input(format!(
            "label {max_label} out of range for {c} classes"
        )));
    }
    let dtype = logits.dtype();
    let device = logits.device();
    let classes = Tensor::arange(0u32, c as u32, device)?;
    let one_hot = labels
        .unsqueeze(1)?
        .broadcast_eq(&classes.unsqueeze(0)?)?
        .to_dtype(dtype)?;
    let weights = match &opts.class_weights {
        Some(w) => {
            if w.dims() != [c] {
                return Err(ModelError::Input(format!(
                    "class_weights have shape {:?}, expected [{c}]",
                    w.dims()
                )));
            }
            w.to_dtype(dtype)?.to_device(device)?.detach()
        }
        None => Tensor::ones(c, dtype, device)?,
    };
    let weights = weights.unsqueeze(0)?;
    let target = ((&one_hot * (1.0 - eps))? + eps / c as f64)?.broadcast_mul(&weights)?;
    let denom = one_hot.broadcast_mul(&weights)?.sum_all()?;
    let logp = log_softmax_last_dim(logits)?;
    let num = (target * logp)?.sum_all()?.neg()?;
    Ok(num.div(&denom)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::max_abs_diff;
    use candle_core::{Device, Var};

    #[test]
    fn softmax_and_layer_norm_match_candle_reference_forward() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 3., (4, 5, 7), &dev).unwrap();
        let ours = softmax_last_dim(&x).unwrap();
        let theirs = candle_nn::ops::softmax_last_dim(&x).unwrap();
        assert!(max_abs_diff(&ours, &theirs) < 1e-6);
        let ls = log_softmax_last_dim(&x).unwrap();
        assert!(max_abs_diff(&ls.exp().unwrap(), &theirs) < 1e-6);

        let w = Tensor::randn(1f32, 0.1, 7, &dev).unwrap();
        let b = Tensor::randn(0f32, 0.1, 7, &dev).unwrap();
        let ours = layer_norm(&x, &w, &b, 1e-12).unwrap();
        let theirs = candle_nn::ops::layer_norm(&x, &w, &b, 1e-12).unwrap();
        assert!(max_abs_diff(&ours, &theirs) < 1e-5);
    }

    #[test]
    fn gelu_matches_candle_gelu_erf_and_has_a_gradient() {
        let dev = Device::Cpu;
        let x = Var::new(&[-3f64, -1., -0.1, 0., 0.5, 2., 4.], &dev).unwrap();
        let ours = gelu_erf_composite(x.as_tensor()).unwrap();
        let theirs = x.as_tensor().gelu_erf().unwrap();
        assert!(max_abs_diff(&ours, &theirs) < 1e-12);
        let grads = ours.sum_all().unwrap().backward().unwrap();
        let g = grads.get(&x).unwrap().to_vec1::<f64>().unwrap();
        // d/dx gelu(x) = Phi(x) + x phi(x)
        let phi = |v: f64| (-v * v / 2.).exp() / (2. * std::f64::consts::PI).sqrt();
        let xs = x.as_tensor().to_vec1::<f64>().unwrap();
        let cdf = x
            .as_tensor()
            .affine(std::f64::consts::FRAC_1_SQRT_2, 0.)
            .unwrap()
            .erf()
            .unwrap()
            .affine(0.5, 0.5)
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        for i in 0..xs.len() {
            let want = cdf[i] + xs[i] * phi(xs[i]);
            assert!((g[i] - want).abs() < 1e-12, "{i}: {} vs {want}", g[i]);
        }
    }

    /// The fused CPU kernels give the composite ops' values and gradients (f64: to 1e-12).
    #[test]
    fn fused_kernels_match_composite_values_and_gradients() {
        let dev = Device::Cpu;
        for dtype in [DType::F64, DType::F32] {
            let tol = if dtype == DType::F64 { 1e-12 } else { 2e-5 };
            let x0 = (Tensor::randn(0f64, 2., (3, 5, 17), &dev).unwrap() + 0.3)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let x = Var::from_tensor(&x0).unwrap();
            let w = Var::from_tensor(
                &Tensor::randn(1f64, 0.3, 17, &dev)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap(),
            )
            .unwrap();
            let b = Var::from_tensor(
                &Tensor::randn(0f64, 0.3, 17, &dev)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap(),
            )
            .unwrap();
            let c = Tensor::randn(0f64, 1., (3, 5, 17), &dev)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let check =
                |f: &dyn Fn(&Tensor) -> Tensor, g: &dyn Fn(&Tensor) -> Tensor, what: &str| {
                    // through a transpose too, so non-contiguous inputs and gradients are covered
                    for transpose in [false, true] {
                        let prep = |t: &Tensor| {
                            if transpose {
                                t.transpose(0, 1).unwrap()
                            } else {
                                t.clone()
                            }
                        };
                        let cc = prep(&c);
                        let yf = f(&prep(x.as_tensor()));
                        let yc = g(&prep(x.as_tensor()));
                        assert!(max_abs_diff(&yf, &yc) < tol, "{what} forward {dtype:?}");
                        let gf = (yf * &cc).unwrap().sum_all().unwrap().backward().unwrap();
                        let gc = (yc * &cc).unwrap().sum_all().unwrap().backward().unwrap();
                        for v in [&x, &w, &b] {
                            match (gf.get(v.as_tensor()), gc.get(v.as_tensor())) {
                                (Some(a), Some(bb)) => {
                                    let d = max_abs_diff(a, bb);
                                    assert!(d < tol, "{what} gradient {dtype:?}: {d}")
                                }
                                (None, None) => {}
                                _ => panic!("{what}: gradient present in one version only"),
                            }
                        }
                    }
                };
            check(
                &|t| softmax_last_dim(t).unwrap(),
                &|t| softmax_last_dim_composite(t).unwrap(),
                "softmax",
            );
            check(
                &|t| gelu_erf(t).unwrap(),
                &|t| gelu_erf_composite(t).unwrap(),
                "gelu",
            );
            check(
                &|t| layer_norm(t, w.as_tensor(), b.as_tensor(), 1e-12).unwrap(),
                &|t| layer_norm_composite(t, w.as_tensor(), b.as_tensor(), 1e-12).unwrap(),
                "layer_norm",
            );
        }
    }

    #[test]
    fn masked_mean_ignores_padding() {
        let dev = Device::Cpu;
        let h = Tensor::new(&[[[1f32, 2.], [3., 4.], [100., 100.]]], &dev).unwrap();
        let m = Tensor::new(&[[1u32, 1, 0]], &dev).unwrap();
        let got = masked_mean(&h, &m).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(got, vec![vec![2f32, 3.]]);
    }

    // The closed form written out by hand; tests/cross_entropy_torch.rs checks the same function
    // against values produced by PyTorch itself (tests/fixtures/cross_entropy_torch.json).
    #[test]
    fn cross_entropy_plain_matches_closed_form() {
        let dev = Device::Cpu;
        let logits = Tensor::new(
            &[
                [2.0f64, -1.0, 0.5],
                [0.1, 0.2, 0.3],
                [-2.0, 3.0, 1.0],
                [0.0, 0.0, 5.0],
            ],
            &dev,
        )
        .unwrap();
        let labels = Tensor::new(&[0u32, 2, 1, 1], &dev).unwrap();
        let rows = logits.to_vec2::<f64>().unwrap();
        let lab = [0usize, 2, 1, 1];
        let w = [1.0f64, 3.0, 0.5];
        let eps = 0.2;
        let mut num_plain = 0.;
        let mut num_w = 0.;
        let mut den_w = 0.;
        for (r, &y) in rows.iter().zip(&lab) {
            let lse = r.iter().map(|v| v.exp()).sum::<f64>().ln();
            let logp: Vec<f64> = r.iter().map(|v| v - lse).collect();
            num_plain -= logp[y];
            let smooth: f64 = (0..3).map(|c| w[c] * logp[c]).sum();
            num_w -= (1. - eps) * w[y] * logp[y] + eps / 3. * smooth;
            den_w += w[y];
        }
        let plain = cross_entropy(&logits, &labels, &CrossEntropy::default())
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!((plain - num_plain / 4.).abs() < 1e-12);
        let opts = CrossEntropy {
            class_weights: Some(Tensor::new(&w, &dev).unwrap()),
            label_smoothing: eps,
        };
        let weighted = cross_entropy(&logits, &labels, &opts)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!((weighted - num_w / den_w).abs() < 1e-12);
    }

    #[test]
    fn cross_entropy_rejects_bad_labels() {
        let dev = Device::Cpu;
        let logits = Tensor::zeros((2, 3), DType::F32, &dev).unwrap();
        let labels = Tensor::new(&[0u32, 3], &dev).unwrap();
        assert!(cross_entropy(&logits, &labels, &CrossEntropy::default()).is_err());
        let labels = Tensor::new(&[0u32, 1, 2], &dev).unwrap();
        assert!(cross_entropy(&logits, &labels, &CrossEntropy::default()).is_err());
    }
}
