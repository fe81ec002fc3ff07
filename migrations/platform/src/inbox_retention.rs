//! An index on the inbox's `handled_at`, for the retention purge (`platform::outbox::purge`).
//! One migration shared by every module with an inbox (movie, booking, payment): each applies
//! it to its own schema and records it in its own tracking table.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000100_inbox_retention"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_index(platform::outbox::inbox_index()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name("inbox_events_handled_idx").table(Alias::new("inbox_events")).to_owned())
            .await
    }
}
