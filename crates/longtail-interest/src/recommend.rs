//! The serving API: load an interest checkpoint (or a served plan) and a prepared dir once,
//! then rank any user's history per request ([`Recommender::recommend`]), as `longtail
//! recommend` does for every user of the log.
//!
//! A list is the interest model's cosine ranking, or a z-scored blend of several components
//! (a plan written by `longtail plan`, or the model with EASE as `eval-rec`'s `longtail+ease`),
//! the user's history excluded, optionally re-ranked towards tail items by a [`Knob`]: the
//! same steps `eval-rec` measures (its `served` row calls [`Recommender::ranking_scores`]).

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use candle_core::Device;
use longtail_data::{Label, PreparedDataset};
use longtail_rec::interactions::index_of;
use longtail_rec::plan::{ComponentKind, Plan, PlanComponent, PLAN_FILE, PLAN_VERSION};
use longtail_rec::{
    add_zscored, exclude_history, rerank, top_k, zstats, Ease, Interactions, ItemIdx, ItemItem,
    Knob, MostPopular, Scorer,
};

use crate::error::{InterestError, Result};
use crate::index::{CacheStatus, InterestIndex};
use crate::plan_files::{checkpoint_sha256, item_ids_sha256, read_artefact};

/// Rank by `(1 - weight) z(cosine) + weight z(EASE)`, EASE fitted with `lambda` on every
/// interaction of the data (`weight` is `1 - w` of `eval-rec`'s blend report).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EaseBlend {
    pub weight: f64,
    pub lambda: f64,
}

/// How [`Recommender::load`] finds its pieces.
#[derive(Debug, Clone)]
pub struct RecommenderOptions<'a> {
    /// Item embedding cache (default: `item_embeddings.safetensors` in the checkpoint).
    pub embedding_cache: Option<&'a Path>,
    /// Items per inference batch when the cache must be (re)computed.
    pub batch_size: usize,
    pub ease: Option<EaseBlend>,
    /// Where the encoder and the sequence model run.
    pub device: Device,
}

impl Default for RecommenderOptions<'_> {
    fn default() -> Self {
        Self {
            embedding_cache: None,
            batch_size: 0,
            ease: None,
            device: Device::Cpu,
        }
    }
}

/// What loading did, for the caller to report.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadInfo {
    pub embeddings: CacheStatus,
    pub ease_fit: Option<EaseFit>,
}

/// The EASE fit of a blend.
#[derive(Debug, Clone, PartialEq)]
pub struct EaseFit {
    pub blend: EaseBlend,
    /// Users whose interactions it was fitted on.
    pub users: usize,
    pub seconds: f64,
}

/// One recommended item.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    /// Catalogue index (see [`Recommender::item_id`]).
    pub item: usize,
    /// Cosine similarity of user and item (what `p_interest` is calibrated on).
    pub score: f32,
    /// The blended score the list is ranked by, with a blend.
    pub blend_score: Option<f32>,
    /// Calibrated `P(interest)`, if the checkpoint has a calibration.
    pub p_interest: Option<f64>,
    /// A tail item of the prepared dir's labels.
    pub tail: bool,
    /// The history item contributing most to the score: the largest term of a pooled user
    /// vector, the item whose removal lowers the score most for a sequence model, or, for a
    /// blend, the item whose removal lowers the blended score most (each component's change
    /// on its z-score scale of the full history).
    pub because_of: Option<usize>,
}

/// Where a blend component's scores come from.
enum Source {
    /// The recommender's own checkpoint.
    Main,
    /// Another interest index (a second checkpoint, or a checkpoint's frozen text).
    Index(Box<InterestIndex>),
    /// EASE or item-kNN weights (fitted on the first `n()` items).
    ItemItem(ItemItem),
    Popular(MostPopular),
}

struct Part {
    name: String,
    weight: f32,
    source: Source,
    /// User vectors computed ahead (evaluation), by history.
    cache: HashMap<Vec<usize>, Vec<f32>>,
}

/// Ranking scores with the raw component scores they were blended from (empty without a
/// blend).
type Scored = (Vec<f32>, Vec<Vec<f32>>);

/// The interest index a learned part scores with (`main`: the recommender's checkpoint);
/// `None` for ID parts.
fn interest_of<'a>(main: &'a InterestIndex, source: &'a Source) -> Option<&'a InterestIndex> {
    match source {
        Source::Main => Some(main),
        Source::Index(ix) => Some(ix),
        Source::ItemItem(_) | Source::Popular(_) => None,
    }
}

/// Histories the leave-one-out explanation of a blend considers (the most recent ones).
const EXPLAIN_WINDOW: usize = 50;

/// An interest checkpoint, a catalogue and its users' histories, loaded once.
pub struct Recommender {
    index: InterestIndex,
    item_ids: Vec<String>,
    is_tail: Vec<bool>,
    interactions: Interactions,
    user_index: HashMap<String, usize>,
    item_index: HashMap<String, usize>,
    /// `None`: the checkpoint's cosine alone.
    blend: Option<Vec<Part>>,
    plan: Option<Plan>,
}

/// The prepared dir's catalogue, tail labels and interactions.
fn load_data(data: &Path) -> Result<(PreparedDataset, Vec<String>, Vec<bool>, Interactions)> {
    let dataset = PreparedDataset::load(data)?;
    let item_ids: Vec<String> = dataset.items.iter().map(|i| i.item_id.clone()).collect();
    let is_tail: Vec<bool> = dataset
        .items
        .iter()
        .map(|i| i.label == Label::Tail)
        .collect();
    let interactions = Interactions::load(
        &data.join(longtail_data::INTERACTIONS_FILE),
        &index_of(&item_ids),
    )?;
    Ok((dataset, item_ids, is_tail, interactions))
}

/// The checkpoint a plan's interest and text components read (the first one named).
pub fn plan_checkpoint(plan: &Plan) -> Option<&Path> {
    plan.components
        .iter()
        .chain(&plan.dropped)
        .find_map(|c| c.checkpoint.as_deref())
}

impl Recommender {
    /// Loads the prepared dir `data` (catalogue, tail labels, interactions), the checkpoint's
    /// item embeddings (cached) and, when asked, fits EASE for the blend.
    pub fn load(
        ckpt: &Path,
        data: &Path,
        opts: &RecommenderOptions<'_>,
    ) -> Result<(Self, LoadInfo)> {
        let (dataset, item_ids, is_tail, interactions) = load_data(data)?;
        let (index, embeddings) = InterestIndex::load(
            ckpt,
            &dataset.items,
            opts.embedding_cache,
            opts.batch_size,
            &opts.device,
        )?;
        let (rec, ease_fit) = Self::new(index, item_ids, is_tail, interactions, opts.ease)?;
        Ok((
            rec,
            LoadInfo {
                embeddings,
                ease_fit,
            },
        ))
    }

    /// Loads a plan directory (`longtail plan --out`) with the prepared dir `data`: its
    /// checkpoints (sha256 checked), fitted artefacts (sha256 checked) and knob. The catalogue
    /// of `data` must start with the plan's items in the plan's order; items after them are
    /// new (text components score them, ID components give 0).
    pub fn load_plan(
        plan_dir: &Path,
        data: &Path,
        opts: &RecommenderOptions<'_>,
    ) -> Result<(Self, LoadInfo)> {
        let plan: Plan = longtail_fs::read_json(&plan_dir.join(PLAN_FILE))?;
        if plan.version != PLAN_VERSION {
            return Err(InterestError::invalid(format!(
                "{}: plan version {} (this build reads {PLAN_VERSION}); re-run `longtail plan`",
                plan_dir.join(PLAN_FILE).display(),
                plan.version
            )));
        }
        if let Some(Err(e)) = plan.knob.map(|k| k.validated()) {
            return Err(InterestError::invalid(format!(
                "{}: {e}",
                plan_dir.join(PLAN_FILE).display()
            )));
        }
        let (dataset, item_ids, is_tail, interactions) = load_data(data)?;
        if item_ids.len() < plan.n_items
            || item_ids_sha256(&item_ids[..plan.n_items]) != plan.items_sha256
        {
            return Err(InterestError::invalid(format!(
                "the plan in {} was fitted on another catalogue: the first {} items of {} \
                 differ from its items (re-run `longtail plan` on this data)",
                plan_dir.display(),
                plan.n_items,
                data.display()
            )));
        }
        let ckpt = plan_checkpoint(&plan)
            .ok_or_else(|| InterestError::invalid("the plan names no interest checkpoint"))?
            .to_path_buf();
        let load_index = |dir: &Path| -> Result<(InterestIndex, CacheStatus)> {
            InterestIndex::load(
                dir,
                &dataset.items,
                opts.embedding_cache.filter(|_| dir == ckpt),
                opts.batch_size,
                &opts.device,
            )
        };
        let check = |c: &PlanComponent, dir: &Path| -> Result<()> {
            if let Some(want) = &c.checkpoint_sha256 {
                let got = checkpoint_sha256(dir)?;
                if &got != want {
                    return Err(InterestError::invalid(format!(
                        "component `{}`: checkpoint {} changed since the plan was written \
                         (sha256 {got}, plan {want}); re-run `longtail plan`",
                        c.name,
                        dir.display()
                    )));
                }
            }
            Ok(())
        };
        let (index, embeddings) = load_index(&ckpt)?;
        let mut parts = Vec::with_capacity(plan.components.len());
        for c in &plan.components {
            let source = match c.kind {
                ComponentKind::Interest | ComponentKind::TextLastItem => {
                    let dir = c.checkpoint.as_deref().ok_or_else(|| {
                        InterestError::invalid(format!(
                            "component `{}` names no checkpoint",
                            c.name
                        ))
                    })?;
                    check(c, dir)?;
                    // Another checkpoint is loaded once, whichever of its views is served.
                    let other = (dir != ckpt).then(|| load_index(dir)).transpose()?;
                    match (c.kind, other) {
                        (ComponentKind::TextLastItem, other) => {
                            let base = other.as_ref().map_or(&index, |(o, _)| o);
                            Source::Index(Box::new(base.text_last_item().ok_or_else(|| {
                                InterestError::invalid(format!(
                                    "component `{}`: {} has no text embeddings",
                                    c.name,
                                    dir.display()
                                ))
                            })?))
                        }
                        (_, None) => Source::Main,
                        (_, Some((o, _))) => Source::Index(Box::new(o)),
                    }
                }
                ComponentKind::Ease | ComponentKind::ItemKnn | ComponentKind::MostPopular => {
                    let file = c.artefact.as_deref().ok_or_else(|| {
                        InterestError::invalid(format!("component `{}` names no artefact", c.name))
                    })?;
                    let (values, shape) =
                        read_artefact(&plan_dir.join(file), c.artefact_sha256.as_deref())?;
                    let n = plan.n_items;
                    match c.kind {
                        ComponentKind::MostPopular if shape == [n] => {
                            Source::Popular(MostPopular::from_counts(values))
                        }
                        ComponentKind::Ease | ComponentKind::ItemKnn if shape == [n, n] => {
                            Source::ItemItem(ItemItem::new(c.name.clone(), n, values)?)
                        }
                        _ => {
                            return Err(InterestError::invalid(format!(
                                "{}: shape {shape:?} does not fit a plan of {n} items",
                                plan_dir.join(file).display()
                            )))
                        }
                    }
                }
            };
            parts.push(Part {
                name: c.name.clone(),
                weight: c.weight as f32,
                source,
                cache: HashMap::new(),
            });
        }
        if parts.is_empty() {
            return Err(InterestError::invalid(format!(
                "{}: the plan keeps no component",
                plan_dir.join(PLAN_FILE).display()
            )));
        }
        let (mut rec, _) = Self::new(index, item_ids, is_tail, interactions, None)?;
        rec.blend = Some(parts);
        rec.plan = Some(plan);
        Ok((
            rec,
            LoadInfo {
                embeddings,
                ease_fit: None,
            },
        ))
    }

    /// Assembles a recommender from loaded parts; fits EASE on every user's interactions when
    /// `ease` is given.
    pub fn new(
        index: InterestIndex,
        item_ids: Vec<String>,
        is_tail: Vec<bool>,
        interactions: Interactions,
        ease: Option<EaseBlend>,
    ) -> Result<(Self, Option<EaseFit>)> {
        let n = item_ids.len();
        if index.num_items() != n || is_tail.len() != n {
            return Err(InterestError::invalid(format!(
                "{} item embeddings and {} tail labels for a catalogue of {n} items",
                index.num_items(),
                is_tail.len()
            )));
        }
        let (blend, ease_fit) = match ease {
            None => (None, None),
            Some(blend) => {
                if !(0.0..=1.0).contains(&blend.weight) {
                    return Err(InterestError::invalid(format!(
                        "EASE blend weight must be in [0, 1], got {}",
                        blend.weight
                    )));
                }
                if !(blend.lambda.is_finite() && blend.lambda > 0.0) {
                    return Err(InterestError::invalid(format!(
                        "EASE λ must be a positive number, got {}",
                        blend.lambda
                    )));
                }
                let lists: Vec<Vec<ItemIdx>> = interactions
                    .seqs
                    .iter()
                    .map(|s| s.iter().map(|&i| i as ItemIdx).collect())
                    .collect();
                let started = Instant::now();
                let model = Ease::fit_lists(&lists, n, blend.lambda)?;
                let fit = EaseFit {
                    blend,
                    users: lists.len(),
                    seconds: started.elapsed().as_secs_f64(),
                };
                let parts = vec![
                    Part {
                        name: "longtail".into(),
                        weight: (1.0 - blend.weight) as f32,
                        source: Source::Main,
                        cache: HashMap::new(),
                    },
                    Part {
                        name: "ease".into(),
                        weight: blend.weight as f32,
                        source: Source::ItemItem(model.into_item_item()),
                        cache: HashMap::new(),
                    },
                ];
                (Some(parts), Some(fit))
            }
        };
        let user_index = interactions
            .users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.clone(), i))
            .collect();
        let item_index = index_of(&item_ids);
        Ok((
            Self {
                index,
                item_ids,
                is_tail,
                interactions,
                user_index,
                item_index,
                blend,
                plan: None,
            },
            ease_fit,
        ))
    }

    pub fn num_items(&self) -> usize {
        self.item_ids.len()
    }

    /// The catalogue id of item `item`.
    pub fn item_id(&self, item: usize) -> &str {
        &self.item_ids[item]
    }

    /// The loaded interaction log (users in first-appearance order).
    pub fn interactions(&self) -> &Interactions {
        &self.interactions
    }

    /// The catalogue index of item id `id`.
    pub fn item_index(&self, id: &str) -> Option<usize> {
        self.item_index.get(id).copied()
    }

    /// The checkpoint's settings and embeddings.
    pub fn index(&self) -> &InterestIndex {
        &self.index
    }

    /// The served plan, when loaded with [`Self::load_plan`].
    pub fn plan(&self) -> Option<&Plan> {
        self.plan.as_ref()
    }

    /// The knob the plan chose (`None` without a plan, or for pure relevance).
    pub fn plan_knob(&self) -> Option<Knob> {
        self.plan.as_ref().and_then(|p| p.knob)
    }

    /// Tail labels of the catalogue (the prepared dir's), what re-ranking favours.
    pub fn tail_labels(&self) -> &[bool] {
        &self.is_tail
    }

    /// Names and weights of the blend's components (empty: the checkpoint alone).
    pub fn components(&self) -> Vec<(String, f32)> {
        self.blend
            .iter()
            .flatten()
            .map(|p| (p.name.clone(), p.weight))
            .collect()
    }

    /// Adds new catalogue items with their text embeddings (see [`InterestIndex::add_items`]);
    /// they are recommendable at once through the text-reading components. Ids already in the
    /// catalogue are an error.
    pub fn add_items(&mut self, items: &[(String, bool)], emb: &[f32]) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        if let Some((dup, _)) = items
            .iter()
            .find(|(id, _)| self.item_index.contains_key(id) || !seen.insert(id.as_str()))
        {
            return Err(InterestError::invalid(format!(
                "item `{dup}` is already in the catalogue"
            )));
        }
        let ids: Vec<String> = items.iter().map(|(id, _)| id.clone()).collect();
        self.index.add_items(&ids, emb)?;
        for part in self.blend.iter_mut().flatten() {
            if let Source::Index(ix) = &mut part.source {
                // An ID-only model has no place for them: they score 0 there.
                if ix.has_text() {
                    ix.add_items(&ids, emb)?;
                }
            }
        }
        for (id, tail) in items {
            self.item_index.insert(id.clone(), self.item_ids.len());
            self.item_ids.push(id.clone());
            self.is_tail.push(*tail);
        }
        Ok(())
    }

    /// A known user's whole history (distinct items, time order); `None` for an unknown id.
    pub fn history(&self, user_id: &str) -> Option<&[usize]> {
        self.user_index
            .get(user_id)
            .map(|&u| self.interactions.seqs[u].as_slice())
    }

    /// Computes the user vectors of `histories` ahead, in batches, for every learned
    /// component (evaluation ranks thousands of histories; a request ranks one).
    pub fn precompute(&mut self, histories: &[Vec<usize>]) -> Result<()> {
        let Some(parts) = self.blend.as_mut() else {
            return Ok(());
        };
        for part in parts.iter_mut() {
            let Some(index) = interest_of(&self.index, &part.source) else {
                continue;
            };
            for chunk in histories.chunks(512) {
                let refs: Vec<&[usize]> = chunk.iter().map(|h| h.as_slice()).collect();
                for (h, v) in chunk.iter().zip(index.user_vectors(&refs)?) {
                    if let Some(v) = v {
                        part.cache.insert(h.clone(), v);
                    }
                }
            }
        }
        Ok(())
    }

    /// One component's raw scores over the whole catalogue (`None` without history).
    fn part_scores(&self, part: &Part, history: &[usize], h: &[ItemIdx]) -> Option<Vec<f32>> {
        let n = self.num_items();
        if let Some(index) = interest_of(&self.index, &part.source) {
            let mut s = match part.cache.get(history) {
                Some(u) => index.scores_of(u),
                None => index.scores(history)?,
            };
            // An ID-only model has no rows for items added after it: they score 0.
            s.resize(n, 0.0);
            return Some(s);
        }
        let id_model: &dyn Scorer = match &part.source {
            Source::ItemItem(m) => m,
            Source::Popular(p) => p,
            Source::Main | Source::Index(_) => unreachable!("interest parts handled above"),
        };
        let mut s = vec![0f32; n];
        id_model.scores(0, h, &mut s);
        Some(s)
    }

    /// The scores a list is ranked by, before exclusions and the knob: the checkpoint's
    /// cosine, or the blend `sum_c w_c z(s_c)`. Also the raw component scores (blend only).
    /// `None` without history.
    fn scores_with_parts(&self, history: &[usize]) -> Result<Option<Scored>> {
        let n = self.num_items();
        if let Some(&bad) = history.iter().find(|&&i| i >= n) {
            return Err(InterestError::invalid(format!(
                "history item {bad} is not in the catalogue of {n} items"
            )));
        }
        if history.is_empty() {
            return Ok(None);
        }
        let h: Vec<ItemIdx> = history.iter().map(|&i| i as ItemIdx).collect();
        let Some(parts) = &self.blend else {
            return Ok(self.index.scores(history).map(|s| (s, Vec::new())));
        };
        let mut raw = Vec::with_capacity(parts.len());
        for p in parts {
            match self.part_scores(p, history, &h) {
                Some(s) => raw.push(s),
                None => return Ok(None),
            }
        }
        let mut weighted: Vec<(Vec<f32>, f32)> = raw
            .iter()
            .zip(parts)
            .map(|(s, p)| (s.clone(), p.weight))
            .collect();
        let mut out = vec![0f32; n];
        add_zscored(&mut out, &mut weighted, &h);
        Ok(Some((out, raw)))
    }

    /// The scores a list is ranked by for `history` (before exclusions and the knob), as
    /// [`Self::recommend_excluding`] ranks: what `eval-rec --plan` measures as `served`.
    pub fn ranking_scores(&self, history: &[usize]) -> Result<Option<Vec<f32>>> {
        Ok(self.scores_with_parts(history)?.map(|(s, _)| s))
    }

    /// The top `k` items for a user with `history` (catalogue indices, oldest first), history
    /// excluded, re-ranked by `knob` when given. `None` when the history is empty: there is
    /// nothing to personalise on, and a list is not guessed.
    pub fn recommend(
        &self,
        history: &[usize],
        k: usize,
        knob: Option<Knob>,
    ) -> Result<Option<Vec<Recommendation>>> {
        self.recommend_excluding(history, &[], k, knob)
    }

    /// [`Self::recommend`] that also never returns the items in `exclude` (e.g. dismissed
    /// ones).
    pub fn recommend_excluding(
        &self,
        history: &[usize],
        exclude: &[usize],
        k: usize,
        knob: Option<Knob>,
    ) -> Result<Option<Vec<Recommendation>>> {
        let n = self.num_items();
        if let Some(&bad) = exclude.iter().find(|&&i| i >= n) {
            return Err(InterestError::invalid(format!(
                "history item {bad} is not in the catalogue of {n} items"
            )));
        }
        let Some((mut scores, raw)) = self.scores_with_parts(history)? else {
            return Ok(None);
        };
        let h: Vec<ItemIdx> = history.iter().map(|&i| i as ItemIdx).collect();
        let cosines = match (&self.blend, self.main_part()) {
            (None, _) => scores.clone(),
            (Some(_), Some(main)) => raw[main].clone(),
            (Some(_), None) => self.index.scores(history).unwrap_or_else(|| vec![0.0; n]),
        };
        let name = if self.blend.is_some() {
            "blend"
        } else {
            "longtail"
        };
        exclude_history(name, 0, &h, &mut scores)?;
        for &i in exclude {
            scores[i] = f32::NEG_INFINITY;
        }
        let list = match knob {
            Some(knob) => rerank(&scores, &self.is_tail, k, knob),
            None => top_k(&scores, k),
        };
        let items: Vec<usize> = list.into_iter().map(|i| i as usize).collect();
        let because = match &self.blend {
            None => self.index.explain_many(history, &items)?,
            Some(parts) => self.explain_blend(parts, history, &items, &raw)?,
        };
        Ok(Some(
            items
                .into_iter()
                .zip(because)
                .map(|(item, because_of)| Recommendation {
                    item,
                    score: cosines[item],
                    blend_score: self.blend.is_some().then_some(scores[item]),
                    p_interest: self.index.probability(cosines[item]),
                    tail: self.is_tail[item],
                    because_of,
                })
                .collect(),
        ))
    }

    /// Position of the checkpoint's own model among the blend's parts.
    fn main_part(&self) -> Option<usize> {
        self.blend
            .as_ref()?
            .iter()
            .position(|p| matches!(p.source, Source::Main))
    }

    /// Leave-one-out over the last [`EXPLAIN_WINDOW`] history items: the one whose removal
    /// lowers the blended score of each item most, each component's change measured on its
    /// z-score scale for the full history.
    fn explain_blend(
        &self,
        parts: &[Part],
        history: &[usize],
        items: &[usize],
        raw: &[Vec<f32>],
    ) -> Result<Vec<Option<usize>>> {
        let window = &history[history.len() - history.len().min(EXPLAIN_WINDOW)..];
        if window.len() == 1 {
            return Ok(vec![Some(window[0]); items.len()]);
        }
        let h: Vec<ItemIdx> = history.iter().map(|&i| i as ItemIdx).collect();
        // drop[j][t]: the blended score item t loses when window[j] is removed
        let mut drop = vec![vec![0f32; items.len()]; window.len()];
        let variants: Vec<Vec<usize>> = (0..window.len())
            .map(|j| {
                let skip = history.len() - window.len() + j;
                history
                    .iter()
                    .enumerate()
                    .filter(|&(i, _)| i != skip)
                    .map(|(_, &x)| x)
                    .collect()
            })
            .collect();
        for (p, s) in parts.iter().zip(raw) {
            let Some((_, sd)) = zstats(s, &h) else {
                continue;
            };
            let scale = p.weight / sd as f32;
            if let Some(index) = interest_of(&self.index, &p.source) {
                let refs: Vec<&[usize]> = variants.iter().map(|v| v.as_slice()).collect();
                for (j, u) in index.user_vectors(&refs)?.into_iter().enumerate() {
                    let without = match u {
                        Some(u) => index.score_items(&u, items),
                        None => vec![0.0; items.len()],
                    };
                    for (t, &item) in items.iter().enumerate() {
                        drop[j][t] += scale * (s[item] - without[t]);
                    }
                }
            } else if let Source::ItemItem(m) = &p.source {
                // Removing item r lowers every score by its row: B[r, item].
                let fitted = m.n();
                for (j, &removed) in window.iter().enumerate() {
                    for (t, &item) in items.iter().enumerate() {
                        if removed < fitted && item < fitted {
                            drop[j][t] += scale * m.matrix()[removed * fitted + item];
                        }
                    }
                }
            }
            // Popularity does not depend on the history.
        }
        Ok((0..items.len())
            .map(|t| {
                (0..window.len())
                    .map(|j| (window[j], drop[j][t]))
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(item, _)| item)
            })
            .collect())
    }
}

/// A plan's (or a checkpoint's) ranking as a longtail-rec [`Scorer`]: `eval-rec --plan`'s
/// `served` row ranks through exactly the code [`Recommender::recommend`] runs.
pub struct ServedScorer<'a> {
    pub rec: &'a Recommender,
    pub name: String,
}

impl Scorer for ServedScorer<'_> {
    fn name(&self) -> &str {
        &self.name
    }

    fn scores(&self, _user: longtail_rec::UserIdx, history: &[ItemIdx], out: &mut [f32]) {
        let h: Vec<usize> = history.iter().map(|&i| i as usize).collect();
        // No history (not evaluated) or an error: all zeros, ties broken by item index.
        if let Ok(Some(s)) = self.rec.ranking_scores(&h) {
            out.copy_from_slice(&s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::tests::index;

    /// Six items on the unit circle: 0-2 near the x axis, 3-5 near the y axis; 2 and 5 are
    /// tail items. User `a` bought 0 and 3, user `b` bought 1.
    fn fixture(ease: Option<EaseBlend>) -> Recommender {
        let angles = [0.0f32, 0.1, 0.2, 1.5, 1.4, 1.3];
        let emb: Vec<f32> = angles.iter().flat_map(|a| [a.cos(), a.sin()]).collect();
        let item_ids: Vec<String> = (0..6).map(|i| format!("i{i}")).collect();
        let is_tail = vec![false, false, true, false, false, true];
        let inter = Interactions {
            users: vec!["a".into(), "b".into()],
            seqs: vec![vec![0, 3], vec![1]],
            rows: 3,
            rejected: 0,
            duplicates: 0,
        };
        Recommender::new(index(emb, 2), item_ids, is_tail, inter, ease)
            .unwrap()
            .0
    }

    #[test]
    fn excludes_history_honours_k_and_explains_with_a_history_item() {
        let rec = fixture(None);
        let history = rec.history("a").unwrap().to_vec();
        assert_eq!(history, vec![0, 3]);
        for k in [1, 3, 4, 10] {
            let list = rec.recommend(&history, k, None).unwrap().unwrap();
            assert_eq!(list.len(), k.min(4), "k={k}");
            for r in &list {
                assert!(!history.contains(&r.item));
                assert!(history.contains(&r.because_of.unwrap()));
                assert_eq!(r.tail, [2, 5].contains(&r.item));
                assert!(r.blend_score.is_none());
                assert!(r.p_interest.is_some());
            }
            assert!(list.windows(2).all(|w| w[0].score >= w[1].score));
        }
        // Items near the x axis are explained by 0, those near the y axis by 3.
        let list = rec.recommend(&history, 4, None).unwrap().unwrap();
        for r in list {
            let want = if r.item <= 2 { 0 } else { 3 };
            assert_eq!(r.because_of, Some(want), "item {}", r.item);
        }
    }

    #[test]
    fn empty_history_and_unknown_users_get_no_list_and_bad_items_are_errors() {
        let rec = fixture(None);
        assert!(rec.history("nobody").is_none());
        assert!(rec.recommend(&[], 5, None).unwrap().is_none());
        assert!(rec.recommend(&[6], 5, None).is_err());
    }

    #[test]
    fn a_tail_share_puts_tail_items_in_the_list() {
        let rec = fixture(None);
        // b bought 1: plain top-2 is 0 and 2 (the x-axis neighbours); item 2 is tail.
        let plain = rec.recommend(&[1], 2, None).unwrap().unwrap();
        let mut items: Vec<usize> = plain.iter().map(|r| r.item).collect();
        items.sort_unstable();
        assert_eq!(items, vec![0, 2]);
        let all_tail = rec
            .recommend(&[1], 2, Some(Knob::TailShare(1.0)))
            .unwrap()
            .unwrap();
        assert!(all_tail.iter().all(|r| r.tail), "{all_tail:?}");
    }

    #[test]
    fn the_ease_blend_reports_the_score_it_ranks_by() {
        let blend = EaseBlend {
            weight: 0.5,
            lambda: 1.0,
        };
        let rec = fixture(Some(blend));
        let list = rec.recommend(&[0, 3], 4, None).unwrap().unwrap();
        assert_eq!(list.len(), 4);
        assert!(list.iter().all(|r| r.blend_score.is_some()));
        let ranked: Vec<f32> = list.iter().map(|r| r.blend_score.unwrap()).collect();
        assert!(ranked.windows(2).all(|w| w[0] >= w[1]));
        // The blend's explanation is a history item (leave-one-out over the blended score).
        assert!(list.iter().all(|r| [0, 3].contains(&r.because_of.unwrap())));
        // New items join a blend: EASE gives them 0, the text places them.
        let mut grown = fixture(Some(blend));
        grown
            .add_items(&[("i6".to_string(), true)], &[0.0f32.cos(), 0.0f32.sin()])
            .unwrap();
        let list = grown.recommend(&[1], 6, None).unwrap().unwrap();
        assert!(list.iter().any(|r| r.item == 6), "{list:?}");
        let bad = EaseBlend {
            weight: 1.5,
            lambda: 1.0,
        };
        let inter = fixture(None).interactions().clone();
        let emb = vec![1.0, 0.0];
        assert!(Recommender::new(
            index(emb, 2),
            vec!["x".into()],
            vec![false],
            inter,
            Some(bad)
        )
        .is_err());
    }
}
