//! The `workspaces` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "workspaces")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    pub owner_account_id: Uuid,
    pub require_mfa: bool,
    pub invitation_lifetime_secs: i64,
    /// Sequence number of the newest audit event.
    pub audit_seq: i64,
    /// Hash of the newest audit event: the head of the chain.
    pub audit_head: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
