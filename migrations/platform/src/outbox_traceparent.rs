//! The outbox's `traceparent` column (`platform::outbox::outbox_traceparent`): each event keeps
//! the trace context of the transaction that raised it. One migration shared by every module
//! with an outbox (booking, payment), applied to each one's own schema.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261207_000100_outbox_traceparent"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(platform::outbox::outbox_traceparent()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table(Alias::new("outbox_events")).drop_column(Alias::new("traceparent")).to_owned(),
            )
            .await
    }
}
