//! The worker that claims due outbox rows and delivers them.

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use anyhow::Context;
use futures::{StreamExt, stream};
use lettre::{
    Message,
    message::{Mailbox, MultiPart},
};
use sea_orm::{
    ColumnTrait, Condition, DatabaseBackend, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Select, TransactionTrait,
    sea_query::{Expr, LockBehavior, LockType},
};
use tokio::sync::{Notify, watch};
use tracing::Instrument;
use uuid::Uuid;

use super::{
    backoff::backoff,
    entity::{self, Column, Entity, Status},
    mailer::{DeliveryError, Mailer},
};

/// How the relay paces itself.
#[derive(Debug, Clone)]
pub struct RelayPolicy {
    /// Rows claimed per round.
    pub batch_size: u64,
    /// Deliveries in flight. lettre writes a message's body and its final
    /// `.` in two writes before reading, so each delivery waits out the
    /// receiver's delayed ACK (~40 ms on Linux): throughput comes from
    /// parallel connections. 16 stays well under common relay limits
    /// (Postfix allows 50 per client).
    pub concurrency: usize,
    /// The wait between rounds when nothing wakes the relay.
    pub poll_interval: Duration,
    /// How long a claim keeps other relays off a row. Sends start within
    /// the first half of it and are cut off after the other half.
    pub lease: Duration,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// After this many failed attempts the row is `failed`.
    pub max_attempts: i32,
}

impl Default for RelayPolicy {
    fn default() -> Self {
        Self {
            batch_size: 50,
            concurrency: 16,
            poll_interval: Duration::from_millis(500),
            lease: Duration::from_secs(60),
            base_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(15 * 60),
            max_attempts: 12,
        }
    }
}

/// Delivers the outbox. See the module documentation for the guarantees.
pub struct OutboxRelay {
    db: DatabaseConnection,
    mailer: Mailer,
    /// The parsed sender, or why it would not parse.
    from: Result<Mailbox, String>,
    policy: RelayPolicy,
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Round {
    claimed: usize,
    sent: usize,
}

/// What became of one claimed row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Sent,
    Retry,
    Failed,
    /// Not attempted (the round ran late); claimable again at once.
    Released,
}

/// The longest wait between rounds while the database keeps failing.
const MAX_ERROR_WAIT: Duration = Duration::from_secs(30);

impl OutboxRelay {
    pub fn new(db: DatabaseConnection, mailer: Mailer, from: String, policy: RelayPolicy) -> Self {
        let from = from
            .parse::<Mailbox>()
            .map_err(|e| format!("the sender address {from:?} is not valid: {e}"));
        Self {
            db,
            mailer,
            from,
            policy,
        }
    }

    /// Claims due rows and delivers them; returns how many were sent. Time
    /// is an argument.
    pub async fn drain_once(&self, now_ms: i64) -> anyhow::Result<usize> {
        Ok(self.round(now_ms).await?.sent)
    }

    /// Loops [`drain_once`](Self::drain_once) until `stop` becomes true (or
    /// its sender is dropped); wakes early when `notify` fires (the service
    /// calls `notify_one` after enqueueing, which is never lost: a wake-up
    /// during a round starts the next one at once). Sends in flight when
    /// `stop` flips are finished first.
    pub async fn run(self, notify: Arc<Notify>, mut stop: watch::Receiver<bool>) {
        tracing::info!("The outbox relay started.");
        let mut failures: u32 = 0;
        loop {
            if *stop.borrow_and_update() {
                break;
            }
            let now_ms = chrono::Utc::now().timestamp_millis();
            let wait = match self.round(now_ms).await {
                // A full batch: more may be due right now.
                Ok(round) if round.claimed as u64 >= self.policy.batch_size.max(1) => {
                    failures = 0;
                    Duration::ZERO
                }
                Ok(_) => {
                    failures = 0;
                    self.policy.poll_interval
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = format!("{e:#}"), "Delivering the outbox failed.");
                    self.policy
                        .poll_interval
                        .saturating_mul(1u32 << failures.min(10))
                        .min(MAX_ERROR_WAIT)
                }
            };
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                () = notify.notified() => {}
                () = tokio::time::sleep(wait) => {}
                changed = stop.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
        tracing::info!("The outbox relay stopped.");
    }

    async fn round(&self, now_ms: i64) -> anyhow::Result<Round> {
        let from = self.from.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
        let lease_until = now_ms.saturating_add(millis(self.policy.lease));
        let rows = self
            .claim(now_ms, lease_until)
            .await
            .context("claiming due emails")?;
        let claimed = rows.len();
        if claimed == 0 {
            return Ok(Round::default());
        }
        let started = Instant::now();
        let outcomes: Vec<Outcome> = stream::iter(rows)
            .map(|row| {
                let span =
                    tracing::info_span!("outbox_delivery", outbox_id = %row.id, kind = %row.kind);
                self.deliver(from, row, now_ms, lease_until, started)
                    .instrument(span)
            })
            .buffer_unordered(self.policy.concurrency.max(1))
            .collect()
            .await;
        let sent = outcomes.iter().filter(|o| **o == Outcome::Sent).count();
        Ok(Round { claimed, sent })
    }

    /// Takes up to `batch_size` due rows for this relay until `lease_until`.
    async fn claim(&self, now_ms: i64, lease_until: i64) -> Result<Vec<entity::Model>, DbErr> {
        let batch = self.policy.batch_size;
        let mut rows = match self.db.get_database_backend() {
            DatabaseBackend::Sqlite => {
                // One writer: a row is ours when our conditional update
                // changed it.
                let mut claimed = Vec::new();
                for row in candidates(now_ms, batch).all(&self.db).await? {
                    let taken = Entity::update_many()
                        .col_expr(Column::LockedUntil, Expr::value(Some(lease_until)))
                        .col_expr(Column::UpdatedAt, Expr::value(now_ms))
                        .filter(Column::Id.eq(row.id))
                        .filter(due(now_ms))
                        .exec(&self.db)
                        .await?;
                    if taken.rows_affected == 1 {
                        claimed.push(row);
                    }
                }
                claimed
            }
            _ => {
                // Rows another relay is claiming are skipped, not waited for.
                let txn = self.db.begin().await?;
                let rows = candidates(now_ms, batch)
                    .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
                    .all(&txn)
                    .await?;
                if !rows.is_empty() {
                    Entity::update_many()
                        .col_expr(Column::LockedUntil, Expr::value(Some(lease_until)))
                        .col_expr(Column::UpdatedAt, Expr::value(now_ms))
                        .filter(Column::Id.is_in(rows.iter().map(|r| r.id)))
                        .exec(&txn)
                        .await?;
                }
                txn.commit().await?;
                rows
            }
        };
        for row in &mut rows {
            row.locked_until = Some(lease_until);
        }
        Ok(rows)
    }

    async fn deliver(
        &self,
        from: &Mailbox,
        row: entity::Model,
        now_ms: i64,
        lease_until: i64,
        started: Instant,
    ) -> Outcome {
        let budget = self.policy.lease / 2;
        let outcome = if started.elapsed() >= budget {
            self.release(row.id, lease_until, now_ms).await
        } else {
            let result = match build_message(from, &row, now_ms) {
                Ok(message) => {
                    match tokio::time::timeout(budget, self.mailer.send(row.id, message)).await {
                        Ok(result) => result,
                        Err(_) => Err(DeliveryError::Temporary(format!(
                            "no answer within {}s",
                            budget.as_secs()
                        ))),
                    }
                }
                Err(e) => Err(e),
            };
            let at = now_ms.saturating_add(millis(started.elapsed()));
            match result {
                Ok(()) => self.mark_sent(&row, at).await,
                Err(error) => self.mark_failed(&row, &error, lease_until, at).await,
            }
        };
        outcome.unwrap_or_else(|e| {
            // The lease ends and the row is tried again: the email may go
            // out twice, which at-least-once allows.
            tracing::warn!(error = %e, "Recording the delivery failed.");
            Outcome::Retry
        })
    }

    async fn mark_sent(&self, row: &entity::Model, at: i64) -> Result<Outcome, DbErr> {
        // Only `pending` is required: had our lease run out and another
        // relay claimed the row, the email is sent all the same.
        Entity::update_many()
            .col_expr(Column::Status, Expr::value(Status::Sent))
            .col_expr(Column::SentAt, Expr::value(Some(at)))
            .col_expr(Column::LockedUntil, Expr::value(None::<i64>))
            .col_expr(Column::UpdatedAt, Expr::value(at))
            .filter(Column::Id.eq(row.id))
            .filter(Column::Status.eq(Status::Pending))
            .exec(&self.db)
            .await?;
        tracing::info!(attempts = row.attempts + 1, "Delivered the email.");
        Ok(Outcome::Sent)
    }

    async fn mark_failed(
        &self,
        row: &entity::Model,
        error: &DeliveryError,
        lease_until: i64,
        at: i64,
    ) -> Result<Outcome, DbErr> {
        let attempts = row.attempts.saturating_add(1);
        let permanent = matches!(error, DeliveryError::Permanent(_));
        let give_up = permanent || attempts >= self.policy.max_attempts;
        let mut update = Entity::update_many()
            .col_expr(Column::Attempts, Expr::value(attempts))
            .col_expr(
                Column::LastError,
                Expr::value(Some(error.text().to_owned())),
            )
            .col_expr(Column::LockedUntil, Expr::value(None::<i64>))
            .col_expr(Column::UpdatedAt, Expr::value(at));
        let next_attempt_at = if give_up {
            update = update.col_expr(Column::Status, Expr::value(Status::Failed));
            None
        } else {
            let delay = backoff(self.policy.base_backoff, self.policy.max_backoff, attempts);
            let next = at.saturating_add(millis(delay));
            update = update.col_expr(Column::NextAttemptAt, Expr::value(next));
            Some(next)
        };
        let updated = update
            .filter(Column::Id.eq(row.id))
            .filter(Column::LockedUntil.eq(lease_until))
            .exec(&self.db)
            .await?;
        if updated.rows_affected == 0 {
            tracing::info!("The lease ran out before the failure was recorded.");
            return Ok(Outcome::Retry);
        }
        match next_attempt_at {
            Some(next) => {
                tracing::warn!(
                    attempts,
                    retry_in_ms = next - at,
                    error = error.text(),
                    "Delivering the email failed; it will be tried again."
                );
                Ok(Outcome::Retry)
            }
            None => {
                tracing::error!(
                    attempts,
                    permanent,
                    error = error.text(),
                    "Delivering the email failed; giving up."
                );
                Ok(Outcome::Failed)
            }
        }
    }

    async fn release(&self, id: Uuid, lease_until: i64, now_ms: i64) -> Result<Outcome, DbErr> {
        Entity::update_many()
            .col_expr(Column::LockedUntil, Expr::value(None::<i64>))
            .col_expr(Column::UpdatedAt, Expr::value(now_ms))
            .filter(Column::Id.eq(id))
            .filter(Column::LockedUntil.eq(lease_until))
            .exec(&self.db)
            .await?;
        tracing::debug!("Released the email: the round ran out of time.");
        Ok(Outcome::Released)
    }
}

/// The due rows, oldest first.
fn candidates(now_ms: i64, batch: u64) -> Select<Entity> {
    Entity::find()
        .filter(due(now_ms))
        .order_by_asc(Column::NextAttemptAt)
        .order_by_asc(Column::Id)
        .limit(batch)
}

/// Pending, due, and not leased by anyone. A row never tried is due at
/// once, as [`enqueue`](super::enqueue) promises, whatever clock stamped its
/// `next_attempt_at` (the request's clock, which another replica's relay,
/// or a test's injected clock, need not share); only retries wait for it.
fn due(now_ms: i64) -> Condition {
    Condition::all()
        .add(Column::Status.eq(Status::Pending))
        .add(
            Condition::any()
                .add(Column::Attempts.eq(0))
                .add(Column::NextAttemptAt.lte(now_ms)),
        )
        .add(
            Condition::any()
                .add(Column::LockedUntil.is_null())
                .add(Column::LockedUntil.lte(now_ms)),
        )
}

/// The message for a row: From, To, Subject, text and HTML alternatives,
/// and a Message-ID that stays the same on every attempt.
pub(crate) fn build_message(
    from: &Mailbox,
    row: &entity::Model,
    now_ms: i64,
) -> Result<Message, DeliveryError> {
    let to = row.recipient.parse::<Mailbox>().map_err(|e| {
        DeliveryError::Permanent(format!("the recipient address is not valid: {e}"))
    })?;
    let date = u64::try_from(now_ms)
        .map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(row.subject.clone())
        .message_id(Some(format!("<{}@{}>", row.id, from.email.domain())))
        .date(date)
        .multipart(MultiPart::alternative_plain_html(
            row.body_text.clone(),
            row.body_html.clone(),
        ))
        .map_err(|e| DeliveryError::Permanent(format!("the message could not be built: {e}")))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use sea_orm::QueryTrait;

    use super::*;

    #[test]
    fn postgres_replicas_skip_the_rows_another_one_is_claiming() {
        let sql = candidates(1_000, 50)
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .build(DatabaseBackend::Postgres)
            .to_string();
        assert!(
            sql.contains(r#"ORDER BY "outbox"."next_attempt_at" ASC"#),
            "{sql}"
        );
        assert!(sql.ends_with("LIMIT 50 FOR UPDATE SKIP LOCKED"), "{sql}");
        assert!(
            sql.contains(r#""locked_until" IS NULL OR "outbox"."locked_until" <= 1000"#),
            "{sql}"
        );
    }
}
