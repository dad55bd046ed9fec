//! Roles, permissions and the values of a workspace. No I/O here.

use std::time::Duration;

pub use recapp_service_kit::email::{EmailAddress, InvalidEmail};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("{0}")]
    InvalidEmail(#[from] InvalidEmail),
    #[error("The workspace name must be 1 to {max} characters without control characters.")]
    InvalidWorkspaceName { max: usize },
    #[error("The invitation lifetime must be between 1 hour and 30 days.")]
    InvalidInvitationLifetime,
    #[error("The role must be Tenant Admin or User.")]
    InvalidRole,
}

/// The two roles of a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    TenantAdmin,
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::TenantAdmin => "tenant_admin",
            Role::User => "user",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "tenant_admin" => Some(Role::TenantAdmin),
            "user" => Some(Role::User),
            _ => None,
        }
    }

    /// How the role reads in an email or the UI.
    pub fn label(self) -> &'static str {
        match self {
            Role::TenantAdmin => "Admin",
            Role::User => "User",
        }
    }

    pub fn permissions(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            Role::TenantAdmin => &[
                ManageIntegrations,
                ManageApiKeys,
                ConfigureRules,
                ConfigureWebhooks,
                ManageUsers,
                ViewAllReports,
                ModifySettings,
                ViewDashboard,
                ViewReports,
                ReadIntegrations,
            ],
            Role::User => &[ViewDashboard, ViewReports, ReadIntegrations],
        }
    }

    pub fn allows(self, permission: Permission) -> bool {
        self.permissions().contains(&permission)
    }
}

/// The permission catalog (see the product page: Tenant Admin manages
/// integrations and API keys, rules and webhooks, users, all reports and
/// settings; User views the dashboard and reports and reads integrations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    ManageIntegrations,
    ManageApiKeys,
    ConfigureRules,
    ConfigureWebhooks,
    ManageUsers,
    ViewAllReports,
    ModifySettings,
    ViewDashboard,
    ViewReports,
    ReadIntegrations,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberStatus {
    Active,
    Disabled,
}

impl MemberStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Active => "active",
            MemberStatus::Disabled => "disabled",
        }
    }

    pub fn parse(text: &str) -> Option<MemberStatus> {
        match text {
            "active" => Some(MemberStatus::Active),
            "disabled" => Some(MemberStatus::Disabled),
            _ => None,
        }
    }
}

/// How an invitation stands. `Expired` is never stored: a pending
/// invitation past its expiry reads as expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationStatus {
    Pending,
    Accepted,
    Cancelled,
    Expired,
}

impl InvitationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InvitationStatus::Pending => "pending",
            InvitationStatus::Accepted => "accepted",
            InvitationStatus::Cancelled => "cancelled",
            InvitationStatus::Expired => "expired",
        }
    }

    pub fn parse(text: &str) -> Option<InvitationStatus> {
        match text {
            "pending" => Some(InvitationStatus::Pending),
            "accepted" => Some(InvitationStatus::Accepted),
            "cancelled" => Some(InvitationStatus::Cancelled),
            "expired" => Some(InvitationStatus::Expired),
            _ => None,
        }
    }

    /// The status as of `now_ms`, given the stored one and the expiry.
    pub fn effective(stored: &str, expires_at_ms: i64, now_ms: i64) -> InvitationStatus {
        match InvitationStatus::parse(stored) {
            Some(InvitationStatus::Pending) if now_ms >= expires_at_ms => InvitationStatus::Expired,
            Some(status) => status,
            None => InvitationStatus::Expired,
        }
    }
}

/// A workspace's display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceName(String);

pub const MAX_WORKSPACE_NAME_CHARS: usize = 100;

impl WorkspaceName {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let name = raw.trim();
        let chars = name.chars().count();
        if chars == 0 || chars > MAX_WORKSPACE_NAME_CHARS || name.chars().any(char::is_control) {
            return Err(DomainError::InvalidWorkspaceName {
                max: MAX_WORKSPACE_NAME_CHARS,
            });
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

pub const DEFAULT_INVITATION_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
pub const MIN_INVITATION_LIFETIME: Duration = Duration::from_secs(3600);
pub const MAX_INVITATION_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// Checks an invitation lifetime against its bounds (1 hour to 30 days).
pub fn invitation_lifetime(requested: Duration) -> Result<Duration, DomainError> {
    if requested < MIN_INVITATION_LIFETIME || requested > MAX_INVITATION_LIFETIME {
        return Err(DomainError::InvalidInvitationLifetime);
    }
    Ok(requested)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_may_view_but_not_manage() {
        assert!(Role::User.allows(Permission::ViewDashboard));
        assert!(Role::User.allows(Permission::ReadIntegrations));
        assert!(!Role::User.allows(Permission::ManageUsers));
        assert!(!Role::User.allows(Permission::ModifySettings));
        assert!(!Role::User.allows(Permission::ManageIntegrations));
    }

    #[test]
    fn a_tenant_admin_has_every_permission() {
        for p in Role::User.permissions() {
            assert!(Role::TenantAdmin.allows(*p));
        }
        assert_eq!(Role::TenantAdmin.permissions().len(), 10);
    }

    #[test]
    fn a_pending_invitation_past_its_expiry_reads_as_expired() {
        assert_eq!(
            InvitationStatus::effective("pending", 100, 99),
            InvitationStatus::Pending
        );
        assert_eq!(
            InvitationStatus::effective("pending", 100, 100),
            InvitationStatus::Expired
        );
        assert_eq!(
            InvitationStatus::effective("accepted", 100, 200),
            InvitationStatus::Accepted
        );
    }

    #[test]
    fn workspace_names_are_trimmed_and_bounded() {
        assert_eq!(WorkspaceName::parse("  Acme  ").unwrap().as_str(), "Acme");
        assert!(WorkspaceName::parse("   ").is_err());
        assert!(WorkspaceName::parse(&"x".repeat(101)).is_err());
        assert!(WorkspaceName::parse("a\u{7}b").is_err());
    }

    #[test]
    fn invitation_lifetimes_are_bounded_to_an_hour_and_thirty_days() {
        assert!(invitation_lifetime(Duration::from_secs(3599)).is_err());
        assert!(invitation_lifetime(Duration::from_secs(3600)).is_ok());
        assert!(invitation_lifetime(MAX_INVITATION_LIFETIME).is_ok());
        assert!(invitation_lifetime(MAX_INVITATION_LIFETIME + Duration::from_secs(1)).is_err());
    }
}
