//! "Any tokenizer.json": tiny hand-built BPE (whitespace and byte-level) and Unigram
//! tokenizers, so special tokens, padding ids and offset-based field truncation are checked
//! beyond BERT WordPiece.

use std::collections::HashMap;

use longtail_tokenize::{FieldTemplate, ItemTokenizer, TokenizeConfig, TokenizeError};
use proptest::strategy::Strategy;
use serde_json::{json, Value};
use tokenizers::models::unigram::Unigram;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::Tokenizer;

fn item(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn special(id: u32, content: &str) -> Value {
    json!({"id": id, "content": content, "single_word": false, "lstrip": false,
           "rstrip": false, "normalized": false, "special": true})
}

fn template_processing(cls: (&str, u32), sep: (&str, u32)) -> Value {
    json!({
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": cls.0, "type_id": 0}},
                   {"Sequence": {"id": "A", "type_id": 0}},
                   {"SpecialToken": {"id": sep.0, "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": cls.0, "type_id": 0}},
                 {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": sep.0, "type_id": 0}},
                 {"Sequence": {"id": "B", "type_id": 1}},
                 {"SpecialToken": {"id": sep.0, "type_id": 1}}],
        "special_tokens": {
            cls.0: {"id": cls.0, "ids": [cls.1], "tokens": [cls.0]},
            sep.0: {"id": sep.0, "ids": [sep.1], "tokens": [sep.0]},
        }
    })
}

/// Whitespace-split BPE, `<s> $A </s>`, `<pad>` only in the vocabulary (no padding config).
fn whitespace_bpe_json() -> String {
    let mut vocab = serde_json::Map::new();
    for (i, t) in ["<pad>", "<s>", "</s>", "<unk>"].iter().enumerate() {
        vocab.insert(t.to_string(), json!(i));
    }
    let chars = "abcdefghijklmnopqrstuvwxyz0123456789|,.";
    for c in chars.chars() {
        let n = vocab.len();
        vocab.insert(c.to_string(), json!(n));
    }
    let merges = [
        "p e", "pe n", "i n", "in k", "b l", "bl u", "blu e", "r e", "re d",
    ];
    for m in merges {
        let n = vocab.len();
        vocab.insert(m.replace(' ', ""), json!(n));
    }
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [special(0, "<pad>"), special(1, "<s>"), special(2, "</s>"), special(3, "<unk>")],
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": template_processing(("<s>", 1), ("</s>", 2)),
        "decoder": null,
        "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>",
                  "continuing_subword_prefix": null, "end_of_word_suffix": null,
                  "fuse_unk": false, "byte_fallback": false, "vocab": vocab, "merges": merges}
    })
    .to_string()
}

/// GPT-2 style byte-level BPE: no special tokens added, a padding config with pad id 5, and
/// tokens like `Ġink` whose offsets include the preceding space.
fn byte_level_bpe_json(with_padding: bool) -> String {
    let mut vocab = serde_json::Map::new();
    for t in ["<|endoftext|>", "Ġ", "|", ",", "."] {
        let n = vocab.len();
        vocab.insert(t.to_string(), json!(n));
    }
    for c in "abcdefghijklmnopqrstuvwxyz0123456789".chars() {
        let n = vocab.len();
        vocab.insert(c.to_string(), json!(n));
    }
    let merges = [
        "Ġ p", "Ġp e", "Ġpe n", "p e", "pe n", "Ġ i", "Ġi n", "Ġin k", "Ġ |",
    ];
    for m in merges {
        let n = vocab.len();
        vocab.insert(m.replace(' ', ""), json!(n));
    }
    let padding = if with_padding {
        json!({"strategy": "BatchLongest", "direction": "Right", "pad_to_multiple_of": null,
               "pad_id": 5, "pad_type_id": 0, "pad_token": "a"})
    } else {
        Value::Null
    };
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": padding,
        "added_tokens": [special(0, "<|endoftext|>")],
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null,
                  "continuing_subword_prefix": null, "end_of_word_suffix": null,
                  "fuse_unk": false, "byte_fallback": false, "vocab": vocab, "merges": merges}
    })
    .to_string()
}

/// SentencePiece-style Unigram built with the `tokenizers` API: Metaspace pre-tokenizer,
/// `<cls> $A <sep>`, `<pad>` = 1.
fn unigram() -> Tokenizer {
    let mut vocab: Vec<(String, f64)> = ["<unk>", "<pad>", "<cls>", "<sep>"]
        .iter()
        .map(|t| (t.to_string(), 0.0))
        .collect();
    for w in ["▁pen", "▁ink", "▁blue", "▁red", "▁|", "▁"] {
        vocab.push((w.to_string(), -2.0));
    }
    for c in "abcdefghijklmnopqrstuvwxyz0123456789|,.".chars() {
        vocab.push((c.to_string(), -5.0));
    }
    let model = Unigram::from(vocab, Some(0), false).unwrap();
    let mut tok = Tokenizer::new(model);
    tok.with_pre_tokenizer(Some(Metaspace::new('▁', PrependScheme::Always, true)));
    tok.with_post_processor(Some(
        TemplateProcessing::builder()
            .try_single("<cls> $A <sep>")
            .unwrap()
            .special_tokens(vec![("<cls>", 2), ("<sep>", 3)])
            .build()
            .unwrap(),
    ));
    tok
}

fn load_json(json: &str, cfg: TokenizeConfig) -> (ItemTokenizer, Tokenizer) {
    // Through a real file, like any downloaded tokenizer.json.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, json).unwrap();
    let ours = ItemTokenizer::from_file(&path, cfg).unwrap();
    let raw = Tokenizer::from_file(&path).unwrap();
    (ours, raw)
}

fn shop_item() -> HashMap<String, String> {
    item(&[
        ("title", "pen ink"),
        ("brand", "red"),
        ("categories", "pens, ink"),
        ("description", "blue ink pen. red ink pen. blue pen."),
    ])
}

#[test]
fn bpe_special_tokens_pad_and_parity() {
    let (tok, raw) = load_json(&whitespace_bpe_json(), TokenizeConfig::default());
    assert_eq!(tok.num_special_tokens(), 2);
    assert_eq!(tok.pad_id(), 0, "<pad> found in the vocabulary");
    let it = shop_item();
    let rendered = tok.render(&it).unwrap();
    let e = tok.encode_item(&it).unwrap();
    assert_eq!(
        e.ids,
        raw.encode(rendered.as_str(), true).unwrap().get_ids()
    );
    assert_eq!((e.ids[0], *e.ids.last().unwrap()), (1, 2));
    assert!(!e.truncated);
}

#[test]
fn bpe_truncation_keeps_title() {
    let (tok, raw) = load_json(
        &whitespace_bpe_json(),
        TokenizeConfig::new(FieldTemplate::catalogue(), 11),
    );
    let e = tok.encode_item(&shop_item()).unwrap();
    assert_eq!(e.len(), 11);
    assert!(e.truncated);
    // <s> pen ink | red | pen s , ink </s>: the description (cut first) is gone, and so is its
    // separator; categories fit exactly.
    let expected = raw.encode("pen ink | red | pens, ink", true).unwrap();
    assert_eq!(e.ids, expected.get_ids());
    // One slot less: the categories are cut from their end.
    let (tok, raw) = load_json(
        &whitespace_bpe_json(),
        TokenizeConfig::new(FieldTemplate::catalogue(), 10),
    );
    let e = tok.encode_item(&shop_item()).unwrap();
    let expected = raw.encode("pen ink | red | pens,", true).unwrap();
    assert_eq!(e.ids, expected.get_ids());
}

#[test]
fn bpe_non_prefix_template_cuts_description_in_the_middle() {
    let template = FieldTemplate::parse("{description} | {title}").unwrap();
    let (tok, raw) = load_json(&whitespace_bpe_json(), TokenizeConfig::new(template, 8));
    let e = tok.encode_item(&shop_item()).unwrap();
    // budget 6: title (2) + separator (1) + first 3 description tokens.
    let expected = raw.encode("blue ink pen | pen ink", true).unwrap();
    assert_eq!(e.ids, expected.get_ids());
}

#[test]
fn byte_level_bpe_offsets_map_to_fields() {
    let (tok, raw) = load_json(&byte_level_bpe_json(true), TokenizeConfig::default());
    assert_eq!(tok.num_special_tokens(), 0);
    assert_eq!(tok.pad_id(), 5, "pad id from the padding config");
    let it = item(&[
        ("title", "pen ink"),
        ("brand", "pen"),
        ("description", "ink pen ink"),
    ]);
    let rendered = tok.render(&it).unwrap();
    let e = tok.encode_item(&it).unwrap();
    assert_eq!(
        e.ids,
        raw.encode(rendered.as_str(), true).unwrap().get_ids()
    );

    // pen Ġink Ġ| Ġpen Ġ| Ġink ...: with 4 slots the brand's separator fits but cutting stops
    // at the brand; the result equals encoding "pen ink | pen".
    let cfg = TokenizeConfig::new(FieldTemplate::catalogue(), 4);
    let (tok, raw) = load_json(&byte_level_bpe_json(true), cfg);
    let e = tok.encode_item(&it).unwrap();
    assert_eq!(e.ids, raw.encode("pen ink | pen", true).unwrap().get_ids());
    // 3 slots: title + dangling separator -> separator dropped.
    let cfg = TokenizeConfig::new(FieldTemplate::catalogue(), 3);
    let (tok, raw) = load_json(&byte_level_bpe_json(true), cfg);
    let e = tok.encode_item(&it).unwrap();
    assert_eq!(e.ids, raw.encode("pen ink", true).unwrap().get_ids());
}

#[test]
fn byte_level_general_path_with_description_first() {
    let template = FieldTemplate::parse("{description} | {title}").unwrap();
    let cfg = TokenizeConfig::new(template, 4);
    let (tok, raw) = load_json(&byte_level_bpe_json(true), cfg);
    let it = item(&[("title", "pen ink"), ("description", "ink pen ink")]);
    let e = tok.encode_item(&it).unwrap();
    // Keep the title's two tokens and the separator `Ġ|`; one description token.
    let full = raw.encode("ink pen ink | pen ink", false).unwrap();
    let n = full.len();
    let expected = [
        full.get_ids()[0],
        full.get_ids()[n - 3],
        full.get_ids()[n - 2],
        full.get_ids()[n - 1],
    ];
    assert_eq!(e.ids, expected);
}

#[test]
fn missing_pad_token_is_an_error_unless_overridden() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, byte_level_bpe_json(false)).unwrap();
    let err = ItemTokenizer::from_file(&path, TokenizeConfig::default()).unwrap_err();
    assert!(matches!(err, TokenizeError::NoPadToken));
    let cfg = TokenizeConfig {
        pad_id: Some(0),
        ..TokenizeConfig::default()
    };
    assert_eq!(ItemTokenizer::from_file(&path, cfg).unwrap().pad_id(), 0);
}

#[test]
fn unigram_special_tokens_pad_and_parity() {
    let raw = unigram();
    let tok = ItemTokenizer::from_tokenizer(raw.clone(), TokenizeConfig::default()).unwrap();
    assert_eq!(tok.num_special_tokens(), 2);
    assert_eq!(tok.pad_id(), 1);
    let it = shop_item();
    let rendered = tok.render(&it).unwrap();
    let e = tok.encode_item(&it).unwrap();
    assert_eq!(
        e.ids,
        raw.encode(rendered.as_str(), true).unwrap().get_ids()
    );
    assert_eq!((e.ids[0], *e.ids.last().unwrap()), (2, 3));
    // The serialized form loads back through the file path with identical results.
    let json = raw.to_string(false).unwrap();
    let (from_file, _) = load_json(&json, TokenizeConfig::default());
    assert_eq!(from_file.encode_item(&it).unwrap(), e);
}

#[test]
fn unigram_truncation_keeps_title() {
    let raw = unigram();
    let cfg = TokenizeConfig::new(FieldTemplate::catalogue(), 7);
    let tok = ItemTokenizer::from_tokenizer(raw.clone(), cfg).unwrap();
    let e = tok.encode_item(&shop_item()).unwrap();
    // <cls> ▁pen ▁ink ▁| ▁red ▁| <sep> would dangle: the separator goes, brand stays.
    assert_eq!(e.ids, raw.encode("pen ink | red", true).unwrap().get_ids());
    assert!(e.truncated);
    let batch = tok
        .pad_batch(&[e.clone(), tok.encode_text("pen").unwrap()], &[0, 1])
        .unwrap();
    assert_eq!(batch.row_ids(1)[3..], [1, 1, 1]);
}

#[test]
fn max_len_must_leave_room_for_content() {
    let err = ItemTokenizer::from_tokenizer(
        unigram(),
        TokenizeConfig::new(FieldTemplate::catalogue(), 2),
    )
    .unwrap_err();
    assert!(matches!(
        err,
        TokenizeError::MaxLenTooSmall {
            max_len: 2,
            n_special: 2
        }
    ));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..Default::default()
    })]

    /// Any rows through the byte-level and whitespace BPEs: never a panic, one encoding per
    /// row (in order, parallel == one by one), never longer than `max_len`.
    #[test]
    fn any_rows_encode_one_each_within_max_len(
        rows in proptest::collection::vec(
            proptest::collection::hash_map(
                proptest::sample::select(vec!["title", "brand", "categories", "description", "text"])
                    .prop_map(str::to_string),
                proptest::prelude::any::<String>(),
                0..5,
            ),
            0..12,
        ),
        max_len in 3usize..40,
        byte_level in proptest::prelude::any::<bool>(),
    ) {
        let json = if byte_level { byte_level_bpe_json(true) } else { whitespace_bpe_json() };
        let cfg = TokenizeConfig::new(FieldTemplate::catalogue(), max_len).with_threads(2);
        let (tok, _) = load_json(&json, cfg);
        let parallel = tok.encode_batch_parallel(&rows).unwrap();
        proptest::prop_assert_eq!(parallel.len(), rows.len());
        for (row, e) in rows.iter().zip(&parallel) {
            proptest::prop_assert_eq!(e, &tok.encode_item(row).unwrap());
            proptest::prop_assert!(e.len() <= max_len, "{} > {max_len}", e.len());
        }
    }
}
