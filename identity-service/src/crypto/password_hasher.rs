//! argon2id password hashing on a fixed pool of threads, one per core by
//! default, each reusing its own argon2 memory. Logins beyond the pool queue
//! instead of starving the async workers, and memory stays bounded at
//! (threads x m_cost): the allocator never sees a 19 MiB allocation per
//! login, so it cannot pile up per-thread arenas of them.

use std::sync::{Arc, Mutex, mpsc};

use anyhow::{Context, anyhow, bail};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use base64::{Engine, engine::general_purpose::STANDARD_NO_PAD};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;

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
            bail!(
                "argon2id parameters must be at least m={} KiB, t={}, p={} (OWASP)",
                floor.memory_kib,
                floor.iterations,
                floor.parallelism
            );
        }
        self.to_params().map(|_| ())
    }

    fn to_params(self) -> anyhow::Result<Params> {
        Params::new(
            self.memory_kib,
            self.iterations,
            self.parallelism,
            Some(HASH_LEN),
        )
        .map_err(|e| anyhow!("invalid argon2 parameters: {e}"))
    }
}

const HASH_LEN: usize = 32;
const SALT_LEN: usize = 16;
/// Stored hashes with more memory than this are refused rather than run.
const MAX_MEMORY_KIB: u32 = 1024 * 1024;

/// Whether a password matched, and whether its stored hash should be
/// replaced because the configured parameters changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyOutcome {
    Valid { needs_rehash: bool },
    Invalid,
}

type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

#[derive(Clone)]
pub struct PasswordHasher {
    params: Argon2Params,
    jobs: mpsc::Sender<Job>,
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
    /// Starts `threads` hashing threads (the number of cores is right). They
    /// end when the last clone of the hasher is dropped.
    pub fn new(params: Argon2Params, threads: usize) -> anyhow::Result<Self> {
        params.to_params()?;
        let (jobs, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for i in 0..threads.max(1) {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    lower_priority();
                    let mut memory = Vec::new();
                    loop {
                        let job = match receiver.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&mut memory),
                            Err(_) => return,
                        }
                    }
                })
                .context("starting a hashing thread")?;
        }
        // A hash of a random password: unknown emails are verified against
        // it so they cost the same time as a wrong password.
        let random = random_bytes::<32>()?;
        let mut memory = Vec::new();
        let dummy = hash_with(params, &random, &random_bytes::<SALT_LEN>()?, &mut memory)?;
        Ok(Self {
            params,
            jobs,
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
        let salt = random_bytes::<SALT_LEN>()?;
        self.run(move |memory| {
            hash_with(params, password.expose_secret().as_bytes(), &salt, memory)
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
        self.run(move |memory| {
            let (matches, stored_params) =
                verify_with(&hash, password.expose_secret().as_bytes(), memory)?;
            if !matches || is_dummy {
                return Ok(VerifyOutcome::Invalid);
            }
            Ok(VerifyOutcome::Valid {
                needs_rehash: stored_params != params,
            })
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let (done, result) = oneshot::channel();
        let span = tracing::Span::current();
        let job: Job = Box::new(move |memory| {
            let _ = done.send(span.in_scope(|| work(memory)));
        });
        self.jobs
            .send(job)
            .map_err(|_| anyhow!("the hashing threads have stopped"))?;
        result.await.context("a hashing thread died")?
    }
}

/// Hashing yields the CPU to request handling: while logins saturate the
/// cores, cheap RPCs keep their latency (a nice value applies per thread on
/// Linux).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        if let Err(e) = rustix::process::setpriority_process(Some(tid), 19) {
            tracing::debug!(error = %e, "Could not lower the hashing thread's priority.");
        }
    }
}

fn context(params: Argon2Params) -> anyhow::Result<Argon2<'static>> {
    Ok(Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        params.to_params()?,
    ))
}

fn memory_for(params: &Params, memory: &mut Vec<Block>) -> usize {
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    blocks
}

fn hash_with(
    params: Argon2Params,
    password: &[u8],
    salt: &[u8],
    memory: &mut Vec<Block>,
) -> anyhow::Result<String> {
    let argon = context(params)?;
    let blocks = memory_for(&params.to_params()?, memory);
    let mut out = [0u8; HASH_LEN];
    argon
        .hash_password_into_with_memory(password, salt, &mut out, &mut memory[..blocks])
        .map_err(|e| anyhow!("argon2 failed: {e}"))?;
    Ok(format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.memory_kib,
        params.iterations,
        params.parallelism,
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(out)
    ))
}

/// Recomputes a stored PHC argon2id hash; returns whether it matched and the
/// parameters it was made with.
fn verify_with(
    stored: &str,
    password: &[u8],
    memory: &mut Vec<Block>,
) -> anyhow::Result<(bool, Argon2Params)> {
    let parsed = PasswordHash::new(stored).map_err(|e| anyhow!("stored hash is not PHC: {e}"))?;
    if parsed.algorithm.as_str() != "argon2id" {
        bail!("stored hash is not argon2id");
    }
    let params = Params::try_from(&parsed).map_err(|e| anyhow!("stored hash parameters: {e}"))?;
    if params.m_cost() > MAX_MEMORY_KIB {
        bail!("stored hash asks for too much memory");
    }
    let expected = parsed
        .hash
        .ok_or_else(|| anyhow!("stored hash has no output"))?;
    let salt = parsed
        .salt
        .ok_or_else(|| anyhow!("stored hash has no salt"))?;
    let mut salt_buf = [0u8; 64];
    let salt = salt
        .decode_b64(&mut salt_buf)
        .map_err(|e| anyhow!("stored salt: {e}"))?;
    let stored_params = Argon2Params {
        memory_kib: params.m_cost(),
        iterations: params.t_cost(),
        parallelism: params.p_cost(),
    };
    let params = Params::new(
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        Some(expected.len()),
    )
    .map_err(|e| anyhow!("stored hash parameters: {e}"))?;
    let blocks = memory_for(&params, memory);
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut out = vec![0u8; expected.len()];
    argon
        .hash_password_into_with_memory(password, salt, &mut out, &mut memory[..blocks])
        .map_err(|e| anyhow!("argon2 failed: {e}"))?;
    Ok((bool::from(out.ct_eq(expected.as_bytes())), stored_params))
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
    fn hashes_are_standard_phc_strings_that_the_argon2_crate_verifies() {
        use argon2::PasswordVerifier;
        let mut memory = Vec::new();
        let phc = hash_with(weak(), b"hunter2 hunter2", b"0123456789abcdef", &mut memory).unwrap();
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"hunter2 hunter2", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"hunter3 hunter3", &parsed)
                .is_err()
        );
    }

    #[test]
    fn hashes_made_by_the_argon2_crate_verify_here() {
        use argon2::password_hash::{PasswordHasher as _, SaltString};
        let salt = SaltString::encode_b64(b"fedcba9876543210").unwrap();
        let phc = context(weak())
            .unwrap()
            .hash_password(b"some long passphrase", &salt)
            .unwrap()
            .to_string();
        let mut memory = Vec::new();
        assert_eq!(
            verify_with(&phc, b"some long passphrase", &mut memory).unwrap(),
            (true, weak())
        );
        assert!(
            !verify_with(&phc, b"another passphrase", &mut memory)
                .unwrap()
                .0
        );
    }

    #[test]
    fn parameters_below_the_owasp_floor_are_refused() {
        assert!(weak().validate(false).is_err());
        assert!(Argon2Params::default().validate(false).is_ok());
        assert!(weak().validate(true).is_ok());
    }
}
