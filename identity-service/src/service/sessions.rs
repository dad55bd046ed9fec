//! Sessions: an opaque refresh token (only its hash stored, rotated on every
//! refresh, reuse revokes the session) plus short-lived signed access tokens.

use chrono::{DateTime, Duration, Utc};
use recapp_access_token::{AuthMethod, Claims, ISSUER};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait, sea_query::Expr,
};
use tracing::instrument;
use uuid::Uuid;

use super::{
    AccountView, Identity, RequestContext, SecurityEventType,
    accounts::{totp_enrolled, view},
    events::{self, truncate},
};
use crate::{
    domain::OpaqueToken,
    error::{IdentityError, Result},
    store::{self, account, refresh_token, session},
};

/// Refresh tokens carry 256 random bits.
pub const REFRESH_TOKEN_BYTES: usize = 32;

/// A session just created or refreshed: everything the client needs.
#[derive(Debug, Clone)]
pub struct IssuedSession {
    pub session_id: Uuid,
    pub refresh_token: String,
    pub refresh_expires_at: DateTime<Utc>,
    pub access_token: String,
    pub access_expires_at: DateTime<Utc>,
    pub account: AccountView,
    pub methods: Vec<AuthMethod>,
}

/// A verified access token whose session is still live.
#[derive(Debug, Clone)]
pub struct AccessGrant {
    pub account_id: Uuid,
    pub session_id: Uuid,
    pub claims: Claims,
}

/// A session as listed to its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub client_ip: String,
    pub user_agent: String,
    pub methods: Vec<AuthMethod>,
}

pub(crate) fn encode_methods(methods: &[AuthMethod]) -> String {
    methods
        .iter()
        .map(|m| match m {
            AuthMethod::Pwd => "pwd",
            AuthMethod::Otp => "otp",
        })
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn decode_methods(text: &str) -> Vec<AuthMethod> {
    text.split(',')
        .filter_map(|m| match m {
            "pwd" => Some(AuthMethod::Pwd),
            "otp" => Some(AuthMethod::Otp),
            _ => None,
        })
        .collect()
}

fn duration(std: std::time::Duration) -> Duration {
    Duration::from_std(std).unwrap_or(Duration::MAX)
}

impl Identity {
    /// Starts a session on `txn` (the caller commits).
    pub(crate) async fn start_session(
        &self,
        txn: &impl ConnectionTrait,
        account: &account::Model,
        methods: Vec<AuthMethod>,
        has_totp: bool,
        ctx: &RequestContext,
        now: DateTime<Utc>,
    ) -> Result<IssuedSession> {
        let settings = self.settings();
        let id = Uuid::now_v7();
        let at = store::ms(now);
        let absolute = now + duration(settings.session_absolute_ttl);
        let idle = (now + duration(settings.session_idle_ttl)).min(absolute);
        session::Entity::insert(session::ActiveModel {
            id: Set(id),
            account_id: Set(account.id),
            auth_methods: Set(encode_methods(&methods)),
            client_ip: Set(truncate(&ctx.client_ip, 64)),
            user_agent: Set(truncate(&ctx.user_agent, 256)),
            last_used_at: Set(at),
            idle_expires_at: Set(store::ms(idle)),
            absolute_expires_at: Set(store::ms(absolute)),
            revoked_at: Set(None),
            revoked_reason: Set(None),
            created_at: Set(at),
            updated_at: Set(at),
        })
        .exec_without_returning(txn)
        .await?;
        let refresh = self.new_refresh_token(txn, id, now).await?;
        let account = view(account.clone(), has_totp);
        let (access_token, access_expires_at) =
            self.issue_access_token(&account, id, &methods, absolute, now)?;
        Ok(IssuedSession {
            session_id: id,
            refresh_token: refresh,
            refresh_expires_at: idle,
            access_token,
            access_expires_at,
            account,
            methods,
        })
    }

    async fn new_refresh_token(
        &self,
        txn: &impl ConnectionTrait,
        session_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<String> {
        let token = OpaqueToken::generate(REFRESH_TOKEN_BYTES)
            .map_err(|e| IdentityError::Unexpected(anyhow::anyhow!("random source failed: {e}")))?;
        let at = store::ms(now);
        refresh_token::Entity::insert(refresh_token::ActiveModel {
            token_hash: Set(token.hash().to_vec()),
            session_id: Set(session_id),
            used_at: Set(None),
            created_at: Set(at),
            updated_at: Set(at),
        })
        .exec_without_returning(txn)
        .await?;
        Ok(token.expose().to_owned())
    }

    pub(crate) fn issue_access_token(
        &self,
        account: &AccountView,
        session_id: Uuid,
        methods: &[AuthMethod],
        session_ends: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(String, DateTime<Utc>)> {
        // Never outlives its session: offline verifiers cannot ask.
        let expires = (now + duration(self.settings().access_token_ttl)).min(session_ends);
        let claims = Claims {
            iss: ISSUER.to_owned(),
            sub: account.id,
            email: account.email.clone(),
            sid: session_id,
            amr: methods.to_vec(),
            totp: account.totp_enrolled,
            iat: now.timestamp(),
            exp: expires.timestamp(),
            jti: Uuid::new_v4(),
        };
        Ok((self.keys().sign(&claims)?, expires))
    }

    /// Exchanges a refresh token for a new pair.
    #[instrument(skip_all)]
    pub async fn refresh_session(
        &self,
        refresh_token: &str,
        ctx: &RequestContext,
        now: DateTime<Utc>,
    ) -> Result<IssuedSession> {
        let token = OpaqueToken::parse(refresh_token, REFRESH_TOKEN_BYTES)
            .ok_or(IdentityError::SessionInvalid)?;
        let hash = token.hash().to_vec();
        let row = refresh_token::Entity::find_by_id(hash.clone())
            .one(self.db())
            .await?
            .ok_or(IdentityError::SessionInvalid)?;
        let session = session::Entity::find_by_id(row.session_id)
            .one(self.db())
            .await?
            .ok_or(IdentityError::SessionInvalid)?;
        if session.revoked_at.is_some() {
            return Err(IdentityError::SessionRevoked);
        }
        if row.used_at.is_some() {
            return Err(self.refresh_reused(&session, ctx, now).await?);
        }
        let now_ms = store::ms(now);
        if now_ms >= session.idle_expires_at || now_ms >= session.absolute_expires_at {
            return Err(IdentityError::SessionExpired);
        }
        let txn = self.db().begin().await?;
        let used = refresh_token::Entity::update_many()
            .col_expr(refresh_token::Column::UsedAt, Expr::value(Some(now_ms)))
            .col_expr(refresh_token::Column::UpdatedAt, Expr::value(now_ms))
            .filter(refresh_token::Column::TokenHash.eq(hash))
            .filter(refresh_token::Column::UsedAt.is_null())
            .exec(&txn)
            .await?;
        if used.rows_affected != 1 {
            // Another request rotated it first: this is a reuse.
            txn.rollback().await?;
            return Err(self.refresh_reused(&session, ctx, now).await?);
        }
        let refresh = self.new_refresh_token(&txn, session.id, now).await?;
        let absolute = store::time(session.absolute_expires_at);
        let idle = (now + duration(self.settings().session_idle_ttl)).min(absolute);
        session::Entity::update_many()
            .col_expr(session::Column::LastUsedAt, Expr::value(now_ms))
            .col_expr(session::Column::IdleExpiresAt, Expr::value(store::ms(idle)))
            .col_expr(session::Column::UpdatedAt, Expr::value(now_ms))
            .filter(session::Column::Id.eq(session.id))
            .exec(&txn)
            .await?;
        let account = account::Entity::find_by_id(session.account_id)
            .one(&txn)
            .await?
            .ok_or(IdentityError::SessionInvalid)?;
        let has_totp = totp_enrolled(&txn, account.id).await?;
        txn.commit().await?;
        let account = view(account, has_totp);
        let methods = decode_methods(&session.auth_methods);
        let (access_token, access_expires_at) =
            self.issue_access_token(&account, session.id, &methods, absolute, now)?;
        Ok(IssuedSession {
            session_id: session.id,
            refresh_token: refresh,
            refresh_expires_at: idle,
            access_token,
            access_expires_at,
            account,
            methods,
        })
    }

    async fn refresh_reused(
        &self,
        session: &session::Model,
        ctx: &RequestContext,
        now: DateTime<Utc>,
    ) -> Result<IdentityError> {
        let txn = self.db().begin().await?;
        revoke(&txn, session.id, "refresh_token_reused", now).await?;
        events::record(
            &txn,
            SecurityEventType::RefreshTokenReused,
            Some(session.account_id),
            Some(session.id),
            ctx,
            now,
        )
        .await?;
        txn.commit().await?;
        tracing::warn!(session_id = %session.id, "A rotated refresh token was reused; session revoked.");
        Ok(IdentityError::RefreshTokenReused)
    }

    /// Verifies an access token and checks that its session still lives.
    pub async fn authorize(&self, access_token: &str, now: DateTime<Utc>) -> Result<AccessGrant> {
        let claims = self.keys().verify(access_token, now).await?;
        let session = session::Entity::find_by_id(claims.sid)
            .one(self.db())
            .await?
            .ok_or(IdentityError::TokenInvalid)?;
        if session.account_id != claims.sub {
            return Err(IdentityError::TokenInvalid);
        }
        if session.revoked_at.is_some() {
            return Err(IdentityError::SessionRevoked);
        }
        let now_ms = store::ms(now);
        if now_ms >= session.absolute_expires_at || now_ms >= session.idle_expires_at {
            return Err(IdentityError::SessionExpired);
        }
        Ok(AccessGrant {
            account_id: claims.sub,
            session_id: claims.sid,
            claims,
        })
    }

    /// Ends the session a refresh token belongs to (signing out). Unknown
    /// tokens succeed silently: signing out twice is not an error.
    #[instrument(skip_all)]
    pub async fn revoke_by_refresh_token(
        &self,
        refresh_token: &str,
        ctx: &RequestContext,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let Some(token) = OpaqueToken::parse(refresh_token, REFRESH_TOKEN_BYTES) else {
            return Ok(());
        };
        let Some(row) = refresh_token::Entity::find_by_id(token.hash().to_vec())
            .one(self.db())
            .await?
        else {
            return Ok(());
        };
        self.revoke_session_of(row.session_id, None, ctx, now).await
    }

    /// Ends one of the caller's sessions.
    #[instrument(skip_all)]
    pub async fn revoke_session(
        &self,
        grant: &AccessGrant,
        session_id: Uuid,
        ctx: &RequestContext,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.revoke_session_of(session_id, Some(grant.account_id), ctx, now)
            .await
    }

    async fn revoke_session_of(
        &self,
        session_id: Uuid,
        owner: Option<Uuid>,
        ctx: &RequestContext,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let session = session::Entity::find_by_id(session_id)
            .one(self.db())
            .await?
            .filter(|s| owner.is_none_or(|o| s.account_id == o))
            .ok_or(IdentityError::SessionNotFound)?;
        if session.revoked_at.is_some() {
            return Ok(());
        }
        let txn = self.db().begin().await?;
        if revoke(&txn, session.id, "revoked", now).await? {
            events::record(
                &txn,
                SecurityEventType::SessionRevoked,
                Some(session.account_id),
                Some(session.id),
                ctx,
                now,
            )
            .await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// The caller's live sessions, newest first.
    pub async fn list_sessions(
        &self,
        grant: &AccessGrant,
        page_size: i32,
        page_token: &str,
        now: DateTime<Utc>,
    ) -> Result<(Vec<SessionView>, String)> {
        let list = format!("sessions/{}", grant.account_id);
        let page = self
            .inner
            .page_tokens
            .request_uuid(&list, page_size, page_token)?;
        let now_ms = store::ms(now);
        let mut query = session::Entity::find()
            .filter(session::Column::AccountId.eq(grant.account_id))
            .filter(session::Column::RevokedAt.is_null())
            .filter(session::Column::IdleExpiresAt.gt(now_ms))
            .filter(session::Column::AbsoluteExpiresAt.gt(now_ms))
            .order_by_desc(session::Column::Id)
            .limit(page.size + 1);
        if let Some(before) = page.cursor {
            query = query.filter(session::Column::Id.lt(before));
        }
        let mut rows = query.all(self.db()).await?;
        let mut next = String::new();
        if rows.len() as u64 > page.size {
            rows.truncate(page.size as usize);
            if let Some(last) = rows.last() {
                next = self.inner.page_tokens.encode_uuid(&list, last.id);
            }
        }
        let sessions = rows
            .into_iter()
            .map(|s| SessionView {
                id: s.id,
                created_at: store::time(s.created_at),
                last_used_at: store::time(s.last_used_at),
                expires_at: store::time(s.idle_expires_at.min(s.absolute_expires_at)),
                client_ip: s.client_ip,
                user_agent: s.user_agent,
                methods: decode_methods(&s.auth_methods),
            })
            .collect();
        Ok((sessions, next))
    }
}

/// Marks a session revoked; true when this call revoked it.
pub(crate) async fn revoke(
    db: &impl ConnectionTrait,
    session_id: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<bool> {
    let now_ms = store::ms(now);
    let result = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(Some(now_ms)))
        .col_expr(
            session::Column::RevokedReason,
            Expr::value(Some(reason.to_owned())),
        )
        .col_expr(session::Column::UpdatedAt, Expr::value(now_ms))
        .filter(session::Column::Id.eq(session_id))
        .filter(session::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}
