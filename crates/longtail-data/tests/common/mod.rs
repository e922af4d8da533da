//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// `$LONGTAIL_TEST_OFFICE`-style override or `../../../shared/datasets/NAME`
/// relative to this crate; `None` (and a recorded skip) if absent.
pub fn real_data(env: &str, name: &str) -> Option<PathBuf> {
    let dir = std::env::var(env).map(PathBuf::from).unwrap_or_else(|_| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/datasets")
            .join(name)
    });
    if dir.join("items.jsonl").is_file() && dir.join("interactions.csv").is_file() {
        Some(dir)
    } else {
        longtail_testutil::skip!("real data not found at {} (set {env})", dir.display());
        None
    }
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../datasets/fixtures")
        .join(name)
}

pub fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `(file name, line, reason code)` of every reject.
pub fn rejects(out: &Path) -> Vec<(String, u64, String)> {
    read_jsonl(&out.join("rejects.jsonl"))
        .iter()
        .map(|r| {
            let file = Path::new(r["file"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let reason = r["reason"].as_str().unwrap();
            let (code, detail) = reason.split_once(": ").expect("code: detail");
            assert!(!detail.is_empty());
            (file, r["line"].as_u64().unwrap(), code.to_string())
        })
        .collect()
}

/// item id -> (label, split) from an output `items.jsonl`.
pub fn labels_and_splits(out: &Path) -> BTreeMap<String, (String, String)> {
    let mut map = BTreeMap::new();
    for v in read_jsonl(&out.join("items.jsonl")) {
        let id = v["item_id"].as_str().unwrap().to_string();
        let prev = map.insert(
            id.clone(),
            (
                v["label"].as_str().unwrap().to_string(),
                v["split"].as_str().unwrap().to_string(),
            ),
        );
        assert!(prev.is_none(), "item {id} appears twice in items.jsonl");
    }
    map
}

/// A second, deliberately naive Pareto implementation: counts from a
/// `user,item,...` CSV with a header, items ranked by (-count, id), head up
/// to and including the item whose cumulative share reaches `share`.
pub fn pareto_labels_from_raw(
    item_ids: &[String],
    interactions_csv: &Path,
    share: f64,
) -> HashMap<String, String> {
    let text = std::fs::read_to_string(interactions_csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let item_col = header.iter().position(|c| *c == "item_id").unwrap();
    let mut counts: HashMap<&str, u64> = item_ids.iter().map(|i| (i.as_str(), 0)).collect();
    let mut total = 0u64;
    for line in lines {
        let item = line.split(',').nth(item_col).unwrap();
        if let Some(c) = counts.get_mut(item) {
            *c += 1;
            total += 1;
        }
    }
    let mut ranked: Vec<(&str, u64)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut out = HashMap::new();
    let mut cum = 0u64;
    let mut reached = false;
    for (id, c) in ranked {
        let label = if reached || c == 0 { "tail" } else { "head" };
        cum += c;
        if cum as f64 / total as f64 >= share {
            reached = true;
        }
        out.insert(id.to_string(), label.to_string());
    }
    out
}

/// Runs `scripts/check_prepare.py` if a Python 3 interpreter is available.
pub fn python_check(items: &Path, interactions: &Path, out: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/check_prepare.py");
    let run = std::process::Command::new("python3")
        .arg(&script)
        .arg(items)
        .arg(interactions)
        .arg(out)
        .output();
    match run {
        Err(e) => longtail_testutil::skip!("python check: cannot run python3: {e}"),
        Ok(o) => {
            let stdout = String::from_utf8_lossy(&o.stdout);
            let stderr = String::from_utf8_lossy(&o.stderr);
            assert!(
                o.status.success(),
                "check_prepare.py failed:\n{stdout}\n{stderr}"
            );
            assert!(stdout.contains("check_prepare: OK"), "{stdout}");
        }
    }
}

/// Asserts read == kept + rejected for each file in `stats.json` and
/// returns `(read, kept, rejected)` per file role.
pub fn file_counts(out: &Path) -> HashMap<String, (u64, u64, u64)> {
    let stats: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("stats.json")).unwrap()).unwrap();
    let mut map = HashMap::new();
    for f in stats["files"].as_array().unwrap() {
        let (read, kept, rejected) = (
            f["read"].as_u64().unwrap(),
            f["kept"].as_u64().unwrap(),
            f["rejected"].as_u64().unwrap(),
        );
        assert_eq!(read, kept + rejected, "{f}");
        map.insert(
            f["role"].as_str().unwrap().to_string(),
            (read, kept, rejected),
        );
    }
    map
}
