use sea_orm_migration::prelude::*;

/// An index on `refresh_tokens.expires_at`, for the hourly purge of expired sessions.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("refresh_tokens_expires_idx")
                    .table(Alias::new("refresh_tokens"))
                    .col(Alias::new("expires_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name("refresh_tokens_expires_idx").table(Alias::new("refresh_tokens")).to_owned())
            .await
    }
}
