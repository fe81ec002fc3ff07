use sea_orm_migration::prelude::*;

/// The inbox of events movie has handled (booking events keep `seats_available`).
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_table(platform::outbox::inbox_table()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Alias::new("inbox_events")).to_owned()).await
    }
}
