use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Movies {
    Table,
    Id,
    Title,
    Description,
    DurationMinutes,
    Genre,
    ReleaseDate,
    /// Age rating, e.g. `PG-13`; optional.
    Rating,
    PosterUrl,
    CreatedAt,
    UpdatedAt,
    /// Set when an admin deletes the movie: it leaves the catalog, its past showtimes stay
    /// for the history of bookings that reference them.
    DeletedAt,
}

#[derive(DeriveIden)]
enum Theaters {
    Table,
    Id,
    Name,
    Location,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Seats {
    Table,
    Id,
    TheaterId,
    /// Row label as laid out, e.g. `A`.
    RowLabel,
    /// 1-based position in the row.
    Number,
    /// 0-based place in the theater's layout order (row as laid out, then number).
    Position,
    /// `standard`, `premium` or `accessible`: selects the price multiplier.
    SeatType,
}

#[derive(DeriveIden)]
enum Showtimes {
    Table,
    Id,
    MovieId,
    TheaterId,
    StartTime,
    /// Start plus the movie's duration (without the cleaning gap).
    EndTime,
    /// Base price in minor units; a seat costs this times its type's multiplier.
    PriceCents,
    Currency,
    SeatsTotal,
    /// Eventually consistent, maintained from booking events.
    SeatsAvailable,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Movies::Table)
                    .col(ColumnDef::new(Movies::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Movies::Title).string_len(200).not_null())
                    .col(ColumnDef::new(Movies::Description).text().not_null())
                    .col(ColumnDef::new(Movies::DurationMinutes).integer().not_null())
                    .col(ColumnDef::new(Movies::Genre).string_len(50).not_null())
                    .col(ColumnDef::new(Movies::ReleaseDate).date().not_null())
                    .col(ColumnDef::new(Movies::Rating).string_len(16).null())
                    .col(ColumnDef::new(Movies::PosterUrl).string_len(2048).null())
                    .col(ColumnDef::new(Movies::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Movies::UpdatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Movies::DeletedAt).timestamp_with_time_zone().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Theaters::Table)
                    .col(ColumnDef::new(Theaters::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Theaters::Name).string_len(200).not_null())
                    .col(ColumnDef::new(Theaters::Location).string_len(200).not_null())
                    .col(ColumnDef::new(Theaters::CreatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Seats::Table)
                    .col(ColumnDef::new(Seats::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Seats::TheaterId).uuid().not_null())
                    .col(ColumnDef::new(Seats::RowLabel).string_len(8).not_null())
                    .col(ColumnDef::new(Seats::Number).integer().not_null())
                    .col(ColumnDef::new(Seats::Position).integer().not_null())
                    .col(ColumnDef::new(Seats::SeatType).string_len(16).not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("seats_theater_fk")
                            .from(Seats::Table, Seats::TheaterId)
                            .to(Theaters::Table, Theaters::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("seats_position_key")
                    .table(Seats::Table)
                    .col(Seats::TheaterId)
                    .col(Seats::RowLabel)
                    .col(Seats::Number)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Showtimes::Table)
                    .col(ColumnDef::new(Showtimes::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Showtimes::MovieId).uuid().not_null())
                    .col(ColumnDef::new(Showtimes::TheaterId).uuid().not_null())
                    .col(ColumnDef::new(Showtimes::StartTime).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Showtimes::EndTime).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Showtimes::PriceCents).big_integer().not_null())
                    .col(ColumnDef::new(Showtimes::Currency).string_len(3).not_null())
                    .col(ColumnDef::new(Showtimes::SeatsTotal).integer().not_null())
                    .col(ColumnDef::new(Showtimes::SeatsAvailable).integer().not_null())
                    .col(ColumnDef::new(Showtimes::CreatedAt).timestamp_with_time_zone().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("showtimes_movie_fk")
                            .from(Showtimes::Table, Showtimes::MovieId)
                            .to(Movies::Table, Movies::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("showtimes_theater_fk")
                            .from(Showtimes::Table, Showtimes::TheaterId)
                            .to(Theaters::Table, Theaters::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("showtimes_theater_start_idx")
                    .table(Showtimes::Table)
                    .col(Showtimes::TheaterId)
                    .col(Showtimes::StartTime)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("showtimes_movie_start_idx")
                    .table(Showtimes::Table)
                    .col(Showtimes::MovieId)
                    .col(Showtimes::StartTime)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("showtimes_start_idx")
                    .table(Showtimes::Table)
                    .col(Showtimes::StartTime)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Showtimes::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Seats::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Theaters::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Movies::Table).to_owned()).await
    }
}
