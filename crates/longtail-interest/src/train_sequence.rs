//! `train-interest --architecture sequence`: trains [`SequenceModel`] on next-item prediction
//! with a softmax over the whole catalogue, early-stopped on validation NDCG@10.
//!
//! * Item text embeddings: the encoder's mean-pooled, L2-normalised embedding of every item,
//!   computed once with the inference kernels (cached in the checkpoint, keyed by a hash of
//!   the catalogue text). The encoder is frozen.
//! * Data: each user's training prefix under leave-last-out (or the whole sequence with
//!   `use_all_interactions`); its last `max_history + 1` items form one training sequence in
//!   which every position predicts the next item.
//! * The checkpoint is written at every validation improvement (weights, optimizer moments,
//!   step, dropout stream, calibration): it is the best model, and resuming from it continues
//!   exactly where that model was.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use candle_core::{Device, Tensor};
use longtail_model::checkpoint::TRAINER_STATE_FILE;
use longtail_model::DropoutRngState;
use longtail_rec::{top_k_excluding, Interactions};
use longtail_train::{
    BestMetricConfig, EarlyStopping, EvalCadence, Event, FitSettings, Learner, Objective,
    ParamGroupSpec, SavePolicy, StepDriver, TrainerState,
};
use serde::{Deserialize, Serialize};

use crate::calibrate::Platt;
use crate::config::{optimizer_and_state, TrainInterestConfig, TRAIN_ARGS_FILE};
use crate::error::{InterestError, Result};
use crate::model::{
    save_item_embeddings, InterestMeta, UserRepr, INTEREST_FILE, ITEM_EMBEDDINGS_FILE,
};
use crate::outcome::{TrainInterestOutcome, ValMetrics};
use crate::sequence::{
    next_item_loss, CatalogueView, SequenceMeta, SequenceModel, SEQUENCE_WEIGHTS_FILE,
};
use crate::sequence_inputs::{
    check_settings, new_sequence_meta, target_priors, text_of_items, Inherited, TextEmbeddings,
    TrainingData,
};
pub use crate::sequence_inputs::{epoch_batches, training_prior};

use crate::checkpoint::DROPOUT_STATE_FILE;

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct DropoutState {
    encoder: DropoutRngState,
}

/// Validation ranking metrics of a sequence model (full ranking, training items excluded).
pub fn validate(
    model: &SequenceModel,
    items: &Tensor,
    inter: &Interactions,
    tail: &[bool],
    limit: usize,
) -> Result<Option<ValMetrics>> {
    let mut users = Vec::new();
    for u in 0..inter.seqs.len() {
        if limit > 0 && users.len() >= limit {
            break;
        }
        if inter.targets(u).is_some() {
            users.push(u);
        }
    }
    if users.is_empty() {
        return Ok(None);
    }
    let items_n = crate::sequence::l2_normalise(items)?;
    let mut m = ValMetrics::default();
    let (mut tail_hits, mut head_hits, mut hits, mut ndcg) = (0usize, 0usize, 0usize, 0f64);
    for chunk in users.chunks(1024) {
        let hists: Vec<&[usize]> = chunk.iter().map(|&u| inter.train_prefix(u)).collect();
        let rows = model.user_vector_rows(items, &hists)?;
        let uv = Tensor::from_vec(rows.concat(), (rows.len(), items_n.dim(1)?), items.device())?;
        let scores = uv
            .matmul(&items_n.to_dtype(candle_core::DType::F32)?.t()?)?
            .to_vec2::<f32>()?;
        for ((&u, hist), s) in chunk.iter().zip(&hists).zip(&scores) {
            let t = inter
                .targets(u)
                .expect("evaluated users have targets")
                .validation;
            let top = top_k_excluding(s, 10, hist);
            let rank = top.iter().position(|&(i, _)| i == t);
            m.users += 1;
            if let Some(r) = rank {
                hits += 1;
                ndcg += 1.0 / (r as f64 + 2.0).log2();
            }
            if tail[t] {
                m.tail_targets += 1;
                tail_hits += usize::from(rank.is_some());
            } else {
                head_hits += usize::from(rank.is_some());
            }
        }
    }
    m.recall_at_10 = hits as f64 / m.users as f64;
    m.ndcg_at_10 = ndcg / m.users as f64;
    m.tail_recall_at_10 = tail_hits as f64 / m.tail_targets.max(1) as f64;
    m.head_recall_at_10 = head_hits as f64 / (m.users - m.tail_targets).max(1) as f64;
    Ok(Some(m))
}

/// Platt calibration of `P(interest)` on validation positives vs sampled unseen items.
fn calibrate(
    model: &SequenceModel,
    items: &Tensor,
    inter: &Interactions,
    negatives: usize,
    seed: u64,
) -> Result<Option<Platt>> {
    let users: Vec<usize> = (0..inter.seqs.len())
        .filter(|&u| inter.targets(u).is_some())
        .collect();
    if users.is_empty() {
        return Ok(None);
    }
    let items_n = crate::sequence::l2_normalise(items)?;
    let hists: Vec<&[usize]> = users.iter().map(|&u| inter.train_prefix(u)).collect();
    let user_rows = model.user_vector_rows(items, &hists)?;
    let item_rows = items_n.to_vec2::<f32>()?;
    Ok(crate::calibrate::fit_calibration_with(
        inter,
        item_rows.len(),
        &|u_pos: usize, item: usize| {
            user_rows[u_pos]
                .iter()
                .zip(&item_rows[item])
                .map(|(a, b)| f64::from(a * b))
                .sum()
        },
        &users,
        negatives,
        seed,
    ))
}

/// What `interest.json` says of the run (the step and the calibration are filled in at each
/// save).
fn checkpoint_meta(
    cfg: &TrainInterestConfig,
    inherited: &Inherited,
    meta: &SequenceMeta,
    text: Option<&TextEmbeddings>,
    step0: u64,
) -> InterestMeta {
    let prev = inherited.prev.as_ref();
    InterestMeta {
        format_version: 1,
        architecture: crate::model::Architecture::Sequence,
        init_model: prev.map_or(cfg.model.clone(), |p| p.init_model.clone()),
        max_len: text.map_or(inherited.max_len, |t| t.0.tokenizer.max_len()),
        template: inherited.template.clone(),
        pooling: "mean".into(),
        temperature: meta.temperature,
        logq_correction: false,
        user: UserRepr {
            history_len: meta.max_history(),
            recency_decay: 1.0,
        },
        frozen_layers: 0,
        calibration: prev.and_then(|p| p.calibration),
        calibration_negatives: cfg.calibration_negatives,
        global_step: step0,
        sequence: Some(meta.clone()),
        precision: inherited.precision,
    }
}

pub(crate) fn train_sequence(
    cfg: &TrainInterestConfig,
    device: &Device,
    progress: &mut dyn FnMut(Event<'_>),
) -> Result<TrainInterestOutcome> {
    let start = Instant::now();
    check_settings(cfg)?;
    let (data, summary) = TrainingData::load(cfg, device)?;
    progress(Event::Message(&summary));
    let inherited = Inherited::read(cfg)?;
    let text = text_of_items(cfg, &data.items, &inherited, device, progress)?;
    let meta = match &inherited.sequence {
        Some(s) => s.clone(),
        None => new_sequence_meta(
            cfg,
            inherited.features,
            text.as_ref().map_or(0, |t| t.2),
            &data,
        ),
    };
    progress(Event::Message(&format!(
        "sequence model: item features {}, {} items with an ID embedding, width {}, {} layers, \
         {} heads, history {}",
        meta.item_features,
        meta.id_items.len(),
        meta.hidden_size(),
        meta.encoder.num_hidden_layers,
        meta.encoder.num_attention_heads,
        meta.max_history()
    )));
    let model = match &cfg.resume_from {
        Some(dir) => SequenceModel::load(meta.clone(), &dir.join(SEQUENCE_WEIGHTS_FILE), device)?,
        None => SequenceModel::new(meta.clone(), cfg.seed, device)?,
    };
    let view = model.view(&data.item_ids, text.as_ref().map(|t| t.1.as_slice()))?;
    let step0 = inherited.global_step();
    if let Some(dir) = &cfg.resume_from {
        if let Ok(s) = longtail_fs::read_json::<DropoutState>(&dir.join(DROPOUT_STATE_FILE)) {
            model.encoder().set_dropout_rng_state(s.encoder);
        }
    }

    // Training sequences.
    let seqs: Vec<usize> = (0..data.inter.seqs.len())
        .filter(|&u| data.sequence(u).len() >= 2)
        .collect();
    if seqs.is_empty() {
        return Err(InterestError::invalid(
            "no training sequences (every user needs >= 2 training interactions)",
        ));
    }
    let (driver, state) = optimizer_and_state(
        cfg,
        longtail_model::named_vars(&model.varmap),
        &ParamGroupSpec::new(cfg.weight_decay),
        step0,
    )?;

    let evaluate = !cfg.use_all_interactions && cfg.eval_every > 0;
    let initial = if evaluate {
        let items = model.item_vectors(&view)?;
        validate(&model, &items, &data.inter, &data.tail, cfg.eval_users)?
    } else {
        None
    };
    if let Some(m) = &initial {
        progress(Event::Message(&format!(
            "step {step0}: validation NDCG@10 {:.4}, Recall@10 {:.4} (tail {:.4}, head {:.4})",
            m.ndcg_at_10, m.recall_at_10, m.tail_recall_at_10, m.head_recall_at_10
        )));
    }

    let calibration_prev = inherited.prev.as_ref().and_then(|p| p.calibration);
    let base_meta = checkpoint_meta(cfg, &inherited, &meta, text.as_ref(), step0);
    let (log_q, target_weights) = target_priors(cfg, &data, &seqs, device)?;
    let sequences: Vec<&[usize]> = seqs.iter().map(|&u| data.sequence(u)).collect();
    let seq_lens: Vec<usize> = sequences
        .iter()
        .map(|s| s.len().min(meta.max_history() + 1))
        .collect();
    let mut objective = NextItem {
        cfg,
        model: &model,
        view: &view,
        inter: &data.inter,
        tail: &data.tail,
        sequences,
        seq_lens,
        log_q,
        target_weights,
        evaluations: Vec::new(),
        evaluated_items: None,
        text: text.as_ref(),
        base_meta,
        calibration_prev,
    };
    // The first evaluation always counts as an improvement: a fresh model's starting point is
    // random, and a resumed run trains on new data, where the old score is no bar.
    let settings = FitSettings {
        max_steps: step0 + cfg.max_steps,
        eval: if evaluate {
            EvalCadence::Steps(cfg.eval_every)
        } else {
            EvalCadence::No
        },
        save: SavePolicy::Best,
        best_metric: Some(BestMetricConfig::new("ndcg_at_10")),
        early_stopping: if cfg.early_stopping_patience > 0 {
            let patience = u32::try_from(cfg.early_stopping_patience)
                .map_err(|_| InterestError::invalid("early_stopping_patience is too large"))?;
            Some(EarlyStopping::new(patience, 0.0)?)
        } else {
            None
        },
        ..Default::default()
    };
    let mut learner = Learner::new(driver, state, settings)?;
    let fit = learner.fit(&mut objective, progress)?;
    let best_step = learner.state().best_global_step;
    let best = objective
        .evaluations
        .iter()
        .find(|(step, _)| Some(*step) == best_step)
        .map(|(_, m)| m.clone());
    let calibration =
        longtail_fs::read_json::<InterestMeta>(&cfg.out.join(INTEREST_FILE))?.calibration;
    progress(Event::Message(&format!(
        "checkpoint: step {} ({:.0}s of training)",
        fit.last_checkpoint.as_ref().map_or(step0, |(s, _)| *s),
        fit.time.as_secs_f64()
    )));
    Ok(TrainInterestOutcome {
        steps: fit.updates,
        seconds: start.elapsed().as_secs_f64(),
        train_pairs: objective.sequences.iter().map(|s| s.len() - 1).sum(),
        initial,
        last: best,
        calibration,
        out: cfg.out.clone(),
        phase_times: learner.driver().phase_times(),
    })
}

/// The sequence model as the `Learner`'s objective: a batch is a set of users' sequences
/// (every position predicts the next item), the evaluation full-ranking NDCG@10 on
/// validation, the checkpoint the best model so far.
struct NextItem<'a> {
    cfg: &'a TrainInterestConfig,
    model: &'a SequenceModel,
    view: &'a CatalogueView,
    inter: &'a Interactions,
    tail: &'a [bool],
    /// The training sequences, and their lengths as the model reads them.
    sequences: Vec<&'a [usize]>,
    seq_lens: Vec<usize>,
    log_q: Option<Tensor>,
    target_weights: Option<Vec<f32>>,
    /// Every evaluation of this run, by step.
    evaluations: Vec<(u64, ValMetrics)>,
    /// The item vectors of the latest evaluation and its step: the calibration of a checkpoint
    /// written right after it reuses them.
    evaluated_items: Option<(u64, Tensor)>,
    text: Option<&'a TextEmbeddings>,
    base_meta: InterestMeta,
    calibration_prev: Option<Platt>,
}

impl Objective for NextItem<'_> {
    type Batch = Vec<usize>;
    type Error = InterestError;

    fn num_batches(&self) -> usize {
        self.sequences.len().div_ceil(self.cfg.batch_size)
    }

    fn epoch_batches(&mut self, epoch: u64) -> Result<Vec<Vec<usize>>> {
        Ok(epoch_batches(
            &self.seq_lens,
            self.cfg.batch_size,
            self.cfg.seed,
            epoch,
        ))
    }

    fn loss(&mut self, chunk: &Vec<usize>) -> Result<Tensor> {
        let batch: Vec<&[usize]> = chunk.iter().map(|&i| self.sequences[i]).collect();
        next_item_loss(
            self.model,
            self.view,
            &batch,
            self.log_q.as_ref(),
            self.target_weights.as_deref(),
            true,
        )
    }

    fn count(&self, chunk: &Vec<usize>) -> (u64, u64) {
        (chunk.len() as u64, 0)
    }

    fn evaluate(&mut self, state: &TrainerState) -> Result<Option<BTreeMap<String, f64>>> {
        let items = self.model.item_vectors(self.view)?;
        let Some(m) = validate(
            self.model,
            &items,
            self.inter,
            self.tail,
            self.cfg.eval_users,
        )?
        else {
            return Ok(None);
        };
        let map = m.to_eval_map(true);
        self.evaluated_items = Some((state.global_step, items));
        self.evaluations.push((state.global_step, m));
        Ok(Some(map))
    }

    fn save(&mut self, driver: &StepDriver, state: &mut TrainerState) -> Result<PathBuf> {
        let cfg = self.cfg;
        let calibration = if cfg.use_all_interactions {
            self.calibration_prev
        } else {
            let items = match self.evaluated_items.take() {
                Some((step, items)) if step == state.global_step => items,
                _ => self.model.item_vectors(self.view)?,
            };
            calibrate(
                self.model,
                &items,
                self.inter,
                cfg.calibration_negatives,
                cfg.seed,
            )?
        };
        let mut m = self.base_meta.clone();
        m.global_step = state.global_step;
        m.calibration = calibration;
        let dropout = DropoutState {
            encoder: self.model.encoder().dropout_rng_state(),
        };
        if let Some(parent) = cfg.out.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| InterestError::io(parent, e))?;
        }
        let (model, text) = (self.model, self.text);
        longtail_fs::write_dir_atomic(&cfg.out, |tmp| -> Result<()> {
            if let Some((encoder, emb, dim, hash)) = text {
                encoder.save_weights(tmp)?;
                save_item_embeddings(&tmp.join(ITEM_EMBEDDINGS_FILE), emb, *dim, hash)?;
            }
            model.save(&tmp.join(SEQUENCE_WEIGHTS_FILE))?;
            longtail_fs::write_json_atomic(&tmp.join(INTEREST_FILE), &m)?;
            longtail_fs::write_json_atomic(&tmp.join(TRAIN_ARGS_FILE), cfg)?;
            longtail_fs::write_json_atomic(&tmp.join(DROPOUT_STATE_FILE), &dropout)?;
            driver.save_state(tmp)?;
            state.save(&tmp.join(TRAINER_STATE_FILE))?;
            Ok(())
        })?;
        Ok(cfg.out.clone())
    }
}
