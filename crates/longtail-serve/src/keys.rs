//! The service's keys, validated once: a key that exists is long enough, the API and admin keys
//! differ, and a server reachable from other hosts has an API key. Keys are kept only as
//! SHA-256 digests, so a comparison is constant-time and no key text stays in memory to leak.

use std::net::SocketAddr;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The shortest key accepted, in bytes (16 random bytes; a typo or an unset shell variable
/// is shorter).
pub const MIN_KEY_BYTES: usize = 16;

/// Why a set of keys is refused at start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "{which} is empty (an unset shell variable?); give a key of at least {MIN_KEY_BYTES} \
         bytes, or leave the flag out"
    )]
    Empty { which: &'static str },
    #[error("{which} has {len} bytes; keys need at least {MIN_KEY_BYTES}")]
    Short { which: &'static str, len: usize },
    #[error(
        "the API key and the admin key are the same; the admin key must be a different secret"
    )]
    Same,
    #[error(
        "--bind {bind} accepts connections from other hosts, and there is no API key: give \
         --api-key (or --api-key-file), or bind to 127.0.0.1"
    )]
    OpenToTheNetwork { bind: SocketAddr },
}

/// One key as a digest.
#[derive(Clone, Copy)]
pub struct Key([u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(***)")
    }
}

impl Key {
    fn new(which: &'static str, text: &str) -> Result<Self, KeyError> {
        if text.is_empty() {
            return Err(KeyError::Empty { which });
        }
        if text.len() < MIN_KEY_BYTES {
            return Err(KeyError::Short {
                which,
                len: text.len(),
            });
        }
        Ok(Self(digest(text)))
    }

    /// Whether `presented` is this key (constant time).
    pub fn matches(&self, presented: &str) -> bool {
        digest(presented).ct_eq(&self.0).into()
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The API key (the /v1 routes and /info) and the admin key (/admin, /v1/users).
#[derive(Debug, Clone, Copy)]
pub struct ServiceKeys {
    /// None: the /v1 routes are open (allowed on a loopback address only).
    pub api: Option<Key>,
    /// None: the admin routes answer 403.
    pub admin: Option<Key>,
}

impl ServiceKeys {
    /// Validates the keys for a server listening on `bind`.
    pub fn new(api: Option<&str>, admin: Option<&str>, bind: SocketAddr) -> Result<Self, KeyError> {
        if let (Some(a), Some(b)) = (api, admin) {
            if !a.is_empty() && a == b {
                return Err(KeyError::Same);
            }
        }
        let api = api.map(|k| Key::new("the API key", k)).transpose()?;
        let admin = admin.map(|k| Key::new("the admin key", k)).transpose()?;
        if api.is_none() && !bind.ip().is_loopback() {
            return Err(KeyError::OpenToTheNetwork { bind });
        }
        Ok(Self { api, admin })
    }
}

/// A key read from a file: the first line, without its line ending (as `echo KEY > file` and
/// Kubernetes secrets write it).
pub fn key_from_file_text(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: &str = "127.0.0.1:8080";
    const A: &str = "0123456789abcdef-api";
    const B: &str = "0123456789abcdef-admin";

    fn keys(api: Option<&str>, admin: Option<&str>, bind: &str) -> Result<ServiceKeys, KeyError> {
        ServiceKeys::new(api, admin, bind.parse().unwrap())
    }

    #[test]
    fn empty_short_and_shared_keys_are_refused() {
        assert!(matches!(
            keys(Some(""), Some(B), LOCAL),
            Err(KeyError::Empty { .. })
        ));
        assert!(matches!(
            keys(Some(A), Some(""), LOCAL),
            Err(KeyError::Empty { .. })
        ));
        assert!(matches!(
            keys(Some("short"), None, LOCAL),
            Err(KeyError::Short { len: 5, .. })
        ));
        assert_eq!(keys(Some(A), Some(A), LOCAL).unwrap_err(), KeyError::Same);
        assert!(keys(Some(A), Some(B), LOCAL).is_ok());
        assert!(keys(None, None, LOCAL).is_ok());
        assert!(keys(None, None, "[::1]:80").is_ok());
    }

    #[test]
    fn a_server_open_to_the_network_needs_an_api_key() {
        assert!(matches!(
            keys(None, Some(B), "0.0.0.0:8080"),
            Err(KeyError::OpenToTheNetwork { .. })
        ));
        assert!(matches!(
            keys(None, None, "10.1.2.3:8080"),
            Err(KeyError::OpenToTheNetwork { .. })
        ));
        assert!(keys(Some(A), None, "0.0.0.0:8080").is_ok());
    }

    #[test]
    fn a_key_matches_only_itself_and_never_prints() {
        let k = keys(Some(A), None, LOCAL).unwrap().api.unwrap();
        assert!(k.matches(A));
        assert!(!k.matches(""));
        assert!(!k.matches(&A[..A.len() - 1]));
        assert!(!format!("{k:?}").contains("0123"));
        assert_eq!(key_from_file_text(&format!("{A}\n")), A);
        assert_eq!(key_from_file_text(&format!("{A}\r\n")), A);
        assert_eq!(key_from_file_text(""), "");
    }
}
