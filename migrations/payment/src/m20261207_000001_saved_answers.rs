//! Issue 12: an idempotency key saves what happened (the service's `Answer`, as JSON), not the
//! HTTP response it was answered with. The answers saved before are rewritten in place, so a
//! key sent again after the upgrade replays the same answer.
//!
//! Before, only three answers were ever saved: 201 with the payment, 404 for the booking, and
//! 409 `booking-not-pending` whose detail is `the booking cannot be paid: {reason}`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    /// The saved answer (`done` only): `{"outcome": "charged", "payment": {…}}`,
    /// `{"outcome": "booking_not_found"}` or `{"outcome": "booking_not_pending", "reason": …}`.
    Answer,
    ResponseStatus,
    ResponseBody,
}

const NOT_PENDING_PREFIX: &str = "the booking cannot be paid: ";

/// Runs the statement written for the connection's backend (their JSON functions differ).
async fn run(manager: &SchemaManager<'_>, sqlite: &str, postgres: &str) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let sql = if db.get_database_backend() == DatabaseBackend::Sqlite { sqlite } else { postgres };
    db.execute_unprepared(sql).await.map(drop)
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut answer = ColumnDef::new(IdempotencyKeys::Answer).text().null().to_owned();
        manager.alter_table(Table::alter().table(IdempotencyKeys::Table).add_column(&mut answer).to_owned()).await?;
        let charged = r#"UPDATE idempotency_keys SET answer = '{"outcome":"charged","payment":' || response_body || '}'
            WHERE response_status = 201"#;
        run(manager, charged, charged).await?;
        let not_found =
            r#"UPDATE idempotency_keys SET answer = '{"outcome":"booking_not_found"}' WHERE response_status = 404"#;
        run(manager, not_found, not_found).await?;
        run(
            manager,
            &format!(
                "UPDATE idempotency_keys SET answer = json_object('outcome', 'booking_not_pending', 'reason', \
                 replace(json_extract(response_body, '$.detail'), '{NOT_PENDING_PREFIX}', '')) WHERE response_status = 409"
            ),
            &format!(
                "UPDATE idempotency_keys SET answer = json_build_object('outcome', 'booking_not_pending', 'reason', \
                 replace(response_body::json ->> 'detail', '{NOT_PENDING_PREFIX}', ''))::text WHERE response_status = 409"
            ),
        )
        .await?;
        for column in [IdempotencyKeys::ResponseStatus, IdempotencyKeys::ResponseBody] {
            manager.alter_table(Table::alter().table(IdempotencyKeys::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for mut column in [
            ColumnDef::new(IdempotencyKeys::ResponseStatus).small_integer().null().to_owned(),
            ColumnDef::new(IdempotencyKeys::ResponseBody).text().null().to_owned(),
        ] {
            manager
                .alter_table(Table::alter().table(IdempotencyKeys::Table).add_column(&mut column).to_owned())
                .await?;
        }
        run(
            manager,
            "UPDATE idempotency_keys SET response_status = 201, response_body = json_extract(answer, '$.payment') \
             WHERE json_extract(answer, '$.outcome') = 'charged'",
            "UPDATE idempotency_keys SET response_status = 201, response_body = (answer::json -> 'payment')::text \
             WHERE answer::json ->> 'outcome' = 'charged'",
        )
        .await?;
        let not_found = r#"{"type":"/problems/not-found","title":"Not found","status":404,"detail":"booking not found","resource":"booking"}"#;
        run(
            manager,
            &format!(
                "UPDATE idempotency_keys SET response_status = 404, response_body = '{not_found}' \
                 WHERE json_extract(answer, '$.outcome') = 'booking_not_found'"
            ),
            &format!(
                "UPDATE idempotency_keys SET response_status = 404, response_body = '{not_found}' \
                 WHERE answer::json ->> 'outcome' = 'booking_not_found'"
            ),
        )
        .await?;
        run(
            manager,
            &format!(
                "UPDATE idempotency_keys SET response_status = 409, response_body = json_object('type', \
                 '/problems/booking-not-pending', 'title', 'Booking cannot be paid', 'status', 409, 'detail', \
                 '{NOT_PENDING_PREFIX}' || json_extract(answer, '$.reason')) \
                 WHERE json_extract(answer, '$.outcome') = 'booking_not_pending'"
            ),
            &format!(
                "UPDATE idempotency_keys SET response_status = 409, response_body = json_build_object('type', \
                 '/problems/booking-not-pending', 'title', 'Booking cannot be paid', 'status', 409, 'detail', \
                 '{NOT_PENDING_PREFIX}' || (answer::json ->> 'reason'))::text \
                 WHERE answer::json ->> 'outcome' = 'booking_not_pending'"
            ),
        )
        .await?;
        manager
            .alter_table(Table::alter().table(IdempotencyKeys::Table).drop_column(IdempotencyKeys::Answer).to_owned())
            .await
    }
}
