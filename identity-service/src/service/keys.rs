//! The Ed25519 keys that sign access tokens. They live in the database
//! (private halves sealed with the encryption key ring) so every replica
//! signs with and publishes the same keys. The newest unretired key signs;
//! all unretired keys verify and are published.

use std::{
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use anyhow::{Context, anyhow};
use chrono::{DateTime, Utc};
use recapp_access_token::{self as token, Claims, KeySet, PublicKey, SigningKey};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
};

use crate::{
    crypto::{Cipher, Sealed, random_bytes},
    error::{IdentityError, Result},
    store::{self, signing_key},
};

/// A published verification key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedKey {
    pub key: PublicKey,
    pub created_at: DateTime<Utc>,
}

struct Loaded {
    signing: Arc<SigningKey>,
    published: Vec<PublishedKey>,
    verify: KeySet,
    loaded_at: Instant,
}

#[derive(Clone)]
pub struct KeyManager {
    db: DatabaseConnection,
    cipher: Cipher,
    state: Arc<RwLock<Loaded>>,
}

/// How often an unknown `kid` may trigger a reload from the database.
const RELOAD_AT_MOST_EVERY: Duration = Duration::from_secs(2);

impl KeyManager {
    /// Loads the keys, creating the first one when there is none.
    pub async fn load_or_create(
        db: DatabaseConnection,
        cipher: Cipher,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Self> {
        let mut loaded = load(&db, &cipher).await?;
        if loaded.is_none() {
            create_key(&db, &cipher, now).await?;
            loaded = load(&db, &cipher).await?;
        }
        let loaded = loaded.ok_or_else(|| anyhow!("no signing key after creating one"))?;
        Ok(Self {
            db,
            cipher,
            state: Arc::new(RwLock::new(loaded)),
        })
    }

    /// Signs claims with the current key.
    pub fn sign(&self, claims: &Claims) -> Result<String> {
        let key = self.read(|s| s.signing.clone());
        key.sign(claims)
            .map_err(|e| IdentityError::Unexpected(anyhow!("signing failed: {e}")))
    }

    /// The keys to publish.
    pub fn published(&self) -> Vec<PublishedKey> {
        self.read(|s| s.published.clone())
    }

    /// Verifies an access token; an unknown key id reloads the keys once (a
    /// replica may have created one).
    pub async fn verify(&self, access_token: &str, now: DateTime<Utc>) -> Result<Claims> {
        let keys = self.read(|s| s.verify.clone());
        match token::verify(access_token, &keys, now.timestamp()) {
            Err(token::TokenError::UnknownKey(_)) => {
                let stale = self.read(|s| s.loaded_at.elapsed() >= RELOAD_AT_MOST_EVERY);
                if stale
                    && let Some(loaded) = load(&self.db, &self.cipher).await?
                    && let Ok(mut state) = self.state.write()
                {
                    *state = loaded;
                }
                let keys = self.read(|s| s.verify.clone());
                token::verify(access_token, &keys, now.timestamp()).map_err(map_token_error)
            }
            other => other.map_err(map_token_error),
        }
    }

    fn read<T>(&self, f: impl FnOnce(&Loaded) -> T) -> T {
        match self.state.read() {
            Ok(state) => f(&state),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }
}

fn map_token_error(error: token::TokenError) -> IdentityError {
    match error {
        token::TokenError::Expired => IdentityError::TokenExpired,
        _ => IdentityError::TokenInvalid,
    }
}

async fn load(db: &DatabaseConnection, cipher: &Cipher) -> anyhow::Result<Option<Loaded>> {
    let rows = signing_key::Entity::find()
        .filter(signing_key::Column::RetiredAt.is_null())
        .order_by_desc(signing_key::Column::CreatedAt)
        .order_by_desc(signing_key::Column::KeyId)
        .all(db)
        .await
        .context("loading signing keys")?;
    let Some(newest) = rows.first() else {
        return Ok(None);
    };
    let secret = cipher.open(
        &Sealed {
            ciphertext: newest.private_key_ciphertext.clone(),
            nonce: newest.nonce.clone(),
            key_id: newest.encryption_key_id.clone(),
        },
        newest.key_id.as_bytes(),
    )?;
    let secret: [u8; 32] = secret
        .try_into()
        .map_err(|_| anyhow!("a signing key is not 32 bytes"))?;
    let signing = Arc::new(SigningKey::from_bytes(newest.key_id.clone(), &secret));
    let mut published = Vec::with_capacity(rows.len());
    for row in &rows {
        let bytes: [u8; 32] = row
            .public_key
            .clone()
            .try_into()
            .map_err(|_| anyhow!("a public key is not 32 bytes"))?;
        published.push(PublishedKey {
            key: PublicKey {
                key_id: row.key_id.clone(),
                bytes,
            },
            created_at: store::time(row.created_at),
        });
    }
    let verify = KeySet::new(published.iter().map(|p| p.key.clone()))
        .map_err(|e| anyhow!("a stored public key is invalid: {e}"))?;
    Ok(Some(Loaded {
        signing,
        published,
        verify,
        loaded_at: Instant::now(),
    }))
}

async fn create_key(
    db: &DatabaseConnection,
    cipher: &Cipher,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let secret = random_bytes::<32>()?;
    let key_id =
        format!("k{}", now.format("%Y%m%d%H%M%S")) + "-" + &hex::encode(random_bytes::<4>()?);
    let key = SigningKey::from_bytes(key_id.clone(), &secret);
    let sealed = cipher.seal(&secret, key_id.as_bytes())?;
    let at = store::ms(now);
    signing_key::Entity::insert(signing_key::ActiveModel {
        key_id: Set(key_id.clone()),
        public_key: Set(key.public_key().bytes.to_vec()),
        private_key_ciphertext: Set(sealed.ciphertext),
        nonce: Set(sealed.nonce),
        encryption_key_id: Set(sealed.key_id),
        retired_at: Set(None),
        created_at: Set(at),
        updated_at: Set(at),
    })
    .exec_without_returning(db)
    .await
    .context("storing a new signing key")?;
    tracing::info!(key_id = %key_id, "Created a new access-token signing key.");
    Ok(())
}
