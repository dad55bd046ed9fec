//! recapp gateway: the thin HTTP edge. It serves the browser UI and turns its
//! JSON requests into calls to the identity and membership services; every
//! decision is theirs. It keeps nothing: the session is a sealed cookie.

pub mod config;
pub mod context;
pub mod error;
pub mod routes;
pub mod session;
pub mod startup;

pub use startup::{Application, StopHandle};
