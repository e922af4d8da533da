//! Loading a [`Recommender`]: from a checkpoint and a prepared dir, or from a served plan
//! (its components by [`ComponentKind`], checkpoints and artefacts sha256-checked).

use std::collections::HashMap;
use std::path::Path;

use longtail_data::{Label, PreparedDataset};
use longtail_rec::interactions::index_of;
use longtail_rec::plan::{
    ArtefactKind, ComponentKind, Plan, PlanComponent, PLAN_FILE, PLAN_VERSION,
};
use longtail_rec::{Interactions, ItemItem, MostPopular};

use super::{LoadInfo, Part, Recommender, RecommenderOptions, Source};
use crate::error::{InterestError, Result};
use crate::index::{CacheStatus, InterestIndex};
use crate::plan_files::{checkpoint_sha256, item_ids_sha256, read_artefact};

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
            let source = match c.kind.artefact() {
                ArtefactKind::Checkpoint => {
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
                artefact @ (ArtefactKind::Matrix | ArtefactKind::Counts) => {
                    let file = c.artefact.as_deref().ok_or_else(|| {
                        InterestError::invalid(format!("component `{}` names no artefact", c.name))
                    })?;
                    let (values, shape) =
                        read_artefact(&plan_dir.join(file), c.artefact_sha256.as_deref())?;
                    let n = plan.n_items;
                    match artefact {
                        ArtefactKind::Counts if shape == [n] => {
                            Source::Popular(MostPopular::from_counts(values))
                        }
                        ArtefactKind::Matrix if shape == [n, n] => {
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
}
