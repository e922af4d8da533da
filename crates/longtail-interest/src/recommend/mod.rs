//! The serving API: load an interest checkpoint (or a served plan) and a prepared dir once,
//! then rank any user's history per request ([`Recommender::recommend`]), as `longtail
//! recommend` does for every user of the log.
//!
//! A list is the interest model's cosine ranking, or a z-scored blend of several components
//! (a plan written by `longtail plan`, or the model with EASE as `eval-rec`'s `longtail+ease`),
//! the user's history excluded, optionally re-ranked towards tail items by a [`Knob`]: the
//! same steps `eval-rec` measures (its `served` row calls [`Recommender::ranking_scores`]).

use std::collections::HashMap;
use std::time::Instant;

use longtail_rec::interactions::index_of;
use longtail_rec::plan::Plan;
use longtail_rec::{
    add_zscored, exclude_history, rerank, top_k, Ease, Interactions, ItemIdx, ItemItem, Knob,
    MostPopular, Scorer,
};

use crate::error::{InterestError, Result};
use crate::index::InterestIndex;

mod ease_blend;
mod explain;
mod load;
mod options;
mod served;
#[cfg(test)]
mod tests;

pub use ease_blend::{EaseBlend, EaseFit};
pub use load::plan_checkpoint;
pub use options::{LoadInfo, RecommenderOptions};
pub use served::ServedScorer;

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

impl Recommender {
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
}
