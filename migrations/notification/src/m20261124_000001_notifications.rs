use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// One message to one user: what its event said, the message once rendered, its delivery state.
#[derive(DeriveIden)]
enum Notifications {
    Table,
    Id,
    UserId,
    /// The event that caused it (one notification per event).
    EventId,
    /// `booking_created`, `booking_confirmed`, `booking_cancelled`, `booking_expired`,
    /// `payment_failed` or `payment_refunded`.
    Kind,
    /// `email` (SMS and push are later channels).
    Channel,
    /// The event's facts the message is written from (JSON).
    Payload,
    /// Null until the delivery worker first renders the message (the address as auth knew
    /// it then); kept, so every retry sends the same message.
    Recipient,
    Subject,
    BodyText,
    BodyHtml,
    /// `pending`, `sent` or `failed` (gave up after `notification.max_attempts`).
    Status,
    /// Deliveries tried so far (a claimed delivery counts).
    Attempts,
    /// Why the last attempt failed; null once sent.
    LastError,
    /// When a pending notification is due: its next try, or the end of a running try's claim.
    NextAttemptAt,
    CreatedAt,
    SentAt,
}

/// What events said about a booking, for the messages of later events that do not repeat it
/// (`booking.confirmed` has no amount; payment's events name only the booking). Each column
/// is filled by the event that knows it, in whichever order they come.
#[derive(DeriveIden)]
enum BookingFacts {
    Table,
    BookingId,
    /// From `booking.created`.
    ShowtimeId,
    /// JSON array of seat ids, from `booking.created`.
    SeatIds,
    /// The booking's amount, from `booking.created`.
    AmountCents,
    /// The amount charged, from `payment.completed`.
    PaidCents,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Notifications::Table)
                    .col(ColumnDef::new(Notifications::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Notifications::UserId).uuid().not_null())
                    .col(ColumnDef::new(Notifications::EventId).uuid().not_null())
                    .col(ColumnDef::new(Notifications::Kind).string_len(32).not_null())
                    .col(ColumnDef::new(Notifications::Channel).string_len(16).not_null())
                    .col(ColumnDef::new(Notifications::Payload).text().not_null())
                    .col(ColumnDef::new(Notifications::Recipient).string_len(320).null())
                    .col(ColumnDef::new(Notifications::Subject).text().null())
                    .col(ColumnDef::new(Notifications::BodyText).text().null())
                    .col(ColumnDef::new(Notifications::BodyHtml).text().null())
                    .col(ColumnDef::new(Notifications::Status).string_len(8).not_null())
                    .col(ColumnDef::new(Notifications::Attempts).integer().not_null())
                    .col(ColumnDef::new(Notifications::LastError).text().null())
                    .col(ColumnDef::new(Notifications::NextAttemptAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Notifications::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Notifications::SentAt).timestamp_with_time_zone().null())
                    .to_owned(),
            )
            .await?;
        for (name, columns) in [
            // The caller's list, newest first.
            ("notifications_user_created_idx", vec![Notifications::UserId, Notifications::CreatedAt]),
            // The delivery worker's scan: pending ones by due time.
            ("notifications_due_idx", vec![Notifications::Status, Notifications::NextAttemptAt]),
        ] {
            let mut index = Index::create().name(name).table(Notifications::Table).to_owned();
            for column in columns {
                index.col(column);
            }
            manager.create_index(index).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(BookingFacts::Table)
                    .col(ColumnDef::new(BookingFacts::BookingId).uuid().not_null().primary_key())
                    .col(ColumnDef::new(BookingFacts::ShowtimeId).uuid().null())
                    .col(ColumnDef::new(BookingFacts::SeatIds).text().null())
                    .col(ColumnDef::new(BookingFacts::AmountCents).big_integer().null())
                    .col(ColumnDef::new(BookingFacts::PaidCents).big_integer().null())
                    .col(ColumnDef::new(BookingFacts::UpdatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager.create_table(platform::outbox::inbox_table()).await?;
        manager.create_index(platform::outbox::inbox_index()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["inbox_events", "booking_facts", "notifications"] {
            manager.drop_table(Table::drop().table(Alias::new(table)).to_owned()).await?;
        }
        Ok(())
    }
}
