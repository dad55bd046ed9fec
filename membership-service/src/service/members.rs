//! Members: the Users page's Active and Disabled tabs, and the actions on a
//! member card. Demote, disable and remove re-check the workspace's rules
//! under the workspace lock.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait, sea_query::Expr,
};
use serde_json::json;
use tracing::instrument;
use uuid::Uuid;

use super::{
    Acting, Membership, RequestContext, acting,
    audit::{self, AuditEntry},
    lock_workspace, ms,
};
use crate::{
    auth::Caller,
    domain::{MemberStatus, Role},
    error::{MembershipError, Result},
    store::{self, membership, workspace},
};

/// A member card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    pub workspace_id: Uuid,
    pub account_id: Uuid,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub status: MemberStatus,
    pub joined_at: DateTime<Utc>,
    pub mfa_enrolled: bool,
    pub is_owner: bool,
}

enum Change {
    Role(Role),
    Status(MemberStatus),
    Remove,
}

impl Membership {
    /// A page of members with the given status, ordered by account id.
    pub async fn list_members(
        &self,
        caller: &Caller,
        workspace_id: Uuid,
        status: MemberStatus,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<MemberView>, String)> {
        let me = acting(self.db(), caller, workspace_id).await?;
        let list = format!("members/{workspace_id}/{}", status.as_str());
        let page = self.pages().request_uuid(&list, page_size, page_token)?;
        let mut query = membership::Entity::find()
            .filter(membership::Column::WorkspaceId.eq(workspace_id))
            .filter(membership::Column::Status.eq(status.as_str()))
            .order_by_asc(membership::Column::AccountId)
            .limit(page.size + 1);
        if let Some(after) = page.cursor {
            query = query.filter(membership::Column::AccountId.gt(after));
        }
        let mut rows = query.all(self.db()).await?;
        let mut next = String::new();
        if rows.len() as u64 > page.size {
            rows.truncate(page.size as usize);
            if let Some(last) = rows.last() {
                next = self.pages().encode_uuid(&list, last.account_id);
            }
        }
        Ok((self.cards(&me.workspace, rows).await?, next))
    }

    pub async fn get_member(
        &self,
        caller: &Caller,
        workspace_id: Uuid,
        account_id: Uuid,
    ) -> Result<MemberView> {
        let me = acting(self.db(), caller, workspace_id).await?;
        let row = membership::Entity::find_by_id((workspace_id, account_id))
            .one(self.db())
            .await?
            .ok_or(MembershipError::MemberNotFound)?;
        let mut cards = self.cards(&me.workspace, vec![row]).await?;
        cards.pop().ok_or(MembershipError::MemberNotFound)
    }

    /// Joins membership rows with what identity knows (display name, MFA).
    /// If identity is unreachable the cards still show, without those.
    pub(crate) async fn cards(
        &self,
        ws: &workspace::Model,
        rows: Vec<membership::Model>,
    ) -> Result<Vec<MemberView>> {
        let ids: Vec<Uuid> = rows.iter().map(|m| m.account_id).collect();
        let accounts = match self.inner.identity.batch_get(&ids).await {
            Ok(accounts) => accounts,
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "Identity unreachable: member cards without names."
                );
                Default::default()
            }
        };
        Ok(rows
            .into_iter()
            .map(|m| {
                let account = accounts.get(&m.account_id);
                card(
                    ws,
                    &m,
                    account.map(|a| a.display_name.clone()).unwrap_or_default(),
                    account.is_some_and(|a| a.totp_enrolled),
                )
            })
            .collect())
    }

    #[instrument(skip_all, fields(workspace_id = %workspace_id, account_id = %account_id))]
    pub async fn change_member_role(
        &self,
        caller: &Caller,
        workspace_id: Uuid,
        account_id: Uuid,
        role: Role,
        ctx: &RequestContext,
        now: DateTime<Utc>,
    ) -> Result<MemberView> {
        self.change(
            caller,
            workspace_id,
            account_id,
            Change::Role(role),
            ctx,
            now,
        )
        .await?
        .ok_or(MembershipError::MemberNotFound)
    }

    #[instrument(skip_all, fields(workspace_id = %workspace_id, account_id = %account_id))]
    pub async fn disable_member(
        &self,
        caller: &Caller,
        workspace_id: Uuid,
        account_id: Uuid,
        ctx: &RequestContext,
        now: DateTime<Utc>,
    ) -> Result<MemberView> {
        self.change(
            caller,
            workspace_id,
            account_id,
            Change::Status(MemberStatus::Disabled),
            ctx,
            now,
        )
        .await?
        .ok_or(MembershipError::MemberNotFound)
    }

    #[instrument(skip_all, fields(workspace_id = %workspace_id, account_id = %account_id))]
    pub async fn enable_member(
        &self,
        caller: &Caller,
        workspace_id: Uuid,
        account_id: Uuid,
        ctx: &RequestContext,
        now: DateTime<Utc>,
    ) -> Result<MemberView> {
        self.change(
            caller,
            workspace_id,
            account_id,
            Change::Status(MemberStatus::Active),
            ctx,
            now,
        )
        .await?
        .ok_or(MembershipError::MemberNotFound)
    }

    #[instrument(skip_all, fields(workspace_id = %workspace_id, account_id = %account_id))]
    pub async fn remove_member(
        &self,
        caller: &Caller,
        workspace_id: Uuid,
        account_id: Uuid,
        ctx: &RequestContext,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.change(caller, workspace_id, account_id, Change::Remove, ctx, now)
            .await?;
        Ok(())
    }

    /// One member change, under the workspace lock, with its audit event.
    async fn change(
        &self,
        caller: &Caller,
        workspace_id: Uuid,
        account_id: Uuid,
        change: Change,
        ctx: &RequestContext,
        now: DateTime<Utc>,
    ) -> Result<Option<MemberView>> {
        let txn = self.db().begin().await?;
        lock_workspace(&txn, workspace_id).await?;
        let me: Acting = acting(&txn, caller, workspace_id).await?;
        me.require_admin()?;
        let target = membership::Entity::find_by_id((workspace_id, account_id))
            .one(&txn)
            .await?
            .ok_or(MembershipError::MemberNotFound)?;
        let role = Role::parse(&target.role).ok_or(MembershipError::MemberNotFound)?;
        let status = MemberStatus::parse(&target.status).ok_or(MembershipError::MemberNotFound)?;
        let is_owner = me.workspace.owner_account_id == account_id;
        let active_admin = role == Role::TenantAdmin && status == MemberStatus::Active;
        // Does the change take an active admin away?
        let loses_admin = active_admin
            && match change {
                Change::Role(new) => new != Role::TenantAdmin,
                Change::Status(new) => new != MemberStatus::Active,
                Change::Remove => true,
            };
        if let Change::Role(_) = change
            && account_id == me.person.account_id
        {
            return Err(MembershipError::SelfRoleChange);
        }
        if loses_admin || (is_owner && matches!(change, Change::Remove)) {
            if is_owner {
                return Err(MembershipError::OwnerProtected);
            }
            if other_active_admins(&txn, workspace_id, account_id).await? == 0 {
                return Err(MembershipError::LastAdmin);
            }
        }
        let at = ms(now);
        let before = json!({ "role": role.as_str(), "status": status.as_str() });
        let (action, after, result) = match change {
            Change::Role(new) => {
                if new != role {
                    membership::Entity::update_many()
                        .col_expr(membership::Column::Role, Expr::value(new.as_str()))
                        .col_expr(membership::Column::UpdatedAt, Expr::value(at))
                        .filter(membership::Column::WorkspaceId.eq(workspace_id))
                        .filter(membership::Column::AccountId.eq(account_id))
                        .exec(&txn)
                        .await?;
                }
                let mut updated = target.clone();
                updated.role = new.as_str().to_owned();
                (
                    "member.role_changed",
                    json!({ "role": new.as_str(), "status": status.as_str() }),
                    Some((updated, new != role)),
                )
            }
            Change::Status(new) => {
                if new != status {
                    membership::Entity::update_many()
                        .col_expr(membership::Column::Status, Expr::value(new.as_str()))
                        .col_expr(membership::Column::UpdatedAt, Expr::value(at))
                        .filter(membership::Column::WorkspaceId.eq(workspace_id))
                        .filter(membership::Column::AccountId.eq(account_id))
                        .exec(&txn)
                        .await?;
                }
                let mut updated = target.clone();
                updated.status = new.as_str().to_owned();
                let action = if new == MemberStatus::Active {
                    "member.enabled"
                } else {
                    "member.disabled"
                };
                (
                    action,
                    json!({ "role": role.as_str(), "status": new.as_str() }),
                    Some((updated, new != status)),
                )
            }
            Change::Remove => {
                membership::Entity::delete_by_id((workspace_id, account_id))
                    .exec(&txn)
                    .await?;
                ("member.removed", serde_json::Value::Null, None)
            }
        };
        let changed = result.as_ref().is_none_or(|(_, changed)| *changed);
        if changed {
            audit::record(
                &txn,
                workspace_id,
                caller,
                AuditEntry {
                    action,
                    target: format!("account/{account_id}"),
                    before,
                    after: {
                        let mut after = after;
                        if let Some(obj) = after.as_object_mut() {
                            obj.insert("email".into(), json!(target.email));
                        }
                        after
                    },
                },
                ctx,
                now,
            )
            .await?;
        }
        txn.commit().await?;
        match result {
            Some((row, _)) => Ok(self.cards(&me.workspace, vec![row]).await?.pop()),
            None => Ok(None),
        }
    }
}

async fn other_active_admins(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    except: Uuid,
) -> Result<u64> {
    Ok(membership::Entity::find()
        .filter(membership::Column::WorkspaceId.eq(workspace_id))
        .filter(membership::Column::Role.eq(Role::TenantAdmin.as_str()))
        .filter(membership::Column::Status.eq(MemberStatus::Active.as_str()))
        .filter(membership::Column::AccountId.ne(except))
        .select_only()
        .column(membership::Column::AccountId)
        .count(db)
        .await?)
}

pub(crate) fn card(
    ws: &workspace::Model,
    m: &membership::Model,
    display_name: String,
    mfa_enrolled: bool,
) -> MemberView {
    MemberView {
        workspace_id: m.workspace_id,
        account_id: m.account_id,
        email: m.email.clone(),
        display_name,
        role: Role::parse(&m.role).unwrap_or(Role::User),
        status: MemberStatus::parse(&m.status).unwrap_or(MemberStatus::Disabled),
        joined_at: store::time(m.joined_at),
        mfa_enrolled,
        is_owner: ws.owner_account_id == m.account_id,
    }
}
