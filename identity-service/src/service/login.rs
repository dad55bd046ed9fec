//! Signing in: password first, then a second factor when TOTP is enrolled.

use chrono::{DateTime, Duration, Utc};
use recapp_access_token::AuthMethod;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, EntityTrait, QueryFilter, TransactionTrait,
    sea_query::{Expr, ExprTrait},
};
use tracing::instrument;

use super::{
    Identity, IssuedSession, RequestContext, SecondFactor, SecurityEventType,
    accounts::totp_enrolled,
    events::{self, truncate},
    throttle::{self, CounterKey, Guess},
    totp::FactorUsed,
};
use crate::{
    crypto::VerifyOutcome,
    domain::{EmailAddress, OpaqueToken, Password},
    error::{IdentityError, Result},
    store::{self, account, mfa_challenge},
};

/// Challenge tokens carry 256 random bits.
const CHALLENGE_TOKEN_BYTES: usize = 32;

/// The result of the password step.
#[derive(Debug, Clone)]
pub enum LoginOutcome {
    SignedIn(IssuedSession),
    MfaRequired {
        challenge_token: String,
        expires_at: DateTime<Utc>,
    },
}

impl Identity {
    /// Checks email and password. Unknown emails and wrong passwords give
    /// the same error after the same work (a hash of the dummy password).
    #[instrument(skip_all)]
    pub async fn authenticate(
        &self,
        email: &str,
        password: &str,
        ctx: &RequestContext,
        now: DateTime<Utc>,
    ) -> Result<LoginOutcome> {
        // Malformed input is refused before any work; it is not a guess.
        let email = EmailAddress::parse(email).map_err(|_| IdentityError::InvalidCredentials)?;
        let password = Password::new_for_login(password)?;
        let policy = self.settings().throttle;

        let account_key = CounterKey::for_email(Guess::Password, email.as_str());
        let address_key = CounterKey::for_address(Guess::Password, &ctx.client_ip);
        let account = account::Entity::find()
            .filter(account::Column::Email.eq(email.as_str()))
            .one(self.db())
            .await?;
        let account_id = account.as_ref().map(|a| a.id);

        let address = match &address_key {
            Some(key) => Some((
                key,
                throttle::reserve(self.db(), key, &policy.password_per_address, now).await?,
            )),
            None => None,
        };
        let reserved =
            throttle::reserve(self.db(), &account_key, &policy.password_per_account, now).await;
        let reserved = match reserved {
            Err(e @ IdentityError::RateLimited { .. }) => {
                tracing::warn!(account_id = ?account_id, "Password attempts throttled.");
                // No password was checked: the address gets its attempt back.
                if let Some((key, reserved)) = &address {
                    throttle::release(self.db(), key, reserved, now).await?;
                }
                return Err(e);
            }
            other => other?,
        };
        if reserved.reached_cap && account_id.is_some() {
            events::record(
                self.db(),
                SecurityEventType::AccountLocked,
                account_id,
                None,
                ctx,
                now,
            )
            .await?;
        }

        let outcome = self
            .inner
            .hasher
            .verify(
                &password,
                account.as_ref().map(|a| a.password_hash.as_str()),
            )
            .await?;
        let (account, needs_rehash) = match (account, outcome) {
            (Some(account), VerifyOutcome::Valid { needs_rehash }) => (account, needs_rehash),
            (account, _) => {
                events::record(
                    self.db(),
                    SecurityEventType::LoginFailed,
                    account.map(|a| a.id),
                    None,
                    ctx,
                    now,
                )
                .await?;
                return Err(IdentityError::InvalidCredentials);
            }
        };

        if needs_rehash {
            let hash = self.inner.hasher.hash(&password).await?;
            account::Entity::update_many()
                .col_expr(account::Column::PasswordHash, Expr::value(hash))
                .col_expr(account::Column::UpdatedAt, Expr::value(store::ms(now)))
                .filter(account::Column::Id.eq(account.id))
                .exec(self.db())
                .await?;
            tracing::info!(account_id = %account.id, "Password re-hashed with the current parameters.");
        }
        let has_totp = totp_enrolled(self.db(), account.id).await?;

        // One transaction for everything a success writes: the counters, and
        // the challenge or the session with its event.
        let txn = self.db().begin().await?;
        throttle::clear(&txn, &account_key, now).await?;
        if let Some((key, reserved)) = &address {
            throttle::release(&txn, key, reserved, now).await?;
        }
        if has_totp {
            let token = OpaqueToken::generate(CHALLENGE_TOKEN_BYTES).map_err(|e| {
                IdentityError::Unexpected(anyhow::anyhow!("random source failed: {e}"))
            })?;
            let at = store::ms(now);
            let expires_at = now
                + Duration::from_std(self.settings().mfa_challenge_ttl).unwrap_or(Duration::MAX);
            mfa_challenge::Entity::insert(mfa_challenge::ActiveModel {
                id: Set(uuid::Uuid::now_v7()),
                token_hash: Set(token.hash().to_vec()),
                account_id: Set(account.id),
                attempts: Set(0),
                expires_at: Set(store::ms(expires_at)),
                consumed_at: Set(None),
                client_ip: Set(truncate(&ctx.client_ip, 64)),
                user_agent: Set(truncate(&ctx.user_agent, 256)),
                created_at: Set(at),
                updated_at: Set(at),
            })
            .exec_without_returning(&txn)
            .await?;
            txn.commit().await?;
            return Ok(LoginOutcome::MfaRequired {
                challenge_token: token.expose().to_owned(),
                expires_at,
            });
        }
        let session = self
            .start_session(&txn, &account, vec![AuthMethod::Pwd], false, ctx, now)
            .await?;
        events::record(
            &txn,
            SecurityEventType::LoginSucceeded,
            Some(account.id),
            Some(session.session_id),
            ctx,
            now,
        )
        .await?;
        txn.commit().await?;
        Ok(LoginOutcome::SignedIn(session))
    }

    /// Completes a challenge with a TOTP code or a recovery code.
    #[instrument(skip_all)]
    pub async fn complete_mfa_challenge(
        &self,
        challenge_token: &str,
        factor: &SecondFactor,
        ctx: &RequestContext,
        now: DateTime<Utc>,
    ) -> Result<IssuedSession> {
        let token = OpaqueToken::parse(challenge_token, CHALLENGE_TOKEN_BYTES)
            .ok_or(IdentityError::ChallengeInvalid)?;
        let hash = token.hash().to_vec();
        let challenge = mfa_challenge::Entity::find()
            .filter(mfa_challenge::Column::TokenHash.eq(hash))
            .one(self.db())
            .await?
            .ok_or(IdentityError::ChallengeInvalid)?;
        let now_ms = store::ms(now);
        if challenge.consumed_at.is_some() {
            return Err(IdentityError::ChallengeInvalid);
        }
        if now_ms >= challenge.expires_at {
            return Err(IdentityError::ChallengeExpired);
        }
        let max_attempts = self.settings().mfa_challenge_max_attempts;
        let counted = mfa_challenge::Entity::update_many()
            .col_expr(
                mfa_challenge::Column::Attempts,
                Expr::col(mfa_challenge::Column::Attempts).add(1),
            )
            .col_expr(mfa_challenge::Column::UpdatedAt, Expr::value(now_ms))
            .filter(mfa_challenge::Column::Id.eq(challenge.id))
            .filter(mfa_challenge::Column::Attempts.lt(max_attempts))
            .filter(mfa_challenge::Column::ConsumedAt.is_null())
            .exec(self.db())
            .await?;
        if counted.rows_affected != 1 {
            // Out of attempts: the person signs in with the password again.
            return Err(IdentityError::ChallengeExpired);
        }

        let used = self
            .check_second_factor(challenge.account_id, factor, true, ctx, now)
            .await?;

        let txn = self.db().begin().await?;
        let consumed = mfa_challenge::Entity::update_many()
            .col_expr(mfa_challenge::Column::ConsumedAt, Expr::value(Some(now_ms)))
            .col_expr(mfa_challenge::Column::UpdatedAt, Expr::value(now_ms))
            .filter(mfa_challenge::Column::Id.eq(challenge.id))
            .filter(mfa_challenge::Column::ConsumedAt.is_null())
            .exec(&txn)
            .await?;
        if consumed.rows_affected != 1 {
            txn.rollback().await?;
            return Err(IdentityError::ChallengeInvalid);
        }
        let account = account::Entity::find_by_id(challenge.account_id)
            .one(&txn)
            .await?
            .ok_or(IdentityError::ChallengeInvalid)?;
        let session = self
            .start_session(
                &txn,
                &account,
                vec![AuthMethod::Pwd, AuthMethod::Otp],
                true,
                ctx,
                now,
            )
            .await?;
        events::record(
            &txn,
            SecurityEventType::LoginSucceeded,
            Some(account.id),
            Some(session.session_id),
            ctx,
            now,
        )
        .await?;
        txn.commit().await?;
        if used == FactorUsed::RecoveryCode {
            tracing::info!(account_id = %account.id, "Signed in with a recovery code.");
        }
        Ok(session)
    }
}
