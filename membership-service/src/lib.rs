//! recapp membership service: workspaces, the two roles and their
//! permissions, invitations by email, member management with the last-admin
//! rule, "Require MFA for all users" and a chained audit log, over gRPC.

pub mod auth;
pub mod config;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod identity;
pub mod outbox;
pub mod service;
pub mod startup;
pub mod store;

pub use startup::Application;
