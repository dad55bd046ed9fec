//! Use cases. Each owns its transaction; "now" and the caller's context are
//! arguments, so tests drive expiry, throttling and TOTP windows.

mod accounts;
mod events;
mod keys;
mod login;
mod password;
mod sessions;
mod throttle;
mod totp;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;

pub use accounts::AccountView;
pub use events::{SecurityEventType, SecurityEventView};
pub use keys::{KeyManager, PublishedKey};
pub use login::LoginOutcome;
pub use recapp_service_kit::{PageRequest, ServiceCredentials, ServicePrincipal};
pub use sessions::{AccessGrant, IssuedSession, SessionView};
pub use throttle::{CounterPolicy, ThrottlePolicy};
pub use totp::TotpEnrollment;

use crate::{
    config::Settings,
    crypto::{Cipher, PasswordHasher},
    domain::TotpVerifier,
};

/// Who is calling and from where: feeds throttling and security events.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub client_ip: String,
    pub user_agent: String,
    pub trace_id: String,
}

/// A second factor presented by the person.
#[derive(Debug, Clone)]
pub enum SecondFactor {
    Totp(String),
    RecoveryCode(String),
}

/// The identity service's state, shared by every request.
#[derive(Clone)]
pub struct Identity {
    inner: Arc<Inner>,
}

struct Inner {
    db: DatabaseConnection,
    settings: Settings,
    hasher: PasswordHasher,
    cipher: Cipher,
    keys: KeyManager,
    totp: TotpVerifier,
    page_tokens: recapp_service_kit::PageTokens,
}

impl Identity {
    /// Prepares the state; loads (or on first start creates) a signing key.
    pub async fn new(
        db: DatabaseConnection,
        settings: Settings,
        allow_weak_argon2: bool,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Self> {
        settings.argon2.validate(allow_weak_argon2)?;
        let hasher = PasswordHasher::new(settings.argon2, settings.hash_concurrency)?;
        let cipher = Cipher::new(settings.encryption_keys.clone())?;
        let keys = KeyManager::load_or_create(db.clone(), cipher.clone(), now).await?;
        let page_tokens = page_token_key(&settings)?;
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                settings,
                hasher,
                cipher,
                keys,
                totp: TotpVerifier::standard(),
                page_tokens,
            }),
        })
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub fn keys(&self) -> &KeyManager {
        &self.inner.keys
    }
}

/// Page tokens are signed with a key derived from the active encryption
/// key, so every replica agrees without another secret to configure.
fn page_token_key(settings: &Settings) -> anyhow::Result<recapp_service_kit::PageTokens> {
    let active = settings
        .encryption_keys
        .first()
        .ok_or_else(|| anyhow::anyhow!("no encryption key"))?;
    let secret = format!("identity page tokens\0{}", active.to_ring_entry());
    Ok(recapp_service_kit::PageTokens::new(secret.as_bytes()))
}
