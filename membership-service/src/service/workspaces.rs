//! Workspaces and their settings.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait, sea_query::Expr,
};
use serde_json::json;
use tracing::instrument;
use uuid::Uuid;

use super::{
    Acting, Membership, RequestContext, acting,
    audit::{self, AuditEntry, GENESIS},
    lock_workspace, ms,
};
use crate::{
    auth::Caller,
    domain::{self, MemberStatus, Role, WorkspaceName},
    error::{MembershipError, Result},
    store::{self, membership, workspace},
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceView {
    pub id: Uuid,
    pub name: String,
    pub owner_account_id: Uuid,
    pub require_mfa: bool,
    pub invitation_lifetime: Duration,
    pub created_at: DateTime<Utc>,
    /// The caller's role, when the caller is a member.
    pub caller_role: Option<Role>,
}

/// A settings update; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct SettingsChange {
    pub require_mfa: Option<bool>,
    pub invitation_lifetime: Option<Duration>,
}

pub(crate) fn view(w: &workspace::Model, caller_role: Option<Role>) -> WorkspaceView {
    WorkspaceView {
        id: w.id,
        name: w.name.clone(),
        owner_account_id: w.owner_account_id,
        require_mfa: w.require_mfa,
        invitation_lifetime: Duration::from_secs(
            u64::try_from(w.invitation_lifetime_secs).unwrap_or(0),
        ),
        created_at: store::time(w.created_at),
        caller_role,
    }
}

fn settings_json(w: &workspace::Model) -> serde_json::Value {
    json!({ "require_mfa": w.require_mfa, "invitation_lifetime_secs": w.invitation_lifetime_secs })
}

impl Membership {
    /// Creates a workspace owned by the caller (a person), or by
    /// `owner_account_id` (a service principal).
    #[instrument(skip_all)]
    pub async fn create_workspace(
        &self,
        caller: &Caller,
        name: &str,
        owner_account_id: Option<Uuid>,
        ctx: &RequestContext,
        now: DateTime<Utc>,
    ) -> Result<WorkspaceView> {
        let name = WorkspaceName::parse(name)?;
        let (owner_id, owner_email) = match (caller, owner_account_id) {
            (Caller::Person(p), None) => (p.account_id, p.email.clone()),
            (Caller::Person(_), Some(_)) => return Err(MembershipError::ServicesOnly),
            (Caller::Service(_), Some(id)) => {
                let account = self
                    .inner
                    .identity
                    .get_account(id)
                    .await
                    .map_err(MembershipError::Unavailable)?
                    .ok_or_else(|| {
                        MembershipError::InvalidArgument("owner_account_id names no account".into())
                    })?;
                (account.id, account.email)
            }
            (Caller::Service(_), None) => {
                return Err(MembershipError::InvalidArgument(
                    "a service must name the owner_account_id".into(),
                ));
            }
        };
        let id = Uuid::now_v7();
        let at = ms(now);
        let txn = self.db().begin().await?;
        let ws = workspace::Model {
            id,
            name: name.as_str().to_owned(),
            owner_account_id: owner_id,
            require_mfa: false,
            invitation_lifetime_secs: domain::DEFAULT_INVITATION_LIFETIME.as_secs() as i64,
            audit_seq: 0,
            audit_head: GENESIS.to_owned(),
            created_at: at,
            updated_at: at,
        };
        workspace::Entity::insert(workspace::ActiveModel {
            id: Set(ws.id),
            name: Set(ws.name.clone()),
            owner_account_id: Set(ws.owner_account_id),
            require_mfa: Set(ws.require_mfa),
            invitation_lifetime_secs: Set(ws.invitation_lifetime_secs),
            audit_seq: Set(0),
            audit_head: Set(GENESIS.to_owned()),
            created_at: Set(at),
            updated_at: Set(at),
        })
        .exec_without_returning(&txn)
        .await?;
        membership::Entity::insert(membership::ActiveModel {
            workspace_id: Set(id),
            account_id: Set(owner_id),
            email: Set(owner_email.clone()),
            role: Set(Role::TenantAdmin.as_str().to_owned()),
            status: Set(MemberStatus::Active.as_str().to_owned()),
            joined_at: Set(at),
            created_at: Set(at),
            updated_at: Set(at),
        })
        .exec_without_returning(&txn)
        .await?;
        audit::record(
            &txn,
            id,
            caller,
            AuditEntry {
                action: "workspace.created",
                target: format!("workspace/{id}"),
                before: serde_json::Value::Null,
                after: json!({ "name": ws.name, "owner": owner_id.to_string(), "owner_email": owner_email }),
            },
            ctx,
            now,
        )
        .await?;
        txn.commit().await?;
        tracing::info!(workspace_id = %id, "Workspace created.");
        Ok(view(
            &ws,
            matches!(caller, Caller::Person(_)).then_some(Role::TenantAdmin),
        ))
    }

    pub async fn get_workspace(
        &self,
        caller: &Caller,
        workspace_id: Uuid,
    ) -> Result<WorkspaceView> {
        let me = acting(self.db(), caller, workspace_id).await?;
        Ok(view(&me.workspace, Some(me.role)))
    }

    /// The workspaces the caller is an active member of, by id.
    pub async fn list_workspaces(
        &self,
        caller: &Caller,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<WorkspaceView>, String)> {
        let person = caller.person()?;
        let list = format!("workspaces/{}", person.account_id);
        let page = self.pages().request_uuid(&list, page_size, page_token)?;
        let mut query = membership::Entity::find()
            .filter(membership::Column::AccountId.eq(person.account_id))
            .filter(membership::Column::Status.eq(MemberStatus::Active.as_str()))
            .order_by_asc(membership::Column::WorkspaceId)
            .limit(page.size + 1);
        if let Some(after) = page.cursor {
            query = query.filter(membership::Column::WorkspaceId.gt(after));
        }
        let mut rows = query.all(self.db()).await?;
        let mut next = String::new();
        if rows.len() as u64 > page.size {
            rows.truncate(page.size as usize);
            if let Some(last) = rows.last() {
                next = self.pages().encode_uuid(&list, last.workspace_id);
            }
        }
        let ids: Vec<Uuid> = rows.iter().map(|m| m.workspace_id).collect();
        let workspaces = workspace::Entity::find()
            .filter(workspace::Column::Id.is_in(ids))
            .all(self.db())
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for m in &rows {
            if let Some(w) = workspaces.iter().find(|w| w.id == m.workspace_id) {
                out.push(view(w, Role::parse(&m.role)));
            }
        }
        Ok((out, next))
    }

    /// Tenant Admins: Require MFA and the invitation lifetime.
    #[instrument(skip_all, fields(workspace_id = %workspace_id))]
    pub async fn update_settings(
        &self,
        caller: &Caller,
        workspace_id: Uuid,
        change: SettingsChange,
        ctx: &RequestContext,
        now: DateTime<Utc>,
    ) -> Result<WorkspaceView> {
        let lifetime = change
            .invitation_lifetime
            .map(domain::invitation_lifetime)
            .transpose()?;
        // The token may be minutes old: ask identity whether the admin has
        // an authenticator app now, before taking the workspace lock (no
        // network call is made while holding it).
        let person = caller.person()?;
        let enrolled = change.require_mfa != Some(true)
            || person.totp_enrolled
            || self
                .inner
                .identity
                .get_account(person.account_id)
                .await
                .map_err(MembershipError::Unavailable)?
                .is_some_and(|a| a.totp_enrolled);
        let txn = self.db().begin().await?;
        lock_workspace(&txn, workspace_id).await?;
        let me: Acting = acting(&txn, caller, workspace_id).await?;
        me.require_admin()?;
        if change.require_mfa == Some(true) && !me.workspace.require_mfa && !enrolled {
            return Err(MembershipError::MfaEnrollmentRequiredToEnable);
        }
        let before = me.workspace.clone();
        let mut after = before.clone();
        if let Some(require) = change.require_mfa {
            after.require_mfa = require;
        }
        if let Some(lifetime) = lifetime {
            after.invitation_lifetime_secs = lifetime.as_secs() as i64;
        }
        if after.require_mfa != before.require_mfa
            || after.invitation_lifetime_secs != before.invitation_lifetime_secs
        {
            workspace::Entity::update_many()
                .col_expr(
                    workspace::Column::RequireMfa,
                    Expr::value(after.require_mfa),
                )
                .col_expr(
                    workspace::Column::InvitationLifetimeSecs,
                    Expr::value(after.invitation_lifetime_secs),
                )
                .col_expr(workspace::Column::UpdatedAt, Expr::value(ms(now)))
                .filter(workspace::Column::Id.eq(workspace_id))
                .exec(&txn)
                .await?;
            audit::record(
                &txn,
                workspace_id,
                caller,
                AuditEntry {
                    action: "workspace.settings_changed",
                    target: format!("workspace/{workspace_id}"),
                    before: settings_json(&before),
                    after: settings_json(&after),
                },
                ctx,
                now,
            )
            .await?;
        }
        txn.commit().await?;
        Ok(view(&after, Some(me.role)))
    }

    /// The owner hands ownership to another active Tenant Admin.
    #[instrument(skip_all, fields(workspace_id = %workspace_id))]
    pub async fn transfer_ownership(
        &self,
        caller: &Caller,
        workspace_id: Uuid,
        new_owner: Uuid,
        ctx: &RequestContext,
        now: DateTime<Utc>,
    ) -> Result<WorkspaceView> {
        let txn = self.db().begin().await?;
        lock_workspace(&txn, workspace_id).await?;
        let me = acting(&txn, caller, workspace_id).await?;
        // Any member but the owner (a User or another admin) is NOT_OWNER;
        // the owner is always an active Tenant Admin.
        if me.workspace.owner_account_id != me.person.account_id {
            return Err(MembershipError::NotOwner);
        }
        let target = membership::Entity::find_by_id((workspace_id, new_owner))
            .one(&txn)
            .await?
            .ok_or(MembershipError::MemberNotFound)?;
        if Role::parse(&target.role) != Some(Role::TenantAdmin)
            || MemberStatus::parse(&target.status) != Some(MemberStatus::Active)
        {
            return Err(MembershipError::TargetNotActiveAdmin);
        }
        if new_owner == me.person.account_id {
            txn.commit().await?;
            return Ok(view(&me.workspace, Some(me.role)));
        }
        workspace::Entity::update_many()
            .col_expr(workspace::Column::OwnerAccountId, Expr::value(new_owner))
            .col_expr(workspace::Column::UpdatedAt, Expr::value(ms(now)))
            .filter(workspace::Column::Id.eq(workspace_id))
            .exec(&txn)
            .await?;
        audit::record(
            &txn,
            workspace_id,
            caller,
            AuditEntry {
                action: "workspace.ownership_transferred",
                target: format!("account/{new_owner}"),
                before: json!({ "owner": me.workspace.owner_account_id.to_string() }),
                after: json!({ "owner": new_owner.to_string() }),
            },
            ctx,
            now,
        )
        .await?;
        txn.commit().await?;
        let mut after = me.workspace.clone();
        after.owner_account_id = new_owner;
        Ok(view(&after, Some(me.role)))
    }
}
