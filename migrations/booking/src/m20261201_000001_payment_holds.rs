//! Issue 11: a hold kept while its charge is in flight, and the per-customer hold caps.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Bookings {
    Table,
    /// The payment whose charge payment accepted while the hold ran (set by the payment
    /// hold, `POST /internal/bookings/bookings/{id}/payment-hold`): the sweeper leaves the booking
    /// pending until that payment's outcome arrives (at most `booking.charge_grace_seconds`
    /// past `expires_at`). Null: no charge accepted, or the last one failed.
    ChargingPaymentId,
    /// When that charge was accepted.
    ChargingSince,
}

/// One row per customer who ever held seats. Every booking of a customer updates the row
/// first, so a customer's bookings take turns on it and the hold caps are counted without a
/// race (`booking.max_held_seats_per_user`, `booking.max_held_seats_per_showtime`).
#[derive(DeriveIden)]
enum HoldLocks {
    Table,
    UserId,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(Bookings::Table)
                    .add_column(ColumnDef::new(Bookings::ChargingPaymentId).uuid().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Bookings::Table)
                    .add_column(ColumnDef::new(Bookings::ChargingSince).timestamp_with_time_zone().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(HoldLocks::Table)
                    .col(ColumnDef::new(HoldLocks::UserId).uuid().not_null().primary_key())
                    .col(ColumnDef::new(HoldLocks::UpdatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(HoldLocks::Table).to_owned()).await?;
        for column in [Bookings::ChargingSince, Bookings::ChargingPaymentId] {
            manager.alter_table(Table::alter().table(Bookings::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}
