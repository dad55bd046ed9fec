//! Service principals: internal callers identified by a secret whose SHA-256
//! is configured. The secrets themselves are never configured here.

use std::collections::HashMap;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

/// An authenticated internal caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePrincipal {
    pub name: String,
}

#[derive(Debug, Clone, Default)]
pub struct ServiceCredentials {
    by_hash: HashMap<[u8; 32], String>,
}

impl ServiceCredentials {
    /// Parses `name:sha256hex[,name:sha256hex...]` (also newline separated).
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut by_hash = HashMap::new();
        for entry in text
            .split([',', '\n'])
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let (name, hash) = entry
                .split_once(':')
                .context("a service credential must be written as name:sha256hex")?;
            let name = name.trim();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                bail!("a service name must be [A-Za-z0-9_-]+");
            }
            let bytes = hex::decode(hash.trim()).context("a credential hash must be hex")?;
            let hash: [u8; 32] = bytes
                .try_into()
                .map_err(|_| anyhow::anyhow!("a credential hash must be 32 bytes (SHA-256)"))?;
            if by_hash.insert(hash, name.to_owned()).is_some() {
                bail!("the same credential hash is configured twice");
            }
        }
        Ok(Self { by_hash })
    }

    /// Adds a principal from its secret (tests and the local launcher).
    pub fn with_secret(mut self, name: &str, secret: &str) -> Self {
        self.by_hash.insert(Self::hash(secret), name.to_owned());
        self
    }

    /// The SHA-256 of a presented secret.
    pub fn hash(secret: &str) -> [u8; 32] {
        Sha256::digest(secret.as_bytes()).into()
    }

    /// The configuration line for a principal with this secret.
    pub fn config_entry(name: &str, secret: &str) -> String {
        format!("{name}:{}", hex::encode(Self::hash(secret)))
    }

    /// The principal the secret belongs to. The lookup is by the hash of a
    /// high-entropy secret, so it reveals nothing useful about other secrets.
    pub fn authenticate(&self, secret: &str) -> Option<ServicePrincipal> {
        if secret.is_empty() || secret.len() > 512 {
            return None;
        }
        self.by_hash
            .get(&Self::hash(secret))
            .map(|name| ServicePrincipal { name: name.clone() })
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_secret_names_its_principal() {
        let entry = ServiceCredentials::config_entry("gateway", "s3cret-value");
        let creds = ServiceCredentials::parse(&entry).unwrap();
        assert_eq!(creds.authenticate("s3cret-value").unwrap().name, "gateway");
        assert!(creds.authenticate("other").is_none());
        assert!(creds.authenticate("").is_none());
    }

    #[test]
    fn malformed_credential_lines_are_refused() {
        assert!(ServiceCredentials::parse("gateway").is_err());
        assert!(ServiceCredentials::parse("gateway:zz").is_err());
        assert!(ServiceCredentials::parse("gate way:00").is_err());
        assert!(ServiceCredentials::parse("").unwrap().is_empty());
    }
}
