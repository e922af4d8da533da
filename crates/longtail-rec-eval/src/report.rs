//! The `eval-rec` report: JSON (`{"models": {name: ModelMetrics}, ...}`),
//! a Markdown table, and three PNGs (head vs tail Recall@10 per model; NDCG@10 against
//! tail-item Recall@10, one point per model, validation and test; the re-ranking trade-off
//! curve).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use longtail_plot::{
    render_bar_png, render_png, render_scatter_png, BarChart, BarSeries, LegendPosition, LineChart,
    NamedPoint, ScatterChart, Series,
};
use serde::{Deserialize, Serialize};

use longtail_rec::{Knob, RecSplit, Scorer, SplitStats, Stage, TailWeighted};

use super::metrics::{evaluate, ModelMetrics};
use super::segments::{SegmentInfo, Segments};
use super::tradeoff::{choose_tail_weight, tradeoff_curve, TradeoffPoint};
use crate::RecEvalError;

/// How the numbers were produced (the protocol, for readers and checkers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Protocol {
    pub description: String,
    pub split: SplitStats,
    pub segments: SegmentInfo,
}

/// The λ search of EASE on validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LambdaSearch {
    pub chosen: f64,
    /// `(λ, overall validation NDCG@10)` per grid value.
    pub grid: Vec<(f64, f64)>,
}

/// A re-ranking trade-off curve of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tradeoff {
    pub model: String,
    /// The test-stage curve.
    pub points: Vec<TradeoffPoint>,
    /// The same knobs on the validation targets: where a served knob value is chosen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validation: Vec<TradeoffPoint>,
}

/// The validation search of a blend weight (`w` of the first model, `1 - w` of the second).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlendSearch {
    pub model: String,
    pub chosen: f64,
    /// `(w, overall validation NDCG@10)` per grid value.
    pub grid: Vec<(f64, f64)>,
}

/// How the tail weight of a re-ranked model was chosen (validation only, never test).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TailWeightChoice {
    /// The re-ranked model's name in `models` (absent there when nothing met the floor).
    pub model: String,
    /// The model whose scores are re-ranked.
    pub base: String,
    pub rule: String,
    /// Validation NDCG@10 of `floor_model`, the best baseline on validation.
    pub ndcg_floor: f64,
    pub floor_model: String,
    pub chosen: Option<f64>,
    /// The validation curve the choice was made on.
    pub validation: Vec<TradeoffPoint>,
}

pub const TAIL_WEIGHT_RULE: &str = "largest validation tail-item Recall@10 among tail weights \
whose validation NDCG@10 >= the best baseline's validation NDCG@10 (ties: smaller weight)";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecReport {
    /// Test-stage metrics per model (the headline).
    pub models: BTreeMap<String, ModelMetrics>,
    /// The same metrics at the validation stage (model selection uses these).
    pub validation: BTreeMap<String, ModelMetrics>,
    pub protocol: Protocol,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ease_lambda: Option<LambdaSearch>,
    /// Test-stage re-ranking trade-off curves, one per model they were computed for.
    #[serde(default)]
    pub tradeoffs: Vec<Tradeoff>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub blend: Option<BlendSearch>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tail_weight: Option<TailWeightChoice>,
    /// The served plan of the `served` row (`eval-rec --plan`): its components, knob and the
    /// validation numbers that chose them.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub plan: Option<longtail_rec::Plan>,
}

pub const PROTOCOL: &str = "leave-last-out per user (order: timestamp, then log row; repeated \
(user,item) keep the first event; users with <3 distinct items train only, not evaluated); \
full ranking over the catalogue with history excluded (train; train+validation item at test); \
models fitted on training interactions; tail items by the tail rule on training counts; tail \
users = evaluated users with <= tail_user_max_train training items";

impl RecReport {
    pub fn new(split: &RecSplit, segments: &Segments) -> Self {
        Self {
            models: BTreeMap::new(),
            validation: BTreeMap::new(),
            protocol: Protocol {
                description: PROTOCOL.to_string(),
                split: split.stats.clone(),
                segments: segments.info.clone(),
            },
            ease_lambda: None,
            tradeoffs: Vec::new(),
            blend: None,
            tail_weight: None,
            plan: None,
        }
    }

    /// Evaluates `scorer` at validation and test and adds it under
    /// `scorer.name()` (replacing an entry of the same name).
    pub fn add_model(
        &mut self,
        split: &RecSplit,
        segments: &Segments,
        scorer: &dyn Scorer,
    ) -> Result<(), RecEvalError> {
        let valid = evaluate(split, segments, scorer, Stage::Validation)?;
        let test = evaluate(split, segments, scorer, Stage::Test)?;
        self.validation.insert(scorer.name().to_string(), valid);
        self.models.insert(scorer.name().to_string(), test);
        Ok(())
    }

    /// Computes the trade-off curves of `scorer` over `knobs` (test, and validation to choose
    /// a knob value on) and appends them.
    pub fn add_tradeoff(
        &mut self,
        split: &RecSplit,
        segments: &Segments,
        scorer: &dyn Scorer,
        knobs: &[Knob],
    ) -> Result<(), RecEvalError> {
        let points = tradeoff_curve(split, segments, scorer, Stage::Test, knobs)?;
        let validation = tradeoff_curve(split, segments, scorer, Stage::Validation, knobs)?;
        self.tradeoffs.push(Tradeoff {
            model: scorer.name().to_string(),
            points,
            validation,
        });
        Ok(())
    }

    /// Chooses a tail weight for `base` from `grid` on validation by [`TAIL_WEIGHT_RULE`]
    /// (floor: the best of `baselines` on validation NDCG@10) and, when one qualifies, adds
    /// `base` re-ranked with it as `name`. Returns the choice.
    pub fn add_tail_weighted(
        &mut self,
        split: &RecSplit,
        segments: &Segments,
        base: &dyn Scorer,
        name: &str,
        grid: &[f64],
        baselines: &[&str],
    ) -> Result<Option<f64>, RecEvalError> {
        let floor_model = self.best_on_validation(baselines).ok_or_else(|| {
            RecEvalError::Option("no baseline evaluated for the NDCG floor".into())
        })?;
        let ndcg_floor = self.validation[floor_model].overall.ndcg_10;
        let knobs: Vec<Knob> = grid.iter().map(|&l| Knob::TailWeight(l)).collect();
        let validation = tradeoff_curve(split, segments, base, Stage::Validation, &knobs)?;
        let chosen = choose_tail_weight(&validation, ndcg_floor);
        if let Some(weight) = chosen {
            let reranked = TailWeighted {
                name: name.to_string(),
                inner: base,
                is_tail: &segments.is_tail_item,
                weight,
            };
            self.add_model(split, segments, &reranked)?;
        }
        self.tail_weight = Some(TailWeightChoice {
            model: name.to_string(),
            base: base.name().to_string(),
            rule: TAIL_WEIGHT_RULE.to_string(),
            ndcg_floor,
            floor_model: floor_model.to_string(),
            chosen,
            validation,
        });
        Ok(chosen)
    }

    /// The model with the best overall validation NDCG@10 among `names`.
    pub fn best_on_validation<'a>(&self, names: &[&'a str]) -> Option<&'a str> {
        names
            .iter()
            .filter_map(|&n| self.validation.get(n).map(|m| (n, m.overall.ndcg_10)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(n, _)| n)
    }
}

/// Files written by [`write_report`].
#[derive(Debug, Clone)]
pub struct RecReportFiles {
    pub json: PathBuf,
    pub markdown: PathBuf,
    pub head_tail_png: PathBuf,
    pub frontier_png: PathBuf,
    pub tradeoff_png: Option<PathBuf>,
}

/// Writes `FILE.json`, `FILE.md`, `FILE_head_tail.png`, `FILE_frontier.png` and (with a
/// curve) `FILE_tradeoff.png`.
pub fn write_report(report: &RecReport, json: &Path) -> Result<RecReportFiles, RecEvalError> {
    if let Some(dir) = json.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(RecEvalError::io(dir))?;
    }
    let text = serde_json::to_string_pretty(report)?;
    longtail_fs::write_atomic(json, text.as_bytes())?;
    let markdown = json.with_extension("md");
    longtail_fs::write_atomic(&markdown, markdown_table(report).as_bytes())?;
    let head_tail_png = longtail_fs::sibling(json, "_head_tail.png");
    let chart = head_tail_chart(report);
    render_bar_png(&chart, &head_tail_png, chart.fitting_width(900), 600)?;
    let frontier_png = longtail_fs::sibling(json, "_frontier.png");
    render_scatter_png(&frontier_charts(report), &frontier_png, 1800, 600)?;
    let tradeoff_png = if report.tradeoffs.is_empty() {
        None
    } else {
        let path = longtail_fs::sibling(json, "_tradeoff.png");
        render_png(&tradeoff_chart(&report.tradeoffs), &path, 900, 600)?;
        Some(path)
    };
    Ok(RecReportFiles {
        json: json.to_path_buf(),
        markdown,
        head_tail_png,
        frontier_png,
        tradeoff_png,
    })
}

/// One row per model, then the protocol counts and the trade-off table.
/// What the served plan kept and why, in a few lines (validation numbers only).
pub fn plan_summary(plan: &longtail_rec::Plan) -> String {
    let mut s = String::new();
    let sel = &plan.selection;
    let _ = writeln!(
        s,
        "\n`served`: the plan `longtail plan` chose on validation: {} (weights of per-user \
         z-scored scores), knob {}. Validation NDCG@10 {:.4} for the relevance blend, {:.4} \
         served (tail-item R@10 {:.4} vs {:.4}; relevance budget {}).",
        plan.components
            .iter()
            .map(|c| format!(
                "{} {:.3} (alone {:.4})",
                c.name, c.weight, c.validation_ndcg_10
            ))
            .collect::<Vec<_>>()
            .join(" + "),
        plan.knob
            .map_or("none (pure relevance)".to_string(), |k| format!(
                "{} {}",
                k.kind(),
                k.value()
            )),
        sel.blend.ndcg_10,
        sel.served.ndcg_10,
        sel.served.tail_recall_10,
        sel.blend.tail_recall_10,
        sel.relevance_budget
    );
    if sel.served_weights.is_some() {
        let _ = writeln!(
            s,
            "The tail stage moved the weights from the relevance blend's ({} steps: {}).",
            sel.tail_path.len().saturating_sub(1),
            sel.tail_path
                .iter()
                .skip(1)
                .map(|t| format!(
                    "tail-item R@10 {:.4} at NDCG@10 {:.4}",
                    t.tail_recall_10, t.ndcg_10
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !plan.dropped.is_empty() {
        let _ = writeln!(
            s,
            "Dropped (weight 0 on validation): {}.",
            plan.dropped
                .iter()
                .map(|c| format!("{} (alone {:.4})", c.name, c.validation_ndcg_10))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    s
}

pub fn markdown_table(report: &RecReport) -> String {
    let mut s = String::new();
    let p = &report.protocol;
    let _ = writeln!(
        s,
        "| model | NDCG@10 | Recall@10 | tail-item R@10 | head-item R@10 | tail-user R@10 | \
         NDCG@20 | Recall@20 | coverage@10 | APLT@10 | Gini@10 |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, m) in &report.models {
        let _ = writeln!(
            s,
            "| {name} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} |",
            m.overall.ndcg_10,
            m.overall.recall_10,
            m.tail_items.recall_10,
            m.head_items.recall_10,
            m.tail_users.recall_10,
            m.overall.ndcg_20,
            m.overall.recall_20,
            m.coverage_10,
            m.aplt_10,
            m.gini_10
        );
    }
    if let Some(m) = report.models.values().next() {
        let _ = writeln!(
            s,
            "\nTest users: {} ({} with a tail-item target, {} head-item, {} tail users with <= {} \
             training items). Items: {} ({} tail by {} on training counts). {} users with <3 \
             items not evaluated; {} repeated (user, item) events dropped.",
            m.overall.users,
            m.tail_items.users,
            m.head_items.users,
            m.tail_users.users,
            p.segments.tail_user_max_train,
            p.split.items,
            p.segments.tail_items,
            p.segments.tail_rule,
            p.split.short_users,
            p.split.duplicates_dropped
        );
        if p.split.unknown_items > 0 {
            let _ = writeln!(
                s,
                "{} interaction rows skipped: item not in the catalogue.",
                p.split.unknown_items
            );
        }
    }
    if let Some(plan) = &report.plan {
        s.push_str(&plan_summary(plan));
    }
    if let Some(l) = &report.ease_lambda {
        let _ = writeln!(
            s,
            "\nEASE λ = {} (best validation NDCG@10 of the grid).",
            l.chosen
        );
    }
    if let Some(b) = &report.blend {
        let _ = writeln!(
            s,
            "\n`{}`: interest weight w = {} (EASE weight {:.2}; best validation NDCG@10 of the \
             grid).",
            b.model,
            b.chosen,
            1.0 - b.chosen
        );
    }
    if let Some(c) = &report.tail_weight {
        let chosen = c
            .chosen
            .map_or("none met the floor (model not added)".into(), |l| {
                l.to_string()
            });
        let _ = writeln!(
            s,
            "\n`{}` = `{}` re-ranked with tail weight {chosen}, chosen on validation: {}. \
             Floor: {} validation NDCG@10 {:.4}. Validation curve:\n",
            c.model, c.base, c.rule, c.floor_model, c.ndcg_floor
        );
        points_table(&mut s, &c.validation);
    }
    for t in &report.tradeoffs {
        let _ = writeln!(
            s,
            "\nRe-ranking trade-off of `{}` (test, top-10):\n",
            t.model
        );
        points_table(&mut s, &t.points);
        if !t.validation.is_empty() {
            let _ = writeln!(
                s,
                "\nThe same knobs on validation (choose a served value here, not on test):\n"
            );
            points_table(&mut s, &t.validation);
        }
    }
    s
}

fn points_table(s: &mut String, points: &[TradeoffPoint]) {
    let _ = writeln!(
        s,
        "| knob | value | APLT@10 | NDCG@10 | Recall@10 | tail-item R@10 | coverage@10 |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for p in points {
        let _ = writeln!(
            s,
            "| {} | {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} |",
            p.knob.kind(),
            p.knob.value(),
            p.aplt_10,
            p.ndcg_10,
            p.recall_10,
            p.tail_recall_10,
            p.coverage_10
        );
    }
}

/// Grouped bars: per model, Recall@10 on head-item and on tail-item test
/// targets (and overall).
pub fn head_tail_chart(report: &RecReport) -> BarChart {
    let get = |f: fn(&ModelMetrics) -> f64| report.models.values().map(f).collect::<Vec<_>>();
    let (head, tail) = report
        .models
        .values()
        .next()
        .map_or((0, 0), |m| (m.head_items.users, m.tail_items.users));
    BarChart {
        title: "Recall@10 on head-item vs tail-item test targets".into(),
        subtitle: Some(format!(
            "leave-last-out, full ranking; {head} head-item and {tail} tail-item targets"
        )),
        x_label: "model".into(),
        y_label: "Recall@10".into(),
        groups: report.models.keys().cloned().collect(),
        series: vec![
            BarSeries {
                name: "head-item targets".into(),
                values: get(|m| m.head_items.recall_10),
            },
            BarSeries {
                name: "tail-item targets".into(),
                values: get(|m| m.tail_items.recall_10),
            },
            BarSeries {
                name: "overall".into(),
                values: get(|m| m.overall.recall_10),
            },
        ],
    }
}

/// One point per model: NDCG@10 against tail-item Recall@10, the head/tail trade-off across
/// rows (`--compare` checkpoints trained with different tail settings trace a frontier), in
/// two panels: validation, where a setting is chosen, and test. Upper right is better on both.
pub fn frontier_charts(report: &RecReport) -> [ScatterChart; 2] {
    let panel = |split: &str, models: &BTreeMap<String, ModelMetrics>, note: &str| ScatterChart {
        title: format!("NDCG@10 vs tail-item Recall@10 ({split})"),
        subtitle: Some(note.into()),
        x_label: "tail-item Recall@10".into(),
        y_label: "NDCG@10".into(),
        points: models
            .iter()
            .map(|(name, m)| NamedPoint {
                // the plan in service stands out among the rows
                name: if name == "served" {
                    "served (the plan)".to_string()
                } else {
                    name.clone()
                },
                x: m.tail_items.recall_10,
                y: m.overall.ndcg_10,
            })
            .collect(),
    };
    [
        panel(
            "validation",
            &report.validation,
            "one point per model; choose settings here (up: better overall, right: more tail)",
        ),
        panel(
            "test",
            &report.models,
            "the same models on the test targets, for reporting",
        ),
    ]
}

/// NDCG@10 against the tail share (APLT@10) of the lists, one line per model and knob.
pub fn tradeoff_chart(curves: &[Tradeoff]) -> LineChart {
    let series = curves
        .iter()
        .flat_map(|t| ["tail_weight", "tail_share"].map(|kind| (t, kind)))
        .filter_map(|(t, kind)| {
            let pts: Vec<(f64, f64)> = t
                .points
                .iter()
                .filter(|p| p.knob.kind() == kind)
                .map(|p| (p.aplt_10, p.ndcg_10))
                .collect();
            (!pts.is_empty()).then(|| Series::new(format!("{} ({kind})", t.model), pts))
        })
        .collect();
    LineChart {
        title: "Re-ranking trade-off: tail share vs NDCG@10 (test)".into(),
        subtitle: Some("each point is one knob value; left end = no re-ranking".into()),
        x_label: "APLT@10 (share of tail items in top-10 lists)".into(),
        y_label: "NDCG@10".into(),
        series,
        legend: LegendPosition::default(),
        ..LineChart::default()
    }
}
