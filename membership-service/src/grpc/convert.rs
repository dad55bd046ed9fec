//! Domain <-> proto conversions.

use recapp_proto::membership::v1 as pb;

use crate::{
    domain::{InvitationStatus, MemberStatus, Permission, Role},
    error::MembershipError,
    service::{AuditView, InvitationView, MemberView, WorkspaceView},
};

pub use recapp_service_kit::grpc::timestamp;

pub fn role_pb(role: Role) -> pb::Role {
    match role {
        Role::TenantAdmin => pb::Role::TenantAdmin,
        Role::User => pb::Role::User,
    }
}

/// Unknown and unspecified roles are refused (the zero value never means a
/// default).
pub fn role_from_pb(value: i32) -> Result<Role, MembershipError> {
    match pb::Role::try_from(value) {
        Ok(pb::Role::TenantAdmin) => Ok(Role::TenantAdmin),
        Ok(pb::Role::User) => Ok(Role::User),
        _ => Err(MembershipError::Invalid(
            crate::domain::DomainError::InvalidRole,
        )),
    }
}

pub fn permission_pb(p: Permission) -> pb::Permission {
    use Permission::*;
    match p {
        ManageIntegrations => pb::Permission::ManageIntegrations,
        ManageApiKeys => pb::Permission::ManageApiKeys,
        ConfigureRules => pb::Permission::ConfigureRules,
        ConfigureWebhooks => pb::Permission::ConfigureWebhooks,
        ManageUsers => pb::Permission::ManageUsers,
        ViewAllReports => pb::Permission::ViewAllReports,
        ModifySettings => pb::Permission::ModifySettings,
        ViewDashboard => pb::Permission::ViewDashboard,
        ViewReports => pb::Permission::ViewReports,
        ReadIntegrations => pb::Permission::ReadIntegrations,
    }
}

pub fn permission_from_pb(value: i32) -> Result<Permission, MembershipError> {
    use Permission::*;
    Ok(match pb::Permission::try_from(value) {
        Ok(pb::Permission::ManageIntegrations) => ManageIntegrations,
        Ok(pb::Permission::ManageApiKeys) => ManageApiKeys,
        Ok(pb::Permission::ConfigureRules) => ConfigureRules,
        Ok(pb::Permission::ConfigureWebhooks) => ConfigureWebhooks,
        Ok(pb::Permission::ManageUsers) => ManageUsers,
        Ok(pb::Permission::ViewAllReports) => ViewAllReports,
        Ok(pb::Permission::ModifySettings) => ModifySettings,
        Ok(pb::Permission::ViewDashboard) => ViewDashboard,
        Ok(pb::Permission::ViewReports) => ViewReports,
        Ok(pb::Permission::ReadIntegrations) => ReadIntegrations,
        _ => {
            return Err(MembershipError::InvalidArgument(
                "permission is not in the catalog".into(),
            ));
        }
    })
}

pub fn workspace_pb(w: WorkspaceView) -> pb::Workspace {
    pb::Workspace {
        id: w.id.to_string(),
        name: w.name,
        owner_account_id: w.owner_account_id.to_string(),
        settings: Some(pb::WorkspaceSettings {
            require_mfa: w.require_mfa,
            invitation_lifetime: Some(prost_types::Duration {
                seconds: i64::try_from(w.invitation_lifetime.as_secs()).unwrap_or(i64::MAX),
                nanos: 0,
            }),
        }),
        create_time: Some(timestamp(w.created_at)),
        caller_role: w.caller_role.map(role_pb).unwrap_or(pb::Role::Unspecified) as i32,
    }
}

pub fn member_pb(m: MemberView) -> pb::Member {
    pb::Member {
        workspace_id: m.workspace_id.to_string(),
        account_id: m.account_id.to_string(),
        email: m.email,
        display_name: m.display_name,
        role: role_pb(m.role) as i32,
        status: match m.status {
            MemberStatus::Active => pb::MemberStatus::Active,
            MemberStatus::Disabled => pb::MemberStatus::Disabled,
        } as i32,
        join_time: Some(timestamp(m.joined_at)),
        mfa_enrolled: m.mfa_enrolled,
        is_owner: m.is_owner,
    }
}

pub fn invitation_pb(i: InvitationView) -> pb::Invitation {
    pb::Invitation {
        id: i.id.to_string(),
        workspace_id: i.workspace_id.to_string(),
        email: i.email,
        role: role_pb(i.role) as i32,
        status: match i.status {
            InvitationStatus::Pending => pb::InvitationStatus::Pending,
            InvitationStatus::Accepted => pb::InvitationStatus::Accepted,
            InvitationStatus::Cancelled => pb::InvitationStatus::Cancelled,
            InvitationStatus::Expired => pb::InvitationStatus::Expired,
        } as i32,
        send_time: Some(timestamp(i.sent_at)),
        expire_time: Some(timestamp(i.expires_at)),
        invited_by_account_id: i.invited_by.to_string(),
        invited_by_email: i.invited_by_email,
        create_time: Some(timestamp(i.created_at)),
    }
}

pub fn audit_pb(e: AuditView) -> pb::AuditEvent {
    pb::AuditEvent {
        id: e.id.to_string(),
        workspace_id: e.workspace_id.to_string(),
        actor: e.actor,
        actor_email: e.actor_email,
        action: e.action,
        target: e.target,
        before: e.before,
        after: e.after,
        create_time: Some(timestamp(e.created_at)),
        client_ip: e.client_ip,
        trace_id: e.trace_id,
        hash: e.hash,
    }
}
