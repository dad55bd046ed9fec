//! Opaque, signed page tokens for keyset pagination (AIP-158). A token holds
//! the cursor (the sort key of the last item of the previous page) and is
//! bound by an HMAC to the list it came from, so clients can neither forge a
//! position nor reuse a token on another list.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

pub const DEFAULT_PAGE_SIZE: u64 = 50;
pub const MAX_PAGE_SIZE: u64 = 200;
const MAC_LEN: usize = 32;
const MAX_TOKEN_CHARS: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PageTokenError {
    #[error("page_size must not be negative")]
    NegativePageSize,
    #[error("the page token is not valid for this request")]
    Invalid,
}

/// A validated page request: how many, and after which cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest<C = Uuid> {
    pub size: u64,
    pub cursor: Option<C>,
}

#[derive(Clone)]
pub struct PageTokens {
    key: [u8; 32],
}

impl std::fmt::Debug for PageTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageTokens(..)")
    }
}

/// `page_size` as AIP-158 reads it: 0 means the default, more than the
/// maximum means the maximum, negative is an error.
pub fn page_size(requested: i32) -> Result<u64, PageTokenError> {
    match requested {
        n if n < 0 => Err(PageTokenError::NegativePageSize),
        0 => Ok(DEFAULT_PAGE_SIZE),
        n => Ok((n as u64).min(MAX_PAGE_SIZE)),
    }
}

impl PageTokens {
    /// Derives the MAC key from a service secret, so every replica agrees.
    pub fn new(secret: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"recapp page tokens v1\0");
        hasher.update(secret);
        Self {
            key: hasher.finalize().into(),
        }
    }

    fn mac(&self, list: &str, cursor: &[u8]) -> [u8; MAC_LEN] {
        // An HMAC accepts keys of any length: this cannot fail.
        let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key) {
            Ok(mac) => mac,
            Err(_) => return [0u8; MAC_LEN],
        };
        mac.update(list.as_bytes());
        mac.update(b"\0");
        mac.update(cursor);
        mac.finalize().into_bytes().into()
    }

    pub fn encode(&self, list: &str, cursor: &[u8]) -> String {
        let mut bytes = cursor.to_vec();
        bytes.extend_from_slice(&self.mac(list, cursor));
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn decode(&self, list: &str, token: &str) -> Result<Vec<u8>, PageTokenError> {
        if token.len() > MAX_TOKEN_CHARS {
            return Err(PageTokenError::Invalid);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| PageTokenError::Invalid)?;
        if bytes.len() < MAC_LEN {
            return Err(PageTokenError::Invalid);
        }
        let (cursor, mac) = bytes.split_at(bytes.len() - MAC_LEN);
        if !bool::from(self.mac(list, cursor).ct_eq(mac)) {
            return Err(PageTokenError::Invalid);
        }
        Ok(cursor.to_vec())
    }

    pub fn encode_uuid(&self, list: &str, id: Uuid) -> String {
        self.encode(list, id.as_bytes())
    }

    pub fn encode_i64(&self, list: &str, n: i64) -> String {
        self.encode(list, &n.to_be_bytes())
    }

    /// Reads `page_size` and `page_token` for a list keyed by UUID.
    pub fn request_uuid(
        &self,
        list: &str,
        size: i32,
        token: &str,
    ) -> Result<PageRequest<Uuid>, PageTokenError> {
        let size = page_size(size)?;
        if token.is_empty() {
            return Ok(PageRequest { size, cursor: None });
        }
        let cursor =
            Uuid::from_slice(&self.decode(list, token)?).map_err(|_| PageTokenError::Invalid)?;
        Ok(PageRequest {
            size,
            cursor: Some(cursor),
        })
    }

    /// Reads `page_size` and `page_token` for a list keyed by a number.
    pub fn request_i64(
        &self,
        list: &str,
        size: i32,
        token: &str,
    ) -> Result<PageRequest<i64>, PageTokenError> {
        let size = page_size(size)?;
        if token.is_empty() {
            return Ok(PageRequest { size, cursor: None });
        }
        let bytes: [u8; 8] = self
            .decode(list, token)?
            .try_into()
            .map_err(|_| PageTokenError::Invalid)?;
        Ok(PageRequest {
            size,
            cursor: Some(i64::from_be_bytes(bytes)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_on_its_own_list() {
        let tokens = PageTokens::new(b"secret");
        let id = Uuid::now_v7();
        let token = tokens.encode_uuid("sessions/a", id);
        assert_eq!(
            tokens.request_uuid("sessions/a", 10, &token).unwrap(),
            PageRequest {
                size: 10,
                cursor: Some(id)
            }
        );
        let token = tokens.encode_i64("audit/w", 42);
        assert_eq!(
            tokens.request_i64("audit/w", 0, &token).unwrap().cursor,
            Some(42)
        );
    }

    #[test]
    fn a_token_from_another_list_or_tampered_is_refused() {
        let tokens = PageTokens::new(b"secret");
        let token = tokens.encode_uuid("sessions/a", Uuid::now_v7());
        assert_eq!(
            tokens.request_uuid("sessions/b", 10, &token),
            Err(PageTokenError::Invalid)
        );
        let mut tampered = token.into_bytes();
        tampered[3] = if tampered[3] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(
            tokens.request_uuid("sessions/a", 10, &tampered),
            Err(PageTokenError::Invalid)
        );
        assert_eq!(
            tokens.request_uuid("sessions/a", 10, "garbage!"),
            Err(PageTokenError::Invalid)
        );
        assert_eq!(
            tokens.request_uuid("l", 10, &"A".repeat(1000)),
            Err(PageTokenError::Invalid)
        );
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let token = PageTokens::new(b"one").encode_uuid("l", Uuid::now_v7());
        assert_eq!(
            PageTokens::new(b"two").request_uuid("l", 1, &token),
            Err(PageTokenError::Invalid)
        );
    }

    #[test]
    fn page_sizes_default_and_cap() {
        assert_eq!(page_size(0).unwrap(), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(10_000).unwrap(), MAX_PAGE_SIZE);
        assert_eq!(page_size(-1), Err(PageTokenError::NegativePageSize));
    }
}
