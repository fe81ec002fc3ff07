//! What movie does with booking events: keep `seats_available` of showtimes up to date.
//! Consumed from `movie_queue`; every event is recorded in the inbox in the same
//! transaction as its effect, so a redelivery changes nothing.
//!
//! Movie reads only the fields it needs (a tolerant reader): it never depends on the
//! booking crate, which depends on movie.

use async_trait::async_trait;
use platform::error::Failure;
use platform::events::{Envelope, EventHandler, HandlerError};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, TransactionTrait};
use serde::Deserialize;
use uuid::Uuid;

use super::entity::showtime;

/// The queue movie consumes, and the events bound to it.
use crate::api::QUEUE;

#[derive(Deserialize)]
struct SeatsOfBooking {
    showtime_id: Uuid,
    seat_ids: Vec<Uuid>,
}

/// Applies booking events to `seats_available`: a created booking takes its seats, a
/// cancelled or expired one gives them back, a confirmation changes nothing.
pub struct SeatsAvailable {
    db: DatabaseConnection,
}

impl SeatsAvailable {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

#[async_trait]
impl EventHandler for SeatsAvailable {
    async fn handle(&self, event: &Envelope) -> Result<(), HandlerError> {
        let seats: SeatsOfBooking = event.decode()?;
        let count = i32::try_from(seats.seat_ids.len()).map_err(|e| Failure::new("seat count", e))?;
        let delta = match event.routing_key.as_str() {
            "booking.created" => -count,
            "booking.cancelled" => count,
            _ => 0,
        };
        let txn = self.db.begin().await?;
        if !platform::outbox::first_delivery(&txn, QUEUE.name, event.event_id).await? {
            return Ok(());
        }
        if delta != 0 {
            // Kept within 0..=seats_total whatever order events arrive in.
            let updated = Expr::col(showtime::Column::SeatsAvailable).add(delta);
            let clamped = Expr::case(updated.clone().lt(0), 0)
                .case(
                    updated.clone().gt(Expr::col(showtime::Column::SeatsTotal)),
                    Expr::col(showtime::Column::SeatsTotal),
                )
                .finally(updated);
            showtime::Entity::update_many()
                .col_expr(showtime::Column::SeatsAvailable, clamped.into())
                .filter(showtime::Column::Id.eq(seats.showtime_id))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(())
    }
}
