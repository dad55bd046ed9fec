//! Database migrations for recapp, one [`MigratorTrait`] per service.
//!
//! Every time column (`*_at`) holds UTC milliseconds since the Unix epoch as
//! a BIGINT: SQLite and PostgreSQL then compare and sort them identically,
//! which matters for expiry and retry queries.
//!
//! Each service keeps its schema in its own database and records applied
//! migrations in its own table (`identity_migrations`, ...), so two services
//! pointed at one database by mistake still do not mix their histories.
//! Migrations run as a separate step (`identity-service migrate`, a
//! Kubernetes Job), never raced by replicas at start-up. A migration that has
//! shipped is never edited: add a new one.

pub mod identity;
pub mod membership;

pub use sea_orm_migration::MigratorTrait;
