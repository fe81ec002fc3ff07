//! The movie module's schema: the catalog (with its title search index), theaters with their
//! seats, showtimes.

use sea_orm_migration::prelude::*;

mod m20261124_000001_catalog;
mod m20261124_000002_inbox;
mod m20261207_000003_title_grams;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_catalog::Migration),
            Box::new(m20261124_000002_inbox::Migration),
            Box::new(migrations::InboxRetention),
            Box::new(m20261207_000003_title_grams::Migration),
        ]
    }

    fn migration_table_name() -> DynIden {
        "movie_migrations".into_iden()
    }
}
