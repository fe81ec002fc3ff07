//! What movie does with booking events: keep `seats_available` of showtimes up to date.
//! Consumed from `movie_queue`; every event is recorded in the inbox in the same
//! transaction as its effect, so a redelivery changes nothing.
//!
//! Movie reads only the fields it needs ([`BookingSeats`], a tolerant reader): it never
//! depends on the booking crate, which depends on movie. A `booking.confirmed` (still bound on
//! queues declared before it was unbound) is recorded and changes nothing.

use async_trait::async_trait;
use platform::error::Failure;
use platform::events::{Envelope, EventHandler, HandlerError};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use super::entity::showtime;
use crate::api::{BookingSeats, QUEUE};

/// Applies booking events to `seats_available`: a created booking takes its seats, a
/// cancelled or expired one gives them back, a confirmation changes nothing.
pub struct BookingEvents {
    db: DatabaseConnection,
}

impl BookingEvents {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

#[async_trait]
impl EventHandler for BookingEvents {
    async fn handle(&self, event: &Envelope) -> Result<(), HandlerError> {
        let change = match event.decode()? {
            BookingSeats::Taken(seats) => Some((seats.showtime_id, -seat_count(&seats.seat_ids)?)),
            BookingSeats::Released(seats) => Some((seats.showtime_id, seat_count(&seats.seat_ids)?)),
            BookingSeats::Other => None,
        };
        let txn = platform::db::begin(&self.db, "handle event").await?;
        if !platform::outbox::first_delivery(&txn, QUEUE.name, event.event_id).await? {
            return Ok(());
        }
        if let Some((target, delta)) = change.filter(|(_, delta)| *delta != 0) {
            // The plain sum of every event's change, even below 0 or above seats_total for a
            // while: different bookings' events arrive in any order (ADR 17), and a sum kept
            // within bounds would lose the change of a booking seen before the expiry that
            // freed its seats. Each event counts once (the inbox), so the sum ends exact; the
            // showtime's view shows it within 0..=seats_total.
            showtime::Entity::update_many()
                .col_expr(showtime::Column::SeatsAvailable, Expr::col(showtime::Column::SeatsAvailable).add(delta))
                .filter(showtime::Column::Id.eq(target.0))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(())
    }
}

fn seat_count(seats: &[crate::api::SeatId]) -> Result<i32, HandlerError> {
    i32::try_from(seats.len()).map_err(|e| Failure::new("seat count", e).into())
}
