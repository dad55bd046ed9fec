//! "May principal P do X in workspace W?" for the rest of the suite.
//!
//! The hot path. Every answer is read from the database after the request
//! arrived, so a role change, a disable or a removal committed by any
//! replica is seen by the very next check: there is no cache.
//!
//! On PostgreSQL the checks run on connections of their own (a slow write
//! cannot starve them, nor they a write), each held by a worker, and the
//! checks that arrive while the workers are busy are coalesced: one
//! `unnest` join answers a whole batch in one round trip. A statement sees
//! every transaction committed before it started, and a check only joins a
//! batch that has not been sent yet. The workers hold their connections
//! outside sqlx's pool, which spends a round trip per query on a ping when
//! a connection goes back to it.

use std::{str::FromStr, sync::Arc, time::Duration};

use sea_orm::{
    ConnectionTrait, DbBackend, Statement,
    sqlx::{
        self, Connection,
        postgres::{PgConnectOptions, PgConnection},
    },
};
use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

use super::{Membership, acting};
use crate::{
    auth::Caller,
    domain::{MemberStatus, Permission, Role},
    error::{MembershipError, Result},
};

/// The most checks one statement answers.
const MAX_BATCH: usize = 256;
/// Checks waiting for a worker before callers wait to queue.
const QUEUE: usize = 4096;
/// A batch's statement (or a connection attempt) that takes longer than
/// this gives up its connection. A failed batch is tried once more on a new
/// connection, then its checks are answered UNAVAILABLE.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);

/// A member's role, status and the workspace's MFA requirement.
type Found = Option<(String, String, bool)>;
type Answer = std::result::Result<Found, Arc<anyhow::Error>>;

struct Ask {
    workspace_id: Uuid,
    account_id: Uuid,
    reply: oneshot::Sender<Answer>,
}

/// How the check connections name themselves to PostgreSQL
/// (`pg_stat_activity.application_name`).
pub const CHECK_CONNECTION_NAME: &str = "membership-service permission checks";

const BATCH_SQL: &str = "SELECT k.i, m.role, m.status, w.require_mfa \
     FROM unnest($1::uuid[], $2::uuid[]) WITH ORDINALITY AS k(w, a, i) \
     JOIN memberships m ON m.workspace_id = k.w AND m.account_id = k.a \
     JOIN workspaces w ON w.id = m.workspace_id";

/// Answers checks on PostgreSQL with `workers` connections, batching the
/// concurrent ones. Workers end when the batcher is dropped.
pub struct CheckBatcher {
    queue: mpsc::Sender<Ask>,
}

impl CheckBatcher {
    /// Starts the workers; each connects on its first batch.
    pub fn start(database_url: &str, workers: u32) -> anyhow::Result<Self> {
        // PostgreSQL re-plans a prepared statement whose generic plan looks
        // costlier than a plan for the actual arguments, which it always
        // does for an array of unknown length: every batch paid a full
        // planning. The generic plan is the right one here (nested-loop
        // primary-key lookups, whatever the batch size).
        let options = PgConnectOptions::from_str(database_url)?
            .options([("plan_cache_mode", "force_generic_plan")])
            .application_name(CHECK_CONNECTION_NAME);
        let (queue, rx) = mpsc::channel(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..workers.max(1) {
            tokio::spawn(work(options.clone(), rx.clone()));
        }
        Ok(Self { queue })
    }

    async fn lookup(&self, workspace_id: Uuid, account_id: Uuid) -> Result<Found> {
        let (reply, answer) = oneshot::channel();
        let ask = Ask {
            workspace_id,
            account_id,
            reply,
        };
        let answer = match self.queue.send(ask).await {
            Ok(()) => answer.await.ok(),
            Err(_) => None,
        };
        match answer {
            Some(Ok(found)) => Ok(found),
            Some(Err(e)) => Err(MembershipError::Unavailable(anyhow::anyhow!(
                "checking permissions: {e:#}"
            ))),
            None => Err(MembershipError::Unavailable(anyhow::anyhow!(
                "checking permissions: the service is stopping"
            ))),
        }
    }
}

/// One worker: takes whatever checks wait when it is free (at least one)
/// and answers them with one statement on its own connection.
async fn work(options: PgConnectOptions, queue: Arc<Mutex<mpsc::Receiver<Ask>>>) {
    let mut conn: Option<PgConnection> = None;
    loop {
        let batch = {
            let mut rx = queue.lock().await;
            let Some(first) = rx.recv().await else {
                break;
            };
            let mut batch = Vec::with_capacity(16);
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(ask) => batch.push(ask),
                    Err(_) => break,
                }
            }
            batch
        };
        let (workspaces, accounts): (Vec<Uuid>, Vec<Uuid>) =
            batch.iter().map(|a| (a.workspace_id, a.account_id)).unzip();
        let mut rows = run_batch(&mut conn, &options, &workspaces, &accounts).await;
        if let Err(e) = &rows {
            // The connection is gone with the error; a read is safe to
            // repeat once on a new one (e.g. after a database restart).
            tracing::info!(
                error = format!("{e:#}"),
                "A permission check batch failed; retrying once."
            );
            rows = run_batch(&mut conn, &options, &workspaces, &accounts).await;
        }
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
                tracing::warn!(error = format!("{e:#}"), "Permission checks failed.");
                let e = Arc::new(e);
                for ask in batch {
                    let _ = ask.reply.send(Err(e.clone()));
                }
            }
        }
    }
    if let Some(conn) = conn {
        conn.close().await.ok();
    }
}

/// Runs one batch, connecting first if needed. Any failure drops the
/// connection.
async fn run_batch(
    conn: &mut Option<PgConnection>,
    options: &PgConnectOptions,
    workspaces: &[Uuid],
    accounts: &[Uuid],
) -> anyhow::Result<Vec<(i64, String, String, bool)>> {
    let result = tokio::time::timeout(STATEMENT_TIMEOUT, async {
        let c = match conn {
            Some(c) => c,
            None => conn.insert(PgConnection::connect_with(options).await?),
        };
        sqlx::query_as(BATCH_SQL)
            .bind(workspaces)
            .bind(accounts)
            .fetch_all(c)
            .await
    })
    .await;
    match result {
        Ok(Ok(rows)) => Ok(rows),
        Ok(Err(e)) => {
            *conn = None;
            Err(anyhow::Error::new(e))
        }
        Err(_) => {
            *conn = None;
            anyhow::bail!("no answer from the database within {STATEMENT_TIMEOUT:?}")
        }
    }
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
        let found = if let Some(batcher) = &self.inner.checks {
            batcher.lookup(workspace_id, account_id).await?
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
