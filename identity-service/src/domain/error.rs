//! The one error type of the domain layer: a rule a value broke.
//!
//! Messages are written for end users. They never echo a rejected secret
//! (password, code, token).

/// A value was refused by a domain rule.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum DomainError {
    /// The email address is malformed; the payload says why.
    #[error("invalid email address: {0}")]
    InvalidEmail(&'static str),
    #[error("the password must be at least {min} characters long")]
    PasswordTooShort { min: usize },
    #[error("the password must be at most {max} characters long")]
    PasswordTooLong { max: usize },
    /// Carries zxcvbn's feedback, or a generic sentence when it has none.
    #[error("this password is too easy to guess. {0}")]
    WeakPassword(String),
    #[error("the authenticator code is invalid")]
    InvalidTotpCode,
    #[error("the recovery code is invalid")]
    InvalidRecoveryCode,
    /// The issuer shown in authenticator apps is unusable; the payload says why.
    #[error("invalid authenticator issuer: {0}")]
    InvalidTotpIssuer(&'static str),
    #[error("{field} must be at most {max} characters long")]
    FieldTooLong { field: &'static str, max: usize },
    #[error("{field} must not be empty")]
    FieldEmpty { field: &'static str },
    #[error("invalid display name: {0}")]
    InvalidDisplayName(&'static str),
}

impl From<recapp_service_kit::email::InvalidEmail> for DomainError {
    fn from(error: recapp_service_kit::email::InvalidEmail) -> Self {
        DomainError::InvalidEmail(error.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_as_sentences_for_users() {
        assert_eq!(
            DomainError::PasswordTooShort { min: 8 }.to_string(),
            "the password must be at least 8 characters long"
        );
        assert_eq!(
            DomainError::FieldTooLong {
                field: "display name",
                max: 100
            }
            .to_string(),
            "display name must be at most 100 characters long"
        );
        assert_eq!(
            DomainError::InvalidEmail("it is empty").to_string(),
            "invalid email address: it is empty"
        );
    }
}
