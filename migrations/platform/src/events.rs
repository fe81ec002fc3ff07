//! The schema of the in-process event bus's own store: dead letters kept durably
//! (`platform::dead_letters`). Only the single binary (no `events.amqp_url`) opens it;
//! RabbitMQ keeps its dead letters in `<queue>.dlq`.

use sea_orm_migration::prelude::*;

struct DeadLetters;

impl MigrationName for DeadLetters {
    fn name(&self) -> &str {
        "m20261207_000001_dead_letters"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for DeadLetters {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_table(platform::dead_letters::dead_letter_table()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Alias::new("dead_letters")).to_owned()).await
    }
}

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(DeadLetters)]
    }

    fn migration_table_name() -> DynIden {
        "events_migrations".into_iden()
    }
}
