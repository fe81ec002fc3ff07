//! Issue 12: booking's events carry their amount and screening, so `booking_facts` keeps
//! only what the messages of payment's events need (they name no screening): the ticket of
//! `booking.created`. `paid_cents` goes with the `payment.completed` binding it was filled
//! from: a confirmation now says what was paid.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum BookingFacts {
    Table,
    /// The screening and seats as `booking.created` told them (JSON, `booking::api::Ticket`);
    /// null for bookings heard of before. `showtime_id`, `seat_ids` and `amount_cents` stay
    /// for those.
    Ticket,
    /// The amount charged, from `payment.completed` (dropped).
    PaidCents,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(BookingFacts::Table)
                    .add_column(ColumnDef::new(BookingFacts::Ticket).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(Table::alter().table(BookingFacts::Table).drop_column(BookingFacts::PaidCents).to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(BookingFacts::Table)
                    .add_column(ColumnDef::new(BookingFacts::PaidCents).big_integer().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(Table::alter().table(BookingFacts::Table).drop_column(BookingFacts::Ticket).to_owned())
            .await
    }
}
