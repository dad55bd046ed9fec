//! Opaque bearer tokens (session, email verification, password reset).
//!
//! The client holds the token; the store keeps only [`OpaqueToken::hash`].
//! Tokens are random with at least 128 bits, so a fast SHA-256 suffices and
//! allows lookup by hash.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// A random token encoded as unpadded base64url. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct OpaqueToken(String);

impl OpaqueToken {
    /// A token of `bytes` random bytes (use at least 16; 32 is usual).
    pub fn generate(bytes: usize) -> Result<Self, getrandom::Error> {
        let mut raw = vec![0u8; bytes];
        getrandom::fill(&mut raw)?;
        Ok(Self(URL_SAFE_NO_PAD.encode(raw)))
    }

    /// Accepts `raw` only if it is the canonical encoding of exactly
    /// `expected_bytes` bytes, so garbage is refused before a database lookup.
    pub fn parse(raw: &str, expected_bytes: usize) -> Option<Self> {
        if raw.len() != encoded_len(expected_bytes) {
            return None;
        }
        // The decoder also refuses non-zero trailing bits, so each byte
        // string has exactly one accepted spelling.
        let decoded = URL_SAFE_NO_PAD.decode(raw).ok()?;
        (decoded.len() == expected_bytes).then(|| Self(raw.to_owned()))
    }

    /// SHA-256 of the encoded string, for storage and lookup.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }

    /// The token text, to hand to the client.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for OpaqueToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OpaqueToken([REDACTED])")
    }
}

/// Length of unpadded base64 for `bytes` bytes.
fn encoded_len(bytes: usize) -> usize {
    bytes / 3 * 4
        + match bytes % 3 {
            0 => 0,
            1 => 2,
            _ => 3,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_32_byte_token_has_43_url_safe_characters() {
        let token = OpaqueToken::generate(32).unwrap();
        assert_eq!(token.expose().len(), 43);
        assert!(
            token
                .expose()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }

    #[test]
    fn two_generated_tokens_differ() {
        assert_ne!(
            OpaqueToken::generate(32).unwrap(),
            OpaqueToken::generate(32).unwrap()
        );
    }

    #[test]
    fn a_generated_token_parses_back() {
        for bytes in [16, 17, 32, 33] {
            let token = OpaqueToken::generate(bytes).unwrap();
            assert_eq!(
                OpaqueToken::parse(token.expose(), bytes),
                Some(token),
                "{bytes}"
            );
        }
    }

    #[test]
    fn a_token_of_the_wrong_length_is_refused() {
        let token = OpaqueToken::generate(32).unwrap();
        assert_eq!(OpaqueToken::parse(token.expose(), 16), None);
        assert_eq!(OpaqueToken::parse(&token.expose()[1..], 32), None);
        assert_eq!(OpaqueToken::parse("", 32), None);
    }

    #[test]
    fn a_token_with_characters_outside_base64url_is_refused() {
        let token = OpaqueToken::generate(32).unwrap();
        for bad in ['+', '/', '=', ' ', 'é'] {
            let mangled: String = bad.to_string() + &token.expose()[bad.len_utf8()..];
            assert_eq!(OpaqueToken::parse(&mangled, 32), None, "{bad:?}");
        }
    }

    #[test]
    fn a_token_with_non_canonical_trailing_bits_is_refused() {
        // 16 bytes leave 4 unused bits in the last character; 'B' sets one.
        let canonical = format!("{}A", "A".repeat(21));
        assert!(OpaqueToken::parse(&canonical, 16).is_some());
        let sloppy = format!("{}B", "A".repeat(21));
        assert_eq!(OpaqueToken::parse(&sloppy, 16), None);
    }

    #[test]
    fn the_hash_is_sha256_of_the_token_text() {
        let token = OpaqueToken::generate(32).unwrap();
        let expected: [u8; 32] = Sha256::digest(token.expose().as_bytes()).into();
        assert_eq!(token.hash(), expected);
    }

    #[test]
    fn debug_output_does_not_reveal_the_token() {
        let token = OpaqueToken::generate(32).unwrap();
        assert_eq!(format!("{token:?}"), "OpaqueToken([REDACTED])");
    }
}
