//! The `eval-rec` report: JSON (`{"models": {name: ModelMetrics}, ...}`),
//! a Markdown table, and two PNGs (head vs tail Recall@10 per model; the
//! re-ranking trade-off curve).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use longtail_plot::{render_png, LegendPosition, LineChart, Series};
use serde::{Deserialize, Serialize};

use super::metrics::{evaluate, ModelMetrics};
use super::rerank::{tradeoff_curve, Knob, TradeoffPoint};
use super::scorer::Scorer;
use super::segments::{SegmentInfo, Segments};
use super::split::{RecSplit, SplitStats, Stage};
use crate::EvalError;

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
    pub points: Vec<TradeoffPoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecReport {
    /// Test-stage metrics per model (the headline).
    pub models: BTreeMap<String, ModelMetrics>,
    /// The same metrics at the validation stage (model selection uses these).
    pub validation: BTreeMap<String, ModelMetrics>,
    pub protocol: Protocol,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ease_lambda: Option<LambdaSearch>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tradeoff: Option<Tradeoff>,
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
            tradeoff: None,
        }
    }

    /// Evaluates `scorer` at validation and test and adds it under
    /// `scorer.name()` (replacing an entry of the same name).
    pub fn add_model(
        &mut self,
        split: &RecSplit,
        segments: &Segments,
        scorer: &dyn Scorer,
    ) -> Result<(), EvalError> {
        let valid = evaluate(split, segments, scorer, Stage::Validation)?;
        let test = evaluate(split, segments, scorer, Stage::Test)?;
        self.validation.insert(scorer.name().to_string(), valid);
        self.models.insert(scorer.name().to_string(), test);
        Ok(())
    }

    /// Computes the test-stage trade-off curve of `scorer` over `knobs`.
    pub fn set_tradeoff(
        &mut self,
        split: &RecSplit,
        segments: &Segments,
        scorer: &dyn Scorer,
        knobs: &[Knob],
    ) -> Result<(), EvalError> {
        let points = tradeoff_curve(split, segments, scorer, Stage::Test, knobs)?;
        self.tradeoff = Some(Tradeoff {
            model: scorer.name().to_string(),
            points,
        });
        Ok(())
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
    pub tradeoff_png: Option<PathBuf>,
}

fn sibling(json: &Path, suffix: &str) -> PathBuf {
    let stem = json
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    json.with_file_name(format!("{stem}{suffix}"))
}

/// Writes `FILE.json`, `FILE.md`, `FILE_head_tail.png` and (with a curve)
/// `FILE_tradeoff.png`.
pub fn write_report(report: &RecReport, json: &Path) -> Result<RecReportFiles, EvalError> {
    if let Some(dir) = json.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(EvalError::io(dir))?;
    }
    let text = serde_json::to_string_pretty(report)?;
    write_atomic(json, text.as_bytes())?;
    let markdown = json.with_extension("md");
    write_atomic(&markdown, markdown_table(report).as_bytes())?;
    let head_tail_png = sibling(json, "_head_tail.png");
    render_png(&head_tail_chart(report), &head_tail_png, 900, 600)?;
    let tradeoff_png = match &report.tradeoff {
        Some(t) => {
            let path = sibling(json, "_tradeoff.png");
            render_png(&tradeoff_chart(t), &path, 900, 600)?;
            Some(path)
        }
        None => None,
    };
    Ok(RecReportFiles {
        json: json.to_path_buf(),
        markdown,
        head_tail_png,
        tradeoff_png,
    })
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), EvalError> {
    let tmp = sibling(path, ".tmp");
    std::fs::write(&tmp, bytes).map_err(EvalError::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(EvalError::io(path))
}

/// One row per model, then the protocol counts and the trade-off table.
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
    }
    if let Some(l) = &report.ease_lambda {
        let _ = writeln!(
            s,
            "\nEASE λ = {} (best validation NDCG@10 of the grid).",
            l.chosen
        );
    }
    if let Some(t) = &report.tradeoff {
        let _ = writeln!(
            s,
            "\nRe-ranking trade-off of `{}` (test, top-10):\n",
            t.model
        );
        let _ = writeln!(
            s,
            "| knob | value | APLT@10 | NDCG@10 | Recall@10 | tail-item R@10 | coverage@10 |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|");
        for p in &t.points {
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
    s
}

/// A slope chart: per model, Recall@10 on head-item targets (x = 0) and on
/// tail-item targets (x = 1).
pub fn head_tail_chart(report: &RecReport) -> LineChart {
    LineChart {
        title: "Recall@10: head-item vs tail-item test targets".into(),
        subtitle: Some("x = 0: head-item targets, x = 1: tail-item targets".into()),
        x_label: "target segment (0 = head, 1 = tail)".into(),
        y_label: "Recall@10".into(),
        x_range: Some((-0.05, 1.05)),
        series: report
            .models
            .iter()
            .map(|(name, m)| {
                Series::new(
                    name.clone(),
                    vec![(0.0, m.head_items.recall_10), (1.0, m.tail_items.recall_10)],
                )
            })
            .collect(),
        legend: LegendPosition::default(),
        ..LineChart::default()
    }
}

/// NDCG@10 against the tail share (APLT@10) of the lists, one line per knob.
pub fn tradeoff_chart(t: &Tradeoff) -> LineChart {
    let series = ["tail_weight", "tail_share"]
        .iter()
        .filter_map(|&kind| {
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
