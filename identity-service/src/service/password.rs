//! Changing the password.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, TransactionTrait, sea_query::Expr};
use tracing::instrument;

use super::{
    AccessGrant, Identity, RequestContext, SecurityEventType, events,
    throttle::{self, CounterKey, Guess},
};
use crate::{
    crypto::VerifyOutcome,
    domain::Password,
    error::{IdentityError, Result},
    store::{self, account, session},
};

impl Identity {
    /// Needs the current password; revokes every other session. Returns how
    /// many sessions were revoked.
    #[instrument(skip_all, fields(account_id = %grant.account_id))]
    pub async fn change_password(
        &self,
        grant: &AccessGrant,
        current: &str,
        new: &str,
        ctx: &RequestContext,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let current = Password::new_for_login(current)?;
        let account = self.account_row(grant.account_id).await?;
        let local_part = account
            .email
            .split('@')
            .next()
            .unwrap_or_default()
            .to_owned();
        let new = self.settings().password_policy.check_new(
            new,
            &[
                account.email.as_str(),
                local_part.as_str(),
                account.display_name.as_str(),
            ],
        )?;

        let policy = self.settings().throttle;
        let key = CounterKey::for_email(Guess::Password, &account.email);
        throttle::reserve(self.db(), &key, &policy.password_per_account, now).await?;
        match self
            .inner
            .hasher
            .verify(&current, Some(&account.password_hash))
            .await?
        {
            VerifyOutcome::Valid { .. } => {}
            VerifyOutcome::Invalid => {
                events::record(
                    self.db(),
                    SecurityEventType::LoginFailed,
                    Some(account.id),
                    Some(grant.session_id),
                    ctx,
                    now,
                )
                .await?;
                return Err(IdentityError::InvalidCredentials);
            }
        }
        throttle::clear(self.db(), &key, now).await?;
        let hash = self.inner.hasher.hash(&new).await?;

        let now_ms = store::ms(now);
        let txn = self.db().begin().await?;
        account::Entity::update_many()
            .col_expr(account::Column::PasswordHash, Expr::value(hash))
            .col_expr(account::Column::UpdatedAt, Expr::value(now_ms))
            .filter(account::Column::Id.eq(account.id))
            .exec(&txn)
            .await?;
        let revoked = session::Entity::update_many()
            .col_expr(session::Column::RevokedAt, Expr::value(Some(now_ms)))
            .col_expr(
                session::Column::RevokedReason,
                Expr::value(Some("password_changed".to_owned())),
            )
            .col_expr(session::Column::UpdatedAt, Expr::value(now_ms))
            .filter(session::Column::AccountId.eq(account.id))
            .filter(session::Column::Id.ne(grant.session_id))
            .filter(session::Column::RevokedAt.is_null())
            .exec(&txn)
            .await?;
        events::record(
            &txn,
            SecurityEventType::PasswordChanged,
            Some(account.id),
            Some(grant.session_id),
            ctx,
            now,
        )
        .await?;
        txn.commit().await?;
        Ok(revoked.rows_affected)
    }
}
