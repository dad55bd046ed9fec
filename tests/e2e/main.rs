//! End-to-end tests: one binary, a module per area.

mod deploy;
mod gateway;
mod identity;
mod membership;
