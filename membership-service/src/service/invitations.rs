//! Invitations by email: invite, list, resend, cancel, preview, accept.
//!
//! A link carries 256 random bits; only their SHA-256 is stored. Resending
//! replaces the token (the old link dies) and the expiry. The email is
//! written to the outbox in the invitation's transaction.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait, sea_query::Expr,
};
use serde_json::json;
use sha2::{Digest, Sha256};
use tracing::instrument;
use uuid::Uuid;

use super::{
    Membership, RequestContext, acting,
    audit::{self, AuditEntry},
    lock_workspace,
    members::{MemberView, card},
    ms,
    workspaces::{WorkspaceView, view as workspace_view},
};
use crate::{
    auth::Caller,
    domain::{EmailAddress, InvitationStatus, MemberStatus, Role},
    error::{MembershipError, Result},
    outbox::{self, NewEmail},
    store::{self, audit_event, invitation, membership, workspace},
};

const TOKEN_BYTES: usize = 32;

/// `(subject, text, html)` of an invitation email.
type Template = fn(&str, &str, &str, &str, DateTime<Utc>) -> (String, String, String);

/// What one invitation email links to.
struct Link<'a> {
    email: &'a str,
    role: Role,
    token: &'a str,
    expires_at_ms: i64,
    /// A resend: the email says the earlier link no longer works.
    resent: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationView {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub email: String,
    pub role: Role,
    pub status: InvitationStatus,
    pub sent_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub invited_by: Uuid,
    pub invited_by_email: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationPreview {
    pub workspace_name: String,
    pub email: String,
    pub role: Role,
    pub expires_at: DateTime<Utc>,
    pub invited_by_email: String,
}

fn view(i: &invitation::Model, now_ms: i64) -> InvitationView {
    InvitationView {
        id: i.id,
        workspace_id: i.workspace_id,
        email: i.email.clone(),
        role: Role::parse(&i.role).unwrap_or(Role::User),
        status: InvitationStatus::effective(&i.status, i.expires_at, now_ms),
        sent_at: store::time(i.sent_at),
        expires_at: store::time(i.expires_at),
        invited_by: i.invited_by,
        invited_by_email: i.invited_by_email.clone(),
        created_at: store::time(i.created_at),
    }
}

fn new_token() -> Result<(String, Vec<u8>)> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("random source failed: {e}"))?;
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = Sha256::digest(token.as_bytes()).to_vec();
    Ok((token, hash))
}

/// The stored hash of a link token, or None if it cannot be one of ours.
fn token_hash(token: &str) -> Option<Vec<u8>> {
    let token = token.trim();
    let decoded = URL_SAFE_NO_PAD.decode(token).ok()?;
    (decoded.len() == TOKEN_BYTES).then(|| Sha256::digest(token.as_bytes()).to_vec())
}

impl Membership {
    fn link(&self, token: &str) -> String {
        format!(
            "{}/invite/{token}",
            self.inner.policy.public_base_url.trim_end_matches('/')
        )
    }

    async fn enqueue_invitation_email(
        &self,
        txn: &impl ConnectionTrait,
        ws: &workspace::Model,
        inviter: &str,
        link: Link<'_>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let Link {
            email,
            role,
            token,
            expires_at_ms,
            resent,
        } = link;
        let (render, kind) = if resent {
            (
                outbox::templates::resend_email as Template,
                "invitation_resent",
            )
        } else {
            (
                outbox::templates::invitation_email as Template,
                "invitation",
            )
        };
        let (subject, text, html) = render(
            &ws.name,
            inviter,
            role.label(),
            &self.link(token),
            store::time(expires_at_ms),
        );
        outbox::enqueue(
            txn,
            NewEmail {
                workspace_id: Some(ws.id),
                kind: kind.into(),
                to: email.to_owned(),
                subject,
                text,
                html,
            },
            ms(now),
        )
        .await?;
        Ok(())
    }

    /// Refuses when the workspace sent its hourly share of invitation emails.
    async fn check_hourly_cap(
        &self,
        txn: &impl ConnectionTrait,
        workspace_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<()> {
        const HOUR_MS: i64 = 3_600_000;
        let cap = self.inner.policy.invitations_per_hour;
        let in_the_hour = || {
            audit_event::Entity::find()
                .filter(audit_event::Column::WorkspaceId.eq(workspace_id))
                .filter(audit_event::Column::Action.is_in(["member.invited", "invitation.resent"]))
                .filter(audit_event::Column::CreatedAt.gt(ms(now) - HOUR_MS))
        };
        let sent = in_the_hour()
            .select_only()
            .column(audit_event::Column::Id)
            .count(txn)
            .await?;
        if sent >= cap {
            // The wait until enough of this hour's emails leave the window.
            let freed_by = in_the_hour()
                .order_by_asc(audit_event::Column::CreatedAt)
                .offset(sent - cap)
                .one(txn)
                .await?;
            let wait_ms = freed_by.map_or(HOUR_MS, |e| e.created_at + HOUR_MS - ms(now));
            return Err(MembershipError::ResendLimit {
                retry_after: Duration::from_secs((wait_ms.max(1) as u64).div_ceil(1000)),
            });
        }
        Ok(())
    }

    #[instrument(skip_all, fields(workspace_id = %workspace_id))]
    pub async fn invite_member(
        &self,
        caller: &Caller,
        workspace_id: Uuid,
        email: &str,
        role: Role,
        ctx: &RequestContext,
        now: DateTime<Utc>,
    ) -> Result<InvitationView> {
        let email = EmailAddress::parse(email)?;
        let txn = self.db().begin().await?;
        lock_workspace(&txn, workspace_id).await?;
        let me = acting(&txn, caller, workspace_id).await?;
        me.require_admin()?;
        if let Some(existing) = membership::Entity::find()
            .filter(membership::Column::WorkspaceId.eq(workspace_id))
            .filter(membership::Column::Email.eq(email.as_str()))
            .one(&txn)
            .await?
        {
            return Err(match MemberStatus::parse(&existing.status) {
                Some(MemberStatus::Active) => MembershipError::AlreadyMember,
                _ => MembershipError::MemberDisabledReenable,
            });
        }
        let now_ms = ms(now);
        // A pending invitation past its expiry no longer blocks a new one.
        if let Some(pending) = invitation::Entity::find()
            .filter(invitation::Column::WorkspaceId.eq(workspace_id))
            .filter(invitation::Column::Email.eq(email.as_str()))
            .filter(invitation::Column::Status.eq(InvitationStatus::Pending.as_str()))
            .one(&txn)
            .await?
        {
            if now_ms < pending.expires_at {
                return Err(MembershipError::InvitationPending);
            }
            invitation::Entity::update_many()
                .col_expr(
                    invitation::Column::Status,
                    Expr::value(InvitationStatus::Expired.as_str()),
                )
                .col_expr(invitation::Column::EndedAt, Expr::value(Some(now_ms)))
                .col_expr(invitation::Column::UpdatedAt, Expr::value(now_ms))
                .filter(invitation::Column::Id.eq(pending.id))
                .exec(&txn)
                .await?;
        }
        self.check_hourly_cap(&txn, workspace_id, now).await?;
        let (token, hash) = new_token()?;
        let expires_at = now_ms + me.workspace.invitation_lifetime_secs * 1000;
        let row = invitation::Model {
            id: Uuid::now_v7(),
            workspace_id,
            email: email.as_str().to_owned(),
            role: role.as_str().to_owned(),
            status: InvitationStatus::Pending.as_str().to_owned(),
            token_hash: hash,
            expires_at,
            sent_at: now_ms,
            send_count: 1,
            invited_by: me.person.account_id,
            invited_by_email: me.person.email.clone(),
            accepted_by: None,
            ended_at: None,
            created_at: now_ms,
            updated_at: now_ms,
        };
        invitation::Entity::insert(invitation::ActiveModel {
            id: Set(row.id),
            workspace_id: Set(row.workspace_id),
            email: Set(row.email.clone()),
            role: Set(row.role.clone()),
            status: Set(row.status.clone()),
            token_hash: Set(row.token_hash.clone()),
            expires_at: Set(row.expires_at),
            sent_at: Set(row.sent_at),
            send_count: Set(row.send_count),
            invited_by: Set(row.invited_by),
            invited_by_email: Set(row.invited_by_email.clone()),
            accepted_by: Set(None),
            ended_at: Set(None),
            created_at: Set(row.created_at),
            updated_at: Set(row.updated_at),
        })
        .exec_without_returning(&txn)
        .await?;
        let link = Link {
            email: email.as_str(),
            role,
            token: &token,
            expires_at_ms: expires_at,
            resent: false,
        };
        self.enqueue_invitation_email(&txn, &me.workspace, &me.person.email, link, now)
            .await?;
        audit::record(
            &txn,
            workspace_id,
            caller,
            AuditEntry {
                action: "member.invited",
                target: format!("invitation/{}", row.id),
                before: serde_json::Value::Null,
                after: json!({ "email": row.email, "role": row.role, "expires_at": expires_at }),
            },
            ctx,
            now,
        )
        .await?;
        txn.commit().await?;
        self.inner.outbox.notify_one();
        Ok(view(&row, now_ms))
    }

    /// Tenant Admins: invitations with a status (pending by default),
    /// newest first.
    pub async fn list_invitations(
        &self,
        caller: &Caller,
        workspace_id: Uuid,
        status: InvitationStatus,
        page_size: i32,
        page_token: &str,
        now: DateTime<Utc>,
    ) -> Result<(Vec<InvitationView>, String)> {
        let me = acting(self.db(), caller, workspace_id).await?;
        me.require_admin()?;
        let now_ms = ms(now);
        let list = format!("invitations/{workspace_id}/{}", status.as_str());
        let page = self.pages().request_uuid(&list, page_size, page_token)?;
        let mut query = invitation::Entity::find()
            .filter(invitation::Column::WorkspaceId.eq(workspace_id))
            .order_by_desc(invitation::Column::Id)
            .limit(page.size + 1);
        query = match status {
            InvitationStatus::Pending => query
                .filter(invitation::Column::Status.eq("pending"))
                .filter(invitation::Column::ExpiresAt.gt(now_ms)),
            InvitationStatus::Expired => query.filter(
                sea_orm::Condition::any()
                    .add(invitation::Column::Status.eq("expired"))
                    .add(
                        sea_orm::Condition::all()
                            .add(invitation::Column::Status.eq("pending"))
                            .add(invitation::Column::ExpiresAt.lte(now_ms)),
                    ),
            ),
            other => query.filter(invitation::Column::Status.eq(other.as_str())),
        };
        if let Some(before) = page.cursor {
            query = query.filter(invitation::Column::Id.lt(before));
        }
        let mut rows = query.all(self.db()).await?;
        let mut next = String::new();
        if rows.len() as u64 > page.size {
            rows.truncate(page.size as usize);
            if let Some(last) = rows.last() {
                next = self.pages().encode_uuid(&list, last.id);
            }
        }
        Ok((rows.iter().map(|i| view(i, now_ms)).collect(), next))
    }

    async fn pending_for_change(
        &self,
        txn: &impl ConnectionTrait,
        workspace_id: Uuid,
        invitation_id: Uuid,
        now_ms: i64,
        renewing: bool,
    ) -> Result<invitation::Model> {
        let row = invitation::Entity::find_by_id(invitation_id)
            .one(txn)
            .await?
            .filter(|i| i.workspace_id == workspace_id)
            .ok_or(MembershipError::InvitationNotFound)?;
        // An expired invitation may still be resent (that renews it), but
        // not cancelled: it is no longer pending, and its link already fails.
        match InvitationStatus::effective(&row.status, row.expires_at, now_ms) {
            InvitationStatus::Pending => Ok(row),
            InvitationStatus::Expired if renewing && row.status == "pending" => Ok(row),
            _ => Err(MembershipError::InvitationNotPending),
        }
    }

    #[instrument(skip_all, fields(workspace_id = %workspace_id, invitation_id = %invitation_id))]
    pub async fn resend_invitation(
        &self,
        caller: &Caller,
        workspace_id: Uuid,
        invitation_id: Uuid,
        ctx: &RequestContext,
        now: DateTime<Utc>,
    ) -> Result<InvitationView> {
        let txn = self.db().begin().await?;
        lock_workspace(&txn, workspace_id).await?;
        let me = acting(&txn, caller, workspace_id).await?;
        me.require_admin()?;
        let now_ms = ms(now);
        let row = self
            .pending_for_change(&txn, workspace_id, invitation_id, now_ms, true)
            .await?;
        let cooldown = self.inner.policy.resend_cooldown.as_millis() as i64;
        if now_ms - row.sent_at < cooldown {
            // Rounded up: a client that waits exactly this long succeeds.
            let wait_ms = (cooldown - (now_ms - row.sent_at)) as u64;
            return Err(MembershipError::ResendTooSoon {
                retry_after: Duration::from_secs(wait_ms.div_ceil(1000).max(1)),
            });
        }
        self.check_hourly_cap(&txn, workspace_id, now).await?;
        let (token, hash) = new_token()?;
        let expires_at = now_ms + me.workspace.invitation_lifetime_secs * 1000;
        invitation::Entity::update_many()
            .col_expr(invitation::Column::TokenHash, Expr::value(hash))
            .col_expr(invitation::Column::ExpiresAt, Expr::value(expires_at))
            .col_expr(invitation::Column::SentAt, Expr::value(now_ms))
            .col_expr(
                invitation::Column::SendCount,
                Expr::value(row.send_count + 1),
            )
            .col_expr(invitation::Column::UpdatedAt, Expr::value(now_ms))
            .filter(invitation::Column::Id.eq(row.id))
            .exec(&txn)
            .await?;
        let role = Role::parse(&row.role).unwrap_or(Role::User);
        let link = Link {
            email: &row.email,
            role,
            token: &token,
            expires_at_ms: expires_at,
            resent: true,
        };
        self.enqueue_invitation_email(&txn, &me.workspace, &me.person.email, link, now)
            .await?;
        audit::record(
            &txn,
            workspace_id,
            caller,
            AuditEntry {
                action: "invitation.resent",
                target: format!("invitation/{}", row.id),
                before: json!({ "expires_at": row.expires_at }),
                after: json!({ "expires_at": expires_at, "email": row.email }),
            },
            ctx,
            now,
        )
        .await?;
        txn.commit().await?;
        self.inner.outbox.notify_one();
        let mut updated = row;
        updated.expires_at = expires_at;
        updated.sent_at = now_ms;
        updated.send_count += 1;
        Ok(view(&updated, now_ms))
    }

    #[instrument(skip_all, fields(workspace_id = %workspace_id, invitation_id = %invitation_id))]
    pub async fn cancel_invitation(
        &self,
        caller: &Caller,
        workspace_id: Uuid,
        invitation_id: Uuid,
        ctx: &RequestContext,
        now: DateTime<Utc>,
    ) -> Result<InvitationView> {
        let txn = self.db().begin().await?;
        lock_workspace(&txn, workspace_id).await?;
        let me = acting(&txn, caller, workspace_id).await?;
        me.require_admin()?;
        let now_ms = ms(now);
        let row = self
            .pending_for_change(&txn, workspace_id, invitation_id, now_ms, false)
            .await?;
        invitation::Entity::update_many()
            .col_expr(
                invitation::Column::Status,
                Expr::value(InvitationStatus::Cancelled.as_str()),
            )
            .col_expr(invitation::Column::EndedAt, Expr::value(Some(now_ms)))
            .col_expr(invitation::Column::UpdatedAt, Expr::value(now_ms))
            .filter(invitation::Column::Id.eq(row.id))
            .exec(&txn)
            .await?;
        audit::record(
            &txn,
            workspace_id,
            caller,
            AuditEntry {
                action: "invitation.cancelled",
                target: format!("invitation/{}", row.id),
                before: json!({ "status": "pending", "email": row.email }),
                after: json!({ "status": "cancelled" }),
            },
            ctx,
            now,
        )
        .await?;
        txn.commit().await?;
        let mut updated = row;
        updated.status = InvitationStatus::Cancelled.as_str().to_owned();
        Ok(view(&updated, now_ms))
    }

    /// The invitation a link names, with a distinct error for each dead end.
    async fn by_token(
        &self,
        db: &impl ConnectionTrait,
        token: &str,
        now_ms: i64,
    ) -> Result<invitation::Model> {
        let hash = token_hash(token).ok_or(MembershipError::InvitationInvalid)?;
        let row = invitation::Entity::find()
            .filter(invitation::Column::TokenHash.eq(hash))
            .one(db)
            .await?
            .ok_or(MembershipError::InvitationInvalid)?;
        match InvitationStatus::effective(&row.status, row.expires_at, now_ms) {
            InvitationStatus::Pending => Ok(row),
            InvitationStatus::Expired => Err(MembershipError::InvitationExpired),
            InvitationStatus::Cancelled => Err(MembershipError::InvitationCancelled),
            InvitationStatus::Accepted => Err(MembershipError::InvitationUsed),
        }
    }

    /// Shows what a link offers; consumes nothing. Needs no sign-in.
    pub async fn preview_invitation(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<InvitationPreview> {
        let row = self.by_token(self.db(), token, ms(now)).await?;
        let ws = workspace::Entity::find_by_id(row.workspace_id)
            .one(self.db())
            .await?
            .ok_or(MembershipError::InvitationInvalid)?;
        Ok(InvitationPreview {
            workspace_name: ws.name,
            email: row.email,
            role: Role::parse(&row.role).unwrap_or(Role::User),
            expires_at: store::time(row.expires_at),
            invited_by_email: row.invited_by_email,
        })
    }

    /// Joins the workspace: single use, for the invited address only.
    #[instrument(skip_all)]
    pub async fn accept_invitation(
        &self,
        caller: &Caller,
        token: &str,
        ctx: &RequestContext,
        now: DateTime<Utc>,
    ) -> Result<(MemberView, WorkspaceView)> {
        let person = caller.person()?.clone();
        let now_ms = ms(now);
        let found = self.by_token(self.db(), token, now_ms).await?;
        if !found.email.eq_ignore_ascii_case(&person.email) {
            return Err(MembershipError::InvitationEmailMismatch);
        }
        let txn = self.db().begin().await?;
        lock_workspace(&txn, found.workspace_id).await?;
        // Re-read under the lock: a concurrent accept, cancel or resend wins.
        let row = self.by_token(&txn, token, now_ms).await?;
        if let Some(existing) =
            membership::Entity::find_by_id((row.workspace_id, person.account_id))
                .one(&txn)
                .await?
        {
            let _ = existing;
            return Err(MembershipError::AlreadyMember);
        }
        let accepted = invitation::Entity::update_many()
            .col_expr(
                invitation::Column::Status,
                Expr::value(InvitationStatus::Accepted.as_str()),
            )
            .col_expr(
                invitation::Column::AcceptedBy,
                Expr::value(Some(person.account_id)),
            )
            .col_expr(invitation::Column::EndedAt, Expr::value(Some(now_ms)))
            .col_expr(invitation::Column::UpdatedAt, Expr::value(now_ms))
            .filter(invitation::Column::Id.eq(row.id))
            .filter(invitation::Column::Status.eq(InvitationStatus::Pending.as_str()))
            .filter(invitation::Column::TokenHash.eq(row.token_hash.clone()))
            .exec(&txn)
            .await?;
        if accepted.rows_affected != 1 {
            return Err(MembershipError::InvitationUsed);
        }
        let role = Role::parse(&row.role).unwrap_or(Role::User);
        let member = membership::Model {
            workspace_id: row.workspace_id,
            account_id: person.account_id,
            email: person.email.clone(),
            role: role.as_str().to_owned(),
            status: MemberStatus::Active.as_str().to_owned(),
            joined_at: now_ms,
            created_at: now_ms,
            updated_at: now_ms,
        };
        let inserted = membership::Entity::insert(membership::ActiveModel {
            workspace_id: Set(member.workspace_id),
            account_id: Set(member.account_id),
            email: Set(member.email.clone()),
            role: Set(member.role.clone()),
            status: Set(member.status.clone()),
            joined_at: Set(now_ms),
            created_at: Set(now_ms),
            updated_at: Set(now_ms),
        })
        .exec_without_returning(&txn)
        .await;
        if let Err(e) = inserted {
            return Err(
                if store::is_unique_violation(&e, "memberships_workspace_id_email_key")
                    || store::is_unique_violation(&e, "memberships_pkey")
                {
                    MembershipError::AlreadyMember
                } else {
                    e.into()
                },
            );
        }
        audit::record(
            &txn,
            row.workspace_id,
            caller,
            AuditEntry {
                action: "invitation.accepted",
                target: format!("invitation/{}", row.id),
                before: json!({ "status": "pending" }),
                after: json!({ "status": "accepted", "account": person.account_id.to_string(), "email": person.email, "role": role.as_str() }),
            },
            ctx,
            now,
        )
        .await?;
        let ws = workspace::Entity::find_by_id(row.workspace_id)
            .one(&txn)
            .await?
            .ok_or(MembershipError::WorkspaceNotFound)?;
        txn.commit().await?;
        let card = card(&ws, &member, String::new(), person.totp_enrolled);
        Ok((card, workspace_view(&ws, Some(role))))
    }
}
