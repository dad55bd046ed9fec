//! The identity service's one error type and its mapping to gRPC.
//!
//! Every variant has a stable `reason` (sent in `google.rpc.ErrorInfo`) and a
//! gRPC code. Internal details are logged, never returned.

use std::time::Duration;

use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::DomainError;

/// The `ErrorInfo.domain` of every error this service returns.
pub const ERROR_DOMAIN: &str = "identity.recapp.dev";

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{0}")]
    Invalid(#[from] DomainError),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("The page token is not valid for this request.")]
    InvalidPageToken,
    #[error("An account with this email address already exists.")]
    EmailTaken,
    #[error("The email address or password is incorrect.")]
    InvalidCredentials,
    #[error("Too many attempts. Try again later.")]
    RateLimited { retry_after: Duration },
    #[error("The sign-in challenge is not valid.")]
    ChallengeInvalid,
    #[error("The sign-in challenge has expired. Sign in again.")]
    ChallengeExpired,
    #[error("The authenticator code is not valid.")]
    TotpInvalid { during_login: bool },
    #[error("The recovery code is not valid.")]
    RecoveryCodeInvalid { during_login: bool },
    #[error("An authenticator app is already set up for this account.")]
    TotpAlreadyEnrolled,
    #[error("No authenticator app is set up for this account.")]
    TotpNotEnrolled,
    #[error("Start setting up the authenticator app again: there is no pending set-up.")]
    TotpEnrollmentNotStarted,
    #[error("The session is not valid. Sign in again.")]
    SessionInvalid,
    #[error("The session has expired. Sign in again.")]
    SessionExpired,
    #[error("The session was revoked. Sign in again.")]
    SessionRevoked,
    #[error("This sign-in was ended because an old refresh token was reused. Sign in again.")]
    RefreshTokenReused,
    #[error("The session was not found.")]
    SessionNotFound,
    #[error("The account was not found.")]
    AccountNotFound,
    #[error("The access token is not valid.")]
    TokenInvalid,
    #[error("The access token has expired.")]
    TokenExpired,
    #[error("A valid access token is required.")]
    TokenMissing,
    #[error("This call needs a service credential.")]
    ServiceUnauthenticated,
    #[error("The service is temporarily unavailable.")]
    Unavailable(#[source] anyhow::Error),
    #[error("An unexpected error occurred.")]
    Unexpected(#[from] anyhow::Error),
}

impl IdentityError {
    /// The stable reason clients branch on.
    pub fn reason(&self) -> &'static str {
        use IdentityError::*;
        match self {
            Invalid(e) => match e {
                DomainError::InvalidEmail(_) => "INVALID_EMAIL",
                DomainError::PasswordTooShort { .. } => "PASSWORD_TOO_SHORT",
                DomainError::PasswordTooLong { .. } => "PASSWORD_TOO_LONG",
                DomainError::WeakPassword(_) => "WEAK_PASSWORD",
                DomainError::InvalidTotpCode => "TOTP_INVALID",
                DomainError::InvalidRecoveryCode => "RECOVERY_CODE_INVALID",
                DomainError::FieldTooLong { .. } => "FIELD_TOO_LONG",
                DomainError::FieldEmpty { .. } => "FIELD_REQUIRED",
                DomainError::InvalidDisplayName(_) => "INVALID_DISPLAY_NAME",
                DomainError::InvalidTotpIssuer(_) => "INVALID_ARGUMENT",
            },
            InvalidArgument(_) => "INVALID_ARGUMENT",
            InvalidPageToken => "INVALID_PAGE_TOKEN",
            EmailTaken => "EMAIL_TAKEN",
            InvalidCredentials => "INVALID_CREDENTIALS",
            RateLimited { .. } => "RATE_LIMITED",
            ChallengeInvalid => "CHALLENGE_INVALID",
            ChallengeExpired => "CHALLENGE_EXPIRED",
            TotpInvalid { .. } => "TOTP_INVALID",
            RecoveryCodeInvalid { .. } => "RECOVERY_CODE_INVALID",
            TotpAlreadyEnrolled => "TOTP_ALREADY_ENROLLED",
            TotpNotEnrolled => "TOTP_NOT_ENROLLED",
            TotpEnrollmentNotStarted => "TOTP_ENROLLMENT_NOT_STARTED",
            SessionInvalid => "SESSION_INVALID",
            SessionExpired => "SESSION_EXPIRED",
            SessionRevoked => "SESSION_REVOKED",
            RefreshTokenReused => "REFRESH_TOKEN_REUSED",
            SessionNotFound => "SESSION_NOT_FOUND",
            AccountNotFound => "ACCOUNT_NOT_FOUND",
            TokenInvalid => "TOKEN_INVALID",
            TokenExpired => "TOKEN_EXPIRED",
            TokenMissing => "TOKEN_MISSING",
            ServiceUnauthenticated => "SERVICE_UNAUTHENTICATED",
            Unavailable(_) => "UNAVAILABLE",
            Unexpected(_) => "INTERNAL",
        }
    }

    /// The gRPC code (AIP-193 / code.proto).
    pub fn code(&self) -> Code {
        use IdentityError::*;
        match self {
            Invalid(DomainError::InvalidTotpCode | DomainError::InvalidRecoveryCode) => {
                Code::InvalidArgument
            }
            Invalid(_) | InvalidArgument(_) | InvalidPageToken => Code::InvalidArgument,
            TotpInvalid { during_login } | RecoveryCodeInvalid { during_login } => {
                if *during_login {
                    Code::Unauthenticated
                } else {
                    Code::InvalidArgument
                }
            }
            EmailTaken => Code::AlreadyExists,
            InvalidCredentials
            | ChallengeInvalid
            | ChallengeExpired
            | SessionInvalid
            | SessionExpired
            | SessionRevoked
            | RefreshTokenReused
            | TokenInvalid
            | TokenExpired
            | TokenMissing
            | ServiceUnauthenticated => Code::Unauthenticated,
            RateLimited { .. } => Code::ResourceExhausted,
            TotpAlreadyEnrolled | TotpNotEnrolled | TotpEnrollmentNotStarted => {
                Code::FailedPrecondition
            }
            SessionNotFound | AccountNotFound => Code::NotFound,
            Unavailable(_) => Code::Unavailable,
            Unexpected(_) => Code::Internal,
        }
    }
}

impl From<IdentityError> for tonic::Status {
    fn from(error: IdentityError) -> Self {
        match &error {
            IdentityError::Unexpected(e) => {
                tracing::error!(error = ?e, "Request failed unexpectedly.");
            }
            IdentityError::Unavailable(e) => {
                tracing::warn!(error = ?e, "Request failed: a dependency is unavailable.");
            }
            _ => {}
        }
        let mut details = ErrorDetails::with_error_info(
            error.reason(),
            ERROR_DOMAIN,
            std::collections::HashMap::new(),
        );
        if let IdentityError::RateLimited { retry_after } = &error {
            details.set_retry_info(Some(*retry_after));
        }
        tonic::Status::with_error_details(error.code(), error.to_string(), details)
    }
}

impl From<recapp_service_kit::email::InvalidEmail> for IdentityError {
    fn from(error: recapp_service_kit::email::InvalidEmail) -> Self {
        IdentityError::Invalid(error.into())
    }
}

impl From<recapp_service_kit::PageTokenError> for IdentityError {
    fn from(error: recapp_service_kit::PageTokenError) -> Self {
        match error {
            recapp_service_kit::PageTokenError::NegativePageSize => {
                IdentityError::InvalidArgument(error.to_string())
            }
            recapp_service_kit::PageTokenError::Invalid => IdentityError::InvalidPageToken,
        }
    }
}

impl From<sea_orm::DbErr> for IdentityError {
    fn from(error: sea_orm::DbErr) -> Self {
        use sea_orm::DbErr;
        match error {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => {
                IdentityError::Unavailable(anyhow::Error::new(error))
            }
            other => IdentityError::Unexpected(anyhow::Error::new(other)),
        }
    }
}

pub type Result<T, E = IdentityError> = std::result::Result<T, E>;
