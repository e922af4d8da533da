//! Creation of the model's parameters as `candle_core::Var`s inside a `candle_nn::VarMap`,
//! either from a checkpoint (with Hugging Face name resolution) or from a seeded initialiser.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{ModelError, Result};

/// How a parameter absent from the checkpoint is initialised (as `transformers`' `_init_weights`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    Normal { std: f64 },
    Zeros,
    Ones,
}

/// What loading a checkpoint did, like the warnings `transformers.from_pretrained` prints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Parameters taken from the checkpoint: (model name, checkpoint name).
    pub loaded: Vec<(String, String)>,
    /// Parameters the checkpoint lacks, freshly initialised (e.g. a new classifier).
    pub missing: Vec<String>,
    /// Parameters the checkpoint has with another shape, freshly initialised (classifier only).
    pub mismatched: Vec<String>,
    /// Checkpoint tensors no parameter used (e.g. an MLM head, `embeddings.position_ids`).
    pub unexpected: Vec<String>,
}

pub(crate) struct WeightSource {
    paths: Vec<PathBuf>,
    st: MmapedSafetensors,
    names: HashSet<String>,
    used: Mutex<HashSet<String>>,
    events: Mutex<LoadReport>,
    /// Prefixes whose parameters are re-initialised instead of failing on a shape mismatch.
    reinit_on_mismatch: Vec<String>,
}

impl WeightSource {
    pub(crate) fn open(paths: &[PathBuf], reinit_on_mismatch: Vec<String>) -> Result<Self> {
        for p in paths {
            if !p.is_file() {
                return Err(ModelError::checkpoint(p, "weights file not found"));
            }
        }
        // SAFETY: the files are mapped read-only; like every mmap-based loader this assumes no
        // other process truncates them while the model is being built (tensors are copied out).
        let st = unsafe { MmapedSafetensors::multi(paths) }.map_err(|e| {
            ModelError::checkpoint(&paths[0], format!("cannot read safetensors: {e}"))
        })?;
        let names = st.tensors().into_iter().map(|(n, _)| n).collect();
        Ok(Self {
            paths: paths.to_vec(),
            st,
            names,
            used: Mutex::new(HashSet::new()),
            events: Mutex::new(LoadReport::default()),
            reinit_on_mismatch,
        })
    }

    /// Checkpoint names that may hold the parameter `name`: with or without the `bert.`
    /// prefix, and the legacy `gamma`/`beta` names of LayerNorm.
    fn candidates(name: &str) -> Vec<String> {
        let mut bases = vec![name.to_string()];
        match name.strip_prefix("bert.") {
            Some(rest) => bases.push(rest.to_string()),
            None => bases.push(format!("bert.{name}")),
        }
        let mut out = Vec::new();
        for b in bases {
            if let Some(stem) = b.strip_suffix("LayerNorm.weight") {
                out.push(b.clone());
                out.push(format!("{stem}LayerNorm.gamma"));
            } else if let Some(stem) = b.strip_suffix("LayerNorm.bias") {
                out.push(b.clone());
                out.push(format!("{stem}LayerNorm.beta"));
            } else {
                out.push(b);
            }
        }
        out
    }

    fn find(
        &self,
        name: &str,
        dims: &[usize],
        dtype: DType,
        device: &Device,
    ) -> Result<Option<Tensor>> {
        let Some(key) = Self::candidates(name)
            .into_iter()
            .find(|c| self.names.contains(c))
        else {
            self.events.lock().unwrap().missing.push(name.to_string());
            return Ok(None);
        };
        self.used.lock().unwrap().insert(key.clone());
        let t = self
            .st
            .load(&key, &Device::Cpu)
            .map_err(|e| ModelError::checkpoint(&self.paths[0], format!("{key}: {e}")))?;
        if t.dims() != dims {
            if self.reinit_on_mismatch.iter().any(|p| name.starts_with(p)) {
                self.events
                    .lock()
                    .unwrap()
                    .mismatched
                    .push(format!("{name}: checkpoint {:?}, model {dims:?}", t.dims()));
                return Ok(None);
            }
            return Err(ModelError::checkpoint(
                &self.paths[0],
                format!(
                    "tensor {key} has shape {:?} but the config implies {dims:?} for {name}",
                    t.dims()
                ),
            ));
        }
        if !t.dtype().is_float() {
            return Err(ModelError::checkpoint(
                &self.paths[0],
                format!("tensor {key} has dtype {:?}, expected a float", t.dtype()),
            ));
        }
        self.events
            .lock()
            .unwrap()
            .loaded
            .push((name.to_string(), key));
        Ok(Some(t.to_dtype(dtype)?.to_device(device)?))
    }

    pub(crate) fn report(&self) -> LoadReport {
        let mut r = self.events.lock().unwrap().clone();
        let used = self.used.lock().unwrap();
        let unexpected: BTreeSet<&String> =
            self.names.iter().filter(|n| !used.contains(*n)).collect();
        r.unexpected = unexpected.into_iter().cloned().collect();
        r
    }
}

/// Creates named parameters in a [`VarMap`]: every weight of the model is a [`Var`] the
/// optimiser can update, named as in Hugging Face checkpoints.
#[derive(Clone)]
pub struct ParamBuilder {
    varmap: VarMap,
    path: Vec<String>,
    dtype: DType,
    device: Device,
    rng: Arc<Mutex<ChaCha8Rng>>,
    source: Option<Arc<WeightSource>>,
}

impl ParamBuilder {
    /// A builder that initialises every parameter from a ChaCha8 stream seeded with `seed`.
    pub fn new(varmap: &VarMap, dtype: DType, device: &Device, seed: u64) -> Self {
        Self {
            varmap: varmap.clone(),
            path: Vec::new(),
            dtype,
            device: device.clone(),
            rng: Arc::new(Mutex::new(ChaCha8Rng::seed_from_u64(seed))),
            source: None,
        }
    }

    pub(crate) fn with_source(mut self, source: Arc<WeightSource>) -> Self {
        self.source = Some(source);
        self
    }

    /// A builder for the sub-module `name` (names are joined with `.`).
    pub fn pp(&self, name: impl ToString) -> Self {
        let mut b = self.clone();
        b.path.push(name.to_string());
        b
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    fn full_name(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.path.join("."))
        }
    }

    /// The parameter `name` of shape `dims`: from the varmap if already there, else from the
    /// checkpoint, else initialised with `init`.
    pub fn get(&self, dims: &[usize], name: &str, init: Init) -> Result<Tensor> {
        let full = self.full_name(name);
        if let Some(v) = self.varmap.data().lock().unwrap().get(&full) {
            if v.dims() != dims {
                return Err(ModelError::Config(format!(
                    "parameter {full} exists with shape {:?}, requested {dims:?}",
                    v.dims()
                )));
            }
            return Ok(v.as_tensor().clone());
        }
        let loaded = match &self.source {
            Some(src) => src.find(&full, dims, self.dtype, &self.device)?,
            None => None,
        };
        let tensor = match loaded {
            Some(t) => t,
            None => self.init(dims, init)?,
        };
        let var = Var::from_tensor(&tensor)?;
        let t = var.as_tensor().clone();
        self.varmap.data().lock().unwrap().insert(full, var);
        Ok(t)
    }

    fn init(&self, dims: &[usize], init: Init) -> Result<Tensor> {
        let n: usize = dims.iter().product();
        let t = match init {
            Init::Zeros => Tensor::zeros(dims, self.dtype, &self.device)?,
            Init::Ones => Tensor::ones(dims, self.dtype, &self.device)?,
            Init::Normal { std } => {
                let mut rng = self.rng.lock().unwrap();
                let v = normal_samples(&mut *rng, n, std);
                Tensor::from_vec(v, dims, &Device::Cpu)?
                    .to_dtype(self.dtype)?
                    .to_device(&self.device)?
            }
        };
        Ok(t)
    }
}

/// `n` samples of N(0, std^2) by Box-Muller, from `rng`.
fn normal_samples<R: Rng>(rng: &mut R, n: usize, std: f64) -> Vec<f64> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
        let u2: f64 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt() * std;
        let th = 2.0 * std::f64::consts::PI * u2;
        out.push(r * th.cos());
        out.push(r * th.sin());
    }
    out.truncate(n);
    out
}

/// All parameters of `varmap` by name (a snapshot of the `Var` handles, which share storage
/// with the model), sorted by name so that optimizer groups and saved state have a
/// deterministic order.
pub fn named_vars(varmap: &VarMap) -> Vec<(String, Var)> {
    let data = varmap.data().lock().unwrap_or_else(|e| e.into_inner());
    let mut v: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Writes every parameter of `varmap` as f32 to a safetensors file with Hugging Face names and
/// the `{"format": "pt"}` metadata `transformers` expects (atomically).
pub fn save_varmap_safetensors(varmap: &VarMap, path: &Path) -> Result<()> {
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for (name, var) in named_vars(varmap) {
        let t = var
            .as_tensor()
            .detach()
            .to_dtype(DType::F32)?
            .to_device(&Device::Cpu)?
            .contiguous()?;
        tensors.insert(name, t);
    }
    let metadata: HashMap<String, String> = [("format".to_string(), "pt".to_string())].into();
    longtail_fs::write_atomic_with(path, |tmp| {
        safetensors::tensor::serialize_to_file(tensors.iter(), Some(metadata), tmp)
            .map_err(|e| ModelError::checkpoint(tmp, format!("cannot write safetensors: {e}")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_vars_is_sorted() {
        let vm = VarMap::new();
        for n in ["z.weight", "a.bias", "m.weight"] {
            vm.get(
                2,
                n,
                candle_nn::Init::Const(0.0),
                candle_core::DType::F32,
                &candle_core::Device::Cpu,
            )
            .unwrap();
        }
        let names: Vec<_> = named_vars(&vm).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["a.bias", "m.weight", "z.weight"]);
    }

    #[test]
    fn candidate_names_cover_prefix_and_legacy_layer_norm() {
        let c = WeightSource::candidates("bert.embeddings.LayerNorm.weight");
        assert_eq!(
            c,
            vec![
                "bert.embeddings.LayerNorm.weight",
                "bert.embeddings.LayerNorm.gamma",
                "embeddings.LayerNorm.weight",
                "embeddings.LayerNorm.gamma"
            ]
        );
        let c = WeightSource::candidates("encoder.layer.0.output.LayerNorm.bias");
        assert!(c.contains(&"bert.encoder.layer.0.output.LayerNorm.beta".to_string()));
        assert_eq!(
            WeightSource::candidates("classifier.weight")[0],
            "classifier.weight"
        );
    }

    #[test]
    fn seeded_init_is_reproducible_and_has_the_right_scale() {
        let a = VarMap::new();
        let b = VarMap::new();
        let pa = ParamBuilder::new(&a, DType::F32, &Device::Cpu, 3);
        let pb = ParamBuilder::new(&b, DType::F32, &Device::Cpu, 3);
        let ta = pa
            .pp("x")
            .get(&[100, 50], "weight", Init::Normal { std: 0.02 })
            .unwrap();
        let tb = pb
            .pp("x")
            .get(&[100, 50], "weight", Init::Normal { std: 0.02 })
            .unwrap();
        assert_eq!(ta.to_vec2::<f32>().unwrap(), tb.to_vec2::<f32>().unwrap());
        let v = ta.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let var = v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / v.len() as f64;
        assert!((var.sqrt() - 0.02).abs() < 0.002, "std {}", var.sqrt());
        assert!(a.data().lock().unwrap().contains_key("x.weight"));
        // asking again returns the same Var
        let again = pa.pp("x").get(&[100, 50], "weight", Init::Zeros).unwrap();
        assert_eq!(
            again.to_vec2::<f32>().unwrap(),
            ta.to_vec2::<f32>().unwrap()
        );
        assert!(pa.pp("x").get(&[10, 50], "weight", Init::Zeros).is_err());
    }
}
