//! Cryptographic building blocks of the identity service: encryption at rest,
//! password hashing and the access-token signing keys.

mod cipher;
mod password_hasher;

pub use cipher::{Cipher, EncryptionKey, Sealed};
pub use password_hasher::{Argon2Params, PasswordHasher, VerifyOutcome};

/// Fills a fresh buffer from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("the OS random source failed: {e}"))?;
    Ok(bytes)
}
