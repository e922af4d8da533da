//! Splitting named parameters into optimizer groups the way the HF Trainer
//! does: a weight-decay group and a no-decay group (biases and normalisation
//! weights), optionally refined by a per-parameter learning-rate multiplier
//! (for layer-wise LR decay), with frozen parameters left out entirely.

use std::collections::{HashMap, HashSet};

use candle_core::Var;

use crate::error::{Result, TrainError};

/// The encoder layer a BERT parameter belongs to, by its HF name without the model prefix
/// (`encoder.layer.3.output.dense.weight` -> 3); `None` outside the layers. What
/// "freeze the lowest N layers" rules compare.
pub fn encoder_layer(name: &str) -> Option<usize> {
    name.strip_prefix("encoder.layer.")?
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// HF's rule for parameters that get no weight decay.
///
/// Mirrors `Trainer.get_decay_parameter_names`, which matches these
/// patterns against the lower-cased parameter name: `bias`, `layernorm`,
/// `rmsnorm`, `(?:^|\.)norm(?:$|\.)`, `_norm(?:$|\.)`. HF additionally
/// excludes every parameter that lives in an `nn.LayerNorm` module; by name
/// alone that is covered by `layernorm` (BERT's `LayerNorm.weight`) and
/// `_norm.` (`layer_norm.weight`).
pub fn is_no_decay_param(name: &str) -> bool {
    let lower = name.to_lowercase();
    if lower.contains("bias") || lower.contains("layernorm") || lower.contains("rmsnorm") {
        return true;
    }
    if lower.split('.').any(|segment| segment == "norm") {
        return true;
    }
    lower.match_indices("_norm").any(|(i, m)| {
        let rest = &lower[i + m.len()..];
        rest.is_empty() || rest.starts_with('.')
    })
}

/// Decides, per parameter name, whether it is trained, decayed, and with
/// which learning-rate multiplier.
pub struct ParamGroupSpec {
    weight_decay: f64,
    no_decay: Box<dyn Fn(&str) -> bool>,
    frozen: Box<dyn Fn(&str) -> bool>,
    lr_scale: Box<dyn Fn(&str) -> f64>,
}

impl std::fmt::Debug for ParamGroupSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParamGroupSpec")
            .field("weight_decay", &self.weight_decay)
            .finish_non_exhaustive()
    }
}

impl ParamGroupSpec {
    /// HF defaults: `weight_decay` for every parameter except those matched
    /// by [`is_no_decay_param`], nothing frozen, LR multiplier 1.
    pub fn new(weight_decay: f64) -> Self {
        ParamGroupSpec {
            weight_decay,
            no_decay: Box::new(is_no_decay_param),
            frozen: Box::new(|_| false),
            lr_scale: Box::new(|_| 1.0),
        }
    }

    /// Replaces the no-decay rule.
    pub fn no_decay(mut self, rule: impl Fn(&str) -> bool + 'static) -> Self {
        self.no_decay = Box::new(rule);
        self
    }

    /// Parameters for which `pred` is true are frozen (not optimised).
    /// Replaces any earlier frozen rule.
    pub fn frozen(mut self, pred: impl Fn(&str) -> bool + 'static) -> Self {
        self.frozen = Box::new(pred);
        self
    }

    /// Freezes exactly the listed parameter names (replaces any earlier rule).
    pub fn frozen_names<I, S>(self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let set: HashSet<String> = names.into_iter().map(Into::into).collect();
        self.frozen(move |name| set.contains(name))
    }

    /// Per-parameter learning-rate multiplier (e.g. `decay^(L - layer)` for
    /// layer-wise LR decay). Parameters with equal multipliers share a group.
    pub fn lr_scale(mut self, scale: impl Fn(&str) -> f64 + 'static) -> Self {
        self.lr_scale = Box::new(scale);
        self
    }

    /// The weight decay applied to the decay groups.
    pub fn weight_decay(&self) -> f64 {
        self.weight_decay
    }

    /// Groups `params` (order preserved, groups ordered by first appearance).
    pub fn partition(&self, params: Vec<(String, Var)>) -> Result<Partition> {
        if !self.weight_decay.is_finite() || self.weight_decay < 0.0 {
            return Err(TrainError::invalid(format!(
                "weight_decay must be finite and >= 0, got {}",
                self.weight_decay
            )));
        }
        let mut seen = HashSet::new();
        let mut groups: Vec<ParamGroup> = Vec::new();
        let mut index: HashMap<(bool, u64), usize> = HashMap::new();
        let mut frozen = Vec::new();
        for (name, var) in params {
            if !seen.insert(name.clone()) {
                return Err(TrainError::invalid(format!(
                    "duplicate parameter name {name:?}"
                )));
            }
            if (self.frozen)(&name) {
                frozen.push(name);
                continue;
            }
            if !var.dtype().is_float() {
                return Err(TrainError::invalid(format!(
                    "trainable parameter {name:?} has non-float dtype {:?}",
                    var.dtype()
                )));
            }
            let scale = (self.lr_scale)(&name);
            if !scale.is_finite() || scale < 0.0 {
                return Err(TrainError::invalid(format!(
                    "lr_scale for {name:?} must be finite and >= 0, got {scale}"
                )));
            }
            let decay = !(self.no_decay)(&name);
            let key = (decay, scale.to_bits());
            let gi = *index.entry(key).or_insert_with(|| {
                groups.push(ParamGroup {
                    name: group_name(decay, scale),
                    weight_decay: if decay { self.weight_decay } else { 0.0 },
                    lr_scale: scale,
                    params: Vec::new(),
                });
                groups.len() - 1
            });
            groups[gi].params.push((name, var));
        }
        Ok(Partition { groups, frozen })
    }
}

fn group_name(decay: bool, scale: f64) -> String {
    let base = if decay { "decay" } else { "no_decay" };
    if scale == 1.0 {
        base.to_string()
    } else {
        format!("{base}@lr_scale={scale:e}")
    }
}

/// One optimizer parameter group.
#[derive(Debug, Clone)]
pub struct ParamGroup {
    /// `decay` / `no_decay`, suffixed with `@lr_scale=<x>` when scaled.
    pub name: String,
    pub weight_decay: f64,
    pub lr_scale: f64,
    pub params: Vec<(String, Var)>,
}

/// The result of [`ParamGroupSpec::partition`].
#[derive(Debug, Clone)]
pub struct Partition {
    pub groups: Vec<ParamGroup>,
    /// Names of parameters left out of the optimizer.
    pub frozen: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    fn var(n: usize) -> Var {
        Var::zeros(n, DType::F32, &Device::Cpu).unwrap()
    }

    fn bert_names() -> Vec<&'static str> {
        vec![
            "bert.embeddings.word_embeddings.weight",
            "bert.embeddings.LayerNorm.weight",
            "bert.embeddings.LayerNorm.bias",
            "bert.encoder.layer.0.attention.self.query.weight",
            "bert.encoder.layer.0.attention.self.query.bias",
            "bert.encoder.layer.0.attention.output.LayerNorm.weight",
            "bert.encoder.layer.1.output.dense.weight",
            "classifier.weight",
            "classifier.bias",
        ]
    }

    #[test]
    fn hf_no_decay_rule() {
        for n in [
            "bert.embeddings.LayerNorm.weight",
            "bert.embeddings.LayerNorm.bias",
            "classifier.bias",
            "encoder.layer_norm.weight",
            "model.norm.weight",
            "norm.weight",
            "blocks.0.attn_norm",
            "x.final_layernorm.weight",
            "x.RMSNorm.weight",
        ] {
            assert!(is_no_decay_param(n), "{n} should be no-decay");
        }
        for n in [
            "bert.encoder.layer.0.attention.self.query.weight",
            "classifier.weight",
            "bert.embeddings.word_embeddings.weight",
            "normalizer.weight",  // `norm` only as a whole segment
            "x.norm_proj.weight", // `_norm` must end a segment; `norm_` does not count
            "x.abnormal.weight",
        ] {
            assert!(!is_no_decay_param(n), "{n} should be decayed");
        }
    }

    #[test]
    fn partition_splits_decay_and_no_decay() {
        let params = bert_names()
            .into_iter()
            .map(|n| (n.to_string(), var(2)))
            .collect();
        let p = ParamGroupSpec::new(0.01).partition(params).unwrap();
        assert_eq!(p.groups.len(), 2);
        assert_eq!(p.groups[0].name, "decay");
        assert_eq!(p.groups[0].weight_decay, 0.01);
        let decay: Vec<_> = p.groups[0].params.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            decay,
            [
                "bert.embeddings.word_embeddings.weight",
                "bert.encoder.layer.0.attention.self.query.weight",
                "bert.encoder.layer.1.output.dense.weight",
                "classifier.weight"
            ]
        );
        assert_eq!(p.groups[1].name, "no_decay");
        assert_eq!(p.groups[1].weight_decay, 0.0);
        assert_eq!(p.groups[1].params.len(), 5);
        assert!(p.frozen.is_empty());
    }

    #[test]
    fn frozen_params_are_excluded() {
        let params: Vec<_> = bert_names()
            .into_iter()
            .map(|n| (n.to_string(), var(2)))
            .collect();
        let p = ParamGroupSpec::new(0.01)
            .frozen(|n| n.starts_with("bert.embeddings.") || n.starts_with("bert.encoder.layer.0."))
            .partition(params.clone())
            .unwrap();
        assert_eq!(p.frozen.len(), 6);
        let trained: Vec<_> = p
            .groups
            .iter()
            .flat_map(|g| g.params.iter().map(|(n, _)| n.clone()))
            .collect();
        assert_eq!(
            trained,
            [
                "bert.encoder.layer.1.output.dense.weight",
                "classifier.weight",
                "classifier.bias"
            ]
        );

        let p = ParamGroupSpec::new(0.01)
            .frozen_names(["classifier.bias", "classifier.weight"])
            .partition(params)
            .unwrap();
        assert_eq!(p.frozen, ["classifier.weight", "classifier.bias"]);
    }

    #[test]
    fn lr_scale_creates_separate_groups() {
        let params = bert_names()
            .into_iter()
            .map(|n| (n.to_string(), var(2)))
            .collect();
        let p = ParamGroupSpec::new(0.1)
            .lr_scale(|n| {
                if n.starts_with("classifier") {
                    1.0
                } else {
                    0.5
                }
            })
            .partition(params)
            .unwrap();
        let summary: Vec<_> = p
            .groups
            .iter()
            .map(|g| (g.name.as_str(), g.lr_scale, g.params.len()))
            .collect();
        assert_eq!(
            summary,
            [
                ("decay@lr_scale=5e-1", 0.5, 3),
                ("no_decay@lr_scale=5e-1", 0.5, 4),
                ("decay", 1.0, 1),
                ("no_decay", 1.0, 1),
            ]
        );
    }

    #[test]
    fn invalid_inputs_are_rejected() {
        let dup = vec![("a".to_string(), var(1)), ("a".to_string(), var(1))];
        assert!(ParamGroupSpec::new(0.0).partition(dup).is_err());
        let one = || vec![("a".to_string(), var(1))];
        assert!(ParamGroupSpec::new(-1.0).partition(one()).is_err());
        assert!(ParamGroupSpec::new(0.0)
            .lr_scale(|_| f64::NAN)
            .partition(one())
            .is_err());
        let int = vec![(
            "ids".to_string(),
            Var::zeros(1, DType::U32, &Device::Cpu).unwrap(),
        )];
        assert!(ParamGroupSpec::new(0.0).partition(int).is_err());
    }
}
