//! `longtail plan`: choose the served recommender on the user's own validation split. Fits
//! the candidate scorers on the training split (interest checkpoints, their frozen text,
//! EASE with λ chosen on validation, item-kNN, most popular), searches the weights of their
//! z-scored blend on validation NDCG@10, chooses the tail weight by a relevance budget, and
//! writes `plan.json` with the fitted artefacts it needs (one atomic directory write).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use clap::Args;
use longtail_data::{Label, PreparedDataset, TailRule};
use longtail_interest::plan_files::{
    artefact_bytes, checkpoint_sha256, item_ids_sha256, sha256_hex,
};
use longtail_interest::scorer::InterestScorer;
use longtail_interest::InterestIndex;
use longtail_progress::Event;
use longtail_rec::plan::{
    ComponentKind, Plan, PlanComponent, PlanSelection, TailPoint, ValidationNumbers,
    DENSE_ITEM_LIMIT, PLAN_FILE, PLAN_VERSION, STANDARDISATION,
};
use longtail_rec::{
    Fitted, IdBaseline, ItemIdx, ItemItem, Knob, RecSplit, Scorer, Stage, TailWeighted, ZBlend,
    ID_BASELINES,
};
use longtail_rec_eval::{
    choose_tail_by_budget, evaluate, search_tail, search_weights, selection_grid, tail_points,
    tradeoff_curve_labelled, CandidateTable, SearchOptions, Segments,
};

use crate::shared_args::{defaults, DeviceArg, NamedCheckpoint};

#[derive(Args, Debug)]
pub struct PlanArgs {
    /// TOML file whose [plan] table supplies defaults for any flag.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Prepared dataset directory (the plan is fitted on its training split and chosen on its
    /// validation split; test targets are never read).
    #[arg(long)]
    pub data: PathBuf,
    /// Interest checkpoint (the --out of `train-interest`): candidate `longtail`, and its
    /// frozen text embeddings as candidate `text-last-item`.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// More interest checkpoints as candidates, `NAME=DIR` (repeatable), e.g.
    /// `--candidate sasrec=runs/office-sasrec`.
    #[arg(long, value_name = "NAME=DIR")]
    pub candidate: Vec<NamedCheckpoint>,
    /// Output directory: plan.json and the fitted artefacts it names (replaced atomically).
    #[arg(long)]
    pub out: PathBuf,
    /// Largest relative loss of validation NDCG@10 (vs the blend's best) the served tail
    /// weight may cost: 0.02 = 2%. 0 serves pure relevance.
    #[arg(long, default_value_t = 0.02)]
    pub relevance_budget: f64,
    /// Head/tail rule on training counts for the validation measures (as eval-rec).
    #[arg(long, default_value_t = defaults::eval_rec().tail_rule)]
    pub tail_rule: TailRule,
    /// EASE lambda grid searched on validation.
    #[arg(long, value_delimiter = ',', default_values_t = defaults::eval_rec().lambda_grid)]
    pub ease_lambdas: Vec<f64>,
    /// Items per candidate each user's weight search ranks (see docs/interest.md).
    #[arg(long, default_value_t = 100)]
    pub top_m: usize,
    #[command(flatten)]
    pub device: DeviceArg,
}

/// One candidate during the search.
struct Candidate<'a> {
    component: PlanComponent,
    scorer: Box<dyn Scorer + 'a>,
    /// The fitted ID model to save, for artefact candidates.
    artefact: Option<Artefact>,
}

/// Every history the plan's validation ranks: each evaluated user's training items.
fn validation_histories(split: &RecSplit) -> Vec<Vec<ItemIdx>> {
    split
        .eval_users()
        .into_iter()
        .map(|u| split.history(u, Stage::Validation))
        .collect()
}

fn numbers(m: &longtail_rec_eval::ModelMetrics) -> ValidationNumbers {
    ValidationNumbers {
        ndcg_10: m.overall.ndcg_10,
        recall_10: m.overall.recall_10,
        tail_recall_10: m.tail_items.recall_10,
        head_recall_10: m.head_items.recall_10,
    }
}

/// What a kept ID component saves: the scorer's own matrix (shared, not copied: 0.6 GB at
/// 12k items), or its counts.
enum Artefact {
    Matrix(Arc<ItemItem>),
    Counts(Vec<f32>),
}

impl Artefact {
    fn bytes(&self) -> Result<Vec<u8>> {
        Ok(match self {
            Artefact::Matrix(m) => artefact_bytes(m.matrix(), vec![m.n(), m.n()])?,
            Artefact::Counts(c) => artefact_bytes(c, vec![c.len()])?,
        })
    }
}

/// A baseline of longtail-rec's list fitted on the training split, with the artefact a plan
/// saves.
fn id_candidate<'a>(b: &IdBaseline, split: &RecSplit) -> Candidate<'a> {
    let (scorer, artefact): (Box<dyn Scorer + 'a>, Artefact) = match (b.fit)(split) {
        Fitted::ItemItem(m) => {
            let m = Arc::new(m);
            (Box::new(Arc::clone(&m)), Artefact::Matrix(m))
        }
        Fitted::Counts(p) => {
            let counts = p.counts().to_vec();
            (Box::new(p), Artefact::Counts(counts))
        }
    };
    Candidate {
        component: component(b.name, b.kind, None),
        scorer,
        artefact: Some(artefact),
    }
}

/// A component before the search; `ckpt`: its checkpoint and that checkpoint's sha256.
fn component(name: &str, kind: ComponentKind, ckpt: Option<(&Path, &str)>) -> PlanComponent {
    PlanComponent {
        name: name.to_string(),
        kind,
        weight: 0.0,
        checkpoint: ckpt.map(|(dir, _)| dir.to_path_buf()),
        checkpoint_sha256: ckpt.map(|(_, sha)| sha.to_string()),
        lambda: None,
        artefact: None,
        artefact_sha256: None,
        validation_ndcg_10: 0.0,
    }
}

pub fn run(args: PlanArgs) -> Result<()> {
    let started = Instant::now();
    let device = args.device.resolve()?;
    let _lock = longtail_fs::OutputLock::acquire(&args.out)?;
    args.tail_rule.validate(2)?;
    ensure!(
        (0.0..1.0).contains(&args.relevance_budget),
        "--relevance-budget must be in [0, 1), got {}",
        args.relevance_budget
    );
    ensure!(
        args.top_m >= 10,
        "--top-m must be at least 10, got {}",
        args.top_m
    );
    ensure!(
        args.ease_lambdas.iter().all(|l| *l > 0.0 && l.is_finite()),
        "--ease-lambdas must be positive numbers"
    );
    for dir in std::iter::once(&args.checkpoint).chain(args.candidate.iter().map(|c| &c.dir)) {
        longtail_interest::InterestCheckpoint::open(dir)?;
    }
    let split = RecSplit::load(&args.data)
        .with_context(|| format!("cannot load prepared dataset {}", args.data.display()))?;
    let segments = Segments::new(&split, &args.tail_rule, 0.2);
    if split.stats.evaluated_users == 0 {
        bail!(
            "plan: no user of {} has 3 or more distinct items",
            args.data.display()
        );
    }
    let dataset = PreparedDataset::load(&args.data)
        .with_context(|| format!("cannot load prepared dataset {}", args.data.display()))?;
    let item_ids: Vec<String> = dataset.items.iter().map(|i| i.item_id.clone()).collect();
    // The served re-ranking favours the prepared labels (what `serve` and `recommend` use).
    let served_tail: Vec<bool> = dataset
        .items
        .iter()
        .map(|i| i.label == Label::Tail)
        .collect();
    let n = split.n_items();
    eprintln!(
        "plan on {}: {} items, {} evaluated users (validation targets only)",
        args.data.display(),
        n,
        split.stats.evaluated_users
    );
    let log = |line: &str| eprintln!("  {line}");
    let histories = validation_histories(&split);
    let mut notes = Vec::new();

    // Interest checkpoints and their text.
    let load = |dir: &Path| -> Result<InterestIndex> {
        let (index, _) = InterestIndex::load(dir, &dataset.items, None, 64, &device)
            .with_context(|| format!("cannot load interest checkpoint {}", dir.display()))?;
        Ok(index)
    };
    let main = load(&args.checkpoint)?;
    let main_text = main.text_last_item();
    let others: Vec<(String, PathBuf, InterestIndex)> = args
        .candidate
        .iter()
        .map(|c| Ok((c.name.clone(), c.dir.clone(), load(&c.dir)?)))
        .collect::<Result<_>>()?;
    let main_sha = checkpoint_sha256(&args.checkpoint)?;
    let main_ckpt = Some((args.checkpoint.as_path(), main_sha.as_str()));
    let mut cands: Vec<Candidate<'_>> = Vec::new();
    cands.push(Candidate {
        component: component("longtail", ComponentKind::Interest, main_ckpt),
        scorer: Box::new(InterestScorer::new(&main, "longtail").precompute(&histories)?),
        artefact: None,
    });
    if let Some(text) = &main_text {
        cands.push(Candidate {
            component: component("text-last-item", ComponentKind::TextLastItem, main_ckpt),
            scorer: Box::new(InterestScorer::new(text, "text-last-item").precompute(&histories)?),
            artefact: None,
        });
    }
    for (name, dir, index) in &others {
        let sha = checkpoint_sha256(dir)?;
        cands.push(Candidate {
            component: component(name, ComponentKind::Interest, Some((dir, &sha))),
            scorer: Box::new(InterestScorer::new(index, name.clone()).precompute(&histories)?),
            artefact: None,
        });
    }
    log("interest candidates scored");
    // ID models on the training split.
    if n <= DENSE_ITEM_LIMIT {
        let (ease, search) = longtail_rec_eval::fit_ease(
            &split,
            &segments,
            &args.ease_lambdas,
            &crate::progress::print_messages,
        )?;
        let lambda = ease.lambda;
        let ease = Arc::new(ease.into_item_item());
        let mut c = component("ease", ComponentKind::Ease, None);
        c.lambda = Some(lambda);
        notes.push(format!(
            "EASE λ={lambda} chosen on validation NDCG@10 from {:?}",
            search.grid
        ));
        cands.push(Candidate {
            component: c,
            scorer: Box::new(Arc::clone(&ease)),
            artefact: Some(Artefact::Matrix(ease)),
        });
        // The dense models of the baseline list next to EASE, the others after them.
        for b in ID_BASELINES.iter().filter(|b| b.dense()) {
            cands.push(id_candidate(b, &split));
        }
    } else {
        notes.push(format!(
            "EASE and the other item-item baselines left out: {n} items exceed the dense \
             item-item limit of {DENSE_ITEM_LIMIT} (n x n matrices)"
        ));
    }
    for b in ID_BASELINES.iter().filter(|b| !b.dense()) {
        cands.push(id_candidate(b, &split));
    }

    // The weight search on validation candidates.
    let names: Vec<String> = cands.iter().map(|c| c.component.name.clone()).collect();
    let scorers: Vec<&dyn Scorer> = cands.iter().map(|c| c.scorer.as_ref()).collect();
    let opts = SearchOptions {
        top_m: args.top_m,
        ..SearchOptions::default()
    };
    let table = CandidateTable::build_with_tail(
        &split,
        &scorers,
        opts.top_m,
        &served_tail,
        &segments.is_tail_item,
    )?;
    log(&format!(
        "candidates of {} users built ({:.0}s)",
        table.users(),
        started.elapsed().as_secs_f64()
    ));
    // Stage 1: relevance.
    let with_names = |e: Event<'_>| {
        if let Event::Message(l) = e {
            log(&format!("{l} ({})", names.join(", ")))
        }
    };
    let choice = search_weights(&table, &opts, &with_names)?;
    for (name, single) in names.iter().zip(&choice.singles) {
        log(&format!("{name} alone: validation NDCG@10 {single:.4}"));
    }
    if choice.uncertain_users > 0 {
        notes.push(format!(
            "{} of {} validation users ranked in the top 10 among candidates without a proof \
             that no non-candidate outranks them (the chosen blend is re-measured on the full \
             catalogue below)",
            choice.uncertain_users,
            table.users()
        ));
    }
    let blend_of = |weights: &[f64]| ZBlend {
        name: "plan".into(),
        parts: cands
            .iter()
            .zip(weights)
            .filter(|(_, &w)| w > 0.0)
            .map(|(c, &w)| (c.scorer.as_ref(), w as f32))
            .collect(),
    };
    let describe = |weights: &[f64]| {
        names
            .iter()
            .zip(weights)
            .filter(|(_, &w)| w > 0.0)
            .map(|(n, w)| format!("{n} {w:.3}"))
            .collect::<Vec<_>>()
            .join(" + ")
    };
    let blend_numbers = numbers(&evaluate(
        &split,
        &segments,
        &blend_of(&choice.weights),
        Stage::Validation,
    )?);
    log(&format!(
        "relevance blend {}: validation NDCG@10 {:.4} (full catalogue), tail-item R@10 {:.4}",
        describe(&choice.weights),
        blend_numbers.ndcg_10,
        blend_numbers.tail_recall_10
    ));

    // Stage 2: tail recall within the relevance budget.
    let grid = selection_grid();
    let tail = search_tail(
        &table,
        &choice.weights,
        &opts,
        &grid,
        args.relevance_budget,
        &with_names,
    )?;
    if tail.uncertain_users > 0 {
        notes.push(format!(
            "tail stage: {} of {} validation users ranked in the top 10 among candidates \
             without a proof that no non-candidate outranks them (the served weights are \
             re-measured on the full catalogue)",
            tail.uncertain_users,
            table.users()
        ));
    }
    let knobs: Vec<Knob> = grid.iter().copied().map(Knob::TailWeight).collect();
    let curve_of = |weights: &[f64]| -> Result<Vec<TailPoint>> {
        Ok(tail_points(&tradeoff_curve_labelled(
            &split,
            &segments,
            &blend_of(weights),
            Stage::Validation,
            &knobs,
            &served_tail,
        )?))
    };
    let floor = (1.0 - args.relevance_budget) * blend_numbers.ndcg_10;
    let mut weights = tail.weights.clone();
    let mut curve = curve_of(&weights)?;
    if weights != choice.weights && curve.first().is_none_or(|p| p.ndcg_10 < floor) {
        // The candidate table's estimate did not hold on the full catalogue.
        notes.push(format!(
            "the tail stage's weights ({}) fall below the relevance floor {floor:.4} on the \
             full catalogue (validation NDCG@10 {:.4}): the relevance blend is served",
            describe(&weights),
            curve.first().map_or(0.0, |p| p.ndcg_10)
        ));
        weights = choice.weights.clone();
        curve = curve_of(&weights)?;
    }
    let knob = choose_tail_by_budget(&curve, args.relevance_budget, blend_numbers.ndcg_10)
        .map(Knob::TailWeight);
    let served_blend = blend_of(&weights);
    let served = match knob {
        Some(Knob::TailWeight(weight)) => {
            let reranked = TailWeighted {
                name: "served".into(),
                inner: &served_blend,
                is_tail: &served_tail,
                weight,
            };
            numbers(&evaluate(&split, &segments, &reranked, Stage::Validation)?)
        }
        _ if weights == choice.weights => blend_numbers,
        _ => numbers(&evaluate(
            &split,
            &segments,
            &served_blend,
            Stage::Validation,
        )?),
    };
    log(&format!(
        "served {} with tail weight {} (budget {}): validation NDCG@10 {:.4}, tail-item R@10 \
         {:.4} ({} tail-stage steps, {} evaluations)",
        describe(&weights),
        knob.map_or("none".to_string(), |k| k.value().to_string()),
        args.relevance_budget,
        served.ndcg_10,
        served.tail_recall_10,
        tail.path.len().saturating_sub(1),
        tail.evaluations
    ));
    for (c, (&w, &single)) in cands.iter_mut().zip(weights.iter().zip(&choice.singles)) {
        c.component.weight = w;
        c.component.validation_ndcg_10 = single;
    }
    let served_weights = (weights != choice.weights).then(|| weights.clone());

    // Artefacts of the kept ID components, then plan.json, as one directory.
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let (mut kept, mut dropped) = (Vec::new(), Vec::new());
    for c in cands {
        let mut comp = c.component;
        if comp.weight > 0.0 {
            if let Some(artefact) = c.artefact {
                let file = format!("{}.safetensors", comp.name);
                let bytes = artefact.bytes()?;
                comp.artefact_sha256 = Some(sha256_hex(&bytes));
                comp.artefact = Some(file.clone());
                files.push((file, bytes));
            }
            kept.push(comp);
        } else {
            dropped.push(comp);
        }
    }
    let plan = Plan {
        version: PLAN_VERSION,
        data: args.data.clone(),
        n_items: n,
        items_sha256: item_ids_sha256(&item_ids),
        standardisation: STANDARDISATION.to_string(),
        components: kept,
        dropped,
        knob,
        selection: PlanSelection {
            candidates: names,
            blend_rule: longtail_rec_eval::plan_search::BLEND_RULE.to_string(),
            blend_path: choice.path,
            blend_evaluations: choice.evaluations,
            blend: blend_numbers,
            tail_rule: longtail_rec_eval::plan_search::TAIL_BUDGET_RULE.to_string(),
            relevance_budget: args.relevance_budget,
            tail_search_rule: longtail_rec_eval::plan_search::TAIL_SEARCH_RULE.to_string(),
            tail_path: tail.path,
            served_weights,
            tail_curve: curve,
            served,
        },
        notes,
    };
    longtail_fs::write_dir_atomic(&args.out, |tmp| -> Result<()> {
        for (file, bytes) in &files {
            std::fs::write(tmp.join(file), bytes)
                .with_context(|| format!("writing {}", tmp.join(file).display()))?;
        }
        let json = serde_json::to_vec_pretty(&plan)?;
        std::fs::write(tmp.join(PLAN_FILE), json)?;
        Ok(())
    })?;
    println!(
        "plan: {} (knob {}); validation NDCG@10 {:.4}, tail-item R@10 {:.4}, head-item R@10 \
         {:.4}; dropped: {}",
        plan.components
            .iter()
            .map(|c| format!("{} {:.3}", c.name, c.weight))
            .collect::<Vec<_>>()
            .join(" + "),
        plan.knob
            .map_or("none: pure relevance".to_string(), |k| format!(
                "{} {}",
                k.kind(),
                k.value()
            )),
        served.ndcg_10,
        served.tail_recall_10,
        served.head_recall_10,
        if plan.dropped.is_empty() {
            "none".to_string()
        } else {
            plan.dropped
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    eprintln!(
        "wrote {} in {:.1}s",
        args.out.join(PLAN_FILE).display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
