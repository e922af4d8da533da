//! The item tokenizer: loads any `tokenizer.json`, renders items through the field template,
//! encodes, truncates by field priority and adds special tokens with the file's own
//! post-processor.

use std::path::Path;
use std::sync::Arc;

use tokenizers::{Encoding, PostProcessor, Token, Tokenizer, TruncationDirection};
use tokenizers::{TruncationParams, TruncationStrategy};

use crate::error::{Result, TokenizeError};
use crate::fields::FieldSource;
pub use crate::padding::Encoded;
use crate::padding::{pad_batch, Batch, PadSpec};
use crate::template::FieldTemplate;
use crate::truncation::{plan, token_roles, trim_dangling_separators};

/// First guess of text bytes needed per kept token when tokenizing only a prefix
/// (all-MiniLM on Office texts: 126 tokens never took more than ~720 bytes).
const PREFIX_BYTES_PER_TOKEN: usize = 6;

/// Pad tokens looked up in the vocabulary when the file has no padding config.
const PAD_CANDIDATES: [&str; 4] = ["[PAD]", "<pad>", "<|pad|>", "<PAD>"];

/// How items are turned into token ids.
#[derive(Debug, Clone)]
pub struct TokenizeConfig {
    /// Which fields make up the text and in which order they are cut.
    pub template: FieldTemplate,
    /// Maximum sequence length *including* special tokens.
    pub max_len: usize,
    /// Threads for [`ItemTokenizer::encode_batch_parallel`]: `Some(n)` builds a dedicated rayon
    /// pool of `n` threads, `None` uses the caller's (global) rayon pool.
    pub num_threads: Option<usize>,
    /// Overrides the padding id found in the file (for tokenizers that define none).
    pub pad_id: Option<u32>,
}

impl TokenizeConfig {
    pub fn new(template: FieldTemplate, max_len: usize) -> Self {
        Self {
            template,
            max_len,
            num_threads: None,
            pad_id: None,
        }
    }

    pub fn with_threads(mut self, num_threads: usize) -> Self {
        self.num_threads = Some(num_threads);
        self
    }
}

impl Default for TokenizeConfig {
    /// The catalogue template with `max_len` 128.
    fn default() -> Self {
        Self::new(FieldTemplate::catalogue(), 128)
    }
}

/// A `tokenizer.json` plus a field template, truncation length and padding token.
///
/// Cheap to share across threads (`&ItemTokenizer` is `Sync`); cloning copies the vocabulary.
#[derive(Clone)]
pub struct ItemTokenizer {
    /// Truncation and padding disabled: we do both ourselves.
    full: Tokenizer,
    /// Same tokenizer truncating at the content budget, which lets `tokenizers` stop the model
    /// early on long descriptions when keeping a prefix is all the template needs.
    limited: Tokenizer,
    config: TokenizeConfig,
    n_special: usize,
    pad: PadSpec,
    /// Tokenizing a prefix cut before a space gives the same leading tokens as the full text.
    prefix_cut: bool,
    pub(crate) pool: Option<Arc<rayon::ThreadPool>>,
}

impl std::fmt::Debug for ItemTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ItemTokenizer")
            .field("config", &self.config)
            .field("n_special", &self.n_special)
            .field("pad", &self.pad)
            .finish_non_exhaustive()
    }
}

impl ItemTokenizer {
    /// Loads a `tokenizer.json` (WordPiece, BPE, Unigram, ...).
    pub fn from_file(path: impl AsRef<Path>, config: TokenizeConfig) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| TokenizeError::io(path, e))?;
        let tokenizer = Tokenizer::from_bytes(&bytes).map_err(|e| TokenizeError::Load {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Self::build(tokenizer, config)
    }

    /// From the JSON text of a `tokenizer.json`.
    pub fn from_bytes(bytes: &[u8], config: TokenizeConfig) -> Result<Self> {
        let tokenizer = Tokenizer::from_bytes(bytes).map_err(|e| TokenizeError::Load {
            path: "<bytes>".into(),
            message: e.to_string(),
        })?;
        Self::build(tokenizer, config)
    }

    /// From a tokenizer built in code.
    pub fn from_tokenizer(tokenizer: Tokenizer, config: TokenizeConfig) -> Result<Self> {
        Self::build(tokenizer, config)
    }

    fn build(mut tokenizer: Tokenizer, config: TokenizeConfig) -> Result<Self> {
        let pad = match config.pad_id {
            Some(pad_id) => PadSpec {
                pad_id,
                pad_type_id: tokenizer.get_padding().map_or(0, |p| p.pad_type_id),
            },
            None => find_pad(&tokenizer)?,
        };
        let n_special = tokenizer
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(false));
        if config.max_len <= n_special {
            return Err(TokenizeError::MaxLenTooSmall {
                max_len: config.max_len,
                n_special,
            });
        }
        // The file's own truncation/padding (all-MiniLM ships Fixed(128) padding) would
        // otherwise leak into every encode.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(TokenizeError::tok)?;
        let mut limited = tokenizer.clone();
        limited
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length: config.max_len - n_special,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(TokenizeError::tok)?;
        let pool = match config.num_threads {
            Some(n) => Some(Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .thread_name(|i| format!("longtail-tokenize-{i}"))
                    .build()
                    .map_err(|e| TokenizeError::ThreadPool(e.to_string()))?,
            )),
            None => None,
        };
        let prefix_cut = cut_is_exact(&tokenizer);
        Ok(Self {
            prefix_cut,
            full: tokenizer,
            limited,
            config,
            n_special,
            pad,
            pool,
        })
    }

    /// Encodes one item: render, tokenize, cut to `max_len` by field priority, add specials.
    ///
    /// For text that fits, the ids equal `tokenizer.encode(rendered_text, true)`.
    pub fn encode_item<F: FieldSource + ?Sized>(&self, item: &F) -> Result<Encoded> {
        let Some(rendered) = self.config.template.render(item) else {
            return self.finish(Encoding::default(), false);
        };
        let budget = self.content_budget();
        if rendered.prefix_truncation {
            let mut enc = self.encode_prefix(&rendered.text, budget)?;
            let mut truncated = false;
            if enc.len() >= budget {
                // Possibly cut mid-template: drop a separator left without its field.
                let roles = token_roles(&rendered.spans, enc.get_offsets());
                let keep = trim_dangling_separators(&roles);
                let end = keep
                    .checked_sub(1)
                    .and_then(|i| enc.get_offsets().get(i))
                    .map_or(0, |o| o.1);
                truncated = rendered
                    .text
                    .get(end..)
                    .is_some_and(|rest| !rest.trim().is_empty());
                if keep < enc.len() {
                    enc.truncate(keep, 0, TruncationDirection::Right);
                    enc.take_overflowing();
                }
            }
            return self.finish(enc, truncated);
        }
        let enc = self
            .full
            .encode(rendered.text.as_str(), false)
            .map_err(TokenizeError::tok)?;
        let roles = token_roles(&rendered.spans, enc.get_offsets());
        match plan(&roles, &rendered.field_rank, budget) {
            None => self.finish(enc, false),
            Some(keep) => self.finish(select(&enc, &keep), true),
        }
    }

    /// The first `budget` content tokens of `text` (all of them if fewer), via the early-exit
    /// tokenizer. Normalizing and pre-tokenizing a 40 kB description only to keep ~126 tokens
    /// dominates the cost, so when the pipeline is known to be local (see [`cut_is_exact`]) we
    /// tokenize a prefix ending just before a space (see [`space_at_or_after`]), doubling it
    /// until it yields `budget` tokens: such a prefix tokenizes exactly like the start of the
    /// full text.
    fn encode_prefix(&self, text: &str, budget: usize) -> Result<Encoding> {
        let mut want = PREFIX_BYTES_PER_TOKEN * budget;
        loop {
            let cut = if self.prefix_cut {
                space_at_or_after(text, want)
            } else {
                None
            };
            let piece = cut.map_or(text, |c| &text[..c]);
            let mut enc = self
                .limited
                .encode(piece, false)
                .map_err(TokenizeError::tok)?;
            enc.take_overflowing();
            if cut.is_none() || enc.len() >= budget {
                return Ok(enc);
            }
            want = want.saturating_mul(2);
        }
    }

    /// Encodes a plain, already joined text (cut from its end).
    pub fn encode_text(&self, text: &str) -> Result<Encoded> {
        self.encode_item(text)
    }

    /// Adds special tokens through the file's post-processor.
    fn finish(&self, enc: Encoding, truncated: bool) -> Result<Encoded> {
        let out = self
            .full
            .post_process(enc, None, true)
            .map_err(TokenizeError::tok)?;
        Ok(Encoded {
            ids: out.get_ids().to_vec(),
            type_ids: out.get_type_ids().to_vec(),
            truncated,
        })
    }

    /// Pads `encoded[i]` for each `i` in `indices` into one batch (e.g. one batch from
    /// [`crate::bucket_batches`]).
    pub fn pad_batch(&self, encoded: &[Encoded], indices: &[usize]) -> Result<Batch> {
        let rows = indices
            .iter()
            .map(|&i| {
                encoded.get(i).ok_or(TokenizeError::IndexOutOfRange {
                    index: i,
                    len: encoded.len(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(pad_batch(&rows, indices.to_vec(), self.pad))
    }

    /// The text an item renders to before tokenization.
    pub fn render(&self, item: &(impl FieldSource + ?Sized)) -> Option<String> {
        self.config.template.render_text(item)
    }

    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.full
            .decode(ids, skip_special_tokens)
            .map_err(TokenizeError::tok)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.full.id_to_token(id)
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.full.token_to_id(token)
    }

    pub fn config(&self) -> &TokenizeConfig {
        &self.config
    }

    /// The fields the template reads, in template order: what a caller must pull from a row.
    pub fn template_fields(&self) -> Vec<String> {
        self.config
            .template
            .field_names()
            .map(str::to_string)
            .collect()
    }

    pub fn max_len(&self) -> usize {
        self.config.max_len
    }

    /// Special tokens the post-processor adds to a single sequence (`[CLS]` + `[SEP]` = 2 for BERT).
    pub fn num_special_tokens(&self) -> usize {
        self.n_special
    }

    /// Tokens available for content: `max_len - num_special_tokens()`.
    pub fn content_budget(&self) -> usize {
        self.config.max_len - self.n_special
    }

    pub fn pad_spec(&self) -> PadSpec {
        self.pad
    }

    pub fn pad_id(&self) -> u32 {
        self.pad.pad_id
    }

    pub fn vocab_size(&self) -> usize {
        self.full.get_vocab_size(true)
    }

    /// The underlying tokenizer, with truncation and padding disabled.
    pub fn inner(&self) -> &Tokenizer {
        &self.full
    }
}

/// True when cutting the text just before an ASCII space cannot change the tokens before the
/// cut: every normalizer works per character (or only at the text start) and every
/// pre-tokenizer splits at whitespace, so the models (WordPiece, BPE, Unigram, which only see
/// one pre-token at a time) get the same pieces. Unknown or context-dependent components
/// (Replace, Precompiled, Split, Metaspace without split, ...) disable the shortcut.
fn cut_is_exact(tokenizer: &Tokenizer) -> bool {
    use tokenizers::{NormalizerWrapper as N, PreTokenizerWrapper as P};
    fn local_normalizer(n: &N) -> bool {
        match n {
            N::BertNormalizer(_)
            | N::StripNormalizer(_)
            | N::StripAccents(_)
            | N::NFC(_)
            | N::NFD(_)
            | N::NFKC(_)
            | N::NFKD(_)
            | N::Lowercase(_)
            | N::Nmt(_)
            | N::Prepend(_)
            | N::ByteLevel(_) => true,
            N::Sequence(seq) => seq.as_ref().iter().all(local_normalizer),
            _ => false,
        }
    }
    fn splits_at_spaces(p: &P) -> bool {
        match p {
            P::BertPreTokenizer(_) | P::Whitespace(_) | P::WhitespaceSplit(_) => true,
            P::ByteLevel(b) => b.use_regex,
            P::Metaspace(m) => m.get_split(),
            // Later stages only split further: one whitespace splitter anywhere suffices
            // as long as the rest are local too.
            P::Sequence(seq) => {
                let parts = seq.as_ref();
                parts.iter().any(splits_at_spaces)
                    && parts.iter().all(|q| {
                        splits_at_spaces(q) || matches!(q, P::Punctuation(_) | P::Digits(_))
                    })
            }
            _ => false,
        }
    }
    // An added token containing a space (e.g. "New York") could be split by the cut.
    let spaced_added_token = tokenizer
        .get_added_tokens_decoder()
        .values()
        .any(|t| t.content.contains(char::is_whitespace));
    !spaced_added_token
        && tokenizer.get_normalizer().is_none_or(local_normalizer)
        && tokenizer.get_pre_tokenizer().is_some_and(splits_at_spaces)
}

/// Byte index of the first ASCII space at or after byte `from` that directly follows a
/// non-whitespace character, if any. Cutting there, the prefix ends with a word whose
/// pre-token boundary is the same as in the full text for every splitter `cut_is_exact`
/// accepts (Metaspace splits only at ' ', ByteLevel glues a space to the *next* word).
fn space_at_or_after(text: &str, from: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = from.max(1);
    while i < bytes.len() {
        // ASCII bytes never occur inside a multi-byte UTF-8 sequence, so `i` is a boundary.
        let off = bytes[i..].iter().position(|&b| b == b' ')?;
        i += off;
        if text[..i]
            .chars()
            .next_back()
            .is_some_and(|c| !c.is_whitespace())
        {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Pad id from the file's padding config, else from the vocabulary.
fn find_pad(tokenizer: &Tokenizer) -> Result<PadSpec> {
    if let Some(p) = tokenizer.get_padding() {
        return Ok(PadSpec {
            pad_id: p.pad_id,
            pad_type_id: p.pad_type_id,
        });
    }
    PAD_CANDIDATES
        .iter()
        .find_map(|t| tokenizer.token_to_id(t))
        .map(|pad_id| PadSpec {
            pad_id,
            pad_type_id: 0,
        })
        .ok_or(TokenizeError::NoPadToken)
}

/// A new encoding with only the kept tokens (ids, tokens and offsets are all the
/// post-processor needs).
fn select(enc: &Encoding, keep: &[bool]) -> Encoding {
    let tokens = enc
        .get_ids()
        .iter()
        .zip(enc.get_tokens())
        .zip(enc.get_offsets())
        .zip(keep)
        .filter(|(_, k)| **k)
        .map(|(((&id, tok), &off), _)| Token::new(id, tok.clone(), off))
        .collect();
    Encoding::from_tokens(tokens, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tokenizers::models::unigram::Unigram;
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
    use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
    use tokenizers::SplitDelimiterBehavior;

    #[test]
    fn space_cut_points() {
        assert_eq!(space_at_or_after("ab cd ef", 0), Some(2));
        assert_eq!(space_at_or_after("ab cd ef", 3), Some(5));
        assert_eq!(space_at_or_after("ab cd", 6), None);
        // A space preceded by whitespace is skipped.
        assert_eq!(space_at_or_after("ab\n cd ef", 0), Some(6));
        assert_eq!(space_at_or_after("ab  cd", 0), Some(2));
        assert_eq!(space_at_or_after("ab  cd", 3), None);
        assert_eq!(space_at_or_after(" ab", 0), None);
        assert_eq!(space_at_or_after("中文 x", 1), Some(6));
    }

    /// Random strings mixing words, CJK, accents and odd whitespace.
    fn nasty_texts(n: usize) -> Vec<String> {
        const PARTS: [&str; 14] = [
            "pen", "ink", "ab", "a", " ", " ", "  ", "\n", "\u{3000}", "\u{a0}", "é", "中", ",",
            "12",
        ];
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        (0..n)
            .map(|_| {
                let len = 20 + (state % 200) as usize;
                (0..len)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        PARTS[(state % PARTS.len() as u64) as usize]
                    })
                    .collect()
            })
            .collect()
    }

    /// The invariant behind the shortcut, checked at every cut point: a prefix ending at a
    /// point `space_at_or_after` picks tokenizes exactly like the start of the full text.
    fn assert_cut_points_exact(tok: &Tokenizer) {
        let mut tok = tok.clone();
        tok.with_padding(None);
        for text in nasty_texts(100) {
            let full = tok.encode(text.as_str(), false).unwrap();
            let mut from = 0;
            while let Some(cut) = space_at_or_after(&text, from) {
                let prefix = tok.encode(&text[..cut], false).unwrap();
                let m = prefix.len();
                assert_eq!(
                    prefix.get_ids(),
                    &full.get_ids()[..m],
                    "cut {cut} of {text:?}"
                );
                assert!(
                    m == 0 || full.get_offsets()[m - 1].1 <= cut,
                    "cut {cut} of {text:?}"
                );
                from = cut + 1;
            }
        }
    }

    /// With and without the prefix shortcut, every text must give identical ids.
    fn assert_cut_exact(tok: Tokenizer, expect_cut: bool) {
        if expect_cut {
            assert_cut_points_exact(&tok);
        }
        for max_len in [3, 8, 20, 64] {
            let cfg = TokenizeConfig::new(FieldTemplate::plain_text(), max_len);
            let fast = ItemTokenizer::from_tokenizer(tok.clone(), cfg.clone()).unwrap();
            assert_eq!(fast.prefix_cut, expect_cut);
            let mut slow = fast.clone();
            slow.prefix_cut = false;
            for text in nasty_texts(300) {
                assert_eq!(
                    fast.encode_text(&text).unwrap(),
                    slow.encode_text(&text).unwrap(),
                    "max_len {max_len}, text {text:?}"
                );
            }
        }
    }

    fn with_pad(mut tok: Tokenizer) -> Tokenizer {
        tok.with_padding(Some(tokenizers::PaddingParams::default()));
        tok
    }

    fn from_json(
        model: serde_json::Value,
        normalizer: serde_json::Value,
        pre: serde_json::Value,
    ) -> Tokenizer {
        let json = json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
            "normalizer": normalizer, "pre_tokenizer": pre, "post_processor": null,
            "decoder": null, "model": model,
        });
        Tokenizer::from_bytes(json.to_string()).unwrap()
    }

    fn vocab_map(
        tokens: impl IntoIterator<Item = String>,
    ) -> serde_json::Map<String, serde_json::Value> {
        let mut vocab = serde_json::Map::new();
        for t in tokens {
            let n = vocab.len();
            vocab.entry(t).or_insert(json!(n));
        }
        vocab
    }

    #[test]
    fn prefix_cut_is_exact_for_wordpiece() {
        let vocab = vocab_map(
            [
                "[UNK]", "[PAD]", "pen", "ink", "a", "##b", "e", ",", "12", "中",
            ]
            .map(String::from),
        );
        let model = json!({"type": "WordPiece", "unk_token": "[UNK]",
                           "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
                           "vocab": vocab});
        let norm = json!({"type": "BertNormalizer", "clean_text": true,
                          "handle_chinese_chars": true, "strip_accents": null, "lowercase": true});
        let tok = from_json(model, norm, json!({"type": "BertPreTokenizer"}));
        assert_cut_exact(with_pad(tok), true);
    }

    #[test]
    fn prefix_cut_is_exact_for_byte_level_bpe() {
        let pairs = [
            ("Ġ", "Ġ"),
            ("Ġ", "p"),
            ("p", "e"),
            ("Ġp", "e"),
            ("a", "b"),
            ("Ċ", "Ġ"),
        ];
        let vocab = vocab_map(
            ByteLevel::alphabet()
                .into_iter()
                .map(String::from)
                .chain(pairs.iter().map(|(a, b)| format!("{a}{b}"))),
        );
        let merges: Vec<String> = pairs.iter().map(|(a, b)| format!("{a} {b}")).collect();
        let model = json!({"type": "BPE", "dropout": null, "unk_token": null,
                           "continuing_subword_prefix": null, "end_of_word_suffix": null,
                           "fuse_unk": false, "byte_fallback": false,
                           "vocab": vocab, "merges": merges});
        let pre = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
                         "use_regex": true});
        let tok = from_json(model, serde_json::Value::Null, pre);
        assert_cut_exact(with_pad(tok), true);
    }

    #[test]
    fn prefix_cut_is_exact_for_metaspace_unigram() {
        let mut vocab: Vec<(String, f64)> = vec![("<unk>".into(), 0.0), ("<pad>".into(), 0.0)];
        for w in ["▁pen", "▁ink", "▁", "▁a", "ab", "pen", "\n", "中", "é"] {
            vocab.push((w.to_string(), -2.0));
        }
        // Pieces spanning a newline: a cut at '\n' would change the tokens before it.
        for w in ["▁pen\nink", "▁a\nab", "n\n"] {
            vocab.push((w.to_string(), 0.0));
        }
        for c in "abcdefghijklmnopqrstuvwxyz,12".chars() {
            vocab.push((c.to_string(), -5.0));
        }
        let mut tok = Tokenizer::new(Unigram::from(vocab, Some(0), false).unwrap());
        tok.with_pre_tokenizer(Some(Metaspace::new('▁', PrependScheme::Always, true)));
        assert_cut_exact(with_pad(tok.clone()), true);
        // Without splitting, the whole text is one piece: no shortcut.
        tok.with_pre_tokenizer(Some(Metaspace::new('▁', PrependScheme::Always, false)));
        assert_cut_exact(with_pad(tok), false);
    }

    #[test]
    fn unknown_pre_tokenizer_disables_prefix_cut() {
        let mut vocab: Vec<(String, f64)> = vec![("<unk>".into(), 0.0), ("<pad>".into(), 0.0)];
        for c in "abcdefghijklmnopqrstuvwxyz ".chars() {
            vocab.push((c.to_string(), -5.0));
        }
        let mut tok = Tokenizer::new(Unigram::from(vocab, Some(0), false).unwrap());
        let split = Split::new(
            SplitPattern::String("n".into()),
            SplitDelimiterBehavior::Isolated,
            false,
        );
        tok.with_pre_tokenizer(Some(split.unwrap()));
        assert_cut_exact(with_pad(tok), false);
    }

    #[test]
    fn prefix_cut_is_exact_on_real_office_texts() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let tok_path = std::env::var_os("LONGTAIL_TEST_BASE_MODEL")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| root.join("checkpoints/base/all-MiniLM-L6-v2"))
            .join("tokenizer.json");
        let items_path = std::env::var_os("LONGTAIL_TEST_OFFICE_ITEMS")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| root.join("../shared/datasets/amazon-office-2014/items.jsonl"));
        let (Ok(_), Ok(items)) = (
            std::fs::metadata(&tok_path),
            std::fs::read_to_string(&items_path),
        ) else {
            return longtail_testutil::skip!(
                "needs {} and {}",
                tok_path.display(),
                items_path.display()
            );
        };
        let rows: Vec<serde_json::Value> = items
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        for max_len in [32, 128] {
            let cfg = TokenizeConfig::new(FieldTemplate::catalogue(), max_len);
            let fast = ItemTokenizer::from_file(&tok_path, cfg).unwrap();
            assert!(fast.prefix_cut);
            let mut slow = fast.clone();
            slow.prefix_cut = false;
            for row in &rows {
                assert_eq!(
                    fast.encode_item(row).unwrap(),
                    slow.encode_item(row).unwrap(),
                    "{row}"
                );
            }
        }
    }
}
