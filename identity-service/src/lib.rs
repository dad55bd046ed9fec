//! recapp identity service: accounts, argon2id passwords, TOTP with recovery
//! codes, sessions and Ed25519-signed access tokens, over gRPC.

/// Injectable clocks (from the service kit).
pub use recapp_service_kit::clock;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod service;
pub mod startup;
pub mod store;

pub use startup::Application;
