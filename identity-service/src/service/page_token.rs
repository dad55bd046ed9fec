//! Opaque, signed page tokens for keyset pagination (AIP-158). A token names
//! the last id of the previous page and the list it belongs to; the HMAC
//! stops clients from forging positions or reusing a token on another list.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{crypto::EncryptionKey, error::IdentityError};

pub const DEFAULT_PAGE_SIZE: u64 = 50;
pub const MAX_PAGE_SIZE: u64 = 200;

#[derive(Clone)]
pub struct PageTokenSigner {
    key: [u8; 32],
}

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub size: u64,
    /// Exclusive upper bound on the id (lists are newest first).
    pub before: Option<Uuid>,
}

impl PageTokenSigner {
    /// Derives the MAC key from the active encryption key, so every replica
    /// agrees without another secret to configure.
    pub fn derive(keys: &[EncryptionKey]) -> anyhow::Result<Self> {
        let active = keys
            .first()
            .ok_or_else(|| anyhow::anyhow!("no encryption key"))?;
        let mut hasher = Sha256::new();
        hasher.update(b"recapp identity page tokens v1\0");
        hasher.update(active.to_ring_entry().as_bytes());
        Ok(Self {
            key: hasher.finalize().into(),
        })
    }

    fn mac(&self, list: &str, id: &Uuid) -> anyhow::Result<[u8; 32]> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .map_err(|_| anyhow::anyhow!("bad mac key"))?;
        mac.update(list.as_bytes());
        mac.update(b"\0");
        mac.update(id.as_bytes());
        Ok(mac.finalize().into_bytes().into())
    }

    pub fn encode(&self, list: &str, last_id: Uuid) -> Result<String, IdentityError> {
        let mut bytes = last_id.as_bytes().to_vec();
        bytes.extend_from_slice(&self.mac(list, &last_id)?);
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Checks `page_size` and `page_token` of a list request on `list` (a
    /// name that includes the owner, e.g. `sessions/<account>`).
    pub fn request(
        &self,
        list: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<PageRequest, IdentityError> {
        let size = match page_size {
            n if n < 0 => {
                return Err(IdentityError::InvalidArgument(
                    "page_size must not be negative".into(),
                ));
            }
            0 => DEFAULT_PAGE_SIZE,
            n => (n as u64).min(MAX_PAGE_SIZE),
        };
        if page_token.is_empty() {
            return Ok(PageRequest { size, before: None });
        }
        if page_token.len() > 128 {
            return Err(IdentityError::InvalidPageToken);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(page_token)
            .map_err(|_| IdentityError::InvalidPageToken)?;
        if bytes.len() != 48 {
            return Err(IdentityError::InvalidPageToken);
        }
        let id = Uuid::from_slice(&bytes[..16]).map_err(|_| IdentityError::InvalidPageToken)?;
        let expected = self.mac(list, &id)?;
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&expected[..], &bytes[16..])) {
            return Err(IdentityError::InvalidPageToken);
        }
        Ok(PageRequest {
            size,
            before: Some(id),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> PageTokenSigner {
        PageTokenSigner::derive(&[EncryptionKey::generate("k").unwrap()]).unwrap()
    }

    #[test]
    fn a_token_round_trips_on_its_own_list() {
        let s = signer();
        let id = Uuid::now_v7();
        let token = s.encode("sessions/a", id).unwrap();
        assert_eq!(
            s.request("sessions/a", 10, &token).unwrap(),
            PageRequest {
                size: 10,
                before: Some(id)
            }
        );
    }

    #[test]
    fn a_token_from_another_list_or_tampered_is_refused() {
        let s = signer();
        let token = s.encode("sessions/a", Uuid::now_v7()).unwrap();
        assert!(matches!(
            s.request("sessions/b", 10, &token),
            Err(IdentityError::InvalidPageToken)
        ));
        let mut tampered = token.into_bytes();
        tampered[3] = if tampered[3] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(matches!(
            s.request("sessions/a", 10, &tampered),
            Err(IdentityError::InvalidPageToken)
        ));
        assert!(matches!(
            s.request("sessions/a", 10, "garbage!"),
            Err(IdentityError::InvalidPageToken)
        ));
    }

    #[test]
    fn page_sizes_default_and_cap() {
        let s = signer();
        assert_eq!(s.request("l", 0, "").unwrap().size, DEFAULT_PAGE_SIZE);
        assert_eq!(s.request("l", 10_000, "").unwrap().size, MAX_PAGE_SIZE);
        assert!(s.request("l", -1, "").is_err());
    }
}
