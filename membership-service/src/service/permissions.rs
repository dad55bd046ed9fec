//! "May principal P do X in workspace W?" for the rest of the suite.

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use uuid::Uuid;

use super::{Membership, acting};
use crate::{
    auth::Caller,
    domain::{MemberStatus, Permission, Role},
    error::{MembershipError, Result},
};

/// Why a check said no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    NotMember,
    MemberDisabled,
    Role,
    MfaRequired,
}

impl Denial {
    pub fn as_str(self) -> &'static str {
        match self {
            Denial::NotMember => "NOT_MEMBER",
            Denial::MemberDisabled => "MEMBER_DISABLED",
            Denial::Role => "ROLE",
            Denial::MfaRequired => "MFA_REQUIRED",
        }
    }
}

impl Membership {
    /// A service principal asks about `account_id` (stating whether that
    /// person's sign-in used a second factor); a person asks about
    /// themselves. Two primary-key reads.
    pub async fn check_permission(
        &self,
        caller: &Caller,
        workspace_id: Uuid,
        account_id: Option<Uuid>,
        second_factor: bool,
        permission: Permission,
    ) -> Result<Result<(), Denial>> {
        let (account_id, second_factor) = match caller {
            Caller::Service(_) => (
                account_id.ok_or_else(|| {
                    MembershipError::InvalidArgument("account_id is required".into())
                })?,
                second_factor,
            ),
            Caller::Person(p) => {
                if account_id.is_some_and(|a| a != p.account_id) {
                    return Err(MembershipError::ServicesOnly);
                }
                (p.account_id, p.second_factor)
            }
        };
        // The suite's hot path: one indexed join, one round trip.
        let backend = self.db().get_database_backend();
        let sql = match backend {
            DbBackend::Postgres => {
                "SELECT m.role, m.status, w.require_mfa FROM memberships m \
                 JOIN workspaces w ON w.id = m.workspace_id \
                 WHERE m.workspace_id = $1 AND m.account_id = $2"
            }
            _ => {
                "SELECT m.role, m.status, w.require_mfa FROM memberships m \
                 JOIN workspaces w ON w.id = m.workspace_id \
                 WHERE m.workspace_id = ? AND m.account_id = ?"
            }
        };
        let found: Option<(String, String, bool)> = if backend == DbBackend::Postgres {
            // Straight to the driver: at thousands of checks a second the
            // ORM's per-query work is most of the cost.
            sea_orm::sqlx::query_as(sql)
                .bind(workspace_id)
                .bind(account_id)
                .fetch_optional(self.db().get_postgres_connection_pool())
                .await
                .map_err(|e| MembershipError::Unavailable(anyhow::Error::new(e)))?
        } else {
            let row = self
                .db()
                .query_one_raw(Statement::from_sql_and_values(
                    backend,
                    sql,
                    [workspace_id.into(), account_id.into()],
                ))
                .await?;
            match row {
                Some(row) => Some((
                    row.try_get_by_index(0)?,
                    row.try_get_by_index(1)?,
                    row.try_get_by_index(2)?,
                )),
                None => None,
            }
        };
        let Some((role, status, require_mfa)) = found else {
            return Ok(Err(Denial::NotMember));
        };
        if MemberStatus::parse(&status) != Some(MemberStatus::Active) {
            return Ok(Err(Denial::MemberDisabled));
        }
        if require_mfa && !second_factor {
            return Ok(Err(Denial::MfaRequired));
        }
        match Role::parse(&role) {
            Some(role) if role.allows(permission) => Ok(Ok(())),
            _ => Ok(Err(Denial::Role)),
        }
    }

    /// The caller's role and permissions in a workspace.
    pub async fn list_permissions(
        &self,
        caller: &Caller,
        workspace_id: Uuid,
    ) -> Result<(Role, &'static [Permission])> {
        let me = acting(self.db(), caller, workspace_id).await?;
        Ok((me.role, me.role.permissions()))
    }
}
