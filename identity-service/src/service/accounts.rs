//! Accounts: creation and lookups.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TransactionTrait,
};
use tracing::instrument;
use uuid::Uuid;

use super::{Identity, RequestContext, events};
use crate::{
    domain::{DisplayName, EmailAddress},
    error::{IdentityError, Result},
    service::SecurityEventType,
    store::{self, account, totp_credential},
};

/// An account as other services see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountView {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub totp_enrolled: bool,
    pub created_at: DateTime<Utc>,
}

/// At most this many ids in one batch read.
pub const MAX_BATCH: usize = 100;

impl Identity {
    #[instrument(skip_all)]
    pub async fn create_account(
        &self,
        email: &str,
        password: &str,
        display_name: &str,
        ctx: &RequestContext,
        now: DateTime<Utc>,
    ) -> Result<AccountView> {
        let email = EmailAddress::parse(email)?;
        let display_name = DisplayName::parse(display_name)?;
        let local_part = email
            .as_str()
            .split('@')
            .next()
            .unwrap_or_default()
            .to_owned();
        let mut hints = vec![email.as_str(), local_part.as_str()];
        if let Some(name) = &display_name {
            hints.push(name.as_str());
        }
        let password = self
            .settings()
            .password_policy
            .check_new(password, &hints)?;
        let hash = self.inner.hasher.hash(&password).await?;
        let id = Uuid::now_v7();
        let at = store::ms(now);
        let display_name = display_name
            .map(|n| n.as_str().to_owned())
            .unwrap_or_default();
        let txn = self.db().begin().await?;
        let inserted = account::Entity::insert(account::ActiveModel {
            id: Set(id),
            email: Set(email.as_str().to_owned()),
            display_name: Set(display_name.clone()),
            password_hash: Set(hash),
            created_at: Set(at),
            updated_at: Set(at),
        })
        .exec_without_returning(&txn)
        .await;
        match inserted {
            Err(e) if store::is_unique_violation(&e, "accounts_email_key") => {
                return Err(IdentityError::EmailTaken);
            }
            other => other?,
        };
        events::record(
            &txn,
            SecurityEventType::AccountCreated,
            Some(id),
            None,
            ctx,
            now,
        )
        .await?;
        txn.commit().await?;
        tracing::info!(account_id = %id, "Account created.");
        Ok(AccountView {
            id,
            email: email.into_inner(),
            display_name,
            totp_enrolled: false,
            created_at: store::time(at),
        })
    }

    pub async fn get_account(&self, id: Uuid) -> Result<AccountView> {
        let row = account::Entity::find_by_id(id)
            .one(self.db())
            .await?
            .ok_or(IdentityError::AccountNotFound)?;
        Ok(view(row, totp_enrolled(self.db(), id).await?))
    }

    pub async fn batch_get_accounts(&self, ids: &[Uuid]) -> Result<Vec<AccountView>> {
        if ids.len() > MAX_BATCH {
            return Err(IdentityError::InvalidArgument(format!(
                "at most {MAX_BATCH} account ids per call"
            )));
        }
        let unique: Vec<Uuid> = ids
            .iter()
            .copied()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if unique.is_empty() {
            return Ok(Vec::new());
        }
        let rows = account::Entity::find()
            .filter(account::Column::Id.is_in(unique.clone()))
            .all(self.db())
            .await?;
        let enrolled: HashSet<Uuid> = totp_credential::Entity::find()
            .filter(totp_credential::Column::AccountId.is_in(unique))
            .filter(totp_credential::Column::ConfirmedAt.is_not_null())
            .all(self.db())
            .await?
            .into_iter()
            .map(|c| c.account_id)
            .collect();
        // Answer in the order asked.
        let mut by_id: std::collections::HashMap<Uuid, account::Model> =
            rows.into_iter().map(|r| (r.id, r)).collect();
        let mut out = Vec::with_capacity(by_id.len());
        for id in ids {
            if let Some(row) = by_id.remove(id) {
                let has_totp = enrolled.contains(&row.id);
                out.push(view(row, has_totp));
            }
        }
        Ok(out)
    }

    pub async fn lookup_account_by_email(&self, email: &str) -> Result<AccountView> {
        let email = EmailAddress::parse(email)?;
        let row = account::Entity::find()
            .filter(account::Column::Email.eq(email.as_str()))
            .one(self.db())
            .await?
            .ok_or(IdentityError::AccountNotFound)?;
        let has_totp = totp_enrolled(self.db(), row.id).await?;
        Ok(view(row, has_totp))
    }
}

pub(crate) async fn totp_enrolled(db: &impl ConnectionTrait, account_id: Uuid) -> Result<bool> {
    Ok(totp_credential::Entity::find_by_id(account_id)
        .one(db)
        .await?
        .is_some_and(|c| c.confirmed_at.is_some()))
}

pub(crate) fn view(row: account::Model, totp_enrolled: bool) -> AccountView {
    AccountView {
        id: row.id,
        email: row.email,
        display_name: row.display_name,
        totp_enrolled,
        created_at: store::time(row.created_at),
    }
}
