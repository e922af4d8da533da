//! `train-interest --architecture bi-encoder`: fine-tunes the top layers of the encoder as a
//! bi-encoder on next-item pairs with in-batch negatives (InfoNCE + logQ), then fits the Platt
//! calibration on validation pairs and writes a checkpoint directory.
//!
//! Cost model (CPU): the embeddings and the bottom `frozen_layers` layers are computed once for
//! every item (inference kernels) and cached; a training step runs only the top layers on the
//! batch's distinct target items, forward and backward. User vectors come from a cache of all
//! item embeddings (no gradient), recomputed from the bottom cache every `refresh_every` steps.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use longtail_data::{Label, PreparedDataset};
use longtail_model::checkpoint::TRAINER_STATE_FILE;
use longtail_model::Precision;
use longtail_rec::{top_k_excluding as top_k, Interactions};
use longtail_train::{
    encoder_layer, epoch_permutation, EvalCadence, Event, FitSettings, Learner, Objective,
    ParamGroupSpec, SavePolicy, StepDriver, TrainerState,
};

use crate::calibrate::{fit_calibration_with, Platt};
use crate::config::{optimizer_and_state, TrainInterestConfig, TRAIN_ARGS_FILE};
use crate::error::{InterestError, Result};
use crate::index::dot_all;
use crate::loss::info_nce_logq;
use crate::model::{
    items_hash, save_item_embeddings, Architecture, InterestMeta, InterestModel, UserRepr,
    INTEREST_FILE, ITEM_EMBEDDINGS_FILE,
};
use crate::outcome::{TrainInterestOutcome, ValMetrics};

/// Validation Recall@10 (full ranking, training items excluded) for up to `limit` users.
pub fn validation_recall(
    inter: &Interactions,
    emb: &[f32],
    dim: usize,
    repr: &UserRepr,
    tail: &[bool],
    limit: usize,
) -> Option<ValMetrics> {
    let mut m = ValMetrics::default();
    let mut tail_hits = 0usize;
    let mut hits = 0usize;
    for u in 0..inter.seqs.len() {
        if limit > 0 && m.users >= limit {
            break;
        }
        let Some(t) = inter.targets(u) else { continue };
        let hist = inter.train_prefix(u);
        let Some(uv) = repr.user_vector(emb, dim, hist) else {
            continue;
        };
        let scores = dot_all(emb, dim, &uv);
        let hit = top_k(&scores, 10, hist)
            .iter()
            .any(|&(i, _)| i == t.validation);
        m.users += 1;
        hits += usize::from(hit);
        if tail[t.validation] {
            m.tail_targets += 1;
            tail_hits += usize::from(hit);
        }
    }
    if m.users == 0 {
        return None;
    }
    m.recall_at_10 = hits as f64 / m.users as f64;
    m.tail_recall_at_10 = tail_hits as f64 / m.tail_targets.max(1) as f64;
    Some(m)
}

fn frozen_rule(frozen_layers: usize) -> impl Fn(&str) -> bool + 'static {
    move |name: &str| {
        if name.starts_with("embeddings.") || name.starts_with("pooler.") {
            return true;
        }
        encoder_layer(name).is_some_and(|i| i < frozen_layers)
    }
}

/// Fits the Platt calibration on validation positives vs `negatives` sampled unseen items per
/// user.
pub fn fit_calibration(
    inter: &Interactions,
    emb: &[f32],
    dim: usize,
    repr: &UserRepr,
    negatives: usize,
    seed: u64,
) -> Option<Platt> {
    let mut users = Vec::new();
    let mut vectors = Vec::new();
    for u in 0..inter.seqs.len() {
        if inter.targets(u).is_none() {
            continue;
        }
        if let Some(uv) = repr.user_vector(emb, dim, inter.train_prefix(u)) {
            users.push(u);
            vectors.push(uv);
        }
    }
    let score = |k: usize, i: usize| -> f64 {
        emb[i * dim..(i + 1) * dim]
            .iter()
            .zip(&vectors[k])
            .map(|(a, b)| f64::from(a * b))
            .sum()
    };
    fit_calibration_with(inter, emb.len() / dim, &score, &users, negatives, seed)
}

/// The bi-encoder as the `Learner`'s objective: a batch is a slice of next-item pairs, the
/// loss InfoNCE over the batch's distinct targets, the evaluation validation Recall@10 and the
/// checkpoint one directory written at the end.
struct BiEncoder<'a> {
    cfg: &'a TrainInterestConfig,
    model: &'a InterestModel,
    device: &'a Device,
    /// The frozen bottom's output for every item.
    bottom: Vec<Tensor>,
    frozen_layers: usize,
    /// Every item's embedding: the users' side of the loss (no gradient), refreshed from
    /// `bottom` every `refresh_every` updates, at the last one and before an evaluation.
    emb: Vec<f32>,
    fresh: bool,
    dim: usize,
    repr: UserRepr,
    inter: &'a Interactions,
    pairs: Vec<Pair>,
    log_q: Vec<f32>,
    tail: &'a [bool],
    /// The latest evaluation.
    last: Option<ValMetrics>,
    /// What `save` writes besides the weights.
    meta: InterestMeta,
    items_hash: String,
    calibration_prev: Option<Platt>,
}

impl BiEncoder<'_> {
    fn refresh(&mut self) -> Result<()> {
        self.emb = self.model.embed_all_from_bottom(
            &self.bottom,
            self.frozen_layers,
            self.cfg.infer_batch_size,
        )?;
        self.fresh = true;
        Ok(())
    }
}

impl Objective for BiEncoder<'_> {
    type Batch = Vec<usize>;
    type Error = InterestError;

    /// Full batches only (the last partial one is dropped), at least one.
    fn num_batches(&self) -> usize {
        (self.pairs.len() / self.cfg.batch_size).max(1)
    }

    fn epoch_batches(&mut self, epoch: u64) -> Result<Vec<Vec<usize>>> {
        let perm = epoch_permutation(self.pairs.len(), self.cfg.seed, epoch);
        let bs = self.cfg.batch_size;
        Ok((0..self.num_batches())
            .map(|b| perm[b * bs..((b + 1) * bs).min(perm.len())].to_vec())
            .collect())
    }

    fn loss(&mut self, chunk: &Vec<usize>) -> Result<Tensor> {
        let dim = self.dim;
        // Users (no gradient) and the distinct targets (one column each).
        let mut user_rows = Vec::with_capacity(chunk.len() * dim);
        let mut cols: Vec<usize> = Vec::new();
        let mut col_of: HashMap<usize, u32> = HashMap::new();
        let mut targets = Vec::with_capacity(chunk.len());
        for &pi in chunk {
            let (u, p) = self.pairs[pi];
            let hist = &self.inter.seqs[u][..p];
            let uv = self
                .repr
                .user_vector(&self.emb, dim, hist)
                .expect("p >= 1 so the history is non-empty");
            user_rows.extend(uv);
            let item = self.inter.seqs[u][p];
            let c = *col_of.entry(item).or_insert_with(|| {
                cols.push(item);
                (cols.len() - 1) as u32
            });
            targets.push(c);
        }
        let users = Tensor::from_vec(user_rows, (chunk.len(), dim), self.device)?;
        let lq: Vec<f32> = cols.iter().map(|&i| self.log_q[i]).collect();
        let lq = Tensor::from_vec(lq, cols.len(), self.device)?;
        let items = self
            .model
            .embed_from_bottom(&self.bottom, &cols, self.frozen_layers, true)?;
        info_nce_logq(&users, &items, &targets, &lq, self.cfg.temperature)
    }

    fn count(&self, chunk: &Vec<usize>) -> (u64, u64) {
        (chunk.len() as u64, 0)
    }

    fn after_update(&mut self, state: &mut TrainerState, last: bool) -> Result<()> {
        self.fresh = false;
        if state
            .global_step
            .is_multiple_of(self.cfg.refresh_every.max(1))
            || last
        {
            self.refresh()?;
        }
        Ok(())
    }

    fn evaluate(&mut self, _state: &TrainerState) -> Result<Option<BTreeMap<String, f64>>> {
        if !self.fresh {
            self.refresh()?;
        }
        let (emb, dim) = (&self.emb, self.dim);
        self.last = validation_recall(
            self.inter,
            emb,
            dim,
            &self.repr,
            self.tail,
            self.cfg.eval_users,
        );
        Ok(self.last.as_ref().map(|m| m.to_eval_map(false)))
    }

    /// Calibrates on the final embeddings (the last update always refreshes them: what
    /// `recommend` would compute with the fused kernels, equal to ~1e-5) and writes the
    /// checkpoint.
    fn save(&mut self, driver: &StepDriver, state: &mut TrainerState) -> Result<PathBuf> {
        let cfg = self.cfg;
        self.meta.calibration = if cfg.use_all_interactions {
            self.calibration_prev
        } else {
            fit_calibration(
                self.inter,
                &self.emb,
                self.dim,
                &self.repr,
                cfg.calibration_negatives,
                cfg.seed,
            )
        };
        self.meta.global_step = state.global_step;
        write_checkpoint(
            &cfg.out,
            self.model,
            driver,
            state,
            &self.meta,
            cfg,
            &self.emb,
            self.dim,
            &self.items_hash,
        )?;
        Ok(cfg.out.clone())
    }
}

/// What a run starts from: the configuration's settings, or a resumed checkpoint's.
struct Inherited {
    model_src: String,
    max_len: usize,
    template: String,
    repr: UserRepr,
    frozen_layers: usize,
    step0: u64,
}

impl Inherited {
    fn of(cfg: &TrainInterestConfig, prev: Option<&InterestMeta>) -> Self {
        match (&cfg.resume_from, prev) {
            (Some(dir), Some(p)) => Self {
                model_src: dir.to_string_lossy().into_owned(),
                max_len: p.max_len,
                template: p.template.clone(),
                repr: p.user.clone(),
                frozen_layers: p.frozen_layers,
                step0: p.global_step,
            },
            _ => Self {
                model_src: cfg.model.clone(),
                max_len: cfg.max_len,
                template: cfg.template.clone(),
                repr: UserRepr {
                    history_len: cfg.history_len,
                    recency_decay: cfg.recency_decay,
                },
                frozen_layers: cfg.frozen_layers,
                step0: 0,
            },
        }
    }
}

/// A next-item training pair: a user and the position of the target in their sequence.
type Pair = (usize, usize);

/// The next-item training pairs `(user, position)` and each item's `log q` (its share of the
/// pairs' targets: the in-batch sampling distribution the logQ correction removes; zeros
/// without the correction).
fn pairs_and_log_q(
    cfg: &TrainInterestConfig,
    inter: &Interactions,
    n_items: usize,
) -> Result<(Vec<Pair>, Vec<f32>)> {
    let pairs = inter.next_item_pairs(cfg.use_all_interactions);
    if pairs.is_empty() {
        return Err(InterestError::invalid(
            "no next-item training pairs (every user needs >= 2 training interactions)",
        ));
    }
    let mut counts = vec![0f64; n_items];
    for &(u, p) in &pairs {
        counts[inter.seqs[u][p]] += 1.0;
    }
    let total: f64 = counts.iter().sum();
    let log_q: Vec<f32> = counts
        .iter()
        .map(|&c| {
            if cfg.logq_correction {
                ((c.max(0.5)) / total).ln() as f32
            } else {
                0.0
            }
        })
        .collect();
    Ok((pairs, log_q))
}

pub(crate) fn train_bi_encoder(
    cfg: &TrainInterestConfig,
    device: &Device,
    progress: &mut dyn FnMut(Event<'_>),
) -> Result<TrainInterestOutcome> {
    if cfg.precision != Precision::Fp32 {
        return Err(InterestError::invalid(
            "--precision int8 / bf16 is for the sequence architecture's frozen item pass; the \
             bi-encoder trains in fp32",
        ));
    }
    let start = Instant::now();
    if cfg.batch_size < 2 {
        return Err(InterestError::invalid(
            "batch_size must be >= 2 (in-batch negatives)",
        ));
    }
    let data = PreparedDataset::load(&cfg.data)?;
    let item_index: HashMap<String, usize> = data
        .items
        .iter()
        .enumerate()
        .map(|(i, it)| (it.item_id.clone(), i))
        .collect();
    let inter_path = cfg.data.join(longtail_data::INTERACTIONS_FILE);
    let inter = Interactions::load(&inter_path, &item_index)?;
    progress(Event::Message(&format!(
        "{} items, {} users, {} interactions ({} rows with unknown items, {} repeats skipped)",
        data.items.len(),
        inter.users.len(),
        inter.rows - inter.rejected - inter.duplicates,
        inter.rejected,
        inter.duplicates
    )));
    let tail: Vec<bool> = data.items.iter().map(|i| i.label == Label::Tail).collect();

    // Model, and what a resumed run inherits from its checkpoint.
    let prev: Option<InterestMeta> = match &cfg.resume_from {
        Some(dir) => Some(longtail_fs::read_json(&dir.join(INTEREST_FILE))?),
        None => None,
    };
    let Inherited {
        model_src,
        max_len,
        template,
        repr,
        frozen_layers,
        step0,
    } = Inherited::of(cfg, prev.as_ref());
    let model = InterestModel::load(&model_src, max_len, &template, device)?;
    let n_layers = model.num_layers();
    if frozen_layers >= n_layers {
        return Err(InterestError::invalid(format!(
            "frozen_layers {frozen_layers} leaves nothing to train in a {n_layers}-layer model"
        )));
    }
    let dim = model.dim();

    let t0 = Instant::now();
    let encoded = model.encode_items(&data.items)?;
    let bottom = model.bottom_states(&encoded, frozen_layers, cfg.infer_batch_size)?;
    let emb = model.embed_all_from_bottom(&bottom, frozen_layers, cfg.infer_batch_size)?;
    progress(Event::Message(&format!(
        "encoded {} items (frozen bottom: embeddings + {frozen_layers} layers) in {:.1}s",
        data.items.len(),
        t0.elapsed().as_secs_f64()
    )));
    let initial = if cfg.use_all_interactions {
        None
    } else {
        validation_recall(&inter, &emb, dim, &repr, &tail, cfg.eval_users)
    };
    if let Some(m) = &initial {
        progress(Event::Message(&format!(
            "step {step0}: validation Recall@10 {:.4} (tail {:.4}, {} users)",
            m.recall_at_10, m.tail_recall_at_10, m.users
        )));
    }

    let (pairs, log_q) = pairs_and_log_q(cfg, &inter, data.items.len())?;

    // Optimizer over the top layers.
    let spec = ParamGroupSpec::new(cfg.weight_decay).frozen(frozen_rule(frozen_layers));
    let (driver, state) =
        optimizer_and_state(cfg, longtail_model::named_vars(&model.varmap), &spec, step0)?;
    let meta = InterestMeta {
        format_version: 1,
        architecture: Architecture::BiEncoder,
        init_model: prev
            .as_ref()
            .map_or(cfg.model.clone(), |p| p.init_model.clone()),
        max_len: model.tokenizer.max_len(),
        template: template.clone(),
        pooling: "mean".into(),
        temperature: cfg.temperature,
        logq_correction: cfg.logq_correction,
        user: repr.clone(),
        frozen_layers,
        calibration: None,
        calibration_negatives: cfg.calibration_negatives,
        global_step: step0,
        sequence: None,
        precision: Precision::Fp32,
    };
    let train_pairs = pairs.len();
    let mut objective = BiEncoder {
        cfg,
        model: &model,
        device,
        bottom,
        frozen_layers,
        emb,
        fresh: true,
        dim,
        repr,
        inter: &inter,
        pairs,
        log_q,
        tail: &tail,
        last: initial.clone(),
        items_hash: items_hash(&data.items, meta.max_len, &meta.template, meta.precision),
        meta,
        calibration_prev: prev.as_ref().and_then(|p| p.calibration),
    };
    let settings = FitSettings {
        max_steps: step0 + cfg.max_steps,
        eval: if cfg.eval_every > 0 && !cfg.use_all_interactions {
            EvalCadence::Steps(cfg.eval_every)
        } else {
            EvalCadence::No
        },
        save: SavePolicy::End,
        ..Default::default()
    };
    let mut learner = Learner::new(driver, state, settings)?;
    let fit = learner.fit(&mut objective, progress)?;
    Ok(TrainInterestOutcome {
        steps: fit.updates,
        seconds: start.elapsed().as_secs_f64(),
        train_pairs,
        initial,
        last: objective.last,
        calibration: objective.meta.calibration,
        out: cfg.out.clone(),
        phase_times: learner.driver().phase_times(),
    })
}

#[allow(clippy::too_many_arguments)]
fn write_checkpoint(
    out: &Path,
    model: &InterestModel,
    driver: &StepDriver,
    state: &TrainerState,
    meta: &InterestMeta,
    cfg: &TrainInterestConfig,
    emb: &[f32],
    dim: usize,
    hash: &str,
) -> Result<()> {
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| InterestError::io(parent, e))?;
    }
    longtail_fs::write_dir_atomic(out, |tmp| -> Result<()> {
        model.save_weights(tmp)?;
        longtail_fs::write_json_atomic(&tmp.join(INTEREST_FILE), meta)?;
        longtail_fs::write_json_atomic(&tmp.join(TRAIN_ARGS_FILE), cfg)?;
        driver.save_state(tmp)?;
        state.save(&tmp.join(TRAINER_STATE_FILE))?;
        save_item_embeddings(&tmp.join(ITEM_EMBEDDINGS_FILE), emb, dim, hash)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frozen_rule_keeps_top_layers_trainable() {
        let f = frozen_rule(4);
        assert!(f("embeddings.word_embeddings.weight"));
        assert!(f("encoder.layer.3.output.dense.weight"));
        assert!(!f("encoder.layer.4.output.dense.weight"));
        assert!(!f("encoder.layer.5.attention.self.query.bias"));
    }
}
