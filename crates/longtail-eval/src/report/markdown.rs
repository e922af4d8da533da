//! Markdown rendering of a [`ClassificationReport`].

use std::fmt::Write;

use super::{ClassificationReport, Summary};

fn num(x: f64) -> String {
    format!("{x:.4}")
}

/// `| name | ROC-AUC | PR-AUC | macro-F1 | accuracy |`, one row per scorer in
/// the given order.
pub fn summary_table(rows: &[(&str, Summary)]) -> String {
    let mut out =
        String::from("| | ROC-AUC | PR-AUC | macro-F1 | accuracy |\n|---|---:|---:|---:|---:|\n");
    for (name, s) in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            name.replace('|', "\\|"),
            num(s.auc),
            num(s.pr_auc),
            num(s.macro_f1),
            num(s.accuracy)
        );
    }
    out
}

pub(super) fn render(r: &ClassificationReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Tail classification: {}\n", r.model);
    let _ = writeln!(
        out,
        "Test split, n = {}. Positive class `{}`; threshold {} chosen on validation \
         (maximum macro-F1). Baselines are trained on train and thresholded the same way.\n",
        r.n,
        r.positive_class,
        num(r.threshold)
    );
    let mut rows = vec![(r.model.as_str(), r.summary())];
    rows.extend(r.baselines.iter().map(|(k, s)| (k.as_str(), *s)));
    out.push_str(&summary_table(&rows));
    let _ = writeln!(
        out,
        "\nExpected calibration error (15 bins, top-label): {}\n",
        num(r.ece)
    );
    out.push_str("| class | precision | recall | F1 | support |\n|---|---:|---:|---:|---:|\n");
    for (class, m) in &r.per_class {
        let _ = writeln!(
            out,
            "| {class} | {} | {} | {} | {} |",
            num(m.precision),
            num(m.recall),
            num(m.f1),
            m.support
        );
    }
    let [neg, pos] = &r.confusion.labels;
    let [[tn, fp], [fn_, tp]] = r.confusion.matrix;
    let _ = writeln!(
        out,
        "\n| true \\ predicted | {neg} | {pos} |\n|---|---:|---:|\n| {neg} | {tn} | {fp} |\n| {pos} | {fn_} | {tp} |"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::example;

    #[test]
    fn table_rows_in_order() {
        let s = Summary {
            auc: 0.75,
            pr_auc: 0.5,
            macro_f1: 2.0 / 3.0,
            accuracy: 1.0,
        };
        let t = summary_table(&[("model", s), ("a|b", s)]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "| | ROC-AUC | PR-AUC | macro-F1 | accuracy |");
        assert_eq!(lines[2], "| model | 0.7500 | 0.5000 | 0.6667 | 1.0000 |");
        assert_eq!(lines[3], "| a\\|b | 0.7500 | 0.5000 | 0.6667 | 1.0000 |");
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn report_lists_model_then_baselines() {
        let (model, baselines) = example();
        let r = ClassificationReport::new("minilm", &model, &baselines);
        let md = r.to_markdown();
        let model_row = md.find("| minilm |").expect("model row");
        let majority_row = md.find("| majority | 0.5000 |").expect("majority row");
        let weak_row = md.find("| weak |").expect("weak row");
        assert!(model_row < majority_row && majority_row < weak_row);
        assert!(
            md.contains("| tail | 0.7500 | 1.0000 | 0.8571 | 3 |"),
            "{md}"
        );
        assert!(md.contains("| head | 2 | 1 |\n| tail | 0 | 3 |"), "{md}");
    }
}
