use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Bookings {
    Table,
    Id,
    UserId,
    ShowtimeId,
    /// `pending`, `confirmed`, `expired` or `cancelled`.
    Status,
    /// Sum of the seats' prices, fixed when booked.
    AmountCents,
    Currency,
    /// The showtime's start, copied when booked: cancelling is refused from then on.
    StartsAt,
    CreatedAt,
    /// Until when an unpaid hold lasts; the sweeper expires it after.
    ExpiresAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum BookingSeats {
    Table,
    BookingId,
    SeatId,
    RowLabel,
    Number,
    PriceCents,
}

/// The live seats: one row per seat of a showtime that is held or booked. Its primary key
/// is what makes double booking impossible; rows go when a booking is cancelled or expires.
#[derive(DeriveIden)]
enum SeatClaims {
    Table,
    ShowtimeId,
    SeatId,
    BookingId,
    /// False while the booking is pending (held), true once confirmed (booked).
    Confirmed,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Bookings::Table)
                    .col(ColumnDef::new(Bookings::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Bookings::UserId).uuid().not_null())
                    .col(ColumnDef::new(Bookings::ShowtimeId).uuid().not_null())
                    .col(ColumnDef::new(Bookings::Status).string_len(16).not_null())
                    .col(ColumnDef::new(Bookings::AmountCents).big_integer().not_null())
                    .col(ColumnDef::new(Bookings::Currency).string_len(3).not_null())
                    .col(ColumnDef::new(Bookings::StartsAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Bookings::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Bookings::ExpiresAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Bookings::UpdatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("bookings_user_created_idx")
                    .table(Bookings::Table)
                    .col(Bookings::UserId)
                    .col(Bookings::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("bookings_status_expires_idx")
                    .table(Bookings::Table)
                    .col(Bookings::Status)
                    .col(Bookings::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(BookingSeats::Table)
                    .col(ColumnDef::new(BookingSeats::BookingId).uuid().not_null())
                    .col(ColumnDef::new(BookingSeats::SeatId).uuid().not_null())
                    .col(ColumnDef::new(BookingSeats::RowLabel).string_len(8).not_null())
                    .col(ColumnDef::new(BookingSeats::Number).integer().not_null())
                    .col(ColumnDef::new(BookingSeats::PriceCents).big_integer().not_null())
                    .primary_key(Index::create().col(BookingSeats::BookingId).col(BookingSeats::SeatId))
                    .foreign_key(
                        ForeignKey::create()
                            .name("booking_seats_booking_fk")
                            .from(BookingSeats::Table, BookingSeats::BookingId)
                            .to(Bookings::Table, Bookings::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SeatClaims::Table)
                    .col(ColumnDef::new(SeatClaims::ShowtimeId).uuid().not_null())
                    .col(ColumnDef::new(SeatClaims::SeatId).uuid().not_null())
                    .col(ColumnDef::new(SeatClaims::BookingId).uuid().not_null())
                    .col(ColumnDef::new(SeatClaims::Confirmed).boolean().not_null())
                    .primary_key(
                        Index::create().name("seat_claims_pkey").col(SeatClaims::ShowtimeId).col(SeatClaims::SeatId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("seat_claims_booking_fk")
                            .from(SeatClaims::Table, SeatClaims::BookingId)
                            .to(Bookings::Table, Bookings::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("seat_claims_booking_idx")
                    .table(SeatClaims::Table)
                    .col(SeatClaims::BookingId)
                    .to_owned(),
            )
            .await?;
        manager.create_table(platform::outbox::outbox_table()).await?;
        manager.create_index(platform::outbox::outbox_index()).await?;
        manager.create_table(platform::outbox::inbox_table()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["inbox_events", "outbox_events", "seat_claims", "booking_seats", "bookings"] {
            manager.drop_table(Table::drop().table(Alias::new(table)).to_owned()).await?;
        }
        Ok(())
    }
}
