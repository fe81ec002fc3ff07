use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Payments {
    Table,
    Id,
    UserId,
    BookingId,
    /// The booking's amount when charged.
    AmountCents,
    Currency,
    /// `completed`, `failed` or `refunded`.
    Status,
    /// Why the gateway declined (`card_declined`, `insufficient_funds`); null otherwise.
    FailureReason,
    /// `visa`, `mastercard`, `amex`, `discover` or `unknown`: the card's number is never stored.
    CardBrand,
    CardLast4,
    /// A completed payment whose booking was cancelled or expired: the refund worker owes it
    /// a refund (set in the same transaction that learned it).
    RefundDue,
    CreatedAt,
    UpdatedAt,
}

/// What happened to the money: one `charge` per payment, at most one `refund`.
#[derive(DeriveIden)]
enum PaymentTransactions {
    Table,
    Id,
    PaymentId,
    /// `charge` or `refund`.
    Kind,
    AmountCents,
    /// `succeeded` or `failed`.
    Status,
    CreatedAt,
}

/// One row per (user, Idempotency-Key) of `POST /pay`: who runs it, and its answer once done.
#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    UserId,
    Key,
    /// HMAC-SHA256 of the request body under the fingerprint key (never the card itself).
    Fingerprint,
    /// The payment this key creates: also the gateway reference, so a retry after a crash
    /// charges under the same reference.
    PaymentId,
    /// `running` or `done`.
    State,
    /// Bumped by each process that takes the request over after a lease ran out.
    Attempt,
    /// A running request not done by then is presumed dead and may be taken over.
    LeaseUntil,
    /// The saved answer (`done` only): HTTP status and JSON body.
    ResponseStatus,
    ResponseBody,
    CreatedAt,
}

/// One row per booking payment has heard of: whether a charge is running for it, it is paid,
/// or it was closed (cancelled or expired). Charging and closing update this row, so they
/// take turns on it and one of them always sees the other.
#[derive(DeriveIden)]
enum BookingLedger {
    Table,
    BookingId,
    /// `free`, `charging`, `paid` or `closed`.
    State,
    /// The payment charging or paid.
    PaymentId,
    /// A charge still `charging` after this is presumed dead.
    LeaseUntil,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Payments::Table)
                    .col(ColumnDef::new(Payments::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Payments::UserId).uuid().not_null())
                    .col(ColumnDef::new(Payments::BookingId).uuid().not_null())
                    .col(ColumnDef::new(Payments::AmountCents).big_integer().not_null())
                    .col(ColumnDef::new(Payments::Currency).string_len(3).not_null())
                    .col(ColumnDef::new(Payments::Status).string_len(16).not_null())
                    .col(ColumnDef::new(Payments::FailureReason).string_len(64).null())
                    .col(ColumnDef::new(Payments::CardBrand).string_len(16).not_null())
                    .col(ColumnDef::new(Payments::CardLast4).string_len(4).not_null())
                    .col(ColumnDef::new(Payments::RefundDue).boolean().not_null())
                    .col(ColumnDef::new(Payments::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Payments::UpdatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        for (name, columns) in [
            ("payments_user_created_idx", vec![Payments::UserId, Payments::CreatedAt]),
            ("payments_booking_idx", vec![Payments::BookingId]),
            ("payments_refund_due_idx", vec![Payments::RefundDue]),
        ] {
            let mut index = Index::create().name(name).table(Payments::Table).to_owned();
            for column in columns {
                index.col(column);
            }
            manager.create_index(index).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(PaymentTransactions::Table)
                    .col(ColumnDef::new(PaymentTransactions::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(PaymentTransactions::PaymentId).uuid().not_null())
                    .col(ColumnDef::new(PaymentTransactions::Kind).string_len(8).not_null())
                    .col(ColumnDef::new(PaymentTransactions::AmountCents).big_integer().not_null())
                    .col(ColumnDef::new(PaymentTransactions::Status).string_len(16).not_null())
                    .col(ColumnDef::new(PaymentTransactions::CreatedAt).timestamp_with_time_zone().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("payment_transactions_payment_fk")
                            .from(PaymentTransactions::Table, PaymentTransactions::PaymentId)
                            .to(Payments::Table, Payments::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("payment_transactions_payment_idx")
                    .table(PaymentTransactions::Table)
                    .col(PaymentTransactions::PaymentId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(IdempotencyKeys::Table)
                    .col(ColumnDef::new(IdempotencyKeys::UserId).uuid().not_null())
                    .col(ColumnDef::new(IdempotencyKeys::Key).string_len(255).not_null())
                    .col(ColumnDef::new(IdempotencyKeys::Fingerprint).string_len(64).not_null())
                    .col(ColumnDef::new(IdempotencyKeys::PaymentId).uuid().not_null())
                    .col(ColumnDef::new(IdempotencyKeys::State).string_len(8).not_null())
                    .col(ColumnDef::new(IdempotencyKeys::Attempt).integer().not_null())
                    .col(ColumnDef::new(IdempotencyKeys::LeaseUntil).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(IdempotencyKeys::ResponseStatus).small_integer().null())
                    .col(ColumnDef::new(IdempotencyKeys::ResponseBody).text().null())
                    .col(ColumnDef::new(IdempotencyKeys::CreatedAt).timestamp_with_time_zone().not_null())
                    .primary_key(
                        Index::create()
                            .name("idempotency_keys_pkey")
                            .col(IdempotencyKeys::UserId)
                            .col(IdempotencyKeys::Key),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idempotency_keys_created_idx")
                    .table(IdempotencyKeys::Table)
                    .col(IdempotencyKeys::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(BookingLedger::Table)
                    .col(ColumnDef::new(BookingLedger::BookingId).uuid().not_null().primary_key())
                    .col(ColumnDef::new(BookingLedger::State).string_len(10).not_null())
                    .col(ColumnDef::new(BookingLedger::PaymentId).uuid().null())
                    .col(ColumnDef::new(BookingLedger::LeaseUntil).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(BookingLedger::UpdatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager.create_table(platform::outbox::outbox_table()).await?;
        manager.create_index(platform::outbox::outbox_index()).await?;
        manager.create_table(platform::outbox::inbox_table()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in
            ["inbox_events", "outbox_events", "booking_ledger", "idempotency_keys", "payment_transactions", "payments"]
        {
            manager.drop_table(Table::drop().table(Alias::new(table)).to_owned()).await?;
        }
        Ok(())
    }
}
