//! The movie module's schema: the catalog, theaters with their seats, showtimes.

use sea_orm_migration::prelude::*;

mod m20261124_000001_catalog;
mod m20261124_000002_inbox;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_catalog::Migration),
            Box::new(m20261124_000002_inbox::Migration),
            Box::new(migrations::InboxRetention),
        ]
    }

    fn migration_table_name() -> DynIden {
        "movie_migrations".into_iden()
    }
}
