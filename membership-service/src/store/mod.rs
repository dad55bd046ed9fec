//! sea-orm entities of the membership service. Times are stored as UTC
//! milliseconds (BIGINT).

pub mod audit_event;
pub mod idempotency_key;
pub mod invitation;
pub mod membership;
pub mod workspace;

pub use recapp_service_kit::db::{connect, is_unique_violation, ms, ping, time};
