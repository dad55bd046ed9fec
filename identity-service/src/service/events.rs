//! Account security events: written beside the change they describe, read
//! by their owner. Never holds a password, code or token.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use super::{Identity, RequestContext};
use crate::{
    error::Result,
    store::{self, security_event},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityEventType {
    AccountCreated,
    LoginSucceeded,
    LoginFailed,
    MfaFailed,
    TotpEnrolled,
    TotpRemoved,
    RecoveryCodeUsed,
    RecoveryCodesRegenerated,
    TotpCodeReplayed,
    PasswordChanged,
    AccountLocked,
    SessionRevoked,
    RefreshTokenReused,
}

impl SecurityEventType {
    pub const ALL: [SecurityEventType; 13] = [
        Self::AccountCreated,
        Self::LoginSucceeded,
        Self::LoginFailed,
        Self::MfaFailed,
        Self::TotpEnrolled,
        Self::TotpRemoved,
        Self::RecoveryCodeUsed,
        Self::RecoveryCodesRegenerated,
        Self::TotpCodeReplayed,
        Self::PasswordChanged,
        Self::AccountLocked,
        Self::SessionRevoked,
        Self::RefreshTokenReused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccountCreated => "account_created",
            Self::LoginSucceeded => "login_succeeded",
            Self::LoginFailed => "login_failed",
            Self::MfaFailed => "mfa_failed",
            Self::TotpEnrolled => "totp_enrolled",
            Self::TotpRemoved => "totp_removed",
            Self::RecoveryCodeUsed => "recovery_code_used",
            Self::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            Self::TotpCodeReplayed => "totp_code_replayed",
            Self::PasswordChanged => "password_changed",
            Self::AccountLocked => "account_locked",
            Self::SessionRevoked => "session_revoked",
            Self::RefreshTokenReused => "refresh_token_reused",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityEventView {
    pub id: Uuid,
    pub event_type: Option<SecurityEventType>,
    pub created_at: DateTime<Utc>,
    pub client_ip: String,
    pub user_agent: String,
    pub trace_id: String,
    pub session_id: Option<Uuid>,
}

/// Writes one event on `db` (a connection or the caller's transaction).
pub(crate) async fn record(
    db: &impl ConnectionTrait,
    event_type: SecurityEventType,
    account_id: Option<Uuid>,
    session_id: Option<Uuid>,
    ctx: &RequestContext,
    now: DateTime<Utc>,
) -> Result<()> {
    let at = store::ms(now);
    security_event::Entity::insert(security_event::ActiveModel {
        id: Set(Uuid::now_v7()),
        account_id: Set(account_id),
        event_type: Set(event_type.as_str().to_owned()),
        session_id: Set(session_id),
        client_ip: Set(truncate(&ctx.client_ip, 64)),
        user_agent: Set(truncate(&ctx.user_agent, 256)),
        trace_id: Set(truncate(&ctx.trace_id, 32)),
        created_at: Set(at),
        updated_at: Set(at),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

pub(crate) fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

impl Identity {
    /// The account's events, newest first.
    pub async fn list_security_events(
        &self,
        account_id: Uuid,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<SecurityEventView>, String)> {
        let list = format!("security-events/{account_id}");
        let page = self
            .inner
            .page_tokens
            .request_uuid(&list, page_size, page_token)?;
        let mut query = security_event::Entity::find()
            .filter(security_event::Column::AccountId.eq(account_id))
            .order_by_desc(security_event::Column::Id)
            .limit(page.size + 1);
        if let Some(before) = page.cursor {
            query = query.filter(security_event::Column::Id.lt(before));
        }
        let mut rows = query.all(self.db()).await?;
        let next = if rows.len() as u64 > page.size {
            rows.truncate(page.size as usize);
            match rows.last() {
                Some(last) => self.inner.page_tokens.encode_uuid(&list, last.id),
                None => String::new(),
            }
        } else {
            String::new()
        };
        let events = rows
            .into_iter()
            .map(|row| SecurityEventView {
                id: row.id,
                event_type: SecurityEventType::parse(&row.event_type),
                created_at: store::time(row.created_at),
                client_ip: row.client_ip,
                user_agent: row.user_agent,
                trace_id: row.trace_id,
                session_id: row.session_id,
            })
            .collect();
        Ok((events, next))
    }
}
