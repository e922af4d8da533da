//! Writing a report directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::plots::write_roc_png;
use super::ClassificationReport;
use crate::metrics::{Metrics, RocCurve};
use crate::EvalError;

pub const JSON_FILE: &str = "report.json";
pub const MARKDOWN_FILE: &str = "report.md";
pub const ROC_FILE: &str = "roc.png";

#[derive(Debug, Clone, PartialEq)]
pub struct ReportFiles {
    pub json: PathBuf,
    pub markdown: PathBuf,
    pub roc_png: PathBuf,
}

/// Writes `report.json`, `report.md` and `roc.png` (model and baselines)
/// into `dir`, creating it, and returns the report.
pub fn write(
    dir: &Path,
    model_name: &str,
    model: &Metrics,
    baselines: &BTreeMap<String, Metrics>,
) -> Result<(ClassificationReport, ReportFiles), EvalError> {
    std::fs::create_dir_all(dir).map_err(EvalError::io(dir))?;
    let report = ClassificationReport::new(model_name, model, baselines);
    let files = ReportFiles {
        json: dir.join(JSON_FILE),
        markdown: dir.join(MARKDOWN_FILE),
        roc_png: dir.join(ROC_FILE),
    };
    let mut json = serde_json::to_string_pretty(&report)?;
    json.push('\n');
    longtail_fs::write_atomic(&files.json, json.as_bytes())?;
    longtail_fs::write_atomic(&files.markdown, report.to_markdown().as_bytes())?;
    let mut curves: Vec<(&str, &RocCurve, f64)> = vec![(model_name, &model.roc, model.auc)];
    curves.extend(baselines.iter().map(|(k, m)| (k.as_str(), &m.roc, m.auc)));
    write_roc_png(
        &files.roc_png,
        &format!("ROC, test split: {model_name} vs baselines"),
        &curves,
    )?;
    Ok((report, files))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::example;

    #[test]
    fn writes_all_three_files() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("eval");
        let (model, baselines) = example();
        let (report, files) = write(&out, "minilm", &model, &baselines).unwrap();
        let back: ClassificationReport =
            serde_json::from_str(&std::fs::read_to_string(&files.json).unwrap()).unwrap();
        assert_eq!(back, report);
        assert_eq!(
            std::fs::read_to_string(&files.markdown).unwrap(),
            report.to_markdown()
        );
        assert_eq!(&std::fs::read(&files.roc_png).unwrap()[..4], b"\x89PNG");
        // nothing else left behind
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 3);
    }

    #[test]
    fn unwritable_directory_names_the_path() {
        let (model, baselines) = example();
        let err = write(Path::new("/proc/no-such-dir/eval"), "m", &model, &baselines).unwrap_err();
        assert!(err.to_string().contains("/proc/no-such-dir"), "{err}");
    }
}
