//! argon2id password hashing, off the async workers and behind a limit sized
//! to the cores, so a burst of logins queues instead of starving cheap RPCs
//! and memory stays bounded (hashes in flight x m_cost).

use std::sync::Arc;

use anyhow::{Context, anyhow};
use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordVerifier, Version,
    password_hash::{PasswordHasher as _, SaltString},
};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use super::random_bytes;
use crate::domain::Password;

/// argon2id cost parameters. The defaults are OWASP's floor for argon2id
/// (m = 19456 KiB, t = 2, p = 1); lower values are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl Argon2Params {
    /// Parameters below OWASP's floor are refused unless `allow_weak` (only
    /// tests of unrelated behaviour use that, to run faster).
    pub fn validate(&self, allow_weak: bool) -> anyhow::Result<()> {
        let floor = Self::default();
        if !allow_weak
            && (self.memory_kib < floor.memory_kib
                || self.iterations < floor.iterations
                || self.parallelism < floor.parallelism)
        {
            anyhow::bail!(
                "argon2id parameters must be at least m={} KiB, t={}, p={} (OWASP)",
                floor.memory_kib,
                floor.iterations,
                floor.parallelism
            );
        }
        self.to_params().map(|_| ())
    }

    fn to_params(self) -> anyhow::Result<Params> {
        Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| anyhow!("invalid argon2 parameters: {e}"))
    }
}

/// Whether a password matched, and whether its stored hash should be
/// replaced because the configured parameters changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyOutcome {
    Valid { needs_rehash: bool },
    Invalid,
}

#[derive(Clone)]
pub struct PasswordHasher {
    params: Argon2Params,
    limit: Arc<Semaphore>,
    dummy_hash: Arc<str>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// `concurrency` hashes may run at once (the number of cores is right).
    pub fn new(params: Argon2Params, concurrency: usize) -> anyhow::Result<Self> {
        let argon = argon2(params)?;
        // A hash of a random password: unknown emails are verified against it
        // so they cost the same time as a wrong password.
        let salt = SaltString::encode_b64(&random_bytes::<16>()?)
            .map_err(|e| anyhow!("salt encoding failed: {e}"))?;
        let dummy = argon
            .hash_password(&random_bytes::<32>()?, &salt)
            .map_err(|e| anyhow!("argon2 failed: {e}"))?
            .to_string();
        Ok(Self {
            params,
            limit: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy_hash: dummy.into(),
        })
    }

    pub fn params(&self) -> Argon2Params {
        self.params
    }

    /// Hashes a new password (PHC string).
    pub async fn hash(&self, password: &Password) -> anyhow::Result<String> {
        let params = self.params;
        let password = SecretString::from(password.expose().to_owned());
        self.run(move || {
            let salt = SaltString::encode_b64(&random_bytes::<16>()?)
                .map_err(|e| anyhow!("salt encoding failed: {e}"))?;
            Ok(argon2(params)?
                .hash_password(password.expose_secret().as_bytes(), &salt)
                .map_err(|e| anyhow!("argon2 failed: {e}"))?
                .to_string())
        })
        .await
    }

    /// Verifies against a stored PHC string, or against the dummy hash when
    /// there is no account (`stored == None`), which always ends `Invalid`.
    pub async fn verify(
        &self,
        password: &Password,
        stored: Option<&str>,
    ) -> anyhow::Result<VerifyOutcome> {
        let params = self.params;
        let password = SecretString::from(password.expose().to_owned());
        let (hash, is_dummy) = match stored {
            Some(hash) => (hash.to_owned(), false),
            None => (self.dummy_hash.to_string(), true),
        };
        self.run(move || {
            let parsed =
                PasswordHash::new(&hash).map_err(|e| anyhow!("stored hash is not PHC: {e}"))?;
            let ok = Argon2::default()
                .verify_password(password.expose_secret().as_bytes(), &parsed)
                .is_ok();
            if !ok || is_dummy {
                return Ok(VerifyOutcome::Invalid);
            }
            let needs_rehash = parsed.algorithm.as_str() != "argon2id"
                || Params::try_from(&parsed)
                    .map(|p| {
                        p.m_cost() != params.memory_kib
                            || p.t_cost() != params.iterations
                            || p.p_cost() != params.parallelism
                    })
                    .unwrap_or(true);
            Ok(VerifyOutcome::Valid { needs_rehash })
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let permit = self
            .limit
            .clone()
            .acquire_owned()
            .await
            .context("hasher limit closed")?;
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            span.in_scope(work)
        })
        .await
        .context("password hashing task failed")?
    }
}

fn argon2(params: Argon2Params) -> anyhow::Result<Argon2<'static>> {
    Ok(Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        params.to_params()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weak() -> Argon2Params {
        Argon2Params {
            memory_kib: 256,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[tokio::test]
    async fn a_hash_verifies_the_same_password_only() {
        let hasher = PasswordHasher::new(weak(), 2).unwrap();
        let password = Password::new_for_login("correct horse battery staple").unwrap();
        let hash = hasher.hash(&password).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=256,t=1,p=1$"));
        assert_eq!(
            hasher.verify(&password, Some(&hash)).await.unwrap(),
            VerifyOutcome::Valid {
                needs_rehash: false
            }
        );
        let wrong = Password::new_for_login("correct horse battery stapler").unwrap();
        assert_eq!(
            hasher.verify(&wrong, Some(&hash)).await.unwrap(),
            VerifyOutcome::Invalid
        );
    }

    #[tokio::test]
    async fn a_hash_made_with_other_parameters_asks_for_a_rehash() {
        let old = PasswordHasher::new(weak(), 1).unwrap();
        let password = Password::new_for_login("correct horse battery staple").unwrap();
        let hash = old.hash(&password).await.unwrap();
        let new = PasswordHasher::new(
            Argon2Params {
                memory_kib: 512,
                ..weak()
            },
            1,
        )
        .unwrap();
        assert_eq!(
            new.verify(&password, Some(&hash)).await.unwrap(),
            VerifyOutcome::Valid { needs_rehash: true }
        );
    }

    #[tokio::test]
    async fn an_unknown_account_never_verifies() {
        let hasher = PasswordHasher::new(weak(), 1).unwrap();
        let password = Password::new_for_login("anything at all").unwrap();
        assert_eq!(
            hasher.verify(&password, None).await.unwrap(),
            VerifyOutcome::Invalid
        );
    }

    #[test]
    fn parameters_below_the_owasp_floor_are_refused() {
        assert!(weak().validate(false).is_err());
        assert!(Argon2Params::default().validate(false).is_ok());
        assert!(weak().validate(true).is_ok());
    }
}
