//! AdamW over named parameters with HF-style parameter groups.
//!
//! The update is the single-tensor path of `torch.optim.AdamW`
//! (`amsgrad=False`, `maximize=False`), which is what the HF Trainer uses
//! for `optim="adamw_torch"` on CPU:
//!
//! ```text
//! step += 1                                  (per parameter, only when it has a gradient)
//! p      = p * (1 - lr * weight_decay)       (decoupled weight decay)
//! m      = m + (1 - beta1) * (g - m)         (exp_avg.lerp_)
//! v      = v * beta2 + (1 - beta2) * g * g   (exp_avg_sq)
//! denom  = sqrt(v) / sqrt(1 - beta2^step) + eps
//! p      = p - (lr / (1 - beta1^step)) * m / denom
//! ```
//!
//! `lr` is the learning rate set from outside (by the scheduler) times the
//! group's `lr_scale`. A trainable parameter without a gradient in the
//! `GradStore` is skipped entirely (no decay, no step count), like torch's
//! `p.grad is None`.

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::adamw_inplace::{self, Coefficients};
use crate::error::{Result, TrainError};
use crate::param_groups::{ParamGroupSpec, Partition};

/// Hyper-parameters with `TrainingArguments` names and defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub adam_beta1: f64,
    pub adam_beta2: f64,
    pub adam_epsilon: f64,
}

impl Default for AdamWConfig {
    /// `TrainingArguments` defaults: lr 5e-5, no weight decay, (0.9, 0.999), 1e-8.
    fn default() -> Self {
        AdamWConfig {
            learning_rate: 5e-5,
            weight_decay: 0.0,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_epsilon: 1e-8,
        }
    }
}

impl AdamWConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        let ok = self.learning_rate.is_finite()
            && self.learning_rate >= 0.0
            && (0.0..1.0).contains(&self.adam_beta1)
            && (0.0..1.0).contains(&self.adam_beta2)
            && self.adam_epsilon.is_finite()
            && self.adam_epsilon >= 0.0
            && self.weight_decay.is_finite()
            && self.weight_decay >= 0.0;
        if ok {
            Ok(())
        } else {
            Err(TrainError::invalid(format!(
                "invalid AdamW hyper-parameters: {self:?}"
            )))
        }
    }
}

/// Per-parameter optimizer state (lazily initialised like torch's).
#[derive(Debug)]
pub(crate) struct ParamState {
    pub(crate) name: String,
    pub(crate) var: Var,
    /// Number of updates this parameter received (torch `state["step"]`).
    pub(crate) step: u64,
    pub(crate) exp_avg: Option<Tensor>,
    pub(crate) exp_avg_sq: Option<Tensor>,
}

#[derive(Debug)]
pub(crate) struct GroupState {
    pub(crate) name: String,
    pub(crate) weight_decay: f64,
    pub(crate) lr_scale: f64,
    pub(crate) params: Vec<ParamState>,
}

/// Read-only description of a parameter group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupInfo {
    pub name: String,
    pub weight_decay: f64,
    pub lr_scale: f64,
    pub params: Vec<String>,
}

/// AdamW with decoupled weight decay, parameter groups and frozen parameters.
#[derive(Debug)]
pub struct AdamW {
    pub(crate) config: AdamWConfig,
    pub(crate) groups: Vec<GroupState>,
    pub(crate) frozen: Vec<String>,
    /// Number of `step` calls (the trainer's optimizer-step count).
    pub(crate) step_count: u64,
}

impl AdamW {
    /// HF default grouping: `config.weight_decay` on all parameters except
    /// biases and normalisation weights; nothing frozen.
    pub fn new(params: Vec<(String, Var)>, config: AdamWConfig) -> Result<Self> {
        let spec = ParamGroupSpec::new(config.weight_decay);
        Self::with_spec(params, config, &spec)
    }

    /// Custom grouping (frozen parameters, LR multipliers, no-decay rule).
    /// The spec's weight decay must equal `config.weight_decay`.
    pub fn with_spec(
        params: Vec<(String, Var)>,
        config: AdamWConfig,
        spec: &ParamGroupSpec,
    ) -> Result<Self> {
        config.validate()?;
        if spec.weight_decay() != config.weight_decay {
            return Err(TrainError::invalid(format!(
                "ParamGroupSpec weight_decay {} differs from AdamWConfig weight_decay {}",
                spec.weight_decay(),
                config.weight_decay
            )));
        }
        Self::from_partition(spec.partition(params)?, config)
    }

    /// Builds the optimizer from an already computed partition.
    pub fn from_partition(partition: Partition, config: AdamWConfig) -> Result<Self> {
        config.validate()?;
        let groups = partition
            .groups
            .into_iter()
            .map(|g| GroupState {
                name: g.name,
                weight_decay: g.weight_decay,
                lr_scale: g.lr_scale,
                params: g
                    .params
                    .into_iter()
                    .map(|(name, var)| ParamState {
                        name,
                        var,
                        step: 0,
                        exp_avg: None,
                        exp_avg_sq: None,
                    })
                    .collect(),
            })
            .collect();
        Ok(AdamW {
            config,
            groups,
            frozen: partition.frozen,
            step_count: 0,
        })
    }

    /// The current (scheduled) base learning rate.
    pub fn learning_rate(&self) -> f64 {
        self.config.learning_rate
    }

    /// Sets the base learning rate for the next `step` (groups multiply it
    /// by their `lr_scale`).
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.config.learning_rate = lr;
    }

    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }

    /// Number of `step` calls so far (restored by `load_state`).
    pub fn step_count(&self) -> u64 {
        self.step_count
    }

    /// Names of the parameters excluded from optimisation.
    pub fn frozen_names(&self) -> &[String] {
        &self.frozen
    }

    /// The parameter groups (name, weight decay, LR multiplier, members).
    pub fn groups(&self) -> Vec<GroupInfo> {
        self.groups
            .iter()
            .map(|g| GroupInfo {
                name: g.name.clone(),
                weight_decay: g.weight_decay,
                lr_scale: g.lr_scale,
                params: g.params.iter().map(|p| p.name.clone()).collect(),
            })
            .collect()
    }

    /// Trainable variables in group order (for clipping and accumulation).
    pub fn trainable_vars(&self) -> Vec<Var> {
        self.named_trainable().into_iter().map(|(_, v)| v).collect()
    }

    /// Trainable `(name, var)` pairs in group order.
    pub fn named_trainable(&self) -> Vec<(String, Var)> {
        self.groups
            .iter()
            .flat_map(|g| g.params.iter().map(|p| (p.name.clone(), p.var.clone())))
            .collect()
    }

    /// Per-parameter update counts (torch's `state[p]["step"]`).
    pub fn param_steps(&self) -> Vec<(String, u64)> {
        self.groups
            .iter()
            .flat_map(|g| g.params.iter().map(|p| (p.name.clone(), p.step)))
            .collect()
    }

    /// One AdamW update with the gradients in `grads`.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        let AdamWConfig {
            learning_rate,
            adam_beta1: beta1,
            adam_beta2: beta2,
            adam_epsilon: eps,
            ..
        } = self.config;
        for group in &mut self.groups {
            let lr = learning_rate * group.lr_scale;
            let wd = group.weight_decay;
            for p in &mut group.params {
                let Some(grad) = grads.get(p.var.as_tensor()) else {
                    continue;
                };
                if grad.shape() != p.var.shape() || grad.dtype() != p.var.dtype() {
                    return Err(TrainError::invalid(format!(
                        "gradient for {:?} has shape {:?}/{:?}, parameter has {:?}/{:?}",
                        p.name,
                        grad.shape(),
                        grad.dtype(),
                        p.var.shape(),
                        p.var.dtype()
                    )));
                }
                let grad = grad.to_device(p.var.device())?;
                update_param(p, &grad, lr, wd, beta1, beta2, eps)?;
            }
        }
        self.step_count += 1;
        Ok(())
    }
}

fn update_param(
    p: &mut ParamState,
    grad: &Tensor,
    lr: f64,
    weight_decay: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
) -> Result<()> {
    p.step += 1;
    let c = Coefficients::new(lr, weight_decay, beta1, beta2, eps, p.step);
    let theta = p.var.as_tensor();
    if !adamw_inplace::supported(theta) {
        return update_param_tensors(p, grad, &c);
    }
    let grad = grad.contiguous()?;
    let m = p.exp_avg.get_or_insert(grad.zeros_like()?);
    let v = p.exp_avg_sq.get_or_insert(grad.zeros_like()?);
    Ok(adamw_inplace::adamw_step(theta, &grad, m, v, &c)?)
}

/// The same update from tensor ops (any device and dtype; allocates temporaries).
fn update_param_tensors(p: &mut ParamState, grad: &Tensor, c: &Coefficients) -> Result<()> {
    let theta = p.var.as_tensor();
    // param.mul_(1 - lr * weight_decay)
    let theta = theta.affine(c.decay, 0.0)?;
    let m = match &p.exp_avg {
        Some(m) => m.clone(),
        None => grad.zeros_like()?,
    };
    let v = match &p.exp_avg_sq {
        Some(v) => v.clone(),
        None => grad.zeros_like()?,
    };
    // exp_avg.lerp_(grad, 1 - beta1): m + w * (g - m)
    let m = ((grad - &m)?.affine(1.0 - c.beta1, 0.0)? + &m)?;
    // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    let v = (v.affine(c.beta2, 0.0)? + (grad.affine(1.0 - c.beta2, 0.0)? * grad)?)?;
    // (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
    let denom = (v.sqrt()? / c.bias_correction2_sqrt)?.affine(1.0, c.eps)?;
    // param.addcdiv_(exp_avg, denom, value=-step_size)
    let theta = (theta + (m.affine(-c.step_size, 0.0)? / &denom)?)?;
    p.var.set(&theta)?;
    p.exp_avg = Some(m);
    p.exp_avg_sq = Some(v);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    fn var(values: &[f32]) -> Var {
        Var::from_slice(values, values.len(), &Device::Cpu).unwrap()
    }

    /// A GradStore whose gradient for `v` is exactly `g` (d/dv sum(v * g) = g).
    fn grads_for(pairs: &[(&Var, &[f32])]) -> GradStore {
        let mut loss: Option<Tensor> = None;
        for (v, g) in pairs {
            let g = Tensor::from_slice(g, g.len(), &Device::Cpu).unwrap();
            let term = (v.as_tensor() * g).unwrap().sum_all().unwrap();
            loss = Some(match loss {
                None => term,
                Some(l) => (l + term).unwrap(),
            });
        }
        loss.unwrap().backward().unwrap()
    }

    fn values(v: &Var) -> Vec<f32> {
        v.as_tensor().to_vec1::<f32>().unwrap()
    }

    /// Scalar AdamW in f64, the textbook torch formula, for one parameter.
    fn reference(mut p: f64, grads: &[f64], lr: f64, wd: f64, b1: f64, b2: f64, eps: f64) -> f64 {
        let (mut m, mut v) = (0.0, 0.0);
        for (i, g) in grads.iter().enumerate() {
            let t = (i + 1) as f64;
            p *= 1.0 - lr * wd;
            m = b1 * m + (1.0 - b1) * g;
            v = b2 * v + (1.0 - b2) * g * g;
            let denom = v.sqrt() / (1.0 - b2.powf(t)).sqrt() + eps;
            p -= lr / (1.0 - b1.powf(t)) * m / denom;
        }
        p
    }

    /// The in-place CPU kernels and the tensor-op formula give the same bits over several
    /// steps, with weight decay, in f32 and f64 (a non-contiguous gradient included).
    #[test]
    fn inplace_update_equals_tensor_ops_bit_for_bit() {
        for dtype in [DType::F32, DType::F64] {
            let dev = Device::Cpu;
            let init = Tensor::randn(0f32, 1., (70_000,), &dev)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let state = |v: &Var| ParamState {
                name: "w".into(),
                var: v.clone(),
                step: 0,
                exp_avg: None,
                exp_avg_sq: None,
            };
            let (a, b) = (
                Var::from_tensor(&init).unwrap(),
                Var::from_tensor(&init).unwrap(),
            );
            let (mut pa, mut pb) = (state(&a), state(&b));
            for _ in 0..4 {
                let g = Tensor::randn(0f32, 1., (350, 200), &dev)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap()
                    .t()
                    .unwrap()
                    .reshape(70_000)
                    .unwrap();
                update_param(&mut pa, &g, 1e-3, 0.01, 0.9, 0.999, 1e-8).unwrap();
                pb.step += 1;
                let c = Coefficients::new(1e-3, 0.01, 0.9, 0.999, 1e-8, pb.step);
                update_param_tensors(&mut pb, &g, &c).unwrap();
            }
            let bits = |t: &Tensor| t.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap();
            assert_eq!(bits(a.as_tensor()), bits(b.as_tensor()), "{dtype:?} params");
            assert_eq!(
                bits(pa.exp_avg.as_ref().unwrap()),
                bits(pb.exp_avg.as_ref().unwrap())
            );
            assert_eq!(
                bits(pa.exp_avg_sq.as_ref().unwrap()),
                bits(pb.exp_avg_sq.as_ref().unwrap())
            );
            assert_ne!(bits(a.as_tensor()), bits(&init), "the update moved nothing");
        }
    }

    #[test]
    fn matches_scalar_reference_with_decay_groups() {
        let w = var(&[0.5, -1.0]);
        let b = var(&[0.25]);
        let cfg = AdamWConfig {
            learning_rate: 0.1,
            weight_decay: 0.5,
            ..Default::default()
        };
        let mut opt = AdamW::new(
            vec![
                ("layer.weight".into(), w.clone()),
                ("layer.bias".into(), b.clone()),
            ],
            cfg,
        )
        .unwrap();
        let gw = [[0.3f32, -0.2], [0.1, 0.4], [-0.5, 0.05]];
        let gb = [0.2f32, -0.1, 0.3];
        for i in 0..3 {
            let g = grads_for(&[(&w, &gw[i]), (&b, &[gb[i]])]);
            opt.step(&g).unwrap();
        }
        let ew0 = reference(0.5, &[0.3, 0.1, -0.5], 0.1, 0.5, 0.9, 0.999, 1e-8);
        let ew1 = reference(-1.0, &[-0.2, 0.4, 0.05], 0.1, 0.5, 0.9, 0.999, 1e-8);
        // bias is in the no-decay group
        let eb = reference(0.25, &[0.2, -0.1, 0.3], 0.1, 0.0, 0.9, 0.999, 1e-8);
        let (w, b) = (values(&w), values(&b));
        assert!((w[0] as f64 - ew0).abs() < 1e-6, "{} vs {ew0}", w[0]);
        assert!((w[1] as f64 - ew1).abs() < 1e-6, "{} vs {ew1}", w[1]);
        assert!((b[0] as f64 - eb).abs() < 1e-6, "{} vs {eb}", b[0]);
        assert_eq!(opt.step_count(), 3);
    }

    #[test]
    fn frozen_params_do_not_move_and_lr_scale_applies() {
        let frozen = var(&[1.0]);
        let half = var(&[1.0]);
        let full = var(&[1.0]);
        let spec = ParamGroupSpec::new(0.0)
            .frozen_names(["emb.weight"])
            .lr_scale(|n| if n == "enc.weight" { 0.5 } else { 1.0 });
        let mut opt = AdamW::with_spec(
            vec![
                ("emb.weight".into(), frozen.clone()),
                ("enc.weight".into(), half.clone()),
                ("head.weight".into(), full.clone()),
            ],
            AdamWConfig {
                learning_rate: 0.01,
                ..Default::default()
            },
            &spec,
        )
        .unwrap();
        assert_eq!(opt.frozen_names(), ["emb.weight"]);
        assert_eq!(opt.trainable_vars().len(), 2);
        let g = grads_for(&[(&frozen, &[1.0]), (&half, &[1.0]), (&full, &[1.0])]);
        opt.step(&g).unwrap();
        assert_eq!(values(&frozen), [1.0]);
        // first Adam step moves by ~lr regardless of the gradient scale
        let d_half = 1.0 - values(&half)[0];
        let d_full = 1.0 - values(&full)[0];
        assert!((d_full - 0.01).abs() < 1e-6, "{d_full}");
        assert!((d_half - 0.005).abs() < 1e-6, "{d_half}");
    }

    #[test]
    fn missing_gradient_skips_param_like_torch() {
        let a = var(&[1.0]);
        let b = var(&[1.0]);
        let mut opt = AdamW::new(
            vec![
                ("a.weight".into(), a.clone()),
                ("b.weight".into(), b.clone()),
            ],
            AdamWConfig {
                learning_rate: 0.1,
                weight_decay: 0.1,
                ..Default::default()
            },
        )
        .unwrap();
        opt.step(&grads_for(&[(&a, &[1.0])])).unwrap();
        assert_eq!(values(&b), [1.0], "no grad: no decay, no update");
        assert_eq!(
            opt.param_steps(),
            [("a.weight".to_string(), 1), ("b.weight".to_string(), 0)]
        );
        opt.step(&grads_for(&[(&a, &[1.0]), (&b, &[1.0])])).unwrap();
        assert_eq!(opt.param_steps()[1].1, 1);
        assert_eq!(opt.step_count(), 2);
        // b's first update uses bias correction for step 1, i.e. moves by lr (+ decay)
        let expected = reference(1.0, &[1.0], 0.1, 0.1, 0.9, 0.999, 1e-8);
        assert!((values(&b)[0] as f64 - expected).abs() < 1e-6);
    }

    #[test]
    fn set_learning_rate_controls_the_update() {
        let a = var(&[1.0]);
        let mut opt = AdamW::new(vec![("a".into(), a.clone())], AdamWConfig::default()).unwrap();
        opt.set_learning_rate(0.0);
        opt.step(&grads_for(&[(&a, &[3.0])])).unwrap();
        assert_eq!(values(&a), [1.0]);
        opt.set_learning_rate(0.2);
        assert_eq!(opt.learning_rate(), 0.2);
        opt.step(&grads_for(&[(&a, &[3.0])])).unwrap();
        assert!(values(&a)[0] < 0.9);
    }

    #[test]
    fn rejects_bad_config_and_mismatched_grads() {
        let a = var(&[1.0, 2.0]);
        let bad = AdamWConfig {
            adam_beta1: 1.0,
            ..Default::default()
        };
        assert!(AdamW::new(vec![("a".into(), a.clone())], bad).is_err());
        let inconsistent = AdamW::with_spec(
            vec![("a".into(), a.clone())],
            AdamWConfig {
                weight_decay: 0.01,
                ..Default::default()
            },
            &ParamGroupSpec::new(0.0),
        );
        assert!(inconsistent.is_err());
        let mut opt = AdamW::new(vec![("a".into(), a.clone())], AdamWConfig::default()).unwrap();
        let mut g = GradStore::default();
        g.insert(
            a.as_tensor(),
            Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
        );
        assert!(opt.step(&g).is_err());
    }
}
