//! The notification module's schema: the notifications with their delivery state, what it
//! remembers of each booking from booking's events, and the inbox of the event backbone.

use sea_orm_migration::prelude::*;

mod m20261124_000001_notifications;
mod m20261207_000001_booking_tickets;
mod m20261207_000002_notification_traces;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_notifications::Migration),
            Box::new(m20261207_000001_booking_tickets::Migration),
            Box::new(m20261207_000002_notification_traces::Migration),
        ]
    }

    fn migration_table_name() -> DynIden {
        "notification_migrations".into_iden()
    }
}
