//! Writing a report directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::plots::write_roc_png;
use super::ClassificationReport;
use crate::metrics::{Metrics, RocCurve};
use crate::EvalError;

pub const JSON_FILE: &str = "report.json";
pub const MARKDOWN_FILE: &str = "report.md";
pub const ROC_FILE: &str = "report.roc.png";

#[derive(Debug, Clone, PartialEq)]
pub struct ReportFiles {
    pub json: PathBuf,
    pub markdown: PathBuf,
    pub roc_png: PathBuf,
}

impl ReportFiles {
    /// `DIR/STEM.json`, `DIR/STEM.md`, `DIR/STEM.roc.png` for the report `DIR/STEM.json`.
    pub fn beside(json: &Path) -> Self {
        Self {
            json: json.to_path_buf(),
            markdown: longtail_fs::sibling(json, ".md"),
            roc_png: longtail_fs::sibling(json, ".roc.png"),
        }
    }
}

/// Writes the report `json` and, beside it, its Markdown and ROC plot (model and baselines;
/// see [`ReportFiles::beside`]), creating the directory. No other file is touched.
pub fn write(
    json: &Path,
    model_name: &str,
    model: &Metrics,
    baselines: &BTreeMap<String, Metrics>,
) -> Result<(ClassificationReport, ReportFiles), EvalError> {
    if let Some(dir) = json.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(EvalError::io(dir))?;
    }
    let report = ClassificationReport::new(model_name, model, baselines);
    let files = ReportFiles::beside(json);
    let mut text = serde_json::to_string_pretty(&report)?;
    text.push('\n');
    longtail_fs::write_atomic(&files.json, text.as_bytes())?;
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
        let (report, files) = write(&out.join(JSON_FILE), "minilm", &model, &baselines).unwrap();
        assert_eq!(files.markdown, out.join(MARKDOWN_FILE));
        assert_eq!(files.roc_png, out.join(ROC_FILE));
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
    fn every_file_derives_from_the_report_stem_and_others_survive() {
        let dir = tempfile::tempdir().unwrap();
        let earlier = dir.path().join(JSON_FILE);
        std::fs::write(&earlier, "earlier").unwrap();
        let (model, baselines) = example();
        let (_, files) = write(&dir.path().join("a.json"), "m", &model, &baselines).unwrap();
        assert_eq!(
            files,
            ReportFiles {
                json: dir.path().join("a.json"),
                markdown: dir.path().join("a.md"),
                roc_png: dir.path().join("a.roc.png"),
            }
        );
        assert_eq!(std::fs::read_to_string(&earlier).unwrap(), "earlier");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4);
    }

    #[test]
    fn unwritable_directory_names_the_path() {
        let (model, baselines) = example();
        let err = write(
            Path::new("/proc/no-such-dir/eval/report.json"),
            "m",
            &model,
            &baselines,
        )
        .unwrap_err();
        assert!(err.to_string().contains("/proc/no-such-dir"), "{err}");
    }
}
