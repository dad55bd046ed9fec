use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Accounts::Table)
                .col(uuid(Accounts::Id).primary_key())
                .col(string_len(Accounts::Email, 254))
                .col(string_len(Accounts::DisplayName, 400))
                .col(text(Accounts::PasswordHash))
                .col(big_integer(Accounts::CreatedAt))
                .col(big_integer(Accounts::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("accounts_email_key")
                .table(Accounts::Table)
                .col(Accounts::Email)
                .unique()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(TotpCredentials::Table)
                .col(uuid(TotpCredentials::AccountId).primary_key())
                .col(blob(TotpCredentials::SecretCiphertext))
                .col(blob(TotpCredentials::Nonce))
                .col(string_len(TotpCredentials::EncryptionKeyId, 64))
                .col(big_integer_null(TotpCredentials::ConfirmedAt))
                .col(big_integer(TotpCredentials::PendingExpiresAt))
                .col(big_integer_null(TotpCredentials::LastUsedStep))
                .col(big_integer(TotpCredentials::CreatedAt))
                .col(big_integer(TotpCredentials::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("totp_credentials_account_id_fkey")
                        .from(TotpCredentials::Table, TotpCredentials::AccountId)
                        .to(Accounts::Table, Accounts::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(RecoveryCodes::Table)
                .col(uuid(RecoveryCodes::Id).primary_key())
                .col(uuid(RecoveryCodes::AccountId))
                .col(blob(RecoveryCodes::CodeHash))
                .col(big_integer_null(RecoveryCodes::UsedAt))
                .col(big_integer(RecoveryCodes::CreatedAt))
                .col(big_integer(RecoveryCodes::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("recovery_codes_account_id_fkey")
                        .from(RecoveryCodes::Table, RecoveryCodes::AccountId)
                        .to(Accounts::Table, Accounts::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("recovery_codes_account_id_code_hash_key")
                .table(RecoveryCodes::Table)
                .col(RecoveryCodes::AccountId)
                .col(RecoveryCodes::CodeHash)
                .unique()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Sessions::Table)
                .col(uuid(Sessions::Id).primary_key())
                .col(uuid(Sessions::AccountId))
                .col(string_len(Sessions::AuthMethods, 32))
                .col(string_len(Sessions::ClientIp, 64))
                .col(string_len(Sessions::UserAgent, 1024))
                .col(big_integer(Sessions::LastUsedAt))
                .col(big_integer(Sessions::IdleExpiresAt))
                .col(big_integer(Sessions::AbsoluteExpiresAt))
                .col(big_integer_null(Sessions::RevokedAt))
                .col(string_len_null(Sessions::RevokedReason, 64))
                .col(big_integer(Sessions::CreatedAt))
                .col(big_integer(Sessions::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("sessions_account_id_fkey")
                        .from(Sessions::Table, Sessions::AccountId)
                        .to(Accounts::Table, Accounts::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("sessions_account_id_idx")
                .table(Sessions::Table)
                .col(Sessions::AccountId)
                .col(Sessions::Id)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(RefreshTokens::Table)
                .col(blob(RefreshTokens::TokenHash).primary_key())
                .col(uuid(RefreshTokens::SessionId))
                .col(big_integer_null(RefreshTokens::UsedAt))
                .col(big_integer(RefreshTokens::CreatedAt))
                .col(big_integer(RefreshTokens::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("refresh_tokens_session_id_fkey")
                        .from(RefreshTokens::Table, RefreshTokens::SessionId)
                        .to(Sessions::Table, Sessions::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("refresh_tokens_session_id_idx")
                .table(RefreshTokens::Table)
                .col(RefreshTokens::SessionId)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(MfaChallenges::Table)
                .col(uuid(MfaChallenges::Id).primary_key())
                .col(blob(MfaChallenges::TokenHash))
                .col(uuid(MfaChallenges::AccountId))
                .col(integer(MfaChallenges::Attempts))
                .col(big_integer(MfaChallenges::ExpiresAt))
                .col(big_integer_null(MfaChallenges::ConsumedAt))
                .col(string_len(MfaChallenges::ClientIp, 64))
                .col(string_len(MfaChallenges::UserAgent, 1024))
                .col(big_integer(MfaChallenges::CreatedAt))
                .col(big_integer(MfaChallenges::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("mfa_challenges_account_id_fkey")
                        .from(MfaChallenges::Table, MfaChallenges::AccountId)
                        .to(Accounts::Table, Accounts::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("mfa_challenges_token_hash_key")
                .table(MfaChallenges::Table)
                .col(MfaChallenges::TokenHash)
                .unique()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(SigningKeys::Table)
                .col(string_len(SigningKeys::KeyId, 64).primary_key())
                .col(blob(SigningKeys::PublicKey))
                .col(blob(SigningKeys::PrivateKeyCiphertext))
                .col(blob(SigningKeys::Nonce))
                .col(string_len(SigningKeys::EncryptionKeyId, 64))
                .col(big_integer_null(SigningKeys::RetiredAt))
                .col(big_integer(SigningKeys::CreatedAt))
                .col(big_integer(SigningKeys::UpdatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(ThrottleCounters::Table)
                .col(string_len(ThrottleCounters::Key, 200).primary_key())
                .col(integer(ThrottleCounters::Failures))
                .col(big_integer(ThrottleCounters::Version))
                .col(big_integer_null(ThrottleCounters::NextAllowedAt))
                .col(big_integer_null(ThrottleCounters::LastFailureAt))
                .col(big_integer(ThrottleCounters::CreatedAt))
                .col(big_integer(ThrottleCounters::UpdatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(SecurityEvents::Table)
                .col(uuid(SecurityEvents::Id).primary_key())
                .col(uuid_null(SecurityEvents::AccountId))
                .col(string_len(SecurityEvents::EventType, 64))
                .col(uuid_null(SecurityEvents::SessionId))
                .col(string_len(SecurityEvents::ClientIp, 64))
                .col(string_len(SecurityEvents::UserAgent, 1024))
                .col(string_len(SecurityEvents::TraceId, 32))
                .col(big_integer(SecurityEvents::CreatedAt))
                .col(big_integer(SecurityEvents::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("security_events_account_id_idx")
                .table(SecurityEvents::Table)
                .col(SecurityEvents::AccountId)
                .col(SecurityEvents::Id)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            SecurityEvents::Table.into_iden(),
            ThrottleCounters::Table.into_iden(),
            SigningKeys::Table.into_iden(),
            MfaChallenges::Table.into_iden(),
            RefreshTokens::Table.into_iden(),
            Sessions::Table.into_iden(),
            RecoveryCodes::Table.into_iden(),
            TotpCredentials::Table.into_iden(),
            Accounts::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Accounts {
    Table,
    Id,
    Email,
    DisplayName,
    PasswordHash,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum TotpCredentials {
    Table,
    AccountId,
    SecretCiphertext,
    Nonce,
    EncryptionKeyId,
    ConfirmedAt,
    PendingExpiresAt,
    LastUsedStep,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum RecoveryCodes {
    Table,
    Id,
    AccountId,
    CodeHash,
    UsedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    AccountId,
    AuthMethods,
    ClientIp,
    UserAgent,
    LastUsedAt,
    IdleExpiresAt,
    AbsoluteExpiresAt,
    RevokedAt,
    RevokedReason,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    TokenHash,
    SessionId,
    UsedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum MfaChallenges {
    Table,
    Id,
    TokenHash,
    AccountId,
    Attempts,
    ExpiresAt,
    ConsumedAt,
    ClientIp,
    UserAgent,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    KeyId,
    PublicKey,
    PrivateKeyCiphertext,
    Nonce,
    EncryptionKeyId,
    RetiredAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ThrottleCounters {
    Table,
    Key,
    Failures,
    Version,
    NextAllowedAt,
    LastFailureAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum SecurityEvents {
    Table,
    Id,
    AccountId,
    EventType,
    SessionId,
    ClientIp,
    UserAgent,
    TraceId,
    CreatedAt,
    UpdatedAt,
}
