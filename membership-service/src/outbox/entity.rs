//! The `outbox` table: emails waiting to be delivered, and what became of
//! them. Times are UTC milliseconds.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The workspace the email is about, if any.
    pub workspace_id: Option<Uuid>,
    /// What the email is, for logs and metrics: `invitation`, ...
    pub kind: String,
    /// One address (the `To` header and the envelope recipient).
    pub recipient: String,
    #[sea_orm(column_type = "Text")]
    pub subject: String,
    #[sea_orm(column_type = "Text")]
    pub body_text: String,
    #[sea_orm(column_type = "Text")]
    pub body_html: String,
    pub status: Status,
    /// Failed delivery attempts so far.
    pub attempts: i32,
    /// Not delivered before this time (the retry backoff).
    pub next_attempt_at: i64,
    /// A relay claimed the row until this time (its lease); another relay
    /// may claim it only after.
    pub locked_until: Option<i64>,
    /// A short reason for the last failure, never the message itself.
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub sent_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Where an email is in its life: `pending` until the SMTP server accepts it
/// (`sent`) or it cannot be delivered (`failed`, kept for inspection).
#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum Status {
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "sent")]
    Sent,
    #[sea_orm(string_value = "failed")]
    Failed,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
