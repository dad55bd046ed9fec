//! Building blocks shared by the recapp services, so each exists once:
//! injectable clocks, service-principal credentials, email addresses and
//! signed page tokens.

pub mod clock;
pub mod config;
pub mod credentials;
pub mod db;
pub mod email;
pub mod grpc;
pub mod health;
pub mod page_token;
pub mod shutdown;

pub use clock::{Clock, ManualClock, SystemClock};
pub use credentials::{ServiceCredentials, ServicePrincipal};
pub use page_token::{PageRequest, PageTokenError, PageTokens};
