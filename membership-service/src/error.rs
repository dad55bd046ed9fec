//! The membership service's one error type and its mapping to gRPC.

use std::time::Duration;

use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::DomainError;

/// The `ErrorInfo.domain` of every error this service returns.
pub const ERROR_DOMAIN: &str = "membership.recapp.dev";

#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error("{0}")]
    Invalid(#[from] DomainError),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("The page token is not valid for this request.")]
    InvalidPageToken,
    #[error("A valid access token is required.")]
    TokenMissing,
    #[error("The access token is not valid.")]
    TokenInvalid,
    #[error("The access token has expired.")]
    TokenExpired,
    #[error("This call is for people, not services.")]
    PeopleOnly,
    #[error("Only services may call this with an account id.")]
    ServicesOnly,
    #[error("The workspace was not found.")]
    WorkspaceNotFound,
    #[error("You do not have permission to do this in this workspace.")]
    PermissionDenied,
    #[error("Your access to this workspace is disabled.")]
    MemberDisabled,
    #[error("This workspace requires an authenticator app: set one up to continue.")]
    MfaEnrollmentRequired,
    #[error("This workspace requires signing in with your authenticator app.")]
    MfaRequired,
    #[error("Set up your own authenticator app before requiring MFA for everyone.")]
    MfaEnrollmentRequiredToEnable,
    #[error("The member was not found.")]
    MemberNotFound,
    #[error("You cannot change your own role.")]
    SelfRoleChange,
    #[error("A workspace must keep at least one active Tenant Admin.")]
    LastAdmin,
    #[error("The workspace owner is always an active Tenant Admin; transfer ownership first.")]
    OwnerProtected,
    #[error("Only the workspace owner can transfer ownership.")]
    NotOwner,
    #[error("Ownership can move only to another active Tenant Admin.")]
    TargetNotActiveAdmin,
    #[error("This person is already a member of the workspace.")]
    AlreadyMember,
    #[error("An invitation to this address is already pending.")]
    InvitationPending,
    #[error("This person's access is disabled: re-enable them instead of inviting them.")]
    MemberDisabledReenable,
    #[error("The invitation was not found.")]
    InvitationNotFound,
    #[error("The invitation is no longer pending.")]
    InvitationNotPending,
    #[error("The invitation was just sent; wait before resending it.")]
    ResendTooSoon { retry_after: Duration },
    #[error("Too many invitation emails from this workspace this hour.")]
    ResendLimit { retry_after: Duration },
    #[error("This invitation link is not valid.")]
    InvitationInvalid,
    #[error("This invitation has expired. Ask for a new one.")]
    InvitationExpired,
    #[error("This invitation was cancelled.")]
    InvitationCancelled,
    #[error("This invitation has already been used.")]
    InvitationUsed,
    #[error("This invitation is for another email address. Sign in with the invited address.")]
    InvitationEmailMismatch,
    #[error("The request id was already used for another call.")]
    RequestIdReused,
    #[error("A call with this request id is still running; retry shortly.")]
    RequestInProgress,
    #[error("The service is temporarily unavailable.")]
    Unavailable(#[source] anyhow::Error),
    #[error("An unexpected error occurred.")]
    Unexpected(#[from] anyhow::Error),
}

impl MembershipError {
    pub fn reason(&self) -> &'static str {
        use MembershipError::*;
        match self {
            Invalid(DomainError::InvalidEmail(_)) => "INVALID_EMAIL",
            Invalid(DomainError::InvalidWorkspaceName { .. }) => "INVALID_WORKSPACE_NAME",
            Invalid(DomainError::InvalidInvitationLifetime) => "INVALID_INVITATION_LIFETIME",
            Invalid(DomainError::InvalidRole) => "INVALID_ROLE",
            InvalidArgument(_) => "INVALID_ARGUMENT",
            InvalidPageToken => "INVALID_PAGE_TOKEN",
            TokenMissing => "TOKEN_MISSING",
            TokenInvalid => "TOKEN_INVALID",
            TokenExpired => "TOKEN_EXPIRED",
            PeopleOnly => "PEOPLE_ONLY",
            ServicesOnly => "SERVICES_ONLY",
            WorkspaceNotFound => "WORKSPACE_NOT_FOUND",
            PermissionDenied => "PERMISSION_DENIED",
            MemberDisabled => "MEMBER_DISABLED",
            MfaEnrollmentRequired | MfaEnrollmentRequiredToEnable => "MFA_ENROLLMENT_REQUIRED",
            MfaRequired => "MFA_REQUIRED",
            MemberNotFound => "MEMBER_NOT_FOUND",
            SelfRoleChange => "SELF_ROLE_CHANGE",
            LastAdmin => "LAST_ADMIN",
            OwnerProtected => "OWNER_PROTECTED",
            NotOwner => "NOT_OWNER",
            TargetNotActiveAdmin => "TARGET_NOT_ACTIVE_ADMIN",
            AlreadyMember => "ALREADY_MEMBER",
            InvitationPending => "INVITATION_PENDING",
            MemberDisabledReenable => "MEMBER_DISABLED_REENABLE",
            InvitationNotFound => "INVITATION_NOT_FOUND",
            InvitationNotPending => "INVITATION_NOT_PENDING",
            ResendTooSoon { .. } => "RESEND_TOO_SOON",
            ResendLimit { .. } => "RESEND_LIMIT",
            InvitationInvalid => "INVITATION_INVALID",
            InvitationExpired => "INVITATION_EXPIRED",
            InvitationCancelled => "INVITATION_CANCELLED",
            InvitationUsed => "INVITATION_USED",
            InvitationEmailMismatch => "INVITATION_EMAIL_MISMATCH",
            RequestIdReused => "REQUEST_ID_REUSED",
            RequestInProgress => "REQUEST_IN_PROGRESS",
            Unavailable(_) => "UNAVAILABLE",
            Unexpected(_) => "INTERNAL",
        }
    }

    pub fn code(&self) -> Code {
        use MembershipError::*;
        match self {
            Invalid(_) | InvalidArgument(_) | InvalidPageToken => Code::InvalidArgument,
            TokenMissing | TokenInvalid | TokenExpired => Code::Unauthenticated,
            PeopleOnly
            | ServicesOnly
            | PermissionDenied
            | MemberDisabled
            | NotOwner
            | InvitationEmailMismatch => Code::PermissionDenied,
            WorkspaceNotFound | MemberNotFound | InvitationNotFound | InvitationInvalid => {
                Code::NotFound
            }
            MfaEnrollmentRequired
            | MfaRequired
            | MfaEnrollmentRequiredToEnable
            | SelfRoleChange
            | LastAdmin
            | OwnerProtected
            | TargetNotActiveAdmin
            | MemberDisabledReenable
            | InvitationNotPending
            | InvitationExpired
            | InvitationCancelled
            | InvitationUsed => Code::FailedPrecondition,
            AlreadyMember | InvitationPending | RequestIdReused => Code::AlreadyExists,
            RequestInProgress => Code::Aborted,
            ResendTooSoon { .. } | ResendLimit { .. } => Code::ResourceExhausted,
            Unavailable(_) => Code::Unavailable,
            Unexpected(_) => Code::Internal,
        }
    }
}

impl From<MembershipError> for tonic::Status {
    fn from(error: MembershipError) -> Self {
        match &error {
            MembershipError::Unexpected(e) => {
                tracing::error!(error = ?e, "Request failed unexpectedly.");
            }
            MembershipError::Unavailable(e) => {
                tracing::warn!(error = ?e, "Request failed: a dependency is unavailable.");
            }
            _ => {}
        }
        let mut details = ErrorDetails::with_error_info(
            error.reason(),
            ERROR_DOMAIN,
            std::collections::HashMap::new(),
        );
        match &error {
            MembershipError::ResendTooSoon { retry_after }
            | MembershipError::ResendLimit { retry_after } => {
                details.set_retry_info(Some(*retry_after));
            }
            _ => {}
        }
        tonic::Status::with_error_details(error.code(), error.to_string(), details)
    }
}

impl From<sea_orm::DbErr> for MembershipError {
    fn from(error: sea_orm::DbErr) -> Self {
        use sea_orm::DbErr;
        match error {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => {
                MembershipError::Unavailable(anyhow::Error::new(error))
            }
            other => MembershipError::Unexpected(anyhow::Error::new(other)),
        }
    }
}

impl From<recapp_service_kit::PageTokenError> for MembershipError {
    fn from(error: recapp_service_kit::PageTokenError) -> Self {
        match error {
            recapp_service_kit::PageTokenError::NegativePageSize => {
                MembershipError::InvalidArgument(error.to_string())
            }
            recapp_service_kit::PageTokenError::Invalid => MembershipError::InvalidPageToken,
        }
    }
}

impl From<InvalidEmailAlias> for MembershipError {
    fn from(error: InvalidEmailAlias) -> Self {
        MembershipError::Invalid(DomainError::InvalidEmail(error))
    }
}

type InvalidEmailAlias = recapp_service_kit::email::InvalidEmail;

pub type Result<T, E = MembershipError> = std::result::Result<T, E>;
