//! Tests on the real all-MiniLM-L6-v2 tokenizer (BERT WordPiece, uncased). Each test records a
//! skip (longtail-testutil) if the file is absent.

mod common;

use std::collections::HashMap;

use longtail_tokenize::{
    bucket_batches, BucketConfig, Encoded, FieldTemplate, ItemTokenizer, TokenizeConfig,
};

fn item(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn tokens(tok: &ItemTokenizer, e: &Encoded) -> Vec<String> {
    e.ids.iter().map(|&i| tok.id_to_token(i).unwrap()).collect()
}

fn long_description(words: usize) -> String {
    (0..words)
        .map(|i| format!("feature{} improves office productivity.", i % 7))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn special_tokens_and_pad_come_from_the_file() {
    let Some(tok) = common::real_tokenizer(TokenizeConfig::default()) else {
        return;
    };
    assert_eq!(tok.num_special_tokens(), 2);
    assert_eq!(tok.content_budget(), 126);
    assert_eq!(tok.pad_id(), 0);
    assert_eq!(tok.token_to_id("[CLS]"), Some(101));
    let e = tok.encode_text("Stapler").unwrap();
    assert_eq!(e.ids.first(), Some(&101));
    assert_eq!(e.ids.last(), Some(&102));
    assert!(e.type_ids.iter().all(|&t| t == 0));
    assert!(!e.truncated);
}

#[test]
fn plain_text_that_fits_equals_tokenizer_encode() {
    let Some(tok) = common::real_tokenizer(TokenizeConfig::default()) else {
        return;
    };
    let raw = common::raw_tokenizer();
    let texts = [
        "HP 12C Financial Calculator",
        "Swingline Stapler, Commercial Desk, 20 Sheets, Black (S7044401D)",
        "Post-it® Super Sticky Notes, 3\" x 3\", Rio de Janeiro Collection",
        "联想ThinkPad笔记本电脑 14英寸",
        "得力(deli) 订书机 12号",
        "無印良品 ボールペン 0.5mm 黒",
        "café naïve résumé – “quotes” [SEP] literal",
        "  leading and trailing spaces  ",
    ];
    for text in texts {
        let ours = tok.encode_text(text).unwrap();
        let theirs = raw.encode(text, true).unwrap();
        assert_eq!(ours.ids, theirs.get_ids(), "ids differ for {text:?}");
        assert_eq!(
            ours.type_ids,
            theirs.get_type_ids(),
            "type ids for {text:?}"
        );
    }
}

#[test]
fn fields_that_fit_equal_encoding_the_joined_text() {
    let Some(tok) = common::real_tokenizer(TokenizeConfig::default()) else {
        return;
    };
    let raw = common::raw_tokenizer();
    let it = item(&[
        ("title", "HP 12C Financial Calculator"),
        ("brand", "HP"),
        ("categories", "Office Electronics, Calculators, Scientific"),
        ("description", "Reverse Polish Notation."),
    ]);
    let rendered = tok.render(&it).unwrap();
    assert_eq!(
        rendered,
        "HP 12C Financial Calculator | HP | Office Electronics, Calculators, Scientific | Reverse Polish Notation."
    );
    let ours = tok.encode_item(&it).unwrap();
    assert_eq!(
        ours.ids,
        raw.encode(rendered.as_str(), true).unwrap().get_ids()
    );
    // The separator is a real token and counts.
    assert_eq!(tokens(&tok, &ours).iter().filter(|t| *t == "|").count(), 3);
}

#[test]
fn chinese_titles_split_into_single_characters() {
    let Some(tok) = common::real_tokenizer(TokenizeConfig::default()) else {
        return;
    };
    // Expected tokens from Python `tokenizers` 0.23.2 on the same file. BERT uncased puts
    // spaces around every CJK ideograph, so each becomes one token: itself if in the vocab,
    // otherwise [UNK] (this vocab has few Chinese characters).
    let cases: [(&str, &[&str]); 2] = [
        (
            "联想ThinkPad笔记本电脑 14英寸",
            &[
                "[CLS]", "[UNK]", "[UNK]", "think", "##pad", "[UNK]", "[UNK]", "本", "[UNK]",
                "[UNK]", "14", "英", "[UNK]", "[SEP]",
            ],
        ),
        (
            "得力(deli) 订书机 12号",
            &[
                "[CLS]", "[UNK]", "力", "(", "del", "##i", ")", "[UNK]", "[UNK]", "[UNK]", "12",
                "[UNK]", "[SEP]",
            ],
        ),
    ];
    for (title, expected) in cases {
        let e = tok.encode_item(&item(&[("title", title)])).unwrap();
        assert_eq!(tokens(&tok, &e), expected, "{title}");
        // Property: one token per ideograph, and an in-vocab ideograph is kept as itself.
        let ideographs: Vec<char> = title.chars().filter(|c| is_cjk_ideograph(*c)).collect();
        let single: Vec<String> = tokens(&tok, &e)
            .into_iter()
            .filter(|t| t == "[UNK]" || t.chars().all(is_cjk_ideograph))
            .collect();
        assert_eq!(single.len(), ideographs.len());
        for (c, t) in ideographs.iter().zip(&single) {
            let in_vocab = tok.token_to_id(&c.to_string()).is_some();
            assert_eq!(t == &c.to_string(), in_vocab, "{c} -> {t}");
        }
    }
}

#[test]
fn japanese_text_is_kept() {
    let Some(tok) = common::real_tokenizer(TokenizeConfig::default()) else {
        return;
    };
    // Kana words go through WordPiece as words; the uncased normalizer strips the dakuten
    // (ぺ -> へ, ジ -> シ) because it removes combining marks after NFD.
    let e = tok.encode_text("ぺんてる エナージェル").unwrap();
    assert_eq!(
        tokens(&tok, &e),
        [
            "[CLS]", "へ", "##ん", "##て", "##る", "エ", "##ナ", "##ー", "##シ", "##ェ", "##ル",
            "[SEP]"
        ]
    );
    assert_eq!(tok.decode(&e.ids, true).unwrap(), "へんてる エナーシェル");
    // Kanji mixed with kana and ASCII: kanji are single tokens, unknown ones [UNK].
    let e = tok.encode_text("無印良品 ボールペン 0.5mm 黒").unwrap();
    assert_eq!(
        tokens(&tok, &e),
        [
            "[CLS]", "[UNK]", "[UNK]", "良", "[UNK]", "ホ", "##ー", "##ル", "##ヘ", "##ン", "0",
            ".", "5", "##mm", "[UNK]", "[SEP]"
        ]
    );
}

fn is_cjk_ideograph(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F | 0x2B820..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

#[test]
fn truncation_keeps_the_title_and_cuts_the_description() {
    let cfg = TokenizeConfig::new(FieldTemplate::catalogue(), 32);
    let Some(tok) = common::real_tokenizer(cfg) else {
        return;
    };
    let raw = common::raw_tokenizer();
    let title = "Swingline Stapler, Commercial Desk, 20 Sheets, Black";
    let it = item(&[
        ("title", title),
        ("brand", "Swingline"),
        ("categories", "Office Products, Staplers"),
        ("description", &long_description(50)),
    ]);
    let e = tok.encode_item(&it).unwrap();
    assert_eq!(e.len(), 32);
    assert!(e.truncated);
    assert_eq!(e.ids[0], 101);
    assert_eq!(*e.ids.last().unwrap(), 102);
    // The whole title, brand and categories, then as much description as fits.
    let head = raw
        .encode(
            format!("{title} | Swingline | Office Products, Staplers | ").as_str(),
            false,
        )
        .unwrap();
    assert_eq!(&e.ids[1..1 + head.len()], head.get_ids());
    let text = tok.decode(&e.ids, true).unwrap();
    assert!(text.starts_with("swingline stapler, commercial desk, 20 sheets, black | swingline"));
    assert!(text.contains("feature0"));
}

#[test]
fn description_first_template_still_keeps_the_title() {
    let template = FieldTemplate::parse("{description} | {title}").unwrap();
    let Some(tok) = common::real_tokenizer(TokenizeConfig::new(template, 16)) else {
        return;
    };
    let it = item(&[
        ("title", "Pilot G2 Gel Pen"),
        ("description", &long_description(30)),
    ]);
    let e = tok.encode_item(&it).unwrap();
    assert_eq!(e.len(), 16);
    let text = tok.decode(&e.ids, true).unwrap();
    assert!(text.ends_with("| pilot g2 gel pen"), "{text}");
    assert!(text.starts_with("feature0"), "{text}");
}

#[test]
fn separator_dropped_when_description_gets_no_room() {
    let Some(tok) = common::real_tokenizer(TokenizeConfig::new(FieldTemplate::catalogue(), 8))
    else {
        return;
    };
    // [CLS] hp 12 ##c | hp [SEP] = 7 tokens; one budget slot is left, only enough for the
    // " | " before the description, so the separator must not dangle.
    let it = item(&[
        ("title", "HP 12C"),
        ("brand", "HP"),
        ("description", "Reverse Polish Notation"),
    ]);
    let e = tok.encode_item(&it).unwrap();
    assert_eq!(
        tokens(&tok, &e),
        ["[CLS]", "hp", "12", "##c", "|", "hp", "[SEP]"]
    );
    assert!(e.truncated);
    // And the title alone longer than the budget is cut from its end.
    let e = tok
        .encode_item(&item(&[("title", &long_description(20)), ("brand", "HP")]))
        .unwrap();
    assert_eq!(e.len(), 8);
    assert!(!tokens(&tok, &e).contains(&"|".to_string()));
}

#[test]
fn missing_fields_drop_with_their_separator() {
    let Some(tok) = common::real_tokenizer(TokenizeConfig::default()) else {
        return;
    };
    let e = tok
        .encode_item(&item(&[
            ("title", "Pen"),
            ("brand", ""),
            ("description", "Blue"),
        ]))
        .unwrap();
    assert_eq!(tokens(&tok, &e), ["[CLS]", "pen", "|", "blue", "[SEP]"]);
    // A prepared items.jsonl row (`fields` + joined `text`) and a plain text row.
    let prepared = serde_json::json!({"item_id": "X", "fields": {"title": "Pen", "brand": "Bic"}, "text": "Pen | Bic"});
    let plain = serde_json::json!({"text": "Pen | Bic"});
    assert_eq!(
        tok.encode_item(&prepared).unwrap(),
        tok.encode_item(&plain).unwrap()
    );
    // Nothing at all: just the special tokens.
    let empty = tok.encode_item(&item(&[])).unwrap();
    assert_eq!(empty.ids, [101, 102]);
}

#[test]
fn padding_and_masks() {
    let Some(tok) = common::real_tokenizer(TokenizeConfig::default()) else {
        return;
    };
    let texts = ["Pen", "Swingline Stapler, Commercial Desk", "得力 订书机"];
    let encoded = tok.encode_batch_parallel(&texts).unwrap();
    let batch = tok.pad_batch(&encoded, &[2, 0, 1]).unwrap();
    let longest = encoded.iter().map(Encoded::len).max().unwrap();
    assert_eq!(batch.shape(), (3, longest));
    assert_eq!(batch.indices, [2, 0, 1]);
    for (r, &i) in batch.indices.iter().enumerate() {
        let len = encoded[i].len();
        assert_eq!(batch.lengths[r], len);
        assert_eq!(&batch.row_ids(r)[..len], encoded[i].ids.as_slice());
        assert!(batch.row_ids(r)[len..].iter().all(|&x| x == tok.pad_id()));
        assert_eq!(batch.row_mask(r).iter().sum::<u32>() as usize, len);
        assert!(batch.row_mask(r)[..len].iter().all(|&m| m == 1));
    }
    assert_eq!(batch.token_type_ids.len(), batch.input_ids.len());
    assert!(tok.pad_batch(&encoded, &[3]).is_err());
}

#[test]
fn office_catalogue_parallel_and_bucketing() {
    let cfg = TokenizeConfig::default().with_threads(2);
    let Some(tok) = common::real_tokenizer(cfg) else {
        return;
    };
    let Some(items) = common::office_items() else {
        return;
    };
    assert_eq!(tok.num_threads(), 2);
    let encoded = tok.encode_batch_parallel(&items).unwrap();
    assert_eq!(encoded.len(), items.len());
    // Parallel preserves order.
    for i in [0, 1, items.len() / 2, items.len() - 1] {
        assert_eq!(encoded[i], tok.encode_item(&items[i]).unwrap());
    }
    for (row, e) in items.iter().zip(&encoded) {
        assert!(e.len() <= 128);
        // The whole title survives truncation whenever it fits in the budget on its own.
        let title = row["title"].as_str().unwrap();
        let t = tok.encode_text(title).unwrap();
        if t.len() <= 128 {
            assert_eq!(&e.ids[..t.len() - 1], &t.ids[..t.len() - 1], "{title}");
        }
    }
    let truncated = encoded.iter().filter(|e| e.truncated).count();
    assert!(truncated > 100, "most descriptions are long: {truncated}");

    let lengths: Vec<usize> = encoded.iter().map(Encoded::len).collect();
    let cfg = BucketConfig {
        max_batch_tokens: 4096,
        max_batch_size: Some(64),
        window: 256,
        shuffle_seed: Some(3),
    };
    let batches = bucket_batches(&lengths, &cfg).unwrap();
    let mut seen = vec![false; items.len()];
    for b in &batches {
        let batch = tok.pad_batch(&encoded, b).unwrap();
        assert!(batch.batch_size() * batch.seq_len <= 4096);
        assert!(batch.batch_size() <= 64);
        for &i in b {
            assert!(!seen[i], "index {i} twice");
            seen[i] = true;
        }
    }
    assert!(seen.iter().all(|&s| s));
}
