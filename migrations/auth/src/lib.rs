//! The auth module's schema: users and refresh tokens.

use sea_orm_migration::prelude::*;

mod m20261124_000001_users_and_refresh_tokens;
mod m20261124_000002_refresh_token_expiry;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_users_and_refresh_tokens::Migration),
            Box::new(m20261124_000002_refresh_token_expiry::Migration),
        ]
    }

    fn migration_table_name() -> DynIden {
        "auth_migrations".into_iden()
    }
}
