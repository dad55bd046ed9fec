//! AES-256-GCM encryption at rest with a key ring, so keys can rotate: every
//! sealed value records the id of the key that sealed it, new values use the
//! first (active) key, and old values open with whichever key they name.

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use anyhow::{Context, anyhow, bail};
use base64::{Engine, engine::general_purpose::STANDARD};

use super::random_bytes;

/// One named 256-bit key.
#[derive(Clone)]
pub struct EncryptionKey {
    pub id: String,
    key: [u8; 32],
}

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptionKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl EncryptionKey {
    pub fn new(id: impl Into<String>, key: [u8; 32]) -> anyhow::Result<Self> {
        let id = id.into();
        if id.is_empty()
            || id.len() > 64
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bail!("an encryption key id must be 1 to 64 characters of [A-Za-z0-9_-]");
        }
        Ok(Self { id, key })
    }

    /// Generates a random key.
    pub fn generate(id: impl Into<String>) -> anyhow::Result<Self> {
        Self::new(id, random_bytes::<32>()?)
    }

    /// Parses a key ring written as `id:base64key[,id:base64key...]` (also
    /// newline separated); the first key is the active one.
    pub fn parse_ring(text: &str) -> anyhow::Result<Vec<EncryptionKey>> {
        let mut keys = Vec::new();
        for entry in text
            .split([',', '\n'])
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let (id, encoded) = entry
                .split_once(':')
                .ok_or_else(|| anyhow!("an encryption key must be written as id:base64"))?;
            let bytes = STANDARD
                .decode(encoded.trim())
                .context("an encryption key is not valid base64")?;
            let key: [u8; 32] = bytes
                .try_into()
                .map_err(|_| anyhow!("encryption key {id:?} must be exactly 32 bytes"))?;
            if keys.iter().any(|k: &EncryptionKey| k.id == id) {
                bail!("encryption key id {id:?} appears twice");
            }
            keys.push(EncryptionKey::new(id, key)?);
        }
        if keys.is_empty() {
            bail!("the encryption key ring is empty");
        }
        Ok(keys)
    }

    /// `id:base64`, the form [`EncryptionKey::parse_ring`] reads.
    pub fn to_ring_entry(&self) -> String {
        format!("{}:{}", self.id, STANDARD.encode(self.key))
    }
}

/// A sealed value: ciphertext (with tag), its nonce and the key that sealed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub ciphertext: Vec<u8>,
    pub nonce: Vec<u8>,
    pub key_id: String,
}

/// Seals and opens values with a key ring.
#[derive(Clone, Debug)]
pub struct Cipher {
    keys: Vec<EncryptionKey>,
}

impl Cipher {
    pub fn new(keys: Vec<EncryptionKey>) -> anyhow::Result<Self> {
        if keys.is_empty() {
            bail!("at least one encryption key is required");
        }
        Ok(Self { keys })
    }

    /// Encrypts with the active key. `context` is bound as associated data
    /// (for example the owning account id), so a ciphertext moved to another
    /// row does not open.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> anyhow::Result<Sealed> {
        let key = self
            .keys
            .first()
            .ok_or_else(|| anyhow!("no active encryption key"))?;
        let nonce = random_bytes::<12>()?;
        let cipher = Aes256Gcm::new_from_slice(&key.key).map_err(|_| anyhow!("bad key length"))?;
        let ciphertext = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .map_err(|_| anyhow!("encryption failed"))?;
        Ok(Sealed {
            ciphertext,
            nonce: nonce.to_vec(),
            key_id: key.id.clone(),
        })
    }

    /// Decrypts with the key the value names.
    pub fn open(&self, sealed: &Sealed, context: &[u8]) -> anyhow::Result<Vec<u8>> {
        let key = self
            .keys
            .iter()
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| anyhow!("encryption key {:?} is not configured", sealed.key_id))?;
        if sealed.nonce.len() != 12 {
            bail!("a sealed value has a nonce of the wrong length");
        }
        let cipher = Aes256Gcm::new_from_slice(&key.key).map_err(|_| anyhow!("bad key length"))?;
        cipher
            .decrypt(
                Nonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: context,
                },
            )
            .map_err(|_| anyhow!("a sealed value failed to decrypt (wrong key or tampered)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(ids: &[&str]) -> Cipher {
        Cipher::new(
            ids.iter()
                .map(|id| EncryptionKey::generate(*id).unwrap())
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn a_sealed_value_opens_with_the_same_context() {
        let cipher = ring(&["k1"]);
        let sealed = cipher.seal(b"secret", b"account-1").unwrap();
        assert_ne!(sealed.ciphertext, b"secret");
        assert_eq!(cipher.open(&sealed, b"account-1").unwrap(), b"secret");
    }

    #[test]
    fn a_sealed_value_does_not_open_under_another_context() {
        let cipher = ring(&["k1"]);
        let sealed = cipher.seal(b"secret", b"account-1").unwrap();
        assert!(cipher.open(&sealed, b"account-2").is_err());
    }

    #[test]
    fn old_values_open_after_a_new_key_becomes_active() {
        let old = EncryptionKey::generate("old").unwrap();
        let sealed = Cipher::new(vec![old.clone()])
            .unwrap()
            .seal(b"x", b"")
            .unwrap();
        let rotated = Cipher::new(vec![EncryptionKey::generate("new").unwrap(), old]).unwrap();
        assert_eq!(rotated.open(&sealed, b"").unwrap(), b"x");
        assert_eq!(rotated.seal(b"y", b"").unwrap().key_id, "new");
    }

    #[test]
    fn a_ring_round_trips_through_its_text_form() {
        let a = EncryptionKey::generate("a").unwrap();
        let b = EncryptionKey::generate("b").unwrap();
        let text = format!("{},{}", a.to_ring_entry(), b.to_ring_entry());
        let parsed = EncryptionKey::parse_ring(&text).unwrap();
        assert_eq!(
            parsed.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(parsed[0].key, a.key);
    }

    #[test]
    fn a_short_key_or_duplicate_id_is_refused() {
        assert!(EncryptionKey::parse_ring("a:AAAA").is_err());
        let a = EncryptionKey::generate("a").unwrap().to_ring_entry();
        assert!(EncryptionKey::parse_ring(&format!("{a},{a}")).is_err());
        assert!(EncryptionKey::parse_ring("").is_err());
    }

    #[test]
    fn debug_output_hides_the_key() {
        let key = EncryptionKey::new("k", [7u8; 32]).unwrap();
        assert!(!format!("{key:?}").contains("7, 7"));
    }
}
