//! "May principal P do X in workspace W?" for the rest of the suite.
//!
//! The hot path. Every answer is read from the database after the request
//! arrived, so a role change, a disable or a removal committed by any
//! replica is seen by the very next check: there is no cache. On
//! PostgreSQL the checks that arrive while earlier ones are in flight are
//! coalesced: one `unnest` join answers a whole batch in one round trip
//! (a statement sees every transaction committed before it started, and
//! each check in a batch arrived before its statement was sent).

use std::sync::{Arc, OnceLock};

use sea_orm::{ConnectionTrait, DbBackend, Statement, sqlx::PgPool};
use tokio::sync::{Semaphore, mpsc, oneshot};
use uuid::Uuid;

use super::{Membership, acting};
use crate::{
    auth::Caller,
    domain::{MemberStatus, Permission, Role},
    error::{MembershipError, Result},
};

/// Batches of checks in flight at once (each holds one pooled connection).
const BATCHES_IN_FLIGHT: usize = 4;
/// The most checks one statement answers.
const MAX_BATCH: usize = 256;
/// Checks waiting for a batch before callers queue on the channel.
const QUEUE: usize = 4096;

/// A member's role, status and the workspace's MFA requirement.
type Found = Option<(String, String, bool)>;

struct Ask {
    workspace_id: Uuid,
    account_id: Uuid,
    reply: oneshot::Sender<std::result::Result<Found, Arc<sea_orm::sqlx::Error>>>,
}

/// Coalesces concurrent checks into batched statements on PostgreSQL.
#[derive(Default)]
pub(crate) struct CheckBatcher {
    queue: OnceLock<mpsc::Sender<Ask>>,
}

const BATCH_SQL: &str = "SELECT k.i, m.role, m.status, w.require_mfa \
     FROM unnest($1::uuid[], $2::uuid[]) WITH ORDINALITY AS k(w, a, i) \
     JOIN memberships m ON m.workspace_id = k.w AND m.account_id = k.a \
     JOIN workspaces w ON w.id = m.workspace_id";

impl CheckBatcher {
    async fn lookup(&self, pool: &PgPool, workspace_id: Uuid, account_id: Uuid) -> Result<Found> {
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(collect(pool.clone(), rx));
            tx
        });
        let (reply, answer) = oneshot::channel();
        let ask = Ask {
            workspace_id,
            account_id,
            reply,
        };
        if queue.send(ask).await.is_err() {
            // The collector is gone (shutting down): ask directly.
            return single(pool, workspace_id, account_id).await;
        }
        match answer.await {
            Ok(Ok(found)) => Ok(found),
            Ok(Err(e)) => Err(MembershipError::Unavailable(anyhow::anyhow!(
                "checking permissions: {e}"
            ))),
            Err(_) => single(pool, workspace_id, account_id).await,
        }
    }
}

/// Takes the waiting checks as one batch whenever a batch slot is free:
/// under load the checks that queued while the slots were busy go together.
async fn collect(pool: PgPool, mut rx: mpsc::Receiver<Ask>) {
    let slots = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch = Vec::with_capacity(16);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(ask) => batch.push(ask),
                Err(_) => break,
            }
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            answer(&pool, batch).await;
            drop(slot);
        });
    }
}

async fn answer(pool: &PgPool, batch: Vec<Ask>) {
    let (workspaces, accounts): (Vec<Uuid>, Vec<Uuid>) =
        batch.iter().map(|a| (a.workspace_id, a.account_id)).unzip();
    let rows: std::result::Result<Vec<(i64, String, String, bool)>, _> =
        sea_orm::sqlx::query_as(BATCH_SQL)
            .bind(workspaces)
            .bind(accounts)
            .fetch_all(pool)
            .await;
    match rows {
        Ok(rows) => {
            let mut found: Vec<Found> = vec![None; batch.len()];
            for (i, role, status, require_mfa) in rows {
                // Ordinality counts from 1.
                if let Some(slot) = usize::try_from(i - 1).ok().and_then(|i| found.get_mut(i)) {
                    *slot = Some((role, status, require_mfa));
                }
            }
            for (ask, found) in batch.into_iter().zip(found) {
                let _ = ask.reply.send(Ok(found));
            }
        }
        Err(e) => {
            let e = Arc::new(e);
            for ask in batch {
                let _ = ask.reply.send(Err(e.clone()));
            }
        }
    }
}

async fn single(pool: &PgPool, workspace_id: Uuid, account_id: Uuid) -> Result<Found> {
    sea_orm::sqlx::query_as(
        "SELECT m.role, m.status, w.require_mfa FROM memberships m \
         JOIN workspaces w ON w.id = m.workspace_id \
         WHERE m.workspace_id = $1 AND m.account_id = $2",
    )
    .bind(workspace_id)
    .bind(account_id)
    .fetch_optional(pool)
    .await
    .map_err(|e| MembershipError::Unavailable(anyhow::Error::new(e)))
}

/// Why a check said no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    NotMember,
    MemberDisabled,
    Role,
    MfaRequired,
}

impl Denial {
    pub fn as_str(self) -> &'static str {
        match self {
            Denial::NotMember => "NOT_MEMBER",
            Denial::MemberDisabled => "MEMBER_DISABLED",
            Denial::Role => "ROLE",
            Denial::MfaRequired => "MFA_REQUIRED",
        }
    }
}

impl Membership {
    /// A service principal asks about `account_id` (stating whether that
    /// person's sign-in used a second factor); a person asks about
    /// themselves. One indexed join, read after the request arrived.
    pub async fn check_permission(
        &self,
        caller: &Caller,
        workspace_id: Uuid,
        account_id: Option<Uuid>,
        second_factor: bool,
        permission: Permission,
    ) -> Result<Result<(), Denial>> {
        let (account_id, second_factor) = match caller {
            Caller::Service(_) => (
                account_id.ok_or_else(|| {
                    MembershipError::InvalidArgument("account_id is required".into())
                })?,
                second_factor,
            ),
            Caller::Person(p) => {
                if account_id.is_some_and(|a| a != p.account_id) {
                    return Err(MembershipError::ServicesOnly);
                }
                (p.account_id, p.second_factor)
            }
        };
        let found = if self.db().get_database_backend() == DbBackend::Postgres {
            // Straight to the driver, batched with concurrent checks.
            self.inner
                .checks
                .lookup(
                    self.db().get_postgres_connection_pool(),
                    workspace_id,
                    account_id,
                )
                .await?
        } else {
            let row = self
                .db()
                .query_one_raw(Statement::from_sql_and_values(
                    DbBackend::Sqlite,
                    "SELECT m.role, m.status, w.require_mfa FROM memberships m \
                     JOIN workspaces w ON w.id = m.workspace_id \
                     WHERE m.workspace_id = ? AND m.account_id = ?",
                    [workspace_id.into(), account_id.into()],
                ))
                .await?;
            match row {
                Some(row) => Some((
                    row.try_get_by_index(0)?,
                    row.try_get_by_index(1)?,
                    row.try_get_by_index(2)?,
                )),
                None => None,
            }
        };
        let Some((role, status, require_mfa)) = found else {
            return Ok(Err(Denial::NotMember));
        };
        if MemberStatus::parse(&status) != Some(MemberStatus::Active) {
            return Ok(Err(Denial::MemberDisabled));
        }
        if require_mfa && !second_factor {
            return Ok(Err(Denial::MfaRequired));
        }
        match Role::parse(&role) {
            Some(role) if role.allows(permission) => Ok(Ok(())),
            _ => Ok(Err(Denial::Role)),
        }
    }

    /// The caller's role and permissions in a workspace.
    pub async fn list_permissions(
        &self,
        caller: &Caller,
        workspace_id: Uuid,
    ) -> Result<(Role, &'static [Permission])> {
        let me = acting(self.db(), caller, workspace_id).await?;
        Ok((me.role, me.role.permissions()))
    }
}
