//! Shared helpers for integration tests: locating the real tokenizer and Office data.
#![allow(dead_code)]

use std::path::PathBuf;

use longtail_tokenize::{ItemTokenizer, TokenizeConfig};

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `$LONGTAIL_TEST_BASE_MODEL/tokenizer.json`, default `checkpoints/base/all-MiniLM-L6-v2`.
pub fn base_tokenizer_path() -> PathBuf {
    let dir = std::env::var_os("LONGTAIL_TEST_BASE_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("checkpoints/base/all-MiniLM-L6-v2"));
    dir.join("tokenizer.json")
}

/// The real all-MiniLM-L6-v2 tokenizer, or `None` (with a recorded skip) if it is absent.
pub fn real_tokenizer(config: TokenizeConfig) -> Option<ItemTokenizer> {
    let path = base_tokenizer_path();
    if !path.exists() {
        longtail_testutil::skip!(
            "{} not found (run make setup or set LONGTAIL_TEST_BASE_MODEL)",
            path.display()
        );
        return None;
    }
    Some(ItemTokenizer::from_file(&path, config).expect("load real tokenizer"))
}

/// A raw `tokenizers::Tokenizer` for the same file, with the file's padding/truncation off.
pub fn raw_tokenizer() -> tokenizers::Tokenizer {
    let mut t = tokenizers::Tokenizer::from_file(base_tokenizer_path()).unwrap();
    t.with_padding(None);
    t.with_truncation(None).unwrap();
    t
}

/// `$LONGTAIL_TEST_OFFICE_ITEMS`, default `<workspace>/../shared/datasets/amazon-office-2014/items.jsonl`.
pub fn office_items_path() -> PathBuf {
    std::env::var_os("LONGTAIL_TEST_OFFICE_ITEMS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            workspace_root().join("../shared/datasets/amazon-office-2014/items.jsonl")
        })
}

/// All Office catalogue rows as JSON, or `None` (with a recorded skip) if absent.
pub fn office_items() -> Option<Vec<serde_json::Value>> {
    let path = office_items_path();
    let Ok(text) = std::fs::read_to_string(&path) else {
        longtail_testutil::skip!(
            "{} not found (set LONGTAIL_TEST_OFFICE_ITEMS)",
            path.display()
        );
        return None;
    };
    Some(
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("items.jsonl row"))
            .collect(),
    )
}
