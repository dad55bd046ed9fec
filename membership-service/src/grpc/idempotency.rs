//! AIP-155 request ids: a retried mutation with the same id gets the first
//! answer back and changes nothing (no second email); the same id with
//! another method or other contents is refused.
//!
//! The id is claimed before the call runs, by an insert that only one
//! caller can win (the primary key): a concurrent retry with the same id
//! finds the claim pending, waits for the first call's answer and returns
//! it, so exactly one of them executes. A failed or abandoned call releases
//! its claim (failures are not remembered: a retry runs again). A claim
//! left pending by a crashed replica is taken over after `STALE_CLAIM`;
//! only in that case (a crash between the change's commit and the answer's
//! write) can a retry run twice, and then the use case's own rules (one
//! pending invitation per address, single-use links) refuse the duplicate.

use std::time::Duration;

use chrono::{DateTime, Utc};
use prost::Message;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter,
    sea_query::{Expr, OnConflict},
};
use sha2::Digest;

use crate::{
    auth::Caller,
    error::{MembershipError, Result},
    store::{self, idempotency_key},
};

/// A pending claim older than this belongs to a call that died.
const STALE_CLAIM: Duration = Duration::from_secs(60);
/// How often a waiting retry looks for the first call's answer.
const POLL: Duration = Duration::from_millis(20);
/// How long a retry waits for the first call before answering ABORTED.
const WAIT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct Idempotency {
    db: DatabaseConnection,
}

enum Claim<T> {
    /// This call owns the id: run it.
    Run,
    /// The first call's answer.
    Done(T),
}

/// Releases a claim whose call ends without an answer (an error, or the
/// client went away and the call's future was dropped).
struct Release {
    db: DatabaseConnection,
    key: Option<(String, String)>,
}

impl Release {
    fn disarm(&mut self) {
        self.key = None;
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        let Some((principal, request_id)) = self.key.take() else {
            return;
        };
        let db = self.db.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = release(&db, principal, request_id).await {
                    tracing::warn!(error = %e, "Could not release a request id claim.");
                }
            });
        }
    }
}

/// The row of one principal's request id.
fn key(principal: &str, request_id: &str) -> Condition {
    Condition::all()
        .add(idempotency_key::Column::Principal.eq(principal))
        .add(idempotency_key::Column::RequestId.eq(request_id))
}

async fn release(db: &DatabaseConnection, principal: String, request_id: String) -> Result<()> {
    idempotency_key::Entity::delete_many()
        .filter(key(&principal, &request_id))
        .filter(idempotency_key::Column::Pending.eq(true))
        .exec(db)
        .await?;
    Ok(())
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
        match self
            .claim(&principal, request_id, &fingerprint, now)
            .await?
        {
            Claim::Done(answer) => return Ok(answer),
            Claim::Run => {}
        }
        let mut guard = Release {
            db: self.db.clone(),
            key: Some((principal.clone(), request_id.to_owned())),
        };
        let result = call.await;
        match result {
            Ok(response) => {
                guard.disarm();
                let stored = idempotency_key::Entity::update_many()
                    .col_expr(
                        idempotency_key::Column::Response,
                        Expr::value(response.encode_to_vec()),
                    )
                    .col_expr(idempotency_key::Column::Pending, Expr::value(false))
                    .col_expr(
                        idempotency_key::Column::UpdatedAt,
                        Expr::value(store::ms(now)),
                    )
                    .filter(key(&principal, request_id))
                    .exec(&self.db)
                    .await;
                if let Err(e) = stored {
                    // The change is committed: answer it. A retry waits for
                    // the stale claim and may then run again (see above).
                    tracing::warn!(error = %e, "Could not store the answer to a request id.");
                }
                Ok(response)
            }
            Err(e) => {
                guard.disarm();
                release(&self.db, principal, request_id.to_owned())
                    .await
                    .ok();
                Err(e)
            }
        }
    }

    /// Claims the id, or waits for the call that claimed it first.
    async fn claim<T: Message + Default>(
        &self,
        principal: &str,
        request_id: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<Claim<T>> {
        let at = store::ms(now);
        let started = tokio::time::Instant::now();
        loop {
            let inserted = idempotency_key::Entity::insert(idempotency_key::ActiveModel {
                principal: Set(principal.to_owned()),
                request_id: Set(request_id.to_owned()),
                method: Set(fingerprint.to_owned()),
                response: Set(Vec::new()),
                pending: Set(true),
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
            if inserted == 1 {
                return Ok(Claim::Run);
            }
            let stored =
                idempotency_key::Entity::find_by_id((principal.to_owned(), request_id.to_owned()))
                    .one(&self.db)
                    .await?;
            match stored {
                // Released by a failed first call just now: claim again.
                None => continue,
                Some(stored) if stored.method != fingerprint => {
                    return Err(MembershipError::RequestIdReused);
                }
                Some(stored) if !stored.pending => {
                    return T::decode(stored.response.as_slice())
                        .map(Claim::Done)
                        .map_err(|e| {
                            MembershipError::Unexpected(anyhow::anyhow!("stored response: {e}"))
                        });
                }
                Some(stored) if stored.updated_at < at - STALE_CLAIM.as_millis() as i64 => {
                    // The first call died; take its claim over (one winner).
                    let taken = idempotency_key::Entity::update_many()
                        .col_expr(idempotency_key::Column::UpdatedAt, Expr::value(at))
                        .filter(key(principal, request_id))
                        .filter(idempotency_key::Column::Pending.eq(true))
                        .filter(idempotency_key::Column::UpdatedAt.eq(stored.updated_at))
                        .exec(&self.db)
                        .await?;
                    if taken.rows_affected == 1 {
                        return Ok(Claim::Run);
                    }
                }
                Some(_) => {}
            }
            if started.elapsed() >= WAIT {
                return Err(MembershipError::RequestInProgress);
            }
            tokio::time::sleep(POLL).await;
        }
    }
}
