//! The item tokenizer: loads any `tokenizer.json`, renders items through the field template,
//! encodes, truncates by field priority and adds special tokens with the file's own
//! post-processor.

use std::path::Path;
use std::sync::Arc;

use tokenizers::{Encoding, PostProcessor, Token, Tokenizer, TruncationDirection};
use tokenizers::{TruncationParams, TruncationStrategy};

use crate::cache::cache_key;
use crate::error::{Result, TokenizeError};
use crate::fields::FieldSource;
use crate::padding::{pad_batch, Batch, PadSpec};
use crate::template::FieldTemplate;
use crate::truncation::{plan, token_roles, trim_dangling_separators};

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

/// Token ids of one item, special tokens included, not padded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    /// Some content of the rendered text did not make it into `ids`.
    pub truncated: bool,
}

impl Encoded {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
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
    cache_key: String,
    pub(crate) pool: Option<Arc<rayon::ThreadPool>>,
}

impl std::fmt::Debug for ItemTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ItemTokenizer")
            .field("config", &self.config)
            .field("n_special", &self.n_special)
            .field("pad", &self.pad)
            .field("cache_key", &self.cache_key)
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
        Self::build(tokenizer, &bytes, config)
    }

    /// From the JSON text of a `tokenizer.json`.
    pub fn from_bytes(bytes: &[u8], config: TokenizeConfig) -> Result<Self> {
        let tokenizer = Tokenizer::from_bytes(bytes).map_err(|e| TokenizeError::Load {
            path: "<bytes>".into(),
            message: e.to_string(),
        })?;
        Self::build(tokenizer, bytes, config)
    }

    /// From a tokenizer built in code; its serialized JSON stands in for the file bytes in
    /// the cache key.
    pub fn from_tokenizer(tokenizer: Tokenizer, config: TokenizeConfig) -> Result<Self> {
        let json = tokenizer.to_string(false).map_err(TokenizeError::tok)?;
        Self::build(tokenizer, json.as_bytes(), config)
    }

    fn build(mut tokenizer: Tokenizer, source: &[u8], config: TokenizeConfig) -> Result<Self> {
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
        let cache_key = cache_key(source, &config.template, config.max_len);
        Ok(Self {
            full: tokenizer,
            limited,
            config,
            n_special,
            pad,
            cache_key,
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
            let mut enc = self
                .limited
                .encode(rendered.text.as_str(), false)
                .map_err(TokenizeError::tok)?;
            enc.take_overflowing();
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

    pub fn max_len(&self) -> usize {
        self.config.max_len
    }

    /// Special tokens the post-processor adds to a single sequence ([CLS] + [SEP] = 2 for BERT).
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

    /// Hash of (tokenizer.json bytes, template, max_len, cache format version): names the
    /// [`crate::TokenCache`] directory.
    pub fn cache_key(&self) -> &str {
        &self.cache_key
    }

    /// The underlying tokenizer, with truncation and padding disabled.
    pub fn inner(&self) -> &Tokenizer {
        &self.full
    }
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
