//! Issue 11: what the reconciler needs to finish a charge whose request died, the simulated
//! gateway's own memory of its charges, and the payment-attempt windows.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The charge a key's request is about to send, written before the gateway is called: a
/// request that dies mid-charge leaves enough for the reconciler to record what the gateway
/// did under the key's payment id. All null until then.
#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    BookingId,
    AmountCents,
    Currency,
    CardBrand,
    CardLast4,
    /// When the charge was accepted (booking held for it): the time `payment.completed`
    /// confirms against.
    ChargingSince,
    State,
    LeaseUntil,
}

/// The simulated gateway's memory, as a real processor keeps its own: one row per reference
/// it charged, written before it answers and outside payment's transactions, so it survives
/// a crash of the payment process and answers status queries.
#[derive(DeriveIden)]
enum SimulatedGatewayCharges {
    Table,
    Reference,
    /// `approved` or `declined`.
    Outcome,
    DeclineReason,
    AmountCents,
    Currency,
    Refunded,
    CreatedAt,
}

/// Fixed windows of payment attempts per scope (`booking:<id>`, `user:<id>`): declined
/// charges and charges in flight count (approved ones give their attempt back).
#[derive(DeriveIden)]
enum PaymentAttemptWindows {
    Table,
    Scope,
    WindowStart,
    Attempts,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one at a time.
        for column in [
            ColumnDef::new(IdempotencyKeys::BookingId).uuid().null().to_owned(),
            ColumnDef::new(IdempotencyKeys::AmountCents).big_integer().null().to_owned(),
            ColumnDef::new(IdempotencyKeys::Currency).string_len(3).null().to_owned(),
            ColumnDef::new(IdempotencyKeys::CardBrand).string_len(16).null().to_owned(),
            ColumnDef::new(IdempotencyKeys::CardLast4).string_len(4).null().to_owned(),
            ColumnDef::new(IdempotencyKeys::ChargingSince).timestamp_with_time_zone().null().to_owned(),
        ] {
            let mut column = column;
            manager
                .alter_table(Table::alter().table(IdempotencyKeys::Table).add_column(&mut column).to_owned())
                .await?;
        }
        // The reconciler's scan: running keys whose lease ran out.
        manager
            .create_index(
                Index::create()
                    .name("idempotency_keys_state_lease_idx")
                    .table(IdempotencyKeys::Table)
                    .col(IdempotencyKeys::State)
                    .col(IdempotencyKeys::LeaseUntil)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SimulatedGatewayCharges::Table)
                    .col(ColumnDef::new(SimulatedGatewayCharges::Reference).uuid().not_null().primary_key())
                    .col(ColumnDef::new(SimulatedGatewayCharges::Outcome).string_len(16).not_null())
                    .col(ColumnDef::new(SimulatedGatewayCharges::DeclineReason).string_len(64).null())
                    .col(ColumnDef::new(SimulatedGatewayCharges::AmountCents).big_integer().not_null())
                    .col(ColumnDef::new(SimulatedGatewayCharges::Currency).string_len(3).not_null())
                    .col(ColumnDef::new(SimulatedGatewayCharges::Refunded).boolean().not_null())
                    .col(ColumnDef::new(SimulatedGatewayCharges::CreatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PaymentAttemptWindows::Table)
                    .col(ColumnDef::new(PaymentAttemptWindows::Scope).string_len(64).not_null().primary_key())
                    .col(ColumnDef::new(PaymentAttemptWindows::WindowStart).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(PaymentAttemptWindows::Attempts).integer().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["payment_attempt_windows", "simulated_gateway_charges"] {
            manager.drop_table(Table::drop().table(Alias::new(table)).to_owned()).await?;
        }
        manager
            .drop_index(Index::drop().name("idempotency_keys_state_lease_idx").table(IdempotencyKeys::Table).to_owned())
            .await?;
        for column in [
            IdempotencyKeys::ChargingSince,
            IdempotencyKeys::CardLast4,
            IdempotencyKeys::CardBrand,
            IdempotencyKeys::Currency,
            IdempotencyKeys::AmountCents,
            IdempotencyKeys::BookingId,
        ] {
            manager.alter_table(Table::alter().table(IdempotencyKeys::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}
