//! Who is calling: a person with an access token from identity (verified
//! here, offline, with identity's published keys) or an internal service
//! with a credential.

use std::{
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use recapp_access_token::{self as token, KeySet};
use recapp_service_kit::{ServiceCredentials, ServicePrincipal};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::{
    error::{MembershipError, Result},
    identity::IdentityClient,
};

/// A signed-in person, as their access token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub account_id: Uuid,
    pub email: String,
    /// The sign-in used a second factor (`amr` has `otp`).
    pub second_factor: bool,
    /// The account has TOTP enrolled (at the time the token was issued).
    pub totp_enrolled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Person(Person),
    Service(ServicePrincipal),
}

impl Caller {
    /// The principal's name for audit and idempotency.
    pub fn principal(&self) -> String {
        match self {
            Caller::Person(p) => p.account_id.to_string(),
            Caller::Service(s) => format!("service:{}", s.name),
        }
    }

    pub fn person(&self) -> Result<&Person> {
        match self {
            Caller::Person(p) => Ok(p),
            Caller::Service(_) => Err(MembershipError::PeopleOnly),
        }
    }
}

/// How often an unknown key id may trigger a refetch of identity's keys.
const REFETCH_AT_MOST_EVERY: Duration = Duration::from_secs(2);

struct Cached {
    keys: KeySet,
    fetched_at: Option<Instant>,
}

/// Verifies access tokens with a cache of identity's public keys: fetched
/// on first use, refetched when a token names an unknown key, and still
/// used when identity is briefly unreachable.
#[derive(Clone)]
pub struct Authenticator {
    identity: IdentityClient,
    credentials: ServiceCredentials,
    cache: Arc<RwLock<Cached>>,
    refetch: Arc<Mutex<()>>,
}

impl Authenticator {
    pub fn new(identity: IdentityClient, credentials: ServiceCredentials) -> Self {
        Self {
            identity,
            credentials,
            cache: Arc::new(RwLock::new(Cached {
                keys: KeySet::default(),
                fetched_at: None,
            })),
            refetch: Arc::new(Mutex::new(())),
        }
    }

    /// Identifies the caller from the request metadata.
    pub async fn caller(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        now: DateTime<Utc>,
    ) -> Result<Caller> {
        if let Some(secret) = metadata
            .get("x-recapp-service-token")
            .and_then(|v| v.to_str().ok())
        {
            // A service may also forward a person's token (the gateway does):
            // then the person is the caller.
            let principal = self
                .credentials
                .authenticate(secret)
                .ok_or(MembershipError::TokenInvalid)?;
            return match recapp_service_kit::grpc::bearer_token(metadata) {
                Some(token) => self.person(token, now).await.map(Caller::Person),
                None => Ok(Caller::Service(principal)),
            };
        }
        let token = recapp_service_kit::grpc::bearer_token(metadata)
            .ok_or(MembershipError::TokenMissing)?;
        self.person(token, now).await.map(Caller::Person)
    }

    /// Whether the request carries a valid service credential (only such
    /// callers may say which client address a request came from).
    pub fn from_trusted_service(&self, metadata: &tonic::metadata::MetadataMap) -> bool {
        metadata
            .get("x-recapp-service-token")
            .and_then(|v| v.to_str().ok())
            .and_then(|secret| self.credentials.authenticate(secret))
            .is_some()
    }

    async fn person(&self, access_token: &str, now: DateTime<Utc>) -> Result<Person> {
        let claims = match token::verify(access_token, &self.keys(), now.timestamp()) {
            Err(token::TokenError::UnknownKey(_)) => {
                self.refetch_keys().await;
                token::verify(access_token, &self.keys(), now.timestamp())
            }
            other => other,
        }
        .map_err(|e| match e {
            token::TokenError::Expired => MembershipError::TokenExpired,
            _ => MembershipError::TokenInvalid,
        })?;
        Ok(Person {
            account_id: claims.sub,
            email: claims.email.to_ascii_lowercase(),
            second_factor: claims.has_second_factor(),
            totp_enrolled: claims.totp,
        })
    }

    fn keys(&self) -> KeySet {
        match self.cache.read() {
            Ok(c) => c.keys.clone(),
            Err(p) => p.into_inner().keys.clone(),
        }
    }

    /// Refetches identity's keys, at most every two seconds and one fetch
    /// at a time; on failure the cached keys stay.
    pub async fn refetch_keys(&self) {
        let _guard = self.refetch.lock().await;
        let recent = match self.cache.read() {
            Ok(c) => c
                .fetched_at
                .is_some_and(|t| t.elapsed() < REFETCH_AT_MOST_EVERY),
            Err(_) => false,
        };
        if recent {
            return;
        }
        match self.identity.signing_keys().await.and_then(|keys| {
            KeySet::new(keys).map_err(|e| anyhow::anyhow!("identity published an invalid key: {e}"))
        }) {
            Ok(keys) => {
                if let Ok(mut cache) = self.cache.write() {
                    cache.keys = keys;
                    cache.fetched_at = Some(Instant::now());
                }
            }
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "Could not fetch identity's signing keys; using the cached ones."
                );
                if let Ok(mut cache) = self.cache.write() {
                    cache.fetched_at = Some(Instant::now());
                }
            }
        }
    }
}
