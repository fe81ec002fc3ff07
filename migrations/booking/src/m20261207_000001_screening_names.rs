//! Issue 12: the screening's names on the booking, so every booking event can carry them and
//! notification writes its messages without reading movie.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Bookings {
    Table,
    /// The movie's title when the booking was made. Null for bookings made before, or when
    /// movie could not tell it then (the booking is made anyway).
    MovieTitle,
    /// The theater's name then (null as `movie_title`).
    TheaterName,
    /// The theater's location then (null as `movie_title`).
    TheaterLocation,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one at a time.
        for column in [Bookings::MovieTitle, Bookings::TheaterName, Bookings::TheaterLocation] {
            manager
                .alter_table(
                    Table::alter().table(Bookings::Table).add_column(ColumnDef::new(column).text().null()).to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Bookings::TheaterLocation, Bookings::TheaterName, Bookings::MovieTitle] {
            manager.alter_table(Table::alter().table(Bookings::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}
