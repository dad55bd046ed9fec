//! The `audit_events` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub seq: i64,
    pub actor: String,
    pub actor_email: String,
    pub action: String,
    pub target: String,
    pub before: String,
    pub after: String,
    pub client_ip: String,
    pub trace_id: String,
    pub prev_hash: String,
    pub hash: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
