//! The serving API: load an interest checkpoint and a prepared dir once, then rank any user's
//! history per request ([`Recommender::recommend`]), as `longtail recommend` does for every
//! user of the log.
//!
//! A list is the interest model's cosine ranking (or its z-scored blend with EASE, as
//! `eval-rec`'s `longtail+ease`), the user's history excluded, optionally re-ranked towards
//! tail items by a [`Knob`]: the same steps `eval-rec` measures.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use candle_core::Device;
use longtail_data::{Label, PreparedDataset};
use longtail_rec::interactions::index_of;
use longtail_rec::{
    exclude_history, rerank, top_k, Ease, Interactions, ItemIdx, Knob, Scorer, ZBlend,
};

use crate::error::{InterestError, Result};
use crate::index::{CacheStatus, InterestIndex};
use crate::scorer::InterestScorer;

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
    /// The blended score the list is ranked by, with an EASE blend.
    pub blend_score: Option<f32>,
    /// Calibrated `P(interest)`, if the checkpoint has a calibration.
    pub p_interest: Option<f64>,
    /// A tail item of the prepared dir's labels.
    pub tail: bool,
    /// The history item contributing most to the score: the largest term of a pooled user
    /// vector, or the item whose removal lowers the score most for a sequence model.
    pub because_of: Option<usize>,
}

/// An interest checkpoint, a catalogue and its users' histories, loaded once.
pub struct Recommender {
    index: InterestIndex,
    item_ids: Vec<String>,
    is_tail: Vec<bool>,
    interactions: Interactions,
    user_index: HashMap<String, usize>,
    item_index: HashMap<String, usize>,
    ease: Option<(Ease, f64)>,
}

impl Recommender {
    /// Loads the prepared dir `data` (catalogue, tail labels, interactions), the checkpoint's
    /// item embeddings (cached) and, when asked, fits EASE for the blend.
    pub fn load(
        ckpt: &Path,
        data: &Path,
        opts: &RecommenderOptions<'_>,
    ) -> Result<(Self, LoadInfo)> {
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
        let (ease, ease_fit) = match ease {
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
                (Some((model, blend.weight)), Some(fit))
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
                ease,
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

    /// Adds new catalogue items with their text embeddings (see [`InterestIndex::add_items`]);
    /// they are recommendable at once. Ids already in the catalogue are an error.
    pub fn add_items(&mut self, items: &[(String, bool)], emb: &[f32]) -> Result<()> {
        if self.ease.is_some() {
            return Err(InterestError::invalid(
                "new items cannot join an EASE blend (its item-item matrix is fixed at load)",
            ));
        }
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
        if let Some(&bad) = history.iter().chain(exclude).find(|&&i| i >= n) {
            return Err(InterestError::invalid(format!(
                "history item {bad} is not in the catalogue of {n} items"
            )));
        }
        let Some(cosines) = self.index.scores(history) else {
            return Ok(None);
        };
        let h: Vec<ItemIdx> = history.iter().map(|&i| i as ItemIdx).collect();
        let (name, mut scores) = match &self.ease {
            None => ("longtail", cosines.clone()),
            Some((ease, weight)) => {
                let interest = InterestScorer::new(&self.index, "longtail");
                let blend = ZBlend {
                    name: "longtail+ease".into(),
                    a: &interest,
                    b: ease,
                    w: (1.0 - weight) as f32,
                };
                let mut s = vec![0f32; n];
                blend.scores(0, &h, &mut s);
                ("longtail+ease", s)
            }
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
        let because = self.index.explain_many(history, &items)?;
        Ok(Some(
            items
                .into_iter()
                .zip(because)
                .map(|(item, because_of)| Recommendation {
                    item,
                    score: cosines[item],
                    blend_score: self.ease.is_some().then_some(scores[item]),
                    p_interest: self.index.probability(cosines[item]),
                    tail: self.is_tail[item],
                    because_of,
                })
                .collect(),
        ))
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
