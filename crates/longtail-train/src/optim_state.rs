//! Saving and restoring AdamW state so that a resumed run continues
//! bit-identically.
//!
//! Two files in a checkpoint directory:
//! * `optimizer.safetensors`: `<param>.exp_avg` and `<param>.exp_avg_sq` for
//!   every parameter that has been updated at least once (torch, too, only
//!   has state for parameters that received a gradient);
//! * `optimizer.json`: format version, optimizer step count, hyper-parameters,
//!   parameter groups and per-parameter step counts.
//!
//! The tensor file is written first and the JSON last, each atomically, so a
//! JSON file present means its tensors are complete. Loading restores the
//! saved hyper-parameters (like `torch.optim.Optimizer.load_state_dict`, which
//! overwrites group settings) but requires the same groups with the same
//! member parameters and shapes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::adamw::{AdamW, AdamWConfig, GroupInfo};
use crate::error::{Result, TrainError};
use longtail_fs::{read_json, write_atomic_with, write_json_atomic};
pub use longtail_model::checkpoint::{OPTIMIZER_JSON_FILE, OPTIMIZER_TENSORS_FILE};
const FORMAT_VERSION: u32 = 1;

/// Contents of `optimizer.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimizerStateMeta {
    pub format_version: u32,
    /// Number of optimizer `step` calls.
    pub step: u64,
    /// Hyper-parameters, including the learning rate last set.
    pub config: AdamWConfig,
    pub param_groups: Vec<GroupInfo>,
    /// Per-parameter update counts (torch `state[p]["step"]`).
    pub param_steps: BTreeMap<String, u64>,
    pub frozen: Vec<String>,
}

fn exp_avg_name(param: &str) -> String {
    format!("{param}.exp_avg")
}

fn exp_avg_sq_name(param: &str) -> String {
    format!("{param}.exp_avg_sq")
}

impl AdamW {
    /// The metadata that `save_state` writes to `optimizer.json`.
    pub fn state_meta(&self) -> OptimizerStateMeta {
        OptimizerStateMeta {
            format_version: FORMAT_VERSION,
            step: self.step_count,
            config: self.config.clone(),
            param_groups: self.groups(),
            param_steps: self.param_steps().into_iter().collect(),
            frozen: self.frozen.clone(),
        }
    }

    /// The moment tensors that `save_state` writes (on their own devices).
    pub fn state_tensors(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for p in self.groups.iter().flat_map(|g| &g.params) {
            if let (Some(m), Some(v)) = (&p.exp_avg, &p.exp_avg_sq) {
                out.insert(exp_avg_name(&p.name), m.clone());
                out.insert(exp_avg_sq_name(&p.name), v.clone());
            }
        }
        out
    }

    /// Writes `optimizer.safetensors` and `optimizer.json` into `dir`
    /// (which must exist), each atomically.
    pub fn save_state(&self, dir: &Path) -> Result<()> {
        let tensors = self.state_tensors();
        write_atomic_with(&dir.join(OPTIMIZER_TENSORS_FILE), |tmp| {
            candle_core::safetensors::save(&tensors, tmp).map_err(TrainError::from)
        })?;
        Ok(write_json_atomic(
            &dir.join(OPTIMIZER_JSON_FILE),
            &self.state_meta(),
        )?)
    }

    /// Restores state written by [`save_state`](Self::save_state) into an
    /// optimizer built over the same parameters. On error `self` is unchanged.
    pub fn load_state(&mut self, dir: &Path) -> Result<()> {
        let meta: OptimizerStateMeta = read_json(&dir.join(OPTIMIZER_JSON_FILE))?;
        let tensor_path = dir.join(OPTIMIZER_TENSORS_FILE);
        let tensors = candle_core::safetensors::load(&tensor_path, &candle_core::Device::Cpu)?;
        self.restore(meta, tensors)
    }

    /// Restores from already-read metadata and tensors (see `load_state`).
    pub fn restore(
        &mut self,
        meta: OptimizerStateMeta,
        mut tensors: HashMap<String, Tensor>,
    ) -> Result<()> {
        if meta.format_version != FORMAT_VERSION {
            return Err(TrainError::StateMismatch(format!(
                "unsupported optimizer state format_version {} (expected {FORMAT_VERSION})",
                meta.format_version
            )));
        }
        meta.config.validate()?;
        let current = self.groups();
        if meta.param_groups.len() != current.len() {
            return Err(TrainError::StateMismatch(format!(
                "saved state has {} parameter groups, optimizer has {}",
                meta.param_groups.len(),
                current.len()
            )));
        }
        for (saved, cur) in meta.param_groups.iter().zip(&current) {
            if saved.name != cur.name || saved.params != cur.params {
                return Err(TrainError::StateMismatch(format!(
                    "parameter group {:?} (saved) does not match group {:?} (optimizer): \
                     the same parameters must be trainable, in the same groups",
                    saved.name, cur.name
                )));
            }
        }
        // Validate everything before mutating anything.
        let mut restored = Vec::new();
        for p in self.groups.iter().flat_map(|g| &g.params) {
            let step = *meta.param_steps.get(&p.name).ok_or_else(|| {
                TrainError::StateMismatch(format!("no saved step count for {:?}", p.name))
            })?;
            let m = tensors.remove(&exp_avg_name(&p.name));
            let v = tensors.remove(&exp_avg_sq_name(&p.name));
            let moments = match (step, m, v) {
                (0, None, None) => None,
                (s, Some(m), Some(v)) if s > 0 => {
                    for (kind, t) in [("exp_avg", &m), ("exp_avg_sq", &v)] {
                        if t.shape() != p.var.shape() || t.dtype() != p.var.dtype() {
                            return Err(TrainError::StateMismatch(format!(
                                "{}.{kind} has shape {:?}/{:?}, parameter has {:?}/{:?}",
                                p.name,
                                t.shape(),
                                t.dtype(),
                                p.var.shape(),
                                p.var.dtype()
                            )));
                        }
                    }
                    let dev = p.var.device();
                    Some((m.to_device(dev)?, v.to_device(dev)?))
                }
                (s, m, v) => {
                    return Err(TrainError::StateMismatch(format!(
                        "{:?}: step {s} with exp_avg {} and exp_avg_sq {}",
                        p.name,
                        if m.is_some() { "present" } else { "missing" },
                        if v.is_some() { "present" } else { "missing" },
                    )))
                }
            };
            restored.push((step, moments));
        }
        if !tensors.is_empty() {
            let mut extra: Vec<_> = tensors.keys().cloned().collect();
            extra.sort();
            return Err(TrainError::StateMismatch(format!(
                "saved tensors for unknown parameters: {extra:?}"
            )));
        }
        let known: HashSet<&String> = current.iter().flat_map(|g| &g.params).collect();
        if let Some(unknown) = meta.param_steps.keys().find(|k| !known.contains(k)) {
            return Err(TrainError::StateMismatch(format!(
                "saved step count for unknown parameter {unknown:?}"
            )));
        }

        for (p, (step, moments)) in self
            .groups
            .iter_mut()
            .flat_map(|g| g.params.iter_mut())
            .zip(restored)
        {
            p.step = step;
            (p.exp_avg, p.exp_avg_sq) = match moments {
                Some((m, v)) => (Some(m), Some(v)),
                None => (None, None),
            };
        }
        for (g, saved) in self.groups.iter_mut().zip(&meta.param_groups) {
            g.weight_decay = saved.weight_decay;
            g.lr_scale = saved.lr_scale;
        }
        self.config = meta.config;
        self.step_count = meta.step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::param_groups::ParamGroupSpec;
    use candle_core::backprop::GradStore;
    use candle_core::{DType, Device, Var};

    const NAMES: [&str; 4] = [
        "encoder.layer.0.dense.weight",
        "encoder.layer.0.dense.bias",
        "encoder.LayerNorm.weight",
        "classifier.weight",
    ];

    /// Deterministic parameters (fixed formula, no data set).
    fn params() -> Vec<(String, Var)> {
        NAMES
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let len = 3 + i;
                let vals: Vec<f32> = (0..len)
                    .map(|j| ((i * 7 + j * 3) as f32 * 0.37).sin())
                    .collect();
                (
                    n.to_string(),
                    Var::from_slice(&vals, len, &Device::Cpu).unwrap(),
                )
            })
            .collect()
    }

    /// Gradients of a deterministic, parameter-dependent loss at step `t`,
    /// so the trajectory depends on the exact parameter values.
    fn grads(params: &[(String, Var)], t: usize) -> GradStore {
        let mut loss = Tensor::zeros((), DType::F32, &Device::Cpu).unwrap();
        for (i, (_, v)) in params.iter().enumerate() {
            let len = v.as_tensor().elem_count();
            let c: Vec<f32> = (0..len)
                .map(|j| ((t * 5 + i * 3 + j) as f32 * 0.71).cos())
                .collect();
            let c = Tensor::from_slice(&c, len, &Device::Cpu).unwrap();
            let term = ((v.as_tensor() - c)
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                + (v.as_tensor().sum_all().unwrap() * (0.1 * t as f64)).unwrap())
            .unwrap();
            loss = (loss + term).unwrap();
        }
        loss.backward().unwrap()
    }

    fn optimizer(p: Vec<(String, Var)>) -> AdamW {
        let spec = ParamGroupSpec::new(0.01).lr_scale(|n| {
            if n.starts_with("classifier") {
                1.0
            } else {
                0.8
            }
        });
        AdamW::with_spec(
            p,
            AdamWConfig {
                learning_rate: 1e-2,
                weight_decay: 0.01,
                ..Default::default()
            },
            &spec,
        )
        .unwrap()
    }

    fn run(opt: &mut AdamW, p: &[(String, Var)], steps: std::ops::Range<usize>) {
        for t in steps {
            opt.set_learning_rate(1e-2 * (1.0 - t as f64 / 20.0));
            opt.step(&grads(p, t)).unwrap();
        }
    }

    fn bits(p: &[(String, Var)]) -> Vec<Vec<u32>> {
        p.iter()
            .map(|(_, v)| {
                v.as_tensor()
                    .to_vec1::<f32>()
                    .unwrap()
                    .into_iter()
                    .map(f32::to_bits)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn resume_is_bit_identical() {
        let (n, m) = (4, 5);
        // uninterrupted N + M steps
        let p_full = params();
        let mut opt_full = optimizer(p_full.clone());
        run(&mut opt_full, &p_full, 0..n + m);

        // N steps, save, fresh optimizer over copies of the weights, M steps
        let p_a = params();
        let mut opt_a = optimizer(p_a.clone());
        run(&mut opt_a, &p_a, 0..n);
        let dir = tempfile::tempdir().unwrap();
        opt_a.save_state(dir.path()).unwrap();
        let p_b: Vec<(String, Var)> = p_a
            .iter()
            .map(|(name, v)| {
                let t = v.as_tensor().copy().unwrap();
                (name.clone(), Var::from_tensor(&t).unwrap())
            })
            .collect();
        let mut opt_b = optimizer(p_b.clone());
        opt_b.set_learning_rate(123.0); // overwritten by load
        opt_b.load_state(dir.path()).unwrap();
        assert_eq!(opt_b.step_count(), n as u64);
        assert_eq!(opt_b.learning_rate(), opt_a.learning_rate());
        run(&mut opt_b, &p_b, n..n + m);

        assert_eq!(bits(&p_full), bits(&p_b));
        assert_eq!(opt_full.step_count(), opt_b.step_count());
        assert_eq!(opt_full.param_steps(), opt_b.param_steps());

        // Without loading the state the trajectory differs (the test can fail).
        let p_c: Vec<(String, Var)> = p_a
            .iter()
            .map(|(name, v)| {
                let t = v.as_tensor().copy().unwrap();
                (name.clone(), Var::from_tensor(&t).unwrap())
            })
            .collect();
        let mut opt_c = optimizer(p_c.clone());
        run(&mut opt_c, &p_c, n..n + m);
        assert_ne!(bits(&p_full), bits(&p_c));
    }

    #[test]
    fn saved_files_have_expected_names() {
        let p = params();
        let mut opt = optimizer(p.clone());
        run(&mut opt, &p, 0..2);
        let dir = tempfile::tempdir().unwrap();
        opt.save_state(dir.path()).unwrap();
        let t =
            candle_core::safetensors::load(dir.path().join(OPTIMIZER_TENSORS_FILE), &Device::Cpu)
                .unwrap();
        let mut keys: Vec<_> = t.keys().cloned().collect();
        keys.sort();
        assert_eq!(keys.len(), 8);
        assert!(keys.contains(&"classifier.weight.exp_avg".to_string()));
        assert!(keys.contains(&"encoder.LayerNorm.weight.exp_avg_sq".to_string()));
        let meta: OptimizerStateMeta = read_json(&dir.path().join(OPTIMIZER_JSON_FILE)).unwrap();
        assert_eq!(meta.step, 2);
        assert_eq!(meta.param_steps["classifier.weight"], 2);
        assert_eq!(meta.param_groups.len(), 3);
        assert_eq!(meta.config.adam_beta2, 0.999);
    }

    #[test]
    fn untouched_params_have_no_tensors_and_round_trip() {
        let p = params();
        let mut opt = optimizer(p.clone());
        // only the first parameter receives a gradient
        let g = {
            let l = p[0].1.as_tensor().sum_all().unwrap();
            l.backward().unwrap()
        };
        opt.step(&g).unwrap();
        let dir = tempfile::tempdir().unwrap();
        opt.save_state(dir.path()).unwrap();
        assert_eq!(opt.state_tensors().len(), 2);
        let mut fresh = optimizer(params());
        fresh.load_state(dir.path()).unwrap();
        assert_eq!(fresh.param_steps(), opt.param_steps());
    }

    #[test]
    fn mismatched_state_is_rejected_without_side_effects() {
        let p = params();
        let mut opt = optimizer(p.clone());
        run(&mut opt, &p, 0..1);
        let dir = tempfile::tempdir().unwrap();
        opt.save_state(dir.path()).unwrap();

        // different trainable set (classifier frozen)
        let spec = ParamGroupSpec::new(0.01).frozen(|n| n.starts_with("classifier"));
        let cfg = AdamWConfig {
            weight_decay: 0.01,
            ..Default::default()
        };
        let mut frozen = AdamW::with_spec(params(), cfg, &spec).unwrap();
        assert!(matches!(
            frozen.load_state(dir.path()),
            Err(TrainError::StateMismatch(_))
        ));

        // wrong shape for one parameter
        let mut other: Vec<(String, Var)> = params();
        other[3].1 = Var::zeros(2, DType::F32, &Device::Cpu).unwrap();
        let mut wrong = optimizer(other);
        wrong.set_learning_rate(7.0);
        assert!(matches!(
            wrong.load_state(dir.path()),
            Err(TrainError::StateMismatch(_))
        ));
        assert_eq!(wrong.step_count(), 0);
        assert_eq!(wrong.learning_rate(), 7.0);
        assert!(wrong.state_tensors().is_empty());

        // missing tensors file
        let empty = tempfile::tempdir().unwrap();
        assert!(optimizer(params()).load_state(empty.path()).is_err());
    }
}
