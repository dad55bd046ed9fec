//! The email outbox: a use case writes an email with [`enqueue`] in the same
//! transaction as the change that causes it (an invitation), so the email
//! exists exactly when the change committed; the [`OutboxRelay`] then
//! delivers it through a [`Mailer`], with retries and backoff.
//!
//! # Delivery guarantees
//!
//! Delivery is **at least once**. A relay claims due rows by setting
//! `locked_until = now + lease`; no other relay (or replica) claims a row
//! while its lease runs, so two workers never send one email at the same
//! time. A send starts no later than half the lease after the claim and is
//! cut off after another half, so it ends before the lease does. If the
//! process dies after the SMTP server accepted an email but before the row
//! was marked `sent`, the row is claimed again when the lease ends and the
//! email goes out a second time, with the same `Message-ID`
//! (`<outbox id@sender domain>`) so that receiving systems can tell.
//!
//! On PostgreSQL the claim is `SELECT .. FOR UPDATE SKIP LOCKED` in a
//! transaction, so replicas share the queue without waiting on each other;
//! on SQLite (one writer) each row is claimed by a compare-and-swap update.
//!
//! A failure that may pass (4xx, connection refused, timeout) is retried
//! after an exponential, jittered backoff; a refusal (5xx such as 550, an
//! invalid address) or the last allowed attempt marks the row `failed`.
//! Logs name the row (`outbox_id`, `kind`), never the body or its links.

mod backoff;
pub mod entity;
mod mailer;
mod relay;
pub mod templates;

use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait};
use uuid::Uuid;

pub use mailer::{Mailer, SmtpSettings, SmtpTls};
pub use relay::{OutboxRelay, RelayPolicy};
pub use templates::{invitation_email, resend_email};

/// An email to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEmail {
    pub workspace_id: Option<Uuid>,
    /// What it is, for logs: `invitation`, `invitation_resent`, ...
    pub kind: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Inserts on the caller's connection or transaction (so the email commits
/// with the change that causes it). It is due at once; wake the relay with
/// `Notify::notify_one` after the commit.
pub async fn enqueue(
    db: &impl ConnectionTrait,
    email: NewEmail,
    now_ms: i64,
) -> Result<Uuid, DbErr> {
    let id = Uuid::now_v7();
    let row = entity::ActiveModel {
        id: Set(id),
        workspace_id: Set(email.workspace_id),
        kind: Set(email.kind),
        recipient: Set(email.to),
        subject: Set(email.subject),
        body_text: Set(email.text),
        body_html: Set(email.html),
        status: Set(entity::Status::Pending),
        attempts: Set(0),
        next_attempt_at: Set(now_ms),
        locked_until: Set(None),
        last_error: Set(None),
        sent_at: Set(None),
        created_at: Set(now_ms),
        updated_at: Set(now_ms),
    };
    entity::Entity::insert(row)
        .exec_without_returning(db)
        .await?;
    Ok(id)
}

#[cfg(test)]
mod tests;
