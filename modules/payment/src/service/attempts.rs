//! Payment-attempt limits against card testing: per booking and per customer, a fixed window
//! (`payment.attempt_window_seconds`) counts the charges that were declined and the ones still
//! in flight; an approved charge, or one that never reached a decision, gives its attempt
//! back. A charge is let through only if it can take an attempt in both windows, taken by one
//! conditional upsert each: the database decides, so parallel attempts cannot exceed a limit.

use chrono::{DateTime, Utc};
use platform::error::Failure;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::entity::attempt_window as window;
use crate::api::PaymentError;

/// The attempts a charge took; given back with [`Attempts::give_back`].
pub struct Taken {
    scopes: Vec<String>,
}

pub struct Attempts {
    pub per_booking: u32,
    pub per_user: u32,
    pub window: chrono::Duration,
}

impl Attempts {
    /// Takes an attempt for `booking` and for `user` in the caller's transaction, or answers
    /// `TooManyAttempts` (with how long until the full window reopens), and the caller rolls
    /// back what it took.
    ///
    /// # Errors
    /// `TooManyAttempts`; database failures.
    pub async fn take(
        &self,
        db: &impl ConnectionTrait,
        user: Uuid,
        booking: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Taken, PaymentError> {
        let mut taken = Taken { scopes: Vec::new() };
        for (scope, limit, what) in [
            (format!("booking:{booking}"), self.per_booking, "this booking"),
            (format!("user:{user}"), self.per_user, "you"),
        ] {
            if self.take_one(db, &scope, limit, now).await? {
                taken.scopes.push(scope);
                continue;
            }
            let reopens = window::Entity::find_by_id(scope.clone())
                .one(db)
                .await?
                .map_or(1, |w| (w.window_start + self.window - now).num_seconds());
            return Err(PaymentError::TooManyAttempts {
                detail: format!("{limit} declined or unfinished payment attempts for {what}; try again later"),
                retry_after_seconds: Ord::max(u64::try_from(reopens).unwrap_or(1), 1),
            });
        }
        Ok(taken)
    }

    /// One attempt in `scope`'s window: a new window if there is none or it is over, else
    /// one more if under `limit`.
    async fn take_one(
        &self,
        db: &impl ConnectionTrait,
        scope: &str,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<bool, PaymentError> {
        let over = Expr::col((window::Entity, window::Column::WindowStart)).lte(now - self.window);
        let count = Expr::col((window::Entity, window::Column::Attempts));
        let start = Expr::col((window::Entity, window::Column::WindowStart));
        let upsert = Query::insert()
            .into_table(window::Entity)
            .columns([window::Column::Scope, window::Column::WindowStart, window::Column::Attempts])
            .values([scope.into(), now.into(), 1.into()])
            .map_err(|e| PaymentError::Internal(Failure::new("attempt window", e)))?
            .on_conflict(
                OnConflict::column(window::Column::Scope)
                    .value(window::Column::Attempts, Expr::case(over.clone(), 1).finally(count.clone().add(1)))
                    .value(window::Column::WindowStart, Expr::case(over.clone(), now).finally(start))
                    .action_and_where(over.or(count.lt(i64::from(limit))))
                    .to_owned(),
            )
            .to_owned();
        let done = db.execute(&upsert).await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives the attempts of a charge back (it was approved, or never decided).
    pub async fn give_back(&self, db: &DatabaseConnection, taken: Taken) {
        if taken.scopes.is_empty() {
            return;
        }
        let given = window::Entity::update_many()
            .col_expr(window::Column::Attempts, Expr::col(window::Column::Attempts).sub(1))
            .filter(window::Column::Scope.is_in(taken.scopes))
            .filter(window::Column::Attempts.gt(0))
            .exec(db)
            .await;
        if let Err(e) = given {
            tracing::warn!(error = %e, "payment attempts not given back; they count until their window ends");
        }
    }
}
