//! AIP-155 request ids: a retried mutation with the same id gets the first
//! answer back and changes nothing (no second email); the same id with
//! another method or other contents is refused. The key is stored
//! after the first call succeeds; two calls racing with one id may both
//! run, and then the later one's invariant checks (one pending invitation
//! per address, single-use links) refuse the duplicate.

use chrono::{DateTime, Utc};
use prost::Message;
use sea_orm::{ActiveValue::Set, DatabaseConnection, EntityTrait, sea_query::OnConflict};
use sha2::Digest;

use crate::{
    auth::Caller,
    error::{MembershipError, Result},
    store::{self, idempotency_key},
};

#[derive(Clone)]
pub struct Idempotency {
    db: DatabaseConnection,
}

impl Idempotency {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// `request` is the encoded request: a request id reused with another
    /// method or other contents is refused (REQUEST_ID_REUSED).
    pub async fn run<T, F>(
        &self,
        caller: &Caller,
        request_id: &str,
        method: &str,
        request: &[u8],
        now: DateTime<Utc>,
        call: F,
    ) -> Result<T>
    where
        T: Message + Default,
        F: std::future::Future<Output = Result<T>>,
    {
        let request_id = request_id.trim();
        if request_id.is_empty() {
            return call.await;
        }
        if request_id.len() > 64
            || !request_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(MembershipError::InvalidArgument(
                "request_id must be a UUID (at most 64 characters)".into(),
            ));
        }
        let principal = caller.principal();
        // The method and a digest of the request: the same id with other
        // contents is another request, and refused.
        let digest = hex::encode(&sha2::Sha256::digest(request)[..16]);
        let fingerprint = format!("{method}:{digest}");
        if let Some(stored) =
            idempotency_key::Entity::find_by_id((principal.clone(), request_id.to_owned()))
                .one(&self.db)
                .await?
        {
            if stored.method != fingerprint {
                return Err(MembershipError::RequestIdReused);
            }
            return T::decode(stored.response.as_slice())
                .map_err(|e| MembershipError::Unexpected(anyhow::anyhow!("stored response: {e}")));
        }
        let response = call.await?;
        let at = store::ms(now);
        idempotency_key::Entity::insert(idempotency_key::ActiveModel {
            principal: Set(principal),
            request_id: Set(request_id.to_owned()),
            method: Set(fingerprint),
            response: Set(response.encode_to_vec()),
            created_at: Set(at),
            updated_at: Set(at),
        })
        .on_conflict(
            OnConflict::columns([
                idempotency_key::Column::Principal,
                idempotency_key::Column::RequestId,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await?;
        Ok(response)
    }
}
