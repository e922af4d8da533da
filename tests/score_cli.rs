//! `longtail score` end to end on a tiny random BERT (head/tail labels) and synthetic
//! catalogues: injected faults, kill -9 + --resume, sharding, formats, and agreement with the
//! probabilities the trainer's validation uses (`longtail_classify::predict`).

mod common;
use common::tiny::tiny_classifier as tiny_checkpoint;
use common::{longtail, run_ok, score_command};

use longtail_classify::{self as trainer, EncodedSplit};
use longtail_data::{PreparedDataset, Split};
use longtail_infer::Scorer;
use longtail_model::ClassifierOptions;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// Catalogue words, all in the shared tiny tokenizer's vocabulary (`common::tiny`).
const WORDS: [&str; 18] = [
    "printer",
    "desk",
    "chair",
    "laptop",
    "stapler",
    "monitor",
    "refill",
    "cartridge",
    "ribbon",
    "vintage",
    "spare",
    "adapter",
    "black",
    "office",
    "pack",
    "new",
    "large",
    "quality",
];

/// Row `i` of a synthetic raw catalogue (varied lengths so batches get sorted).
fn item(i: usize) -> Value {
    let w = |k: usize| WORDS[(i * 7 + k * 5) % WORDS.len()];
    let desc: Vec<&str> = (0..(i % 13)).map(w).collect();
    json!({"item_id": format!("I{i:06}"), "title": format!("{} {} {}", w(1), w(2), i % 100),
           "brand": w(3), "categories": [[w(4), w(5)]], "description": desc.join(" ")})
}

fn catalogue(path: &Path, n: usize) {
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&item(i).to_string());
        s.push('\n');
    }
    std::fs::write(path, s).unwrap();
}

fn score(ckpt: &Path, input: &Path, output: &Path, extra: &[&str]) -> String {
    let out = run_ok(&mut score_command(ckpt, input, output, extra));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn injected_faults_are_rejected_and_no_row_is_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tiny_checkpoint(tmp.path());
    let mut bytes: Vec<u8> = Vec::new();
    let mut faults = Vec::new(); // (line, reason prefix)
    let mut good = Vec::new();
    for i in 0..300usize {
        let line = i as u64 + 1;
        match i % 37 {
            5 => {
                bytes.extend_from_slice(b"{\"item_id\": \"broken\", \"title\": \"unterminated");
                faults.push((line, "invalid-json"));
            }
            11 => faults.push((line, "empty-line")),
            17 => {
                bytes.extend_from_slice(b"{\"title\": \"no id here\"}");
                faults.push((line, "missing-id"));
            }
            23 => {
                bytes.extend_from_slice(b"[1, 2, 3]");
                faults.push((line, "not-an-object"));
            }
            29 => {
                bytes.extend_from_slice(b"{\"item_id\": \"bad\xff\xfe\", \"title\": \"x\"}");
                faults.push((line, "invalid-utf8"));
            }
            31 => {
                let long = "z".repeat(1 << 20);
                bytes.extend_from_slice(
                    format!("{{\"item_id\": \"L\", \"title\": \"{long}\"}}").as_bytes(),
                );
                faults.push((line, "line-too-long"));
            }
            _ => {
                bytes.extend_from_slice(item(i).to_string().as_bytes());
                good.push(format!("I{i:06}"));
            }
        }
        bytes.push(b'\n');
    }
    let input = tmp.path().join("faulty.jsonl");
    std::fs::write(&input, &bytes).unwrap();
    let out = tmp.path().join("scores.jsonl");
    let rejects = tmp.path().join("rejects.jsonl");
    let stdout = score(
        &ckpt,
        &input,
        &out,
        &["--rejects", rejects.to_str().unwrap(), "--chunk-rows", "50"],
    );
    assert!(
        stdout.contains("rows 300") && stdout.contains("rows/s"),
        "{stdout}"
    );

    let scored = jsonl(&out);
    let ids: Vec<&str> = scored
        .iter()
        .map(|r| r["item_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, good, "every good row scored once, in input order");
    for r in &scored {
        let p = r["p_tail"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&p));
        assert_eq!(r["label"], if p >= 0.5 { "tail" } else { "head" });
    }
    let rej = jsonl(&rejects);
    assert_eq!(rej.len(), faults.len());
    assert_eq!(scored.len() + rej.len(), 300, "rows in = scored + rejected");
    for (r, (line, reason)) in rej.iter().zip(&faults) {
        assert_eq!(r["line"].as_u64().unwrap(), *line, "{r}");
        assert!(
            r["reason"].as_str().unwrap().starts_with(reason),
            "{r} vs {reason}"
        );
    }
}

#[test]
fn kill_dash_nine_then_resume_is_byte_identical() {
    kill_then_resume("fp32");
}

#[test]
fn kill_dash_nine_then_resume_is_byte_identical_in_int8() {
    kill_then_resume("int8");
}

fn kill_then_resume(precision: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tiny_checkpoint(tmp.path());
    let input = tmp.path().join("big.jsonl");
    let n = 8_000;
    catalogue(&input, n);
    // A few bad rows too, so the rejects file is resumed as well.
    let mut text = std::fs::read_to_string(&input).unwrap();
    text.push_str("not json\n\n");
    std::fs::write(&input, text).unwrap();
    let args = ["--chunk-rows", "40", "--precision", precision];

    let reference = tmp.path().join("reference.jsonl");
    score(&ckpt, &input, &reference, &args);

    let out = tmp.path().join("killed.jsonl");
    let sidecar = tmp.path().join("killed.jsonl.progress.json");
    let mut child = score_command(&ckpt, &input, &out, &args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let consumed = loop {
        let rows = std::fs::read(&sidecar)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v["rows_consumed"].as_u64())
            .unwrap_or(0);
        if rows >= 400 {
            break rows;
        }
        assert!(Instant::now() < deadline, "no progress recorded");
        std::thread::sleep(Duration::from_millis(2));
    };
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let v: Value = serde_json::from_slice(&std::fs::read(&sidecar).unwrap()).unwrap();
    assert_eq!(
        v["complete"], false,
        "the run must be killed mid-way (consumed {consumed})"
    );

    let stdout = score(&ckpt, &input, &out, &[&args[..], &["--resume"]].concat());
    assert!(stdout.contains("resumed after"), "{stdout}");
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&reference).unwrap()
    );
    assert_eq!(
        std::fs::read(tmp.path().join("killed.jsonl.rejects.jsonl")).unwrap(),
        std::fs::read(tmp.path().join("reference.jsonl.rejects.jsonl")).unwrap()
    );
    assert_eq!(jsonl(&out).len(), n);
}

#[test]
fn shard_outputs_concatenate_to_the_unsharded_output() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tiny_checkpoint(tmp.path());
    // CSV input, gzipped, with a bad row: the shards split rows, rejects included.
    let mut csv = String::from("item_id,title,brand,categories,description\n");
    for i in 0..1003usize {
        let v = item(i);
        if i == 500 {
            csv.push_str("only,three,fields\n");
            continue;
        }
        csv.push_str(&format!(
            "{},{},{},{},\"{}\"\n",
            v["item_id"].as_str().unwrap(),
            v["title"].as_str().unwrap(),
            v["brand"].as_str().unwrap(),
            "office",
            v["description"].as_str().unwrap()
        ));
    }
    let input = tmp.path().join("cat.csv.gz");
    {
        use std::io::Write;
        let f = std::fs::File::create(&input).unwrap();
        let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        gz.write_all(csv.as_bytes()).unwrap();
        gz.finish().unwrap();
    }
    for (format, precision) in [("csv", "fp32"), ("jsonl", "fp32"), ("jsonl", "int8")] {
        let whole = tmp.path().join(format!("whole.{format}"));
        score(
            &ckpt,
            &input,
            &whole,
            &[
                "--chunk-rows",
                "64",
                "--format",
                format,
                "--precision",
                precision,
                // the jsonl outputs are written once per precision
                "--overwrite",
            ],
        );
        let mut cat = Vec::new();
        let mut rejects = Vec::new();
        for k in 0..4 {
            let part = tmp.path().join(format!("part{k}.{format}"));
            let shard = format!("{k}/4");
            score(
                &ckpt,
                &input,
                &part,
                &[
                    "--chunk-rows",
                    "64",
                    "--format",
                    format,
                    "--shard",
                    &shard,
                    "--precision",
                    precision,
                    "--overwrite",
                ],
            );
            cat.extend(std::fs::read(&part).unwrap());
            rejects.extend(
                std::fs::read(tmp.path().join(format!("part{k}.{format}.rejects.jsonl"))).unwrap(),
            );
        }
        assert_eq!(cat, std::fs::read(&whole).unwrap(), "{format}");
        let whole_rejects =
            std::fs::read(tmp.path().join(format!("whole.{format}.rejects.jsonl"))).unwrap();
        assert_eq!(rejects, whole_rejects);
        assert_eq!(String::from_utf8(whole_rejects).unwrap().lines().count(), 1);
    }
    let csv_out = std::fs::read_to_string(tmp.path().join("whole.csv")).unwrap();
    assert!(csv_out.starts_with("item_id,p_tail,label\n"));
    assert_eq!(csv_out.lines().count(), 1 + 1002);

    // Parquet output, with embeddings: a valid file holding every scored row.
    let pq = tmp.path().join("whole.parquet");
    score(&ckpt, &input, &pq, &["--embeddings"]);
    let file = std::fs::File::open(&pq).unwrap();
    let reader = parquet::file::reader::SerializedFileReader::new(file).unwrap();
    use parquet::file::reader::FileReader;
    assert_eq!(reader.metadata().file_metadata().num_rows(), 1002);
    assert!(!tmp.path().join("whole.parquet.spool.jsonl").exists());
}

/// `score --merge DIR`: the parts of one sharded run, checked against their progress files and
/// concatenated in shard order, are the unsharded output byte for byte (rejects included), and
/// `DIR/_SUCCESS` lists them. A missing, unfinished, changed or foreign part is refused by name.
#[test]
fn merge_checks_the_parts_and_writes_the_unsharded_output() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tiny_checkpoint(tmp.path());
    let input = tmp.path().join("cat.jsonl");
    catalogue(&input, 700);
    // One bad row, so the rejects are merged too.
    let mut text = std::fs::read_to_string(&input).unwrap();
    text.push_str("{not json\n");
    std::fs::write(&input, text).unwrap();
    let whole = tmp.path().join("whole.jsonl");
    score(&ckpt, &input, &whole, &["--chunk-rows", "64"]);

    let parts = tmp.path().join("parts");
    let merged = tmp.path().join("merged.jsonl");
    let merge = |extra: &[&str]| {
        let mut cmd = longtail();
        cmd.args(["score", "--merge"])
            .arg(&parts)
            .arg("--output")
            .arg(&merged)
            .args(extra);
        cmd.output().unwrap()
    };
    let shard = |k: usize, extra: &[&str]| {
        let part = parts.join(format!("part-{k}.jsonl"));
        let s = format!("{k}/4");
        let mut args = vec!["--chunk-rows", "64", "--shard", s.as_str()];
        args.extend(extra);
        score(&ckpt, &input, &part, &args);
    };
    // Shards finish in any order; shard 2 has not run yet.
    for k in [3, 0, 1] {
        shard(k, &[]);
    }
    let out = merge(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("shards 2/4 have no output"),
        "{err}"
    );
    assert!(!merged.exists());
    shard(2, &[]);
    let out = merge(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&merge(&[]).stderr).into_owned();
    assert!(err.contains("pass --overwrite"), "{err}");
    let out = merge(&["--overwrite"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(&merged).unwrap(),
        std::fs::read(&whole).unwrap()
    );
    let rejects = |p: &Path| std::fs::read(format!("{}.rejects.jsonl", p.display())).unwrap();
    assert_eq!(rejects(&merged), rejects(&whole));
    assert_eq!(
        String::from_utf8(rejects(&merged)).unwrap().lines().count(),
        1
    );
    let success: Value =
        serde_json::from_str(&std::fs::read_to_string(parts.join("_SUCCESS")).unwrap()).unwrap();
    let shards: Vec<&str> = success["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["shard"].as_str().unwrap())
        .collect();
    assert_eq!(shards, ["0/4", "1/4", "2/4", "3/4"]);
    assert_eq!(success["rows"], 701);

    // A part changed after its shard finished.
    let part1 = parts.join("part-1.jsonl");
    let good = std::fs::read(&part1).unwrap();
    let mut bad = good.clone();
    bad[10] ^= 1;
    std::fs::write(&part1, &bad).unwrap();
    let err = String::from_utf8_lossy(&merge(&["--overwrite"]).stderr).into_owned();
    assert!(
        err.contains("part-1.jsonl") && err.contains("changed after scoring"),
        "{err}"
    );
    std::fs::write(&part1, &good).unwrap();

    // A shard whose run has not finished (its progress file says so).
    let sidecar = parts.join("part-2.jsonl.progress.json");
    let finished = std::fs::read_to_string(&sidecar).unwrap();
    let mut unfinished: Value = serde_json::from_str(&finished).unwrap();
    unfinished["complete"] = json!(false);
    std::fs::write(&sidecar, unfinished.to_string()).unwrap();
    let err = String::from_utf8_lossy(&merge(&[]).stderr).into_owned();
    assert!(
        err.contains("shard 2/4") && err.contains("not complete"),
        "{err}"
    );
    std::fs::write(&sidecar, finished).unwrap();

    // A part of another run (another --threshold) in the directory.
    let foreign = parts.join("other.jsonl");
    score(
        &ckpt,
        &input,
        &foreign,
        &["--chunk-rows", "64", "--shard", "1/4", "--threshold", "0.9"],
    );
    let err = String::from_utf8_lossy(&merge(&[]).stderr).into_owned();
    assert!(err.contains("another run"), "{err}");
}

/// int8 (integer layers) and bf16 (matmuls on bf16 copies) really run (outputs differ from
/// fp32), stay close to fp32, and an interrupted run cannot be continued in another precision.
#[test]
fn int8_and_bf16_are_close_to_fp32_and_resume_keeps_the_precision() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tiny_checkpoint(tmp.path());
    let input = tmp.path().join("cat.jsonl");
    catalogue(&input, 300);
    let fp32 = tmp.path().join("fp32.jsonl");
    score(&ckpt, &input, &fp32, &[]);
    for precision in ["int8", "bf16"] {
        let out = tmp.path().join(format!("{precision}.jsonl"));
        let stdout = score(&ckpt, &input, &out, &["--precision", precision]);
        assert!(stdout.contains(&format!("({precision}")), "{stdout}");
        let (a, b) = (jsonl(&fp32), jsonl(&out));
        assert_eq!(a.len(), b.len());
        let max = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x["p_tail"].as_f64().unwrap() - y["p_tail"].as_f64().unwrap()).abs())
            .fold(0.0, f64::max);
        assert!(
            max > 0.0,
            "{precision} gave exactly the fp32 scores: its path did not run"
        );
        assert!(
            max < 0.05,
            "{precision} is far from fp32: max |p_tail diff| {max}"
        );

        let err = score_command(&ckpt, &input, &out, &["--resume", "--precision", "fp32"])
            .output()
            .unwrap();
        assert!(!err.status.success());
        let msg = String::from_utf8_lossy(&err.stderr);
        assert!(
            msg.contains(&format!("precision {precision}, this one fp32")),
            "{msg}"
        );
    }
}

#[test]
fn scorer_and_cli_match_the_probabilities_eval_uses() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tiny_checkpoint(tmp.path());
    let raw = tmp.path().join("items.jsonl");
    catalogue(&raw, 120);
    let mut inter = String::from("user_id,item_id,timestamp\n");
    for i in 0..120usize {
        for u in 0..(if i % 3 == 0 { 12 } else { 1 }) {
            inter.push_str(&format!("u{u},I{i:06},{}\n", 1_400_000_000 + i * 100 + u));
        }
    }
    std::fs::write(tmp.path().join("inter.csv"), inter).unwrap();
    let prepared = tmp.path().join("prepared");
    run_ok(
        longtail()
            .args(["prepare", "--tail-rule", "min-count:5", "--items"])
            .arg(&raw)
            .arg("--interactions")
            .arg(tmp.path().join("inter.csv"))
            .arg("--out")
            .arg(&prepared),
    );
    let data = PreparedDataset::load(&prepared).unwrap();
    let items: Vec<_> = data
        .split(Split::Validation)
        .chain(data.split(Split::Test))
        .collect();
    assert!(items.len() > 10);

    // What the trainer's validation computes.
    let (model, tokenizer, _) = trainer::load_model(
        &ckpt.to_string_lossy(),
        &ClassifierOptions::default(),
        24,
        longtail_tokenize::CATALOGUE_TEMPLATE,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let enc = EncodedSplit::encode(&tokenizer, &items).unwrap();
    let (expected, _) = trainer::predict(&model, &tokenizer, &enc, 7).unwrap();

    // The library API on the same items.
    let scorer = Scorer::from_checkpoint(&ckpt).unwrap();
    let encoded = scorer
        .tokenizer()
        .encode_batch_parallel(&enc_sources(&items))
        .unwrap();
    assert_eq!(encoded, enc.encoded, "same tokens as eval");
    let got = scorer.score_encoded(&encoded, false).unwrap().p_tail;
    let spread = expected.iter().cloned().fold(0.0f64, f64::max)
        - expected.iter().cloned().fold(1.0f64, f64::min);
    assert!(spread > 1e-4, "a random model still spreads probabilities");
    for (g, e) in got.iter().zip(&expected) {
        assert!((f64::from(*g) - e).abs() < 1e-5, "{g} vs {e}");
    }

    // The CLI on prepare's items.jsonl and on the raw catalogue gives the same numbers.
    let by_id = |path: &Path| -> std::collections::HashMap<String, f64> {
        jsonl(path)
            .into_iter()
            .map(|r| {
                (
                    r["item_id"].as_str().unwrap().to_string(),
                    r["p_tail"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    let from_prepared = tmp.path().join("prepared_scores.jsonl");
    score(&ckpt, &prepared.join("items.jsonl"), &from_prepared, &[]);
    let from_raw = tmp.path().join("raw_scores.jsonl");
    score(&ckpt, &raw, &from_raw, &[]);
    let (a, b) = (by_id(&from_prepared), by_id(&from_raw));
    assert_eq!(a.len(), 120);
    for (it, e) in items.iter().zip(&expected) {
        assert!((a[&it.item_id] - e).abs() < 1e-5);
        assert!((b[&it.item_id] - e).abs() < 1e-5);
    }
}

/// Prepared items seen the way the scorer sees an items.jsonl row.
fn enc_sources(items: &[&longtail_data::PreparedItem]) -> Vec<longtail_infer::RowFields> {
    items
        .iter()
        .map(|it| longtail_infer::RowFields {
            fields: it.fields.clone(),
            text: Some(it.text.clone()),
        })
        .collect()
}

/// Issue 29: a rerun without --resume used to truncate a finished output, `--output` equal to
/// `--input` emptied the input, a resume ignored a changed threshold or checkpoint, and two
/// `--resume` runs wrote one file at once.
#[test]
fn outputs_are_never_overwritten_mixed_or_written_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tiny_checkpoint(tmp.path());
    let input = tmp.path().join("items.jsonl");
    catalogue(&input, 200);
    let out = tmp.path().join("scores.jsonl");
    score(&ckpt, &input, &out, &["--chunk-rows", "40"]);
    let first = std::fs::read(&out).unwrap();
    let refused = |output: &Path, extra: &[&str], why: &str| {
        let o = score_command(&ckpt, &input, output, extra)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(why), "{extra:?}: {err}");
    };
    refused(&out, &["--chunk-rows", "40"], "already exists");
    assert_eq!(
        std::fs::read(&out).unwrap(),
        first,
        "the refused run kept the output"
    );
    refused(&input, &["--overwrite"], "is the input file");
    assert_eq!(jsonl(&input).len(), 200);
    // a resume whose rows would differ is refused, naming what changed
    refused(
        &out,
        &["--chunk-rows", "40", "--resume", "--threshold", "0.7"],
        "--threshold",
    );
    refused(
        &out,
        &["--chunk-rows", "40", "--resume", "--max-len", "16"],
        "--max-len",
    );
    // a damaged progress file is a clear error, not a panic or a silent restart
    let progress = tmp.path().join("scores.jsonl.progress.json");
    let sidecar = std::fs::read(&progress).unwrap();
    std::fs::write(&progress, b"{\"version\": 2, \"rows_consumed\": \"x\"").unwrap();
    refused(
        &out,
        &["--chunk-rows", "40", "--resume"],
        "unreadable progress file",
    );
    std::fs::write(&progress, &sidecar).unwrap();
    // --overwrite replaces it
    score(&ckpt, &input, &out, &["--chunk-rows", "40", "--overwrite"]);
    assert_eq!(std::fs::read(&out).unwrap(), first);

    // two writers of one output: the second is refused while the first runs
    let big = tmp.path().join("big.jsonl");
    catalogue(&big, 20_000);
    let busy = tmp.path().join("busy.jsonl");
    let mut child = score_command(&ckpt, &big, &busy, &["--chunk-rows", "40"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let sidecar = tmp.path().join("busy.jsonl.progress.json");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !sidecar.exists() {
        assert!(Instant::now() < deadline, "no progress recorded");
        std::thread::sleep(Duration::from_millis(5));
    }
    let o = score_command(&ckpt, &big, &busy, &["--chunk-rows", "40", "--resume"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    let still_running = child.try_wait().unwrap().is_none();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        still_running,
        "the first run ended before the second started"
    );
    assert!(
        !o.status.success() && err.contains("being written by another process"),
        "{err}"
    );
    // EX_TEMPFAIL, so a driver retries later instead of failing the job.
    assert_eq!(o.status.code(), Some(75), "{err}");
    assert!(err.contains(&format!("pid {}", child.id())), "{err}");
}
