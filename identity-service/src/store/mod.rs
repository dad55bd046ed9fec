//! sea-orm entities and the queries that need care (compare-and-swap
//! updates, keyset pages). Times are stored as UTC milliseconds (BIGINT).

pub mod account;
pub mod mfa_challenge;
pub mod recovery_code;
pub mod refresh_token;
pub mod security_event;
pub mod session;
pub mod signing_key;
pub mod throttle_counter;
pub mod totp_credential;

pub use recapp_service_kit::db::{connect, is_unique_violation, ms, ping, time};
