//! Integration tests that run the real `longtail` binary, on small fixtures and (when present)
//! on the real datasets in ../shared/datasets.

mod common;
use common::{longtail, run_ok};

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures").join(name)
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", path.display())))
        .collect()
}

fn prepare_tiny(out: &Path, extra: &[&str]) -> Output {
    let dir = fixture("tiny");
    run_ok(
        longtail()
            .arg("prepare")
            .arg("--items")
            .arg(dir.join("items.jsonl"))
            .arg("--interactions")
            .arg(dir.join("interactions.csv"))
            .arg("--out")
            .arg(out)
            .args(extra),
    )
}

fn labels(out: &Path) -> BTreeMap<String, String> {
    read_jsonl(&out.join("items.jsonl"))
        .into_iter()
        .map(|v| {
            (
                v["item_id"].as_str().unwrap().to_string(),
                v["label"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn help_lists_the_subcommands_and_env_vars() {
    let out = run_ok(longtail().arg("--help"));
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["prepare", "model", "LONGTAIL_"] {
        assert!(text.contains(word), "--help lacks {word}:\n{text}");
    }
    let out = run_ok(longtail().args(["prepare", "--help"]));
    let text = String::from_utf8_lossy(&out.stdout);
    for word in [
        "--tail-rule",
        "pareto:0.8",
        "--split",
        "random:0.7,0.1,0.2",
        "LONGTAIL_PREPARE_TAIL_RULE",
    ] {
        assert!(text.contains(word), "prepare --help lacks {word}:\n{text}");
    }
}

#[test]
fn prepare_labels_the_fixture_by_the_pareto_rule_with_ties_by_id() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("prepared");
    prepare_tiny(&out, &[]);
    let labels = labels(&out);
    let head: Vec<&str> = labels
        .iter()
        .filter(|(_, l)| *l == "head")
        .map(|(i, _)| i.as_str())
        .collect();
    assert_eq!(head, ["A", "B", "C", "D", "E"], "labels: {labels:?}");
    for file in [
        "items.jsonl",
        "interactions.csv",
        "stats.json",
        "popularity.png",
        "rejects.jsonl",
    ] {
        assert!(out.join(file).is_file(), "missing {file}");
    }
    // Cleaned text: entities decoded twice, tags gone, CJK intact, whitespace collapsed.
    let items = read_jsonl(&out.join("items.jsonl"));
    let text_of = |id: &str| {
        items.iter().find(|v| v["item_id"] == id).unwrap()["text"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(
        text_of("A").contains("Stapler & Staples Set"),
        "{}",
        text_of("A")
    );
    assert!(!text_of("A").contains('<'), "{}", text_of("A"));
    assert!(
        text_of("C").contains("得力(deli) 订书机 12号"),
        "{}",
        text_of("C")
    );
    assert!(
        text_of("E").contains("Keeps things tidy."),
        "{}",
        text_of("E")
    );
}

#[test]
fn other_tail_rules_and_three_tiers() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("mc");
    prepare_tiny(&out, &["--tail-rule", "min-count:4"]);
    let min_count = labels(&out);
    for (id, label) in &min_count {
        let expect = if ["A", "B", "C", "D", "E", "F"].contains(&id.as_str()) {
            "head"
        } else {
            "tail"
        };
        assert_eq!(label, expect, "item {id} under min-count:4");
    }
    let out3 = tmp.path().join("tiers3");
    prepare_tiny(&out3, &["--tiers", "3"]);
    let labels3 = labels(&out3);
    assert!(
        labels3.values().any(|l| l == "torso"),
        "no torso with --tiers 3: {labels3:?}"
    );
    assert_eq!(labels3["A"], "head");
    assert_eq!(labels3["J"], "tail");
}

#[test]
fn config_file_supplies_defaults_and_the_command_line_wins() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixture("tiny");
    let config = tmp.path().join("prepare.toml");
    std::fs::write(
        &config,
        format!(
            "[prepare]\nitems = {:?}\ninteractions = {:?}\ntail_rule = \"min-count:4\"\n",
            dir.join("items.jsonl"),
            dir.join("interactions.csv")
        ),
    )
    .unwrap();
    let from_file = tmp.path().join("from-file");
    run_ok(
        longtail()
            .arg("prepare")
            .arg("--config")
            .arg(&config)
            .arg("--out")
            .arg(&from_file),
    );
    assert_eq!(
        labels(&from_file)["F"],
        "head",
        "config's min-count:4 makes F head"
    );

    let overridden = tmp.path().join("overridden");
    run_ok(
        longtail()
            .arg("prepare")
            .arg("--config")
            .arg(&config)
            .args(["--tail-rule", "pareto:0.8", "--out"])
            .arg(&overridden),
    );
    assert_eq!(
        labels(&overridden)["F"],
        "tail",
        "--tail-rule on the command line wins"
    );

    // A config file is checked like the command line: each bad file fails, naming itself and
    // what is wrong (the key, or the missing table).
    for (text, needle) in [
        ("[prepare]\ntail_rul = \"pareto:0.5\"\n", "tail_rul"),
        ("[train]\nseed = 1\n", "no [prepare] table"),
        ("[prepare]\ntiers = \"three\"\n", "tiers"),
    ] {
        std::fs::write(&config, text).unwrap();
        let out = longtail()
            .arg("prepare")
            .arg("--config")
            .arg(&config)
            .arg("--out")
            .arg(&overridden)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text:?} was accepted");
        assert!(
            err.contains(needle) && err.contains("prepare.toml"),
            "{text:?}: {err}"
        );
    }
}

/// Every command's `--help` shows its allowed values, its defaults and its own variables.
#[test]
fn help_lists_allowed_values_defaults_and_env_vars() {
    for (cmd, words) in [
        (
            &["train"][..],
            &[
                "cls_pooler",
                "constant_with_warmup",
                "[default: cls_pooler]",
                "LONGTAIL_TRAIN_SEED",
                "auto",
            ][..],
        ),
        (&["eval"], &["validation", "LONGTAIL_EVAL_SPLIT"]),
        (&["score"], &["parquet", "LONGTAIL_SCORE_FORMAT"]),
        (
            &["train-interest"],
            &["[default: 1]", "LONGTAIL_TRAIN_INTEREST_HISTORY_LEN"],
        ),
        (&["eval-rec"], &["pareto:0.8", "LONGTAIL_EVAL_REC_DATA"]),
        (&["recommend"], &["LONGTAIL_RECOMMEND_K"]),
        (&["model", "fetch"], &["LONGTAIL_MODEL_FETCH_REVISION"]),
    ] {
        let out = run_ok(longtail().args(cmd).arg("--help"));
        let text = String::from_utf8_lossy(&out.stdout);
        for word in words {
            assert!(text.contains(word), "{cmd:?} --help lacks {word}:\n{text}");
        }
    }
}

#[test]
fn missing_input_is_fatal_and_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let out = longtail()
        .arg("prepare")
        .args(["--items", "/nonexistent/items.jsonl", "--interactions"])
        .arg(fixture("tiny").join("interactions.csv"))
        .arg("--out")
        .arg(tmp.path().join("x"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/items.jsonl"), "{err}");

    let out = longtail()
        .args(["prepare", "--out"])
        .arg(tmp.path().join("y"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--items"));
}

#[test]
fn bad_flag_values_are_rejected_with_the_expected_form() {
    let tmp = tempfile::tempdir().unwrap();
    for (flag, value) in [
        ("--tail-rule", "pareto:1.5"),
        ("--tail-rule", "top:3"),
        ("--split", "random:0.5,0.5"),
        ("--split", "time:yesterday"),
    ] {
        let dir = fixture("tiny");
        let out = longtail()
            .arg("prepare")
            .arg("--items")
            .arg(dir.join("items.jsonl"))
            .arg("--interactions")
            .arg(dir.join("interactions.csv"))
            .arg("--out")
            .arg(tmp.path().join("bad"))
            .args([flag, value])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flag} {value} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(flag),
            "error for {flag} {value} does not name the flag: {err}"
        );
    }
}

#[test]
fn model_fetch_offline_fails_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    // A closed port on loopback: fails at once, whether or not this machine has the internet.
    let out = longtail()
        .args(["model", "fetch", "sentence-transformers/all-MiniLM-L6-v2"])
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env("HF_HOME", tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Hugging Face hub") && err.contains("local directory"),
        "{err}"
    );
}

/// The real Office data with injected faults, through the real binary: nothing lost, no panic.
#[test]
fn prepare_real_office_data_with_injected_faults() {
    let data = std::env::var("LONGTAIL_TEST_OFFICE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("../shared/datasets/amazon-office-2014"));
    if !data.join("items.jsonl").is_file() {
        return longtail_testutil::skip!("real data not found at {}", data.display());
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut items = std::fs::read(data.join("items.jsonl")).unwrap();
    let first_line: Vec<u8> = items.split(|b| *b == b'\n').next().unwrap().to_vec();
    let n_items = items
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    // Appended after the real rows, so their line numbers are known.
    items.extend_from_slice(b"{\"item_id\": \"TRUNC\", \"title\": \"cut off\n"); // n+1
    items.extend_from_slice(b"{\"item_id\": \"BADUTF\", \"title\": \"\xff\xfe\"}\n"); // n+2
    items.extend_from_slice(
        format!(
            "{{\"item_id\": \"HUGE\", \"title\": \"{}\"}}\n",
            "x".repeat(10 << 20)
        )
        .as_bytes(),
    ); // n+3
    items.extend_from_slice(&first_line); // n+4: duplicate id
    items.push(b'\n');
    items.extend_from_slice(b"{\"item_id\": \"EMPTY\", \"title\": \"\"}\n"); // n+5: kept, empty text
    std::fs::write(tmp.path().join("items.jsonl"), &items).unwrap();
    let mut inter = std::fs::read_to_string(data.join("interactions.csv")).unwrap();
    let n_inter = inter.lines().count() - 1;
    inter.push_str("U99999,NO_SUCH_ITEM,1400000000\n"); // line n_inter + 2
    std::fs::write(tmp.path().join("interactions.csv"), &inter).unwrap();

    let out = tmp.path().join("out");
    run_ok(
        longtail()
            .arg("prepare")
            .arg("--items")
            .arg(tmp.path().join("items.jsonl"))
            .arg("--interactions")
            .arg(tmp.path().join("interactions.csv"))
            .arg("--out")
            .arg(&out),
    );
    let rejects = read_jsonl(&out.join("rejects.jsonl"));
    let lines_for = |file: &str| -> Vec<u64> {
        rejects
            .iter()
            .filter(|r| r["file"].as_str().unwrap().ends_with(file))
            .map(|r| r["line"].as_u64().unwrap())
            .collect()
    };
    let n = n_items as u64;
    assert_eq!(
        lines_for("items.jsonl"),
        vec![n + 1, n + 2, n + 3, n + 4],
        "{rejects:?}"
    );
    assert_eq!(
        lines_for("interactions.csv"),
        vec![n_inter as u64 + 2],
        "{rejects:?}"
    );
    let kept = read_jsonl(&out.join("items.jsonl"));
    assert_eq!(
        kept.len(),
        n_items + 1,
        "real items plus the empty-title one"
    );
    assert!(kept.iter().any(|v| v["item_id"] == "EMPTY"));
}

/// Every command that runs a model takes `--device` (and `LONGTAIL_DEVICE`); asking a CPU-only
/// build for CUDA fails at once, in one line that says how to get a CUDA build. Nothing else
/// is read first: the paths below do not exist.
#[test]
fn device_cuda_fails_in_one_actionable_line_on_a_cpu_build() {
    let missing = "/nonexistent/longtail-device-test";
    let commands: [&[&str]; 7] = [
        &[
            "train", "--data", missing, "--model", missing, "--out", missing,
        ],
        &[
            "eval",
            "--data",
            missing,
            "--checkpoint",
            missing,
            "--report",
            "r.json",
        ],
        &[
            "score",
            "--checkpoint",
            missing,
            "--input",
            missing,
            "--output",
            missing,
        ],
        &[
            "train-interest",
            "--data",
            missing,
            "--model",
            missing,
            "--out",
            missing,
        ],
        &[
            "recommend",
            "--checkpoint",
            missing,
            "--data",
            missing,
            "--output",
            missing,
        ],
        &[
            "eval-rec",
            "--data",
            missing,
            "--report",
            "r.json",
            "--checkpoint",
            missing,
        ],
        &[
            "serve",
            "--classifier",
            missing,
            "--interest",
            missing,
            "--data",
            missing,
        ],
    ];
    for args in commands {
        for via_env in [false, true] {
            let mut cmd = longtail();
            cmd.args(args);
            if via_env {
                cmd.env("LONGTAIL_DEVICE", "cuda:0");
            } else {
                cmd.args(["--device", "cuda:0"]);
            }
            let out = cmd.output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{args:?} ran");
            if cfg!(feature = "cuda") {
                // A CUDA build: either no GPU here (said so) or it got past the device.
                assert!(!err.contains("built without CUDA"), "{args:?}: {err}");
                continue;
            }
            assert!(
                err.contains("--device cuda:0: this longtail was built without CUDA")
                    && err.contains("make build-cuda")
                    && err.contains("--device cpu"),
                "{args:?} (env {via_env}): {err}"
            );
            assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        }
    }
    // A command's own variable wins over LONGTAIL_DEVICE.
    let out = longtail()
        .args(commands[2])
        .env("LONGTAIL_DEVICE", "cuda:0")
        .env("LONGTAIL_SCORE_DEVICE", "cpu")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("CUDA"), "{err}");
    assert!(
        err.contains(missing),
        "fails on the checkpoint instead: {err}"
    );
    // A value that is no device names the forms that are.
    let out = longtail()
        .args(commands[2])
        .args(["--device", "tpu"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("expected auto, cpu, cuda or cuda:N"), "{err}");
}
