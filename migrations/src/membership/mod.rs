//! The membership service's schema.

use sea_orm_migration::prelude::*;

mod m20261203_000001_create_membership_tables;
mod m20261203_000002_add_idempotency_pending;

/// Applies the membership service's migrations.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261203_000001_create_membership_tables::Migration),
            Box::new(m20261203_000002_add_idempotency_pending::Migration),
        ]
    }

    fn migration_table_name() -> DynIden {
        "membership_migrations".into_iden()
    }
}
