//! Keyed pseudonymisation of user ids: `HMAC-SHA256(key, user_id)`, hex, first 128 bits,
//! prefixed `u_`. Stable for a given key, unlinkable to the raw id without it (unlike a plain
//! hash, which anyone can recompute over a list of candidate ids).
//!
//! HMAC is RustCrypto's `hmac` over `sha2`, checked here against the RFC 4231 test vectors.

use std::path::Path;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::error::{InterestError, Result};

/// `HMAC-SHA256(key, msg)`.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length (longer ones are hashed first), so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// Maps user ids to pseudonyms (or leaves them unchanged with `keep`).
#[derive(Clone)]
pub struct Pseudonymiser {
    key: Option<Vec<u8>>,
}

impl std::fmt::Debug for Pseudonymiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Pseudonymiser")
            .field("keyed", &self.key.is_some())
            .finish()
    }
}

impl Pseudonymiser {
    pub fn keyed(key: &[u8]) -> Result<Self> {
        if key.len() < 16 {
            return Err(InterestError::invalid(
                "the user-id key must be at least 16 bytes",
            ));
        }
        Ok(Self {
            key: Some(key.to_vec()),
        })
    }

    /// Identity mapping (`--keep-user-ids`).
    pub fn keep_ids() -> Self {
        Self { key: None }
    }

    pub fn is_keyed(&self) -> bool {
        self.key.is_some()
    }

    pub fn apply(&self, user_id: &str) -> String {
        match &self.key {
            Some(k) => format!(
                "u_{}",
                hex::encode(&hmac_sha256(k, user_id.as_bytes())[..16])
            ),
            None => user_id.to_string(),
        }
    }

    /// Whether `id` has the form [`Self::apply`] gives (`u_` and 32 hex digits): an id
    /// that was pseudonymised already, e.g. in data exported by `longtail serve`.
    pub fn looks_pseudonymous(id: &str) -> bool {
        id.len() == 34
            && id.starts_with("u_")
            && id[2..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }

    /// Reads a hex key from `path`, or creates one (32 random bytes, file mode 0600, written
    /// durably) if it does not exist. Returns the key bytes.
    pub fn load_or_create_key_file(path: &Path) -> Result<Vec<u8>> {
        if path.exists() {
            let text = std::fs::read_to_string(path).map_err(|e| InterestError::io(path, e))?;
            return hex::decode(text.trim()).map_err(|e| {
                InterestError::invalid(format!("{}: not a hex key: {e}", path.display()))
            });
        }
        let mut key = vec![0u8; 32];
        rand::rng().fill_bytes(&mut key);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| InterestError::io(dir, e))?;
        }
        longtail_fs::write_atomic_with(path, |tmp| {
            // Owner-only from the start: the key never exists with wider permissions.
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            use std::io::Write;
            let mut f = opts.open(tmp).map_err(|e| InterestError::io(tmp, e))?;
            writeln!(f, "{}", hex::encode(&key)).map_err(|e| InterestError::io(tmp, e))
        })?;
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_recognised_and_raw_ids_are_not() {
        let p = Pseudonymiser::keyed(b"0123456789abcdef").unwrap();
        let id = p.apply("U00001");
        assert!(Pseudonymiser::looks_pseudonymous(&id), "{id}");
        for raw in [
            "U00001",
            "u_",
            "u_0123",
            &id.to_uppercase(),
            &format!("{id}0"),
        ] {
            assert!(!Pseudonymiser::looks_pseudonymous(raw), "{raw}");
        }
    }

    #[test]
    fn rfc4231_vectors() {
        // Test case 1.
        let mac = hmac_sha256(&[0x0b; 20], b"Hi There");
        assert_eq!(
            hex::encode(mac),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        // Test case 2.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: key longer than the block.
        let mac = hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(
            hex::encode(mac),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn stable_keyed_and_distinct() {
        let a = Pseudonymiser::keyed(b"0123456789abcdef").unwrap();
        let b = Pseudonymiser::keyed(b"0123456789abcdeX").unwrap();
        assert_eq!(a.apply("U00001"), a.apply("U00001"));
        assert_ne!(a.apply("U00001"), a.apply("U00002"));
        assert_ne!(a.apply("U00001"), b.apply("U00001"));
        assert!(a.apply("U00001").starts_with("u_") && a.apply("U00001").len() == 34);
        assert_eq!(Pseudonymiser::keep_ids().apply("U00001"), "U00001");
        assert!(Pseudonymiser::keyed(b"short").is_err());
        assert!(!format!("{a:?}").contains("0123"));
    }

    #[test]
    fn key_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/user_id.key");
        let k1 = Pseudonymiser::load_or_create_key_file(&p).unwrap();
        let k2 = Pseudonymiser::load_or_create_key_file(&p).unwrap();
        assert_eq!(k1, k2);
        assert_eq!(k1.len(), 32);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // nothing but the key in its directory
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }
}
