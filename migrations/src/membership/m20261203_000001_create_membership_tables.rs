use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Workspaces::Table)
                .col(uuid(Workspaces::Id).primary_key())
                .col(string_len(Workspaces::Name, 400))
                .col(uuid(Workspaces::OwnerAccountId))
                .col(boolean(Workspaces::RequireMfa))
                .col(big_integer(Workspaces::InvitationLifetimeSecs))
                .col(big_integer(Workspaces::AuditSeq))
                .col(string_len(Workspaces::AuditHead, 64))
                .col(big_integer(Workspaces::CreatedAt))
                .col(big_integer(Workspaces::UpdatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Memberships::Table)
                .col(uuid(Memberships::WorkspaceId))
                .col(uuid(Memberships::AccountId))
                .col(string_len(Memberships::Email, 254))
                .col(string_len(Memberships::Role, 32))
                .col(string_len(Memberships::Status, 32))
                .col(big_integer(Memberships::JoinedAt))
                .col(big_integer(Memberships::CreatedAt))
                .col(big_integer(Memberships::UpdatedAt))
                .primary_key(
                    Index::create()
                        .col(Memberships::WorkspaceId)
                        .col(Memberships::AccountId),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("memberships_workspace_id_fkey")
                        .from(Memberships::Table, Memberships::WorkspaceId)
                        .to(Workspaces::Table, Workspaces::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("memberships_account_id_idx")
                .table(Memberships::Table)
                .col(Memberships::AccountId)
                .col(Memberships::WorkspaceId)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("memberships_workspace_status_idx")
                .table(Memberships::Table)
                .col(Memberships::WorkspaceId)
                .col(Memberships::Status)
                .col(Memberships::AccountId)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("memberships_workspace_id_email_key")
                .table(Memberships::Table)
                .col(Memberships::WorkspaceId)
                .col(Memberships::Email)
                .unique()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Invitations::Table)
                .col(uuid(Invitations::Id).primary_key())
                .col(uuid(Invitations::WorkspaceId))
                .col(string_len(Invitations::Email, 254))
                .col(string_len(Invitations::Role, 32))
                .col(string_len(Invitations::Status, 32))
                .col(blob(Invitations::TokenHash))
                .col(big_integer(Invitations::ExpiresAt))
                .col(big_integer(Invitations::SentAt))
                .col(integer(Invitations::SendCount))
                .col(uuid(Invitations::InvitedBy))
                .col(string_len(Invitations::InvitedByEmail, 254))
                .col(uuid_null(Invitations::AcceptedBy))
                .col(big_integer_null(Invitations::EndedAt))
                .col(big_integer(Invitations::CreatedAt))
                .col(big_integer(Invitations::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("invitations_workspace_id_fkey")
                        .from(Invitations::Table, Invitations::WorkspaceId)
                        .to(Workspaces::Table, Workspaces::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("invitations_token_hash_key")
                .table(Invitations::Table)
                .col(Invitations::TokenHash)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("invitations_workspace_status_idx")
                .table(Invitations::Table)
                .col(Invitations::WorkspaceId)
                .col(Invitations::Status)
                .col(Invitations::Id)
                .to_owned(),
        )
        .await?;
        // One pending invitation per address and workspace. Partial unique
        // indexes read the same on PostgreSQL and SQLite.
        m.get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX invitations_pending_email_key \
                 ON invitations (workspace_id, email) WHERE status = 'pending'",
            )
            .await?;

        m.create_table(
            Table::create()
                .table(AuditEvents::Table)
                .col(uuid(AuditEvents::Id).primary_key())
                .col(uuid(AuditEvents::WorkspaceId))
                .col(big_integer(AuditEvents::Seq))
                .col(string_len(AuditEvents::Actor, 200))
                .col(string_len(AuditEvents::ActorEmail, 254))
                .col(string_len(AuditEvents::Action, 64))
                .col(string_len(AuditEvents::Target, 200))
                .col(text(AuditEvents::Before))
                .col(text(AuditEvents::After))
                .col(string_len(AuditEvents::ClientIp, 64))
                .col(string_len(AuditEvents::TraceId, 32))
                .col(string_len(AuditEvents::PrevHash, 64))
                .col(string_len(AuditEvents::Hash, 64))
                .col(big_integer(AuditEvents::CreatedAt))
                .col(big_integer(AuditEvents::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("audit_events_workspace_id_fkey")
                        .from(AuditEvents::Table, AuditEvents::WorkspaceId)
                        .to(Workspaces::Table, Workspaces::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("audit_events_workspace_id_seq_key")
                .table(AuditEvents::Table)
                .col(AuditEvents::WorkspaceId)
                .col(AuditEvents::Seq)
                .unique()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Outbox::Table)
                .col(uuid(Outbox::Id).primary_key())
                .col(uuid_null(Outbox::WorkspaceId))
                .col(string_len(Outbox::Kind, 64))
                .col(string_len(Outbox::Recipient, 254))
                .col(text(Outbox::Subject))
                .col(text(Outbox::BodyText))
                .col(text(Outbox::BodyHtml))
                .col(string_len(Outbox::Status, 32))
                .col(integer(Outbox::Attempts))
                .col(big_integer(Outbox::NextAttemptAt))
                .col(big_integer_null(Outbox::LockedUntil))
                .col(text_null(Outbox::LastError))
                .col(big_integer_null(Outbox::SentAt))
                .col(big_integer(Outbox::CreatedAt))
                .col(big_integer(Outbox::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("outbox_status_next_attempt_idx")
                .table(Outbox::Table)
                .col(Outbox::Status)
                .col(Outbox::NextAttemptAt)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(IdempotencyKeys::Table)
                .col(string_len(IdempotencyKeys::Principal, 200))
                .col(string_len(IdempotencyKeys::RequestId, 64))
                .col(string_len(IdempotencyKeys::Method, 64))
                .col(blob(IdempotencyKeys::Response))
                .col(big_integer(IdempotencyKeys::CreatedAt))
                .col(big_integer(IdempotencyKeys::UpdatedAt))
                .primary_key(
                    Index::create()
                        .col(IdempotencyKeys::Principal)
                        .col(IdempotencyKeys::RequestId),
                )
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            IdempotencyKeys::Table.into_iden(),
            Outbox::Table.into_iden(),
            AuditEvents::Table.into_iden(),
            Invitations::Table.into_iden(),
            Memberships::Table.into_iden(),
            Workspaces::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Workspaces {
    Table,
    Id,
    Name,
    OwnerAccountId,
    RequireMfa,
    InvitationLifetimeSecs,
    /// The sequence number of the newest audit event.
    AuditSeq,
    /// The hash of the newest audit event (the chain's head).
    AuditHead,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Memberships {
    Table,
    WorkspaceId,
    AccountId,
    Email,
    Role,
    Status,
    JoinedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Invitations {
    Table,
    Id,
    WorkspaceId,
    Email,
    Role,
    Status,
    TokenHash,
    ExpiresAt,
    SentAt,
    SendCount,
    InvitedBy,
    InvitedByEmail,
    AcceptedBy,
    EndedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    WorkspaceId,
    Seq,
    Actor,
    ActorEmail,
    Action,
    Target,
    Before,
    After,
    ClientIp,
    TraceId,
    PrevHash,
    Hash,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    WorkspaceId,
    Kind,
    Recipient,
    Subject,
    BodyText,
    BodyHtml,
    Status,
    Attempts,
    NextAttemptAt,
    LockedUntil,
    LastError,
    SentAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    Principal,
    RequestId,
    Method,
    Response,
    CreatedAt,
    UpdatedAt,
}
