//! Rust ids == Python `tokenizers` ids for the first 1,000 real Office titles.
//!
//! The reference is produced by `scripts/make_token_reference.py` (see its docstring) and read
//! from `$LONGTAIL_TEST_TOKEN_REFERENCE`, default `<workspace>/target/token-reference/office_titles.jsonl`.
//! `make test` makes it; without the file the test records a skip that says how to make it.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use longtail_tokenize::{FieldTemplate, ItemTokenizer, TokenizeConfig};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn reference_path() -> PathBuf {
    std::env::var_os("LONGTAIL_TEST_TOKEN_REFERENCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            common::workspace_root().join("target/token-reference/office_titles.jsonl")
        })
}

#[test]
fn office_titles_match_python_tokenizers() {
    let path = reference_path();
    let Ok(text) = std::fs::read_to_string(&path) else {
        return longtail_testutil::skip!(
            "no reference at {}: `make test` makes it (or run python3 scripts/make_token_reference.py \
             --items ../shared/datasets/amazon-office-2014/items.jsonl \
             --tokenizer checkpoints/base/all-MiniLM-L6-v2/tokenizer.json --out {0}; \
             needs `pip install tokenizers`), or point LONGTAIL_TEST_TOKEN_REFERENCE at an existing file",
            path.display()
        );
    };
    let mut lines = text.lines();
    let header: Value = serde_json::from_str(lines.next().expect("header line")).unwrap();
    assert_eq!(header["kind"], "header");
    let tok_path = PathBuf::from(header["tokenizer"].as_str().unwrap());
    let tok_bytes = std::fs::read(&tok_path)
        .unwrap_or_else(|e| panic!("reference names {}: {e}", tok_path.display()));
    assert_eq!(
        hex::encode(Sha256::digest(&tok_bytes)),
        header["tokenizer_sha256"].as_str().unwrap(),
        "{} changed since the reference was made: rerun scripts/make_token_reference.py",
        tok_path.display()
    );
    let items_path = header["items"].as_str().unwrap();
    let titles: HashMap<String, String> = std::fs::read_to_string(items_path)
        .unwrap_or_else(|e| panic!("reference names {items_path}: {e}"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let row: Value = serde_json::from_str(l).unwrap();
            (
                row["item_id"].as_str().unwrap().to_string(),
                row["title"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();

    // No truncation: max_len far above any title.
    let tok = ItemTokenizer::from_bytes(
        &tok_bytes,
        TokenizeConfig::new(FieldTemplate::plain_text(), 1 << 20),
    )
    .unwrap();
    // The catalogue template with only a title must give the same ids.
    let catalogue = ItemTokenizer::from_bytes(
        &tok_bytes,
        TokenizeConfig::new(FieldTemplate::catalogue(), 1 << 20),
    )
    .unwrap();

    let mut checked = 0;
    let mut mismatches = Vec::new();
    for line in lines {
        let row: Value = serde_json::from_str(line).unwrap();
        let item_id = row["item_id"].as_str().unwrap();
        let title = &titles[item_id];
        let expected: Vec<u32> = row["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let ours = tok.encode_text(title).unwrap();
        let via_fields = catalogue.encode_item(&[("title", title.as_str())]).unwrap();
        assert_eq!(ours, via_fields, "{item_id}");
        if ours.ids != expected {
            mismatches.push(format!(
                "{item_id} {title:?}: rust {:?} python {expected:?}",
                ours.ids
            ));
        }
        checked += 1;
    }
    assert_eq!(checked, header["n"].as_u64().unwrap() as usize);
    assert!(checked >= 1000, "reference has only {checked} titles");
    assert!(
        mismatches.is_empty(),
        "{} of {checked} titles differ, first: {:#?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(5)]
    );
    eprintln!("python parity: {checked} titles identical");
}
