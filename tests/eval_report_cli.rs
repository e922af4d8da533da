//! `longtail eval --report DIR/STEM.json` writes only files derived from STEM and leaves every
//! other file of DIR alone (it used to write `DIR/report.json` and rename it, clobbering an
//! earlier report). Tiny random BERT and synthetic catalogue, as in tests/train_cli.rs.

mod common;
use common::tiny::{prepared, tiny_model};
use common::{longtail, run_ok};

use serde_json::Value;
use std::path::{Path, PathBuf};

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The tiny world's prepared data and a 2-step `longtail train` checkpoint on it.
fn trained(root: &Path) -> (PathBuf, PathBuf) {
    let model = tiny_model(root);
    let data = prepared(root);
    let ckpt = root.join("ckpt");
    run_ok(
        longtail()
            .arg("train")
            .arg("--data")
            .arg(&data)
            .arg("--model")
            .arg(&model)
            .arg("--out")
            .arg(&ckpt)
            .args(["--max-len", "32", "--per-device-train-batch-size", "8"])
            .args(["--max-steps", "2", "--logging-steps", "1", "--seed", "3"]),
    );
    (data, ckpt)
}

#[test]
fn eval_report_files_derive_from_the_given_stem_and_nothing_else_is_touched() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, ckpt) = trained(tmp.path());

    // An earlier report (and its companions) in the same directory must survive.
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let earlier = [
        ("report.json", "{\"earlier\": true}\n"),
        ("report.md", "earlier markdown\n"),
        ("report.roc.png", "earlier png"),
        ("roc.png", "earlier png"),
        ("loss.png", "earlier png"),
        ("validation_roc_auc.png", "earlier png"),
    ];
    for (name, text) in earlier {
        std::fs::write(out.join(name), text).unwrap();
    }

    let ev = run_ok(
        longtail()
            .arg("eval")
            .arg("--data")
            .arg(&data)
            .arg("--checkpoint")
            .arg(&ckpt)
            .arg("--report")
            .arg(out.join("a.json"))
            .arg("--no-baselines"),
    );
    let printed = String::from_utf8_lossy(&ev.stdout);
    assert!(printed.contains("a.json"), "{printed}");

    for (name, text) in earlier {
        assert_eq!(
            std::fs::read_to_string(out.join(name)).unwrap(),
            text,
            "{name} was touched"
        );
    }
    let rep: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("a.json")).unwrap()).unwrap();
    assert!(rep["auc"].as_f64().is_some(), "{rep}");
    let mut expected: Vec<String> = earlier.iter().map(|(n, _)| n.to_string()).collect();
    expected.extend(
        [
            "a.json",
            "a.md",
            "a.roc.png",
            "a.loss.png",
            "a.validation_roc_auc.png",
        ]
        .map(String::from),
    );
    expected.sort();
    assert_eq!(names(&out), expected, "exactly the a.* files were added");
    for png in ["a.roc.png", "a.loss.png", "a.validation_roc_auc.png"] {
        assert_eq!(&std::fs::read(out.join(png)).unwrap()[..4], b"\x89PNG");
    }
}

/// `eval --precision int8` reports the int8 model, adds the same checkpoint in fp32 as a row,
/// and writes STEM.precision.json with both ROC-AUCs and the p_tail differences per split.
#[test]
fn eval_in_int8_reports_the_cost_against_fp32() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, ckpt) = trained(tmp.path());
    let report = tmp.path().join("out").join("q.json");
    let ev = run_ok(
        longtail()
            .arg("eval")
            .arg("--data")
            .arg(&data)
            .arg("--checkpoint")
            .arg(&ckpt)
            .arg("--report")
            .arg(&report)
            .args(["--no-baselines", "--precision", "int8"]),
    );
    let printed = String::from_utf8_lossy(&ev.stdout);
    assert!(printed.contains("ROC-AUC int8"), "{printed}");
    let rep = std::fs::read_to_string(&report).unwrap();
    assert!(rep.contains("(fp32)"), "no fp32 row in the report: {rep}");
    let check: Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("out").join("q.precision.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(check["precision"], "int8");
    for split in ["validation", "reported"] {
        let d = &check[split];
        assert!(d["rows"].as_u64().unwrap() > 0, "{check}");
        let max = d["max_abs_diff"].as_f64().unwrap();
        assert!(max > 0.0 && max < 0.1, "{split}: max |diff| {max}");
        assert!(d["auc_reference"].as_f64().is_some() && d["auc_candidate"].as_f64().is_some());
    }
}
