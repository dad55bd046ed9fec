//! "May principal P do X in workspace W?" for the rest of the suite.

use sea_orm::EntityTrait;
use uuid::Uuid;

use super::{Membership, acting};
use crate::{
    auth::Caller,
    domain::{MemberStatus, Permission, Role},
    error::{MembershipError, Result},
    store::{membership, workspace},
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
        let Some(member) = membership::Entity::find_by_id((workspace_id, account_id))
            .one(self.db())
            .await?
        else {
            return Ok(Err(Denial::NotMember));
        };
        if MemberStatus::parse(&member.status) != Some(MemberStatus::Active) {
            return Ok(Err(Denial::MemberDisabled));
        }
        let Some(ws) = workspace::Entity::find_by_id(workspace_id)
            .one(self.db())
            .await?
        else {
            return Ok(Err(Denial::NotMember));
        };
        if ws.require_mfa && !second_factor {
            return Ok(Err(Denial::MfaRequired));
        }
        match Role::parse(&member.role) {
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
