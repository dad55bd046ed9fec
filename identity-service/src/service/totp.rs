//! TOTP authenticator apps and recovery codes.
//!
//! A code is accepted once: the matched time step is recorded by one
//! conditional update (`last_used_step < step`), so parallel submissions of
//! one code on any number of replicas give exactly one success, and a replay
//! is refused with the same error as a wrong code. Recovery codes are spent
//! the same way (`used_at IS NULL`).

use chrono::{DateTime, Duration, Utc};
use recapp_access_token::AuthMethod;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TransactionTrait,
    sea_query::{Expr, ExprTrait, OnConflict},
};
use tracing::instrument;
use uuid::Uuid;

use super::{
    AccessGrant, Identity, RequestContext, SecondFactor, SecurityEventType,
    accounts::view,
    events,
    throttle::{self, CounterKey, Guess},
};
use crate::{
    crypto::Sealed,
    domain::{RECOVERY_CODE_COUNT, RecoveryCode, TotpCode, TotpSecret, otpauth_uri, qr_code_svg},
    error::{IdentityError, Result},
    store::{self, account, recovery_code, session, totp_credential},
};

/// What BeginTotpEnrollment hands to the person.
#[derive(Debug, Clone)]
pub struct TotpEnrollment {
    pub otpauth_uri: String,
    pub secret_base32: String,
    pub qr_code_svg: String,
    pub expires_at: DateTime<Utc>,
}

/// The counters a second-factor attempt reserved.
struct Reservations {
    account: CounterKey,
    address: Option<(CounterKey, throttle::Reserved)>,
}

/// Which factor a successful check used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FactorUsed {
    Totp,
    RecoveryCode,
}

fn unexpected(e: impl std::fmt::Display) -> IdentityError {
    IdentityError::Unexpected(anyhow::anyhow!("{e}"))
}

impl Identity {
    #[instrument(skip_all, fields(account_id = %grant.account_id))]
    pub async fn begin_totp_enrollment(
        &self,
        grant: &AccessGrant,
        now: DateTime<Utc>,
    ) -> Result<TotpEnrollment> {
        let account = self.account_row(grant.account_id).await?;
        let existing = totp_credential::Entity::find_by_id(account.id)
            .one(self.db())
            .await?;
        if existing.is_some_and(|c| c.confirmed_at.is_some()) {
            return Err(IdentityError::TotpAlreadyEnrolled);
        }
        let secret = TotpSecret::generate().map_err(unexpected)?;
        let uri = otpauth_uri(&secret, &self.settings().totp_issuer, &account.email)?;
        let svg = qr_code_svg(&uri)?;
        let sealed = self
            .inner
            .cipher
            .seal(secret.as_bytes(), account.id.as_bytes())?;
        let at = store::ms(now);
        let expires =
            now + Duration::from_std(self.settings().totp_enrollment_ttl).unwrap_or(Duration::MAX);
        // Replaces an earlier pending secret; never a confirmed one (the
        // conflict update is limited to unconfirmed rows).
        totp_credential::Entity::insert(totp_credential::ActiveModel {
            account_id: Set(account.id),
            secret_ciphertext: Set(sealed.ciphertext),
            nonce: Set(sealed.nonce),
            encryption_key_id: Set(sealed.key_id),
            confirmed_at: Set(None),
            pending_expires_at: Set(store::ms(expires)),
            last_used_step: Set(None),
            created_at: Set(at),
            updated_at: Set(at),
        })
        .on_conflict(
            OnConflict::column(totp_credential::Column::AccountId)
                .update_columns([
                    totp_credential::Column::SecretCiphertext,
                    totp_credential::Column::Nonce,
                    totp_credential::Column::EncryptionKeyId,
                    totp_credential::Column::PendingExpiresAt,
                    totp_credential::Column::LastUsedStep,
                    totp_credential::Column::UpdatedAt,
                ])
                .action_and_where(
                    Expr::col((
                        totp_credential::Entity,
                        totp_credential::Column::ConfirmedAt,
                    ))
                    .is_null(),
                )
                .to_owned(),
        )
        .exec_without_returning(self.db())
        .await?;
        let stored = totp_credential::Entity::find_by_id(account.id)
            .one(self.db())
            .await?;
        if stored.is_some_and(|c| c.confirmed_at.is_some()) {
            return Err(IdentityError::TotpAlreadyEnrolled);
        }
        Ok(TotpEnrollment {
            otpauth_uri: uri,
            secret_base32: secret.to_base32(),
            qr_code_svg: svg,
            expires_at: expires,
        })
    }

    /// Proves the pending secret; returns the recovery codes and a fresh
    /// access token that records the second factor.
    #[instrument(skip_all, fields(account_id = %grant.account_id))]
    pub async fn confirm_totp_enrollment(
        &self,
        grant: &AccessGrant,
        code: &str,
        ctx: &RequestContext,
        now: DateTime<Utc>,
    ) -> Result<(Vec<String>, String, DateTime<Utc>)> {
        let code = TotpCode::parse(code)?;
        let account = self.account_row(grant.account_id).await?;
        let pending = totp_credential::Entity::find_by_id(account.id)
            .one(self.db())
            .await?
            .ok_or(IdentityError::TotpEnrollmentNotStarted)?;
        if pending.confirmed_at.is_some() {
            return Err(IdentityError::TotpAlreadyEnrolled);
        }
        let now_ms = store::ms(now);
        if now_ms >= pending.pending_expires_at {
            return Err(IdentityError::TotpEnrollmentNotStarted);
        }
        let reservations = self.reserve_second_factor(account.id, ctx, now).await?;
        let secret = self.open_secret(&pending)?;
        let Some(step) = self.inner.totp.verify(&secret, &code, unix(now)) else {
            self.second_factor_failed(account.id, SecurityEventType::MfaFailed, ctx, now)
                .await?;
            return Err(IdentityError::TotpInvalid {
                during_login: false,
            });
        };
        let codes = RecoveryCode::generate_set().map_err(unexpected)?;
        let txn = self.db().begin().await?;
        let confirmed = totp_credential::Entity::update_many()
            .col_expr(
                totp_credential::Column::ConfirmedAt,
                Expr::value(Some(now_ms)),
            )
            .col_expr(
                totp_credential::Column::LastUsedStep,
                Expr::value(Some(step as i64)),
            )
            .col_expr(totp_credential::Column::UpdatedAt, Expr::value(now_ms))
            .filter(totp_credential::Column::AccountId.eq(account.id))
            .filter(totp_credential::Column::ConfirmedAt.is_null())
            .filter(totp_credential::Column::Nonce.eq(pending.nonce.clone()))
            .exec(&txn)
            .await?;
        if confirmed.rows_affected != 1 {
            txn.rollback().await?;
            return Err(IdentityError::TotpEnrollmentNotStarted);
        }
        replace_recovery_codes(&txn, account.id, &codes, now).await?;
        session::Entity::update_many()
            .col_expr(session::Column::AuthMethods, Expr::value("pwd,otp"))
            .col_expr(session::Column::UpdatedAt, Expr::value(now_ms))
            .filter(session::Column::Id.eq(grant.session_id))
            .exec(&txn)
            .await?;
        events::record(
            &txn,
            SecurityEventType::TotpEnrolled,
            Some(account.id),
            Some(grant.session_id),
            ctx,
            now,
        )
        .await?;
        txn.commit().await?;
        self.second_factor_succeeded(account.id, reservations, now)
            .await?;
        let session_ends = session::Entity::find_by_id(grant.session_id)
            .one(self.db())
            .await?
            .map(|s| store::time(s.absolute_expires_at))
            .ok_or(IdentityError::SessionRevoked)?;
        let view = view(account, true);
        let (token, expires) = self.issue_access_token(
            &view,
            grant.session_id,
            &[AuthMethod::Pwd, AuthMethod::Otp],
            session_ends,
            now,
        )?;
        Ok((
            codes.iter().map(RecoveryCode::display).collect(),
            token,
            expires,
        ))
    }

    #[instrument(skip_all, fields(account_id = %grant.account_id))]
    pub async fn remove_totp(
        &self,
        grant: &AccessGrant,
        factor: &SecondFactor,
        ctx: &RequestContext,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.check_second_factor(grant.account_id, factor, false, ctx, now)
            .await?;
        let txn = self.db().begin().await?;
        totp_credential::Entity::delete_by_id(grant.account_id)
            .exec(&txn)
            .await?;
        recovery_code::Entity::delete_many()
            .filter(recovery_code::Column::AccountId.eq(grant.account_id))
            .exec(&txn)
            .await?;
        events::record(
            &txn,
            SecurityEventType::TotpRemoved,
            Some(grant.account_id),
            Some(grant.session_id),
            ctx,
            now,
        )
        .await?;
        txn.commit().await?;
        Ok(())
    }

    #[instrument(skip_all, fields(account_id = %grant.account_id))]
    pub async fn regenerate_recovery_codes(
        &self,
        grant: &AccessGrant,
        totp_code: &str,
        ctx: &RequestContext,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>> {
        let factor = SecondFactor::Totp(totp_code.to_owned());
        self.check_second_factor(grant.account_id, &factor, false, ctx, now)
            .await?;
        let codes = RecoveryCode::generate_set().map_err(unexpected)?;
        let txn = self.db().begin().await?;
        replace_recovery_codes(&txn, grant.account_id, &codes, now).await?;
        events::record(
            &txn,
            SecurityEventType::RecoveryCodesRegenerated,
            Some(grant.account_id),
            Some(grant.session_id),
            ctx,
            now,
        )
        .await?;
        txn.commit().await?;
        Ok(codes.iter().map(RecoveryCode::display).collect())
    }

    /// Checks a second factor of an enrolled account: throttled, single use.
    pub(crate) async fn check_second_factor(
        &self,
        account_id: Uuid,
        factor: &SecondFactor,
        during_login: bool,
        ctx: &RequestContext,
        now: DateTime<Utc>,
    ) -> Result<FactorUsed> {
        // Parse before reserving: a malformed code is bad input, not a guess.
        enum Parsed {
            Totp(TotpCode),
            Recovery(RecoveryCode),
        }
        let parsed = match factor {
            SecondFactor::Totp(code) => Parsed::Totp(TotpCode::parse(code)?),
            SecondFactor::RecoveryCode(code) => Parsed::Recovery(RecoveryCode::parse(code)?),
        };
        let credential = totp_credential::Entity::find_by_id(account_id)
            .one(self.db())
            .await?
            .filter(|c| c.confirmed_at.is_some())
            .ok_or(IdentityError::TotpNotEnrolled)?;
        let reservations = self.reserve_second_factor(account_id, ctx, now).await?;
        let used = match parsed {
            Parsed::Totp(code) => {
                let secret = self.open_secret(&credential)?;
                let Some(step) = self.inner.totp.verify(&secret, &code, unix(now)) else {
                    self.second_factor_failed(account_id, SecurityEventType::MfaFailed, ctx, now)
                        .await?;
                    return Err(IdentityError::TotpInvalid { during_login });
                };
                let step = step as i64;
                let spent = totp_credential::Entity::update_many()
                    .col_expr(
                        totp_credential::Column::LastUsedStep,
                        Expr::value(Some(step)),
                    )
                    .col_expr(
                        totp_credential::Column::UpdatedAt,
                        Expr::value(store::ms(now)),
                    )
                    .filter(totp_credential::Column::AccountId.eq(account_id))
                    .filter(totp_credential::Column::ConfirmedAt.is_not_null())
                    .filter(
                        sea_orm::Condition::any()
                            .add(totp_credential::Column::LastUsedStep.is_null())
                            .add(totp_credential::Column::LastUsedStep.lt(step)),
                    )
                    .exec(self.db())
                    .await?;
                if spent.rows_affected != 1 {
                    self.second_factor_failed(
                        account_id,
                        SecurityEventType::TotpCodeReplayed,
                        ctx,
                        now,
                    )
                    .await?;
                    return Err(IdentityError::TotpInvalid { during_login });
                }
                FactorUsed::Totp
            }
            Parsed::Recovery(code) => {
                let now_ms = store::ms(now);
                let spent = recovery_code::Entity::update_many()
                    .col_expr(recovery_code::Column::UsedAt, Expr::value(Some(now_ms)))
                    .col_expr(recovery_code::Column::UpdatedAt, Expr::value(now_ms))
                    .filter(recovery_code::Column::AccountId.eq(account_id))
                    .filter(recovery_code::Column::CodeHash.eq(code.hash().to_vec()))
                    .filter(recovery_code::Column::UsedAt.is_null())
                    .exec(self.db())
                    .await?;
                if spent.rows_affected != 1 {
                    self.second_factor_failed(account_id, SecurityEventType::MfaFailed, ctx, now)
                        .await?;
                    return Err(IdentityError::RecoveryCodeInvalid { during_login });
                }
                events::record(
                    self.db(),
                    SecurityEventType::RecoveryCodeUsed,
                    Some(account_id),
                    None,
                    ctx,
                    now,
                )
                .await?;
                FactorUsed::RecoveryCode
            }
        };
        self.second_factor_succeeded(account_id, reservations, now)
            .await?;
        Ok(used)
    }

    async fn reserve_second_factor(
        &self,
        account_id: Uuid,
        ctx: &RequestContext,
        now: DateTime<Utc>,
    ) -> Result<Reservations> {
        let policy = self.settings().throttle;
        let account_key = CounterKey::for_account(Guess::SecondFactor, account_id);
        let reserved =
            throttle::reserve(self.db(), &account_key, &policy.otp_per_account, now).await;
        if let Err(IdentityError::RateLimited { .. }) = &reserved {
            tracing::warn!(account_id = %account_id, "Second-factor attempts throttled.");
        }
        let reserved = reserved?;
        if reserved.reached_cap {
            events::record(
                self.db(),
                SecurityEventType::AccountLocked,
                Some(account_id),
                None,
                ctx,
                now,
            )
            .await?;
        }
        let address = match CounterKey::for_address(Guess::SecondFactor, &ctx.client_ip) {
            Some(key) => {
                match throttle::reserve(self.db(), &key, &policy.otp_per_address, now).await {
                    Ok(address) => Some((key, address)),
                    Err(e) => {
                        // No code was checked: the account gets its attempt back.
                        throttle::release(self.db(), &account_key, &reserved, now).await?;
                        return Err(e);
                    }
                }
            }
            None => None,
        };
        Ok(Reservations {
            account: account_key,
            address,
        })
    }

    async fn second_factor_failed(
        &self,
        account_id: Uuid,
        event: SecurityEventType,
        ctx: &RequestContext,
        now: DateTime<Utc>,
    ) -> Result<()> {
        events::record(self.db(), event, Some(account_id), None, ctx, now).await
    }

    async fn second_factor_succeeded(
        &self,
        _account_id: Uuid,
        reservations: Reservations,
        now: DateTime<Utc>,
    ) -> Result<()> {
        throttle::clear(self.db(), &reservations.account, now).await?;
        if let Some((key, reserved)) = &reservations.address {
            throttle::release(self.db(), key, reserved, now).await?;
        }
        Ok(())
    }

    fn open_secret(&self, credential: &totp_credential::Model) -> Result<TotpSecret> {
        let bytes = self.inner.cipher.open(
            &Sealed {
                ciphertext: credential.secret_ciphertext.clone(),
                nonce: credential.nonce.clone(),
                key_id: credential.encryption_key_id.clone(),
            },
            credential.account_id.as_bytes(),
        )?;
        Ok(TotpSecret::from_bytes(bytes))
    }

    pub(crate) async fn account_row(&self, id: Uuid) -> Result<account::Model> {
        account::Entity::find_by_id(id)
            .one(self.db())
            .await?
            .ok_or(IdentityError::TokenInvalid)
    }
}

async fn replace_recovery_codes(
    txn: &impl ConnectionTrait,
    account_id: Uuid,
    codes: &[RecoveryCode],
    now: DateTime<Utc>,
) -> Result<()> {
    debug_assert_eq!(codes.len(), RECOVERY_CODE_COUNT);
    recovery_code::Entity::delete_many()
        .filter(recovery_code::Column::AccountId.eq(account_id))
        .exec(txn)
        .await?;
    let at = store::ms(now);
    recovery_code::Entity::insert_many(codes.iter().map(|code| recovery_code::ActiveModel {
        id: Set(Uuid::now_v7()),
        account_id: Set(account_id),
        code_hash: Set(code.hash().to_vec()),
        used_at: Set(None),
        created_at: Set(at),
        updated_at: Set(at),
    }))
    .exec_without_returning(txn)
    .await?;
    Ok(())
}

fn unix(now: DateTime<Utc>) -> u64 {
    u64::try_from(now.timestamp()).unwrap_or(0)
}
