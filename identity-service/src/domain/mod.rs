//! Domain newtypes and rules: values validate when built and carry no I/O,
//! clock or transport. Functions that depend on time take it as an argument.

mod account;
mod error;
mod password;
mod recovery;
mod secret_token;
mod totp;

pub use account::{DisplayName, MAX_DISPLAY_NAME_CHARS};
pub use error::DomainError;
pub use password::{MAX_PASSWORD_BYTES, Password, PasswordPolicy};
pub use recapp_service_kit::email::{EmailAddress, InvalidEmail};
pub use recovery::{RECOVERY_CODE_COUNT, RecoveryCode};
pub use secret_token::OpaqueToken;
pub use totp::{
    TOTP_DIGITS, TOTP_SECRET_BYTES, TOTP_STEP_SECS, TotpAlgorithm, TotpCode, TotpSecret,
    TotpVerifier, otpauth_uri, qr_code_svg,
};
