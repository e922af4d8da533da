//! PNG charts through longtail-plot: ROC curves, training curves.

use std::path::{Path, PathBuf};

use longtail_plot::{render_png, LegendPosition, LineChart, Series};

use crate::metrics::RocCurve;
use crate::EvalError;

const WIDTH: u32 = 800;
const HEIGHT: u32 = 600;

/// One ROC line per scorer, labelled with its AUC, plus the chance diagonal.
pub fn roc_chart(title: &str, curves: &[(&str, &RocCurve, f64)]) -> LineChart {
    let mut series: Vec<Series> = curves
        .iter()
        .map(|(name, roc, auc)| Series::new(format!("{name} (AUC {auc:.3})"), roc.points.clone()))
        .collect();
    series.push(Series::new("chance", vec![(0.0, 0.0), (1.0, 1.0)]));
    LineChart {
        title: title.to_string(),
        x_label: "false positive rate".into(),
        y_label: "true positive rate (tail recall)".into(),
        x_range: Some((0.0, 1.0)),
        y_range: Some((0.0, 1.0)),
        series,
        legend: LegendPosition::LowerRight,
        ..Default::default()
    }
}

pub fn write_roc_png(
    path: &Path,
    title: &str,
    curves: &[(&str, &RocCurve, f64)],
) -> Result<(), EvalError> {
    Ok(render_png(&roc_chart(title, curves), path, WIDTH, HEIGHT)?)
}

/// Two charts against the training step: losses, and a validation metric.
/// They are separate because the two have unrelated scales (longtail-plot
/// draws a single y axis).
pub fn training_charts(loss: &[Series], metric_name: &str, metric: &[Series]) -> [LineChart; 2] {
    let chart = |title: String, y_label: &str, series: &[Series], legend| LineChart {
        title,
        x_label: "step".into(),
        y_label: y_label.into(),
        series: series.to_vec(),
        legend,
        ..Default::default()
    };
    [
        chart(
            "Training loss".into(),
            "loss",
            loss,
            LegendPosition::UpperRight,
        ),
        chart(
            format!("Validation {metric_name}"),
            metric_name,
            metric,
            LegendPosition::LowerRight,
        ),
    ]
}

/// Files written by [`write_training_curves`].
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingPlots {
    pub loss_png: PathBuf,
    pub metric_png: PathBuf,
}

impl TrainingPlots {
    /// `DIR/STEM.loss.png` and `DIR/STEM.validation_<metric_name>.png` beside the report
    /// `DIR/STEM.json`.
    pub fn beside(report: &Path, metric_name: &str) -> Self {
        let safe: String = metric_name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        Self {
            loss_png: longtail_fs::sibling(report, ".loss.png"),
            metric_png: longtail_fs::sibling(report, &format!(".validation_{safe}.png")),
        }
    }
}

/// Writes the training curves beside the report `report` (see [`TrainingPlots::beside`]).
/// `loss` is e.g. `[train loss per step, validation loss per evaluation]`,
/// `metric` e.g. `[validation AUC per evaluation]`; points are `(step, value)`.
pub fn write_training_curves(
    report: &Path,
    loss: &[Series],
    metric_name: &str,
    metric: &[Series],
) -> Result<TrainingPlots, EvalError> {
    if let Some(dir) = report.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(EvalError::io(dir))?;
    }
    let files = TrainingPlots::beside(report, metric_name);
    let [loss_chart, metric_chart] = training_charts(loss, metric_name, metric);
    render_png(&loss_chart, &files.loss_png, WIDTH, HEIGHT)?;
    render_png(&metric_chart, &files.metric_png, WIDTH, HEIGHT)?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_png(path: &Path) {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(&bytes[..4], b"\x89PNG", "{}", path.display());
    }

    #[test]
    fn roc_chart_has_one_labelled_line_per_scorer_and_chance() {
        let roc = RocCurve {
            points: vec![(0.0, 0.0), (0.2, 0.7), (1.0, 1.0)],
        };
        let c = roc_chart("ROC", &[("model", &roc, 0.8125), ("majority", &roc, 0.5)]);
        let names: Vec<&str> = c.series.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["model (AUC 0.812)", "majority (AUC 0.500)", "chance"]
        );
        assert_eq!(c.series[0].points, roc.points);
        assert_eq!(c.x_range, Some((0.0, 1.0)));
    }

    #[test]
    fn writes_pngs() {
        let dir = tempfile::tempdir().unwrap();
        let roc = RocCurve {
            points: vec![(0.0, 0.0), (0.2, 0.7), (1.0, 1.0)],
        };
        let path = dir.path().join("roc.png");
        write_roc_png(&path, "ROC", &[("model", &roc, 0.8)]).unwrap();
        assert_png(&path);

        let loss = Series::new(
            "train",
            (0..50)
                .map(|s| (s as f64, 1.0 / (1.0 + s as f64)))
                .collect(),
        );
        let auc = Series::new("validation", vec![(10.0, 0.6), (20.0, 0.7), (40.0, 0.75)]);
        let report = dir.path().join("curves/run.json");
        let files = write_training_curves(&report, &[loss], "ROC-AUC", &[auc]).unwrap();
        assert!(files
            .metric_png
            .ends_with("curves/run.validation_roc_auc.png"));
        assert!(files.loss_png.ends_with("curves/run.loss.png"));
        assert_png(&files.loss_png);
        assert_png(&files.metric_png);
    }
}
