//! Stage 6: on-disk cache of token ids.
//!
//! Layout: `<cache_dir>/<key>/ids.bin` (+ `meta.json`, informational only), where `key` is
//! [`ItemTokenizer::cache_key`]: a SHA-256 of the tokenizer.json bytes, the template (with its
//! cut order), `max_len` and [`CACHE_FORMAT_VERSION`]. Any change to those yields a new
//! directory, so a stale cache is never read; old directories can simply be deleted.
//!
//! `ids.bin`, all integers little-endian:
//! ```text
//! magic     8 bytes   "LTTOKIDS"
//! version   u32       CACHE_FORMAT_VERSION
//! n_rows    u64
//! n_rows times:
//!   key_len   u32, then key_len bytes of UTF-8 item key
//!   flags     u8      bit 0 = truncated
//!   n_tokens  u32
//!   ids       n_tokens x u32
//!   type_ids  n_tokens x u8
//! sha256    32 bytes  of everything above
//! ```
//! Files are written to a temporary name in the same directory and renamed into place, so
//! readers see either the old or the new file, never a partial one.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::error::{Result, TokenizeError};
use crate::fields::FieldSource;
use crate::template::FieldTemplate;
use crate::tokenizer::{Encoded, ItemTokenizer};

/// Bump when the file layout or the tokenization semantics change.
pub const CACHE_FORMAT_VERSION: u32 = 1;

const MAGIC: &[u8; 8] = b"LTTOKIDS";
const IDS_FILE: &str = "ids.bin";

/// Hex key naming a cache directory.
pub(crate) fn cache_key(tokenizer_json: &[u8], template: &FieldTemplate, max_len: usize) -> String {
    let mut h = Sha256::new();
    h.update(b"longtail-tokenize\0");
    h.update(CACHE_FORMAT_VERSION.to_le_bytes());
    // Length prefixes keep the concatenation unambiguous.
    h.update((tokenizer_json.len() as u64).to_le_bytes());
    h.update(tokenizer_json);
    let t = template.canonical();
    h.update((t.len() as u64).to_le_bytes());
    h.update(t.as_bytes());
    h.update((max_len as u64).to_le_bytes());
    hex::encode(&h.finalize()[..16])
}

/// Rows read back from a cache file, in stored order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CachedIds {
    pub keys: Vec<String>,
    pub encoded: Vec<Encoded>,
}

impl CachedIds {
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Key -> encoding.
    pub fn into_map(self) -> HashMap<String, Encoded> {
        self.keys.into_iter().zip(self.encoded).collect()
    }
}

/// What [`TokenCache::encode_cached`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Items served from the file.
    pub hits: usize,
    /// Items tokenized now.
    pub misses: usize,
    /// Whether the file was (re)written.
    pub written: bool,
}

/// One cache directory, `<cache_dir>/<key>`.
#[derive(Debug, Clone)]
pub struct TokenCache {
    dir: PathBuf,
    key: String,
    meta: Option<serde_json::Value>,
}

impl TokenCache {
    /// The cache for `key` under `cache_dir` (directories are created on first write).
    pub fn open(cache_dir: impl AsRef<Path>, key: &str) -> Result<Self> {
        let dir = cache_dir.as_ref().join(key);
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(TokenizeError::CacheFormat {
                path: dir,
                message: format!("cache key {key:?} must be non-empty [A-Za-z0-9_-]"),
            });
        }
        Ok(Self {
            dir,
            key: key.to_string(),
            meta: None,
        })
    }

    /// The cache matching `tokenizer`'s file, template and `max_len`.
    pub fn for_tokenizer(cache_dir: impl AsRef<Path>, tokenizer: &ItemTokenizer) -> Result<Self> {
        let mut cache = Self::open(cache_dir, tokenizer.cache_key())?;
        cache.meta = Some(serde_json::json!({
            "format_version": CACHE_FORMAT_VERSION,
            "key": tokenizer.cache_key(),
            "template": tokenizer.config().template.to_string(),
            "cut_order": tokenizer.config().template.cut_order().collect::<Vec<_>>(),
            "max_len": tokenizer.max_len(),
        }));
        Ok(cache)
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// `<cache_dir>/<key>`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn ids_path(&self) -> PathBuf {
        self.dir.join(IDS_FILE)
    }

    /// The stored rows, or `None` if nothing was stored under this key yet.
    pub fn load(&self) -> Result<Option<CachedIds>> {
        let path = self.ids_path();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(TokenizeError::io(path, e)),
        };
        decode(&bytes)
            .map(Some)
            .map_err(|message| TokenizeError::CacheFormat { path, message })
    }

    /// Replaces the stored rows with `keys[i] -> encoded[i]`, atomically.
    pub fn store<K: AsRef<str>>(&self, keys: &[K], encoded: &[Encoded]) -> Result<()> {
        let path = self.ids_path();
        let bytes = encode(keys, encoded).map_err(|message| TokenizeError::CacheFormat {
            path: path.clone(),
            message,
        })?;
        std::fs::create_dir_all(&self.dir).map_err(|e| TokenizeError::io(&self.dir, e))?;
        write_atomic(&path, &bytes)?;
        if let Some(meta) = &self.meta {
            let mut meta = meta.clone();
            meta["n_rows"] = keys.len().into();
            let text = serde_json::to_vec_pretty(&meta).expect("json value serializes");
            write_atomic(&self.dir.join("meta.json"), &text)?;
        }
        Ok(())
    }

    /// Ids for `items` (keyed by `keys`, e.g. item ids): stored rows are reused, missing ones
    /// are tokenized in parallel and the file is rewritten with old + new rows.
    ///
    /// # Panics
    /// If `keys` and `items` differ in length.
    pub fn encode_cached<K, F>(
        &self,
        tokenizer: &ItemTokenizer,
        keys: &[K],
        items: &[F],
    ) -> Result<(Vec<Encoded>, CacheStats)>
    where
        K: AsRef<str>,
        F: FieldSource + Sync,
    {
        if tokenizer.cache_key() != self.key {
            return Err(TokenizeError::CacheFormat {
                path: self.dir.clone(),
                message: format!(
                    "cache key {} does not match the tokenizer's {}",
                    self.key,
                    tokenizer.cache_key()
                ),
            });
        }
        assert_eq!(keys.len(), items.len(), "one key per item");
        let mut stored = self.load()?.unwrap_or_default();
        let index: HashMap<&str, usize> = stored
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i))
            .collect();
        let missing: Vec<usize> = (0..keys.len())
            .filter(|&i| !index.contains_key(keys[i].as_ref()))
            .collect();
        let fresh = {
            let todo: Vec<&F> = missing.iter().map(|&i| &items[i]).collect();
            tokenizer.encode_batch_parallel(&todo)?
        };
        let mut fresh_by_pos: HashMap<usize, Encoded> =
            missing.iter().copied().zip(fresh).collect();
        let mut out = Vec::with_capacity(keys.len());
        for (i, k) in keys.iter().enumerate() {
            match index.get(k.as_ref()) {
                Some(&s) => out.push(stored.encoded[s].clone()),
                None => out.push(fresh_by_pos.remove(&i).expect("encoded above")),
            }
        }
        let stats = CacheStats {
            hits: keys.len() - missing.len(),
            misses: missing.len(),
            written: !missing.is_empty(),
        };
        if stats.written {
            drop(index);
            let mut seen: std::collections::HashSet<String> = stored.keys.iter().cloned().collect();
            for &i in &missing {
                let k = keys[i].as_ref();
                if seen.insert(k.to_string()) {
                    stored.keys.push(k.to_string());
                    stored.encoded.push(out[i].clone());
                }
            }
            self.store(&stored.keys, &stored.encoded)?;
        }
        Ok((out, stats))
    }
}

fn encode<K: AsRef<str>>(keys: &[K], encoded: &[Encoded]) -> std::result::Result<Vec<u8>, String> {
    if keys.len() != encoded.len() {
        return Err(format!("{} keys for {} rows", keys.len(), encoded.len()));
    }
    let mut seen = std::collections::HashSet::with_capacity(keys.len());
    let tokens: usize = encoded.iter().map(|e| e.len()).sum();
    let mut out = Vec::with_capacity(24 + keys.len() * 16 + tokens * 5 + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&CACHE_FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(keys.len() as u64).to_le_bytes());
    for (k, e) in keys.iter().zip(encoded) {
        let k = k.as_ref();
        if !seen.insert(k) {
            return Err(format!("duplicate item key {k:?}"));
        }
        if e.type_ids.len() != e.ids.len() {
            return Err(format!("row {k:?}: ids and type_ids differ in length"));
        }
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(k.as_bytes());
        out.push(u8::from(e.truncated));
        out.extend_from_slice(&(e.ids.len() as u32).to_le_bytes());
        for id in &e.ids {
            out.extend_from_slice(&id.to_le_bytes());
        }
        for &t in &e.type_ids {
            out.push(u8::try_from(t).map_err(|_| format!("row {k:?}: type id {t} > 255"))?);
        }
    }
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    Ok(out)
}

fn decode(bytes: &[u8]) -> std::result::Result<CachedIds, String> {
    if bytes.len() < MAGIC.len() + 4 + 8 + 32 || &bytes[..8] != MAGIC {
        return Err("not a longtail token cache (bad magic or too short)".into());
    }
    let (body, digest) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != digest {
        return Err("checksum mismatch (corrupt file)".into());
    }
    let mut r = Reader { buf: body, pos: 8 };
    let version = r.u32()?;
    if version != CACHE_FORMAT_VERSION {
        return Err(format!(
            "format version {version}, expected {CACHE_FORMAT_VERSION}"
        ));
    }
    let n = usize::try_from(r.u64()?).map_err(|_| "row count overflows usize")?;
    let mut keys = Vec::with_capacity(n.min(1 << 20));
    let mut encoded = Vec::with_capacity(n.min(1 << 20));
    for _ in 0..n {
        let klen = r.u32()? as usize;
        let key = std::str::from_utf8(r.take(klen)?)
            .map_err(|_| "item key is not UTF-8")?
            .to_string();
        let flags = r.take(1)?[0];
        let len = r.u32()? as usize;
        let ids = r
            .take(len.checked_mul(4).ok_or("token count overflows")?)?
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let type_ids = r.take(len)?.iter().map(|&t| u32::from(t)).collect();
        keys.push(key);
        encoded.push(Encoded {
            ids,
            type_ids,
            truncated: flags & 1 != 0,
        });
    }
    if r.pos != body.len() {
        return Err(format!("{} trailing bytes", body.len() - r.pos));
    }
    Ok(CachedIds { keys, encoded })
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or("truncated file")?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }

    fn u64(&mut self) -> std::result::Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
}

/// Write to a unique temp file beside `path`, flush to disk, then rename over `path`.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let tmp = path.with_extension(format!(
        "tmp.{}.{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        TokenizeError::io(path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(ids: &[u32], truncated: bool) -> Encoded {
        Encoded {
            ids: ids.to_vec(),
            type_ids: ids.iter().map(|&i| i % 2).collect(),
            truncated,
        }
    }

    #[test]
    fn roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TokenCache::open(dir.path(), "abc123").unwrap();
        assert_eq!(cache.load().unwrap(), None);
        let rows = vec![
            enc(&[101, 5, 102], false),
            enc(&[], true),
            enc(&[7; 300], true),
        ];
        cache.store(&["a", "b", "ç"], &rows).unwrap();
        let got = cache.load().unwrap().unwrap();
        assert_eq!(got.keys, ["a", "b", "ç"]);
        assert_eq!(got.encoded, rows);
        assert_eq!(cache.ids_path(), dir.path().join("abc123").join("ids.bin"));
        // No temp files left behind.
        let names: Vec<_> = std::fs::read_dir(cache.dir()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn other_key_misses() {
        let dir = tempfile::tempdir().unwrap();
        TokenCache::open(dir.path(), "k1")
            .unwrap()
            .store(&["a"], &[enc(&[1], false)])
            .unwrap();
        assert!(TokenCache::open(dir.path(), "k2")
            .unwrap()
            .load()
            .unwrap()
            .is_none());
    }

    #[test]
    fn detects_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TokenCache::open(dir.path(), "k").unwrap();
        cache.store(&["a"], &[enc(&[1, 2, 3], false)]).unwrap();
        let mut bytes = std::fs::read(cache.ids_path()).unwrap();
        bytes[30] ^= 0xff;
        std::fs::write(cache.ids_path(), &bytes).unwrap();
        assert!(matches!(
            cache.load(),
            Err(TokenizeError::CacheFormat { .. })
        ));
        std::fs::write(cache.ids_path(), b"junk").unwrap();
        assert!(cache.load().is_err());
    }

    #[test]
    fn rejects_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        assert!(TokenCache::open(dir.path(), "../evil").is_err());
        assert!(TokenCache::open(dir.path(), "").is_err());
        let cache = TokenCache::open(dir.path(), "k").unwrap();
        let row = enc(&[1], false);
        assert!(cache
            .store(&["a", "a"], &[row.clone(), row.clone()])
            .is_err());
        assert!(cache.store(&["a"], &[]).is_err());
        let bad_type = Encoded {
            ids: vec![1],
            type_ids: vec![300],
            truncated: false,
        };
        assert!(cache.store(&["a"], &[bad_type]).is_err());
    }

    #[test]
    fn key_depends_on_every_input() {
        let t = FieldTemplate::catalogue();
        let k = cache_key(b"{}", &t, 128);
        assert_eq!(k.len(), 32);
        assert_eq!(k, cache_key(b"{}", &t, 128));
        assert_ne!(k, cache_key(b"{ }", &t, 128));
        assert_ne!(k, cache_key(b"{}", &t, 64));
        assert_ne!(k, cache_key(b"{}", &FieldTemplate::plain_text(), 128));
        let reordered = t
            .with_cut_order(&["brand", "description", "categories", "title"])
            .unwrap();
        assert_ne!(k, cache_key(b"{}", &reordered, 128));
    }
}
