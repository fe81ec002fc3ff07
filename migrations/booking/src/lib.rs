//! The booking module's schema: bookings, their seats, the live seat claims, the
//! per-customer hold locks, and the outbox/inbox of the event backbone.

use sea_orm_migration::prelude::*;

mod m20261124_000001_bookings;
mod m20261201_000001_payment_holds;
mod m20261207_000001_screening_names;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_bookings::Migration),
            Box::new(migrations::InboxRetention),
            Box::new(m20261201_000001_payment_holds::Migration),
            Box::new(m20261207_000001_screening_names::Migration),
            Box::new(migrations::OutboxTraceparent),
        ]
    }

    fn migration_table_name() -> DynIden {
        "booking_migrations".into_iden()
    }
}
