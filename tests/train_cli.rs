//! `longtail train` / `longtail eval` end to end on a tiny random BERT, a tiny WordPiece
//! tokenizer and a synthetic catalogue prepared by the real `longtail prepare`.
//! Everything is generated in a temporary directory; nothing touches the real data.

mod common;
use common::tiny::{prepared, tensors, tiny_model};
use common::{longtail, run_ok};

use candle_core::{Device, Tensor};
use longtail_model::{BertForSequenceClassification, ClassifierOptions};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;

fn same(a: &Tensor, b: &Tensor) -> bool {
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits())
}

const WORDS: &str = "bert.embeddings.word_embeddings.weight";

fn train(data: &Path, model: &Path, out: &Path, extra: &[&str]) -> Output {
    run_ok(&mut train_command(data, model, out, extra))
}

#[test]
fn train_updates_weights_writes_hf_checkpoints_and_eval_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let data = prepared(tmp.path());
    let out = tmp.path().join("ckpt");
    let stdout = train(
        &data,
        &model,
        &out,
        &[
            "--num-train-epochs",
            "3",
            "--class-weights",
            "auto",
            "--label-smoothing",
            "0.1",
            "--save-total-limit",
            "1",
        ],
    );
    let stdout = String::from_utf8_lossy(&stdout.stdout);
    assert!(stdout.contains("samples/s"), "{stdout}");

    // Final model at the top of --out, HF names, labels head/tail.
    for f in [
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "trainer_state.json",
        "metrics.jsonl",
        "train_args.toml",
    ] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    let base = tensors(&model.join("model.safetensors"));
    let trained = tensors(&out.join("model.safetensors"));
    assert!(trained
        .keys()
        .any(|k| k.starts_with("bert.encoder.layer.1.")));
    assert!(trained.contains_key("classifier.weight") && trained.contains_key("classifier.bias"));
    assert!(
        !same(&base[WORDS], &trained[WORDS]),
        "word embeddings did not change"
    );
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["id2label"], json!({"0": "head", "1": "tail"}));
    assert_eq!(config["label2id"], json!({"head": 0, "tail": 1}));

    // Checkpoints: complete, rotated to the limit (+ the best).
    let ckpts: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("checkpoint-")
        })
        .collect();
    assert!(!ckpts.is_empty() && ckpts.len() <= 2, "{ckpts:?}");
    for c in &ckpts {
        for f in [
            "model.safetensors",
            "config.json",
            "tokenizer.json",
            "optimizer.safetensors",
            "optimizer.json",
            "trainer_state.json",
            "train_args.toml",
        ] {
            assert!(c.join(f).is_file(), "{} lacks {f}", c.display());
        }
    }
    // metrics.jsonl: training loss lines and one evaluation per epoch.
    let lines: Vec<Value> = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.iter().any(|l| l.get("loss").is_some()));
    assert_eq!(
        lines.iter().filter(|l| l.get("eval_auc").is_some()).count(),
        3
    );

    // Eval: report with the documented keys, Markdown, ROC and curves beside it.
    let report = tmp.path().join("eval/office.json");
    let ev = run_ok(
        longtail()
            .arg("eval")
            .arg("--data")
            .arg(&data)
            .arg("--checkpoint")
            .arg(&out)
            .arg("--report")
            .arg(&report),
    );
    let printed = String::from_utf8_lossy(&ev.stdout);
    assert!(printed.contains("tfidf"), "{printed}");
    let rep: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    for key in ["auc", "pr_auc", "macro_f1", "accuracy", "ece", "baselines"] {
        assert!(rep.get(key).is_some(), "report lacks {key}: {rep}");
    }
    let auc = rep["auc"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&auc));
    assert!(rep["baselines"].as_object().unwrap().len() >= 2);
    for f in [
        "office.md",
        "office.roc.png",
        "office.loss.png",
        "office.validation_roc_auc.png",
    ] {
        assert!(tmp.path().join("eval").join(f).is_file(), "missing {f}");
    }
}

#[test]
fn freeze_encoder_trains_the_head_only() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let data = prepared(tmp.path());
    let out = tmp.path().join("ckpt");
    train(
        &data,
        &model,
        &out,
        &["--num-train-epochs", "1", "--freeze-encoder"],
    );
    let base = tensors(&model.join("model.safetensors"));
    let trained = tensors(&out.join("model.safetensors"));
    assert!(
        same(&base[WORDS], &trained[WORDS]),
        "frozen word embeddings changed"
    );
    let l1 = "bert.encoder.layer.1.output.dense.weight";
    assert!(same(&base[l1], &trained[l1]));
    assert!(
        !same(&base["classifier.weight"], &trained["classifier.weight"]),
        "head did not train"
    );

    // --freeze-layers 1: embeddings and layer 0 frozen, layer 1 trained.
    let out2 = tmp.path().join("ckpt2");
    train(
        &data,
        &model,
        &out2,
        &["--num-train-epochs", "1", "--freeze-layers", "1"],
    );
    let t2 = tensors(&out2.join("model.safetensors"));
    let l0 = "bert.encoder.layer.0.output.dense.weight";
    assert!(same(&base[WORDS], &t2[WORDS]));
    assert!(same(&base[l0], &t2[l0]));
    assert!(!same(&base[l1], &t2[l1]));
}

/// `--precision bf16`: mixed precision trains every layer, keeps f32 weights (the master copy),
/// gives other weights than fp32 from the same seed (the bf16 matmuls ran), and is recorded in
/// train_args.toml. int8 cannot train.
#[test]
fn bf16_training_keeps_f32_weights_and_trains_every_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let data = prepared(tmp.path());
    let (bf16, fp32) = (tmp.path().join("bf16"), tmp.path().join("fp32"));
    let epochs = ["--num-train-epochs", "1"];
    let stdout = train(
        &data,
        &model,
        &bf16,
        &[&epochs[..], &["--precision", "bf16"]].concat(),
    );
    train(&data, &model, &fp32, &epochs);
    let log = String::from_utf8_lossy(&stdout.stderr);
    assert!(log.contains("in bf16"), "{log}");
    let base = tensors(&model.join("model.safetensors"));
    let (a, b) = (
        tensors(&bf16.join("model.safetensors")),
        tensors(&fp32.join("model.safetensors")),
    );
    for name in [
        "bert.encoder.layer.0.attention.self.query.weight",
        "bert.encoder.layer.1.output.dense.weight",
        "classifier.weight",
    ] {
        assert_eq!(a[name].dtype(), candle_core::DType::F32, "{name}");
        assert!(!same(&base[name], &a[name]), "{name} did not train in bf16");
        assert!(!same(&a[name], &b[name]), "{name}: bf16 equals fp32");
    }
    let args = std::fs::read_to_string(bf16.join("train_args.toml")).unwrap();
    assert!(args.contains("precision = \"bf16\""), "{args}");

    let out = train_command(
        &data,
        &model,
        &tmp.path().join("int8"),
        &["--precision", "int8"],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("precision int8 is for scoring"), "{err}");
}

/// `--phase-times` prints one line with the four phases' time per update, counting every update.
#[test]
fn phase_times_says_where_an_update_goes() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let data = prepared(tmp.path());
    let out = train(
        &data,
        &model,
        &tmp.path().join("timed"),
        &["--max-steps", "3", "--phase-times"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("phase times: "))
        .unwrap_or_else(|| panic!("no phase times line in {stdout}"));
    for phase in ["forward ", "backward ", "clip ", "AdamW "] {
        assert!(line.contains(phase), "{line}");
    }
    assert!(line.ends_with("per update (3 updates)"), "{line}");
}

/// The `longtail train` command line of these tests: small defaults for a tiny model, each
/// replaced when `extra` sets the same flag.
fn train_command(data: &Path, model: &Path, out: &Path, extra: &[&str]) -> std::process::Command {
    let defaults = [
        ("--max-len", "32"),
        ("--per-device-train-batch-size", "8"),
        ("--learning-rate", "1e-3"),
        ("--logging-steps", "2"),
        ("--seed", "3"),
    ];
    let mut cmd = longtail();
    cmd.arg("train")
        .arg("--data")
        .arg(data)
        .arg("--model")
        .arg(model)
        .arg("--out")
        .arg(out);
    for (flag, value) in defaults {
        if !extra.contains(&flag) {
            cmd.args([flag, value]);
        }
    }
    cmd.args(extra);
    cmd
}

/// Step of the newest complete `checkpoint-N` in `out` (0 if none).
fn newest_checkpoint(out: &Path) -> u64 {
    std::fs::read_dir(out)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("trainer_state.json").exists())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix("checkpoint-")?
                .parse()
                .ok()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn killed_and_resumed_run_ends_with_identical_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let data = prepared(tmp.path());
    let args = [
        "--max-steps",
        "120",
        "--eval-strategy",
        "steps",
        "--eval-steps",
        "2",
        "--gradient-accumulation-steps",
        "2",
        "--save-total-limit",
        "2",
    ];
    let straight = tmp.path().join("straight");
    train(&data, &model, &straight, &args);

    // SIGKILL (kill -9) at whatever point the run has reached once a few checkpoints exist:
    // possibly in the middle of writing one, which the atomic writes must survive.
    let resumed = tmp.path().join("resumed");
    let mut child = train_command(&data, &model, &resumed, &args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while newest_checkpoint(&resumed) < 10 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        assert!(
            started.elapsed().as_secs() < 300,
            "no checkpoint-10+ after 300 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    // A second writer of the same --out is refused, naming the first (it would rotate away
    // the first run's checkpoints).
    let mut twin: Vec<&str> = args.to_vec();
    twin.push("--resume");
    let second = train_command(&data, &model, &resumed, &twin)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        !second.status.success() && err.contains("being written by another process"),
        "{err}"
    );
    assert!(err.contains(&format!("pid {}", child.id())), "{err}");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run ended before it could be killed"
    );
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    assert!(
        !resumed.join("model.safetensors").exists(),
        "the killed run had already exported its final model"
    );
    let mut second: Vec<&str> = args.to_vec();
    second.push("--resume");
    train(&data, &model, &resumed, &second);

    for file in [
        "model.safetensors",
        "checkpoint-120/model.safetensors",
        "checkpoint-120/optimizer.safetensors",
    ] {
        let a = tensors(&straight.join(file));
        let b = tensors(&resumed.join(file));
        assert_eq!(a.len(), b.len());
        for (name, t) in &a {
            assert!(same(t, &b[name]), "{file}: {name} differs after resume");
        }
    }
    let history = |d: &Path| -> Value {
        let s: Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("trainer_state.json")).unwrap())
                .unwrap();
        let mut h = s["log_history"].clone();
        // Throughput is wall-clock, everything else must match exactly.
        for e in h.as_array_mut().unwrap() {
            e.as_object_mut().unwrap().remove("samples_per_second");
        }
        h
    };
    assert_eq!(history(&straight), history(&resumed));
    // A base model trained without --resume into a directory with checkpoints is refused.
    let out = longtail()
        .arg("train")
        .arg("--data")
        .arg(&data)
        .arg("--model")
        .arg(&model)
        .arg("--out")
        .arg(&resumed)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn config_file_supplies_defaults_and_command_line_wins() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let data = prepared(tmp.path());
    let cfg = tmp.path().join("train.toml");
    std::fs::write(
        &cfg,
        "[train]\nmax_steps = 3\nlearning_rate = 0.5\npooling = \"cls\"\neval_strategy = \"no\"\n",
    )
    .unwrap();
    let out = tmp.path().join("ckpt");
    train(&data, &model, &out, &["--config", cfg.to_str().unwrap()]);
    let args: toml::Table =
        toml::from_str(&std::fs::read_to_string(out.join("train_args.toml")).unwrap()).unwrap();
    assert_eq!(args["max_steps"].as_integer(), Some(3));
    assert_eq!(
        args["learning_rate"].as_float(),
        Some(1e-3),
        "command line must win"
    );
    assert_eq!(args["pooling"].as_str(), Some("cls"));
    assert!(out.join("checkpoint-3").is_dir());
    // Unknown keys are an error.
    std::fs::write(&cfg, "[train]\nlearning_rat = 0.5\n").unwrap();
    let bad = longtail()
        .arg("train")
        .arg("--config")
        .arg(&cfg)
        .arg("--data")
        .arg(&data)
        .arg("--model")
        .arg(&model)
        .arg("--out")
        .arg(tmp.path().join("x"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("learning_rat"));
}

#[test]
fn non_finite_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let data = prepared(tmp.path());
    let out_dir = tmp.path().join("diverged");
    // A learning rate this large overflows the weights within a few updates.
    let out = train_command(
        &data,
        &model,
        &out_dir,
        &[
            "--learning-rate",
            "1e30",
            "--warmup-ratio",
            "0",
            "--max-steps",
            "30",
            "--eval-strategy",
            "steps",
            "--eval-steps",
            "1",
        ],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a diverged run exited 0: {stderr}");
    assert!(
        stderr.contains("stopping") && (stderr.contains("loss is") || stderr.contains("norm is")),
        "unclear error: {stderr}"
    );
    assert!(!out_dir.join("model.safetensors").exists());
    let good = stderr
        .split("The last good checkpoint is ")
        .nth(1)
        .and_then(|rest| rest.split(". ").next())
        .map(|p| PathBuf::from(p.trim().trim_end_matches('.')))
        .unwrap_or_else(|| panic!("no last good checkpoint named: {stderr}"));
    for (name, t) in tensors(&good.join("model.safetensors")) {
        let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(
            v.iter().all(|x| x.is_finite()),
            "{name} is not finite in {good:?}"
        );
    }
}

/// `transformers.AutoModelForSequenceClassification.from_pretrained(CKPT)` on a checkpoint
/// written by `longtail train` gives longtail's logits to 1e-4. Needs python3 with torch and
/// transformers (`pip install torch transformers`); skipped with a message otherwise.
#[test]
fn transformers_loads_the_trained_checkpoint_with_the_same_logits() {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let has_torch = std::process::Command::new(&python)
        .args(["-c", "import torch, transformers"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_torch {
        return longtail_testutil::skip!(
            "{python} cannot import torch and transformers (run make python-deps)"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let data = prepared(tmp.path());
    let out = tmp.path().join("ckpt");
    train(
        &data,
        &model,
        &out,
        &["--pooling", "cls_pooler", "--max-steps", "4"],
    );
    let (trained, _) = BertForSequenceClassification::from_pretrained(
        &out.to_string_lossy(),
        &ClassifierOptions::default(),
        &longtail_model::HubOptions::default(),
        &Device::Cpu,
    )
    .unwrap();
    let ids = Tensor::new(
        &[[2u32, 7, 19, 25, 3, 0], [2, 8, 11, 4, 9, 3]],
        &Device::Cpu,
    )
    .unwrap();
    let mask = Tensor::new(&[[1u32, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]], &Device::Cpu).unwrap();
    let logits = trained.forward_inference(&ids, None, Some(&mask)).unwrap();
    let expected: HashMap<String, Tensor> = [
        (
            "input_ids".to_string(),
            ids.to_dtype(candle_core::DType::I64).unwrap(),
        ),
        (
            "attention_mask".to_string(),
            mask.to_dtype(candle_core::DType::I64).unwrap(),
        ),
        ("logits".to_string(), logits),
    ]
    .into();
    candle_core::safetensors::save(&expected, out.join("longtail_expected.safetensors")).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/make_reference.py");
    let check = std::process::Command::new(&python)
        .arg(script)
        .arg("--check-saved")
        .arg(&out)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&check.stdout).to_string()
        + &String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success() && report.contains("OK"), "{report}");
}
