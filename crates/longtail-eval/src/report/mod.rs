//! The evaluation report: a serde struct, its Markdown rendering, PNG plots
//! and writing them all into a directory.

mod markdown;
mod plots;
mod write;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use markdown::summary_table;
pub use plots::{roc_chart, training_charts, write_roc_png, write_training_curves, TrainingPlots};
pub use write::{write, ReportFiles, JSON_FILE, MARKDOWN_FILE, ROC_FILE};

use crate::metrics::{ClassMetrics, Confusion, Metrics, CLASS_NAMES};

/// The headline numbers of one scorer (a baseline row of the report).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub auc: f64,
    pub pr_auc: f64,
    pub macro_f1: f64,
    pub accuracy: f64,
}

impl From<&Metrics> for Summary {
    fn from(m: &Metrics) -> Self {
        Self {
            auc: m.auc,
            pr_auc: m.pr_auc,
            macro_f1: m.macro_f1,
            accuracy: m.accuracy,
        }
    }
}

/// What `longtail eval` writes as `report.json`: the model's test metrics
/// and, for comparison, the baselines' headline numbers on the same split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationReport {
    /// Name of the evaluated model (e.g. its checkpoint directory).
    pub model: String,
    /// The class scores are probabilities of.
    pub positive_class: String,
    pub auc: f64,
    pub pr_auc: f64,
    pub macro_f1: f64,
    pub accuracy: f64,
    pub ece: f64,
    pub threshold: f64,
    pub per_class: BTreeMap<String, ClassMetrics>,
    pub confusion: Confusion,
    pub n: usize,
    pub baselines: BTreeMap<String, Summary>,
}

impl ClassificationReport {
    pub fn new(model: &str, metrics: &Metrics, baselines: &BTreeMap<String, Metrics>) -> Self {
        Self {
            model: model.to_string(),
            positive_class: CLASS_NAMES[1].to_string(),
            auc: metrics.auc,
            pr_auc: metrics.pr_auc,
            macro_f1: metrics.macro_f1,
            accuracy: metrics.accuracy,
            ece: metrics.ece,
            threshold: metrics.threshold,
            per_class: metrics.per_class.clone(),
            confusion: metrics.confusion.clone(),
            n: metrics.n,
            baselines: baselines
                .iter()
                .map(|(k, m)| (k.clone(), m.into()))
                .collect(),
        }
    }

    pub fn summary(&self) -> Summary {
        Summary {
            auc: self.auc,
            pr_auc: self.pr_auc,
            macro_f1: self.macro_f1,
            accuracy: self.accuracy,
        }
    }

    /// Markdown: model vs baselines, then the model's per-class numbers and
    /// confusion matrix.
    pub fn to_markdown(&self) -> String {
        markdown::render(self)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::metrics::evaluate_scores;

    /// A model, a majority baseline and a weak baseline on a 6-item test set.
    pub fn example() -> (Metrics, BTreeMap<String, Metrics>) {
        let val = [(0.2, false), (0.4, false), (0.6, true), (0.9, true)];
        let test = [
            (0.1, false),
            (0.3, false),
            (0.55, true),
            (0.7, false),
            (0.8, true),
            (0.95, true),
        ];
        let model = evaluate_scores(&val, &test).unwrap();
        let flat: Vec<(f64, bool)> = test.iter().map(|&(_, l)| (0.5, l)).collect();
        let majority = evaluate_scores(&val.map(|(_, l)| (0.5, l)), &flat).unwrap();
        let weak: Vec<(f64, bool)> = test
            .iter()
            .enumerate()
            .map(|(i, &(_, l))| (i as f64 / 10.0, l))
            .collect();
        let weak = evaluate_scores(&val, &weak).unwrap();
        let baselines = BTreeMap::from([
            ("majority".to_string(), majority),
            ("weak".to_string(), weak),
        ]);
        (model, baselines)
    }

    #[test]
    fn report_copies_the_metrics() {
        let (model, baselines) = example();
        let r = ClassificationReport::new("m", &model, &baselines);
        assert_eq!(r.auc, model.auc);
        assert_eq!(r.threshold, 0.5);
        assert_eq!(r.n, 6);
        assert_eq!(r.positive_class, "tail");
        assert_eq!(r.baselines["majority"].auc, 0.5);
        assert_eq!(r.baselines["weak"], Summary::from(&baselines["weak"]));
        assert_eq!(r.summary(), Summary::from(&model));
    }

    #[test]
    fn json_has_the_documented_fields() {
        let (model, baselines) = example();
        let r = ClassificationReport::new("m", &model, &baselines);
        let v = serde_json::to_value(&r).unwrap();
        for key in [
            "auc",
            "pr_auc",
            "macro_f1",
            "accuracy",
            "ece",
            "threshold",
            "per_class",
            "confusion",
            "n",
            "baselines",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["per_class"]["tail"]["support"], 3);
        assert_eq!(
            v["confusion"]["labels"],
            serde_json::json!(["head", "tail"])
        );
        assert_eq!(
            v["confusion"]["matrix"],
            serde_json::json!([[2, 1], [0, 3]])
        );
        for key in ["auc", "pr_auc", "macro_f1", "accuracy"] {
            assert!(v["baselines"]["weak"][key].is_number());
        }
        let back: ClassificationReport = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }
}
