//! The payment module's schema: payments and their transaction log, idempotency keys with
//! their saved answers, the per-booking charge ledger, payment-attempt windows, the simulated gateway's
//! own memory, and the outbox/inbox of the event
//! backbone.

use sea_orm_migration::prelude::*;

mod m20261124_000001_payments;
mod m20261201_000001_reconcile;
mod m20261207_000001_saved_answers;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_payments::Migration),
            Box::new(migrations::InboxRetention),
            Box::new(m20261201_000001_reconcile::Migration),
            Box::new(m20261207_000001_saved_answers::Migration),
            Box::new(migrations::OutboxTraceparent),
        ]
    }

    fn migration_table_name() -> DynIden {
        "payment_migrations".into_iden()
    }
}
