//! Use cases. Each owns its transaction; "now" and the caller are arguments.
//!
//! Every change to a workspace runs in one transaction that first locks the
//! workspace row (an UPDATE of the row: a row lock on PostgreSQL, the write
//! lock on SQLite), so changes to one workspace are serialized and the rules
//! (at least one active Tenant Admin, the owner always an active admin) are
//! checked against the state they change. The audit event and any email
//! are written in the same transaction.

mod audit;
mod invitations;
mod members;
mod permissions;

pub use permissions::{CHECK_CONNECTION_NAME, CheckBatcher, Denial};
mod workspaces;

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use recapp_service_kit::PageTokens;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, sea_query::Expr,
};
use tokio::sync::Notify;
use uuid::Uuid;

pub use audit::{AuditEntry, AuditView, verify_chain};
pub use invitations::{InvitationPreview, InvitationView};
pub use members::MemberView;
pub use workspaces::{SettingsChange, WorkspaceView};

use crate::{
    auth::{Caller, Person},
    domain::{MemberStatus, Role},
    error::{MembershipError, Result},
    identity::IdentityClient,
    store::{self, membership, workspace},
};

/// Where a request came from, for the audit log.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub client_ip: String,
    pub trace_id: String,
}

/// Tunables of the use cases.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `<base>/invite/<token>` is the link in invitation emails.
    pub public_base_url: String,
    pub resend_cooldown: Duration,
    /// Invitation emails (first sends and resends) per workspace per hour.
    pub invitations_per_hour: u64,
    pub from_name: String,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            public_base_url: "http://localhost:8080".into(),
            resend_cooldown: Duration::from_secs(60),
            invitations_per_hour: 100,
            from_name: "MSP Recapp".into(),
        }
    }
}

#[derive(Clone)]
pub struct Membership {
    inner: Arc<Inner>,
}

struct Inner {
    db: DatabaseConnection,
    identity: IdentityClient,
    policy: Policy,
    pages: PageTokens,
    outbox: Arc<Notify>,
    /// PostgreSQL's batched checks on their own connections; SQLite asks `db`.
    checks: Option<permissions::CheckBatcher>,
}

impl Membership {
    pub fn new(
        db: DatabaseConnection,
        checks: Option<permissions::CheckBatcher>,
        identity: IdentityClient,
        policy: Policy,
        pages: PageTokens,
        outbox: Arc<Notify>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                identity,
                policy,
                pages,
                outbox,
                checks,
            }),
        }
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    /// The refusal for a person without a second factor in a workspace that
    /// requires one: `MFA_REQUIRED` when the account has an authenticator
    /// app now (sign in again with it), `MFA_ENROLLMENT_REQUIRED` when it
    /// has none. Identity is asked because the token's `totp` claim is as
    /// old as the token; if identity cannot answer, the claim decides.
    /// Only refusals pay for the call, and no transaction is open here.
    pub async fn mfa_refusal(&self, caller: &Caller, refusal: MembershipError) -> MembershipError {
        let Ok(person) = caller.person() else {
            return refusal;
        };
        match self.inner.identity.get_account(person.account_id).await {
            Ok(Some(account)) if account.totp_enrolled => MembershipError::MfaRequired,
            Ok(Some(_)) => MembershipError::MfaEnrollmentRequired,
            Ok(None) => refusal,
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "Could not ask identity about an authenticator app; the token decides."
                );
                refusal
            }
        }
    }

    fn pages(&self) -> &PageTokens {
        &self.inner.pages
    }
}

/// The caller as a member of one workspace, checked: active, and through
/// the workspace's MFA requirement.
#[derive(Debug, Clone)]
pub(crate) struct Acting {
    pub person: Person,
    pub role: Role,
    pub workspace: workspace::Model,
}

impl Acting {
    pub fn is_admin(&self) -> bool {
        self.role == Role::TenantAdmin
    }

    pub fn require_admin(&self) -> Result<()> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(MembershipError::PermissionDenied)
        }
    }
}

/// Checks the caller is an active member of the workspace and meets its
/// MFA requirement. Non-members (and unknown workspaces) get NOT_FOUND, so
/// nothing of one workspace is visible from another.
pub(crate) async fn acting(
    db: &impl ConnectionTrait,
    caller: &Caller,
    workspace_id: Uuid,
) -> Result<Acting> {
    let person = caller.person()?.clone();
    // One round trip: the membership and its workspace, joined.
    let (member, workspace) = membership::Entity::find_by_id((workspace_id, person.account_id))
        .find_also_related(workspace::Entity)
        .one(db)
        .await?
        .and_then(|(m, w)| Some((m, w?)))
        .ok_or(MembershipError::WorkspaceNotFound)?;
    if MemberStatus::parse(&member.status) != Some(MemberStatus::Active) {
        return Err(MembershipError::MemberDisabled);
    }
    if workspace.require_mfa && !person.second_factor {
        return Err(if person.totp_enrolled {
            MembershipError::MfaRequired
        } else {
            MembershipError::MfaEnrollmentRequired
        });
    }
    let role = Role::parse(&member.role)
        .ok_or_else(|| anyhow::anyhow!("stored role {:?} is unknown", member.role))?;
    Ok(Acting {
        person,
        role,
        workspace,
    })
}

/// Locks the workspace row for the rest of the transaction.
pub(crate) async fn lock_workspace(txn: &impl ConnectionTrait, workspace_id: Uuid) -> Result<()> {
    let touched = workspace::Entity::update_many()
        .col_expr(
            workspace::Column::UpdatedAt,
            Expr::col(workspace::Column::UpdatedAt),
        )
        .filter(workspace::Column::Id.eq(workspace_id))
        .exec(txn)
        .await?;
    if touched.rows_affected != 1 {
        return Err(MembershipError::WorkspaceNotFound);
    }
    Ok(())
}

pub(crate) fn ms(now: DateTime<Utc>) -> i64 {
    store::ms(now)
}
