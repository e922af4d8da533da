//! Fault injection: the real Office data with malformed rows spliced in at
//! known lines. `prepare` must succeed, account for every row, and report
//! each fault at its exact line.

mod common;

use common::{file_counts, python_check, read_jsonl, real_data, rejects};
use longtail_data::{prepare, PrepareOptions};

/// Inserts `rows` so that each ends up at the given 1-based line number.
fn splice(original: &[u8], rows: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = original
        .split(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect();
    if lines.last().is_some_and(Vec::is_empty) {
        lines.pop();
    }
    for (at, row) in rows {
        lines.insert(*at as usize - 1, row.clone());
    }
    let mut out = lines.join(&b'\n');
    out.push(b'\n');
    out
}

#[test]
fn injected_faults_are_rejected_at_their_lines() {
    let Some(data) = real_data("LONGTAIL_TEST_OFFICE", "amazon-office-2014") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let raw_items = std::fs::read(data.join("items.jsonl")).unwrap();
    let first_id = read_jsonl(&data.join("items.jsonl"))[0]["item_id"]
        .as_str()
        .unwrap()
        .to_string();

    let huge = format!(
        "{{\"item_id\": \"HUGE\", \"title\": \"{}\"}}",
        "x".repeat(10 << 20)
    );
    // ascending target lines, inserted in order so the numbers hold
    let item_faults: Vec<(u64, Vec<u8>, &str)> = vec![
        (
            5,
            b"{\"item_id\": \"TRUNC\", \"title\": \"cut of".to_vec(),
            "invalid-json",
        ),
        (
            100,
            b"{\"item_id\": \"BADUTF\", \"title\": \"caf\xe9 \xff\"}".to_vec(),
            "invalid-utf8",
        ),
        (1000, huge.into_bytes(), "line-too-long"),
        (
            1500,
            format!("{{\"item_id\": \"{first_id}\", \"title\": \"again\"}}").into_bytes(),
            "duplicate-id",
        ),
        (
            2000,
            b"{\"item_id\": \"EMPTY\", \"title\": \"\", \"brand\": \"\"}".to_vec(),
            "kept",
        ),
    ];
    let items = tmp.path().join("items.jsonl");
    let spliced: Vec<(u64, Vec<u8>)> = item_faults
        .iter()
        .map(|(l, r, _)| (*l, r.clone()))
        .collect();
    std::fs::write(&items, splice(&raw_items, &spliced)).unwrap();

    let raw_inter = std::fs::read(data.join("interactions.csv")).unwrap();
    let inter = tmp.path().join("interactions.csv");
    // line 1 is the header
    std::fs::write(
        &inter,
        splice(
            &raw_inter,
            &[(30_000, b"U00001,NO_SUCH_ITEM,1400000000".to_vec())],
        ),
    )
    .unwrap();

    let out = tmp.path().join("out");
    let s = prepare(
        &PrepareOptions::new(&items, &inter, &out),
        &longtail_progress::ignore,
    )
    .unwrap();

    let counts = file_counts(&out);
    assert_eq!(counts["items"], (2425, 2421, 4));
    assert_eq!(counts["interactions"], (53259, 53258, 1));
    assert_eq!(s.n_interactions, 53258);
    assert_eq!(s.empty_text, 1);

    let mut want: Vec<(String, u64, String)> = item_faults
        .iter()
        .filter(|(_, _, r)| *r != "kept")
        .map(|(l, _, r)| ("items.jsonl".to_string(), *l, r.to_string()))
        .collect();
    want.push(("interactions.csv".into(), 30_000, "unknown-item".into()));
    assert_eq!(rejects(&out), want);

    let kept = read_jsonl(&out.join("items.jsonl"));
    let empty = kept
        .iter()
        .find(|v| v["item_id"] == "EMPTY")
        .expect("empty-title item kept");
    assert_eq!(empty["text"], "");
    assert_eq!(empty["label"], "tail");
    // the first occurrence of the duplicated id keeps its real title
    assert_ne!(kept[0]["fields"]["title"], "again");
    assert!(!kept
        .iter()
        .any(|v| v["item_id"] == "HUGE" || v["item_id"] == "TRUNC"));
    python_check(&items, &inter, &out);
}

#[test]
fn splice_places_rows_at_the_requested_lines() {
    let out = splice(b"a\nb\nc\n", &[(2, b"X".to_vec()), (5, b"Y".to_vec())]);
    assert_eq!(out, b"a\nX\nb\nc\nY\n");
}
