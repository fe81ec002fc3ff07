//! What booking does with payment events (`booking_queue`): `payment.completed` confirms a
//! pending booking and publishes `booking.confirmed`; `payment.failed` leaves it pending so
//! the customer can retry until the hold runs out (the failed charge no longer keeps an
//! expired hold from the sweeper). `payment.completed` confirms against the time the charge
//! was accepted (`accepted_at`), not the time the event is handled. Each event is recorded in the inbox in the
//! transaction of its effect.
//!
//! Also how booking's own events are written: [`ticket`] is what every one of them tells of
//! the screening and seats.

use std::sync::Arc;

use async_trait::async_trait;
use movie::api::{MovieApi, Showtime};
use platform::error::Failure;
use platform::events::{Envelope, EventHandler, HandlerError};

use super::BookingService;
use super::entity::booking;
use crate::api::{BookedSeat, PaymentOutcome, QUEUE, Ticket};

/// The screening and seats of booking `b`, as its events carry them.
pub(super) fn ticket(b: &booking::Model, seats: Vec<BookedSeat>) -> Ticket {
    Ticket {
        currency: Some(b.currency.clone()),
        starts_at: Some(b.starts_at),
        seats,
        movie_title: b.movie_title.clone(),
        theater: b.theater_name.clone(),
        location: b.theater_location.clone(),
    }
}

/// The names a booking keeps of its screening, for its events.
#[derive(Default)]
pub(super) struct ScreeningNames {
    pub movie_title: Option<String>,
    pub theater_name: Option<String>,
    pub theater_location: Option<String>,
}

/// The names of `showtime`'s movie and theater (catalog reads that movie answers from its
/// cache). Each is `None` when movie cannot tell it now: they only make the customer's
/// messages nicer (notification then reads them itself), so a booking never waits or fails
/// for them.
pub(super) async fn screening_names(movies: &dyn MovieApi, showtime: &Showtime) -> ScreeningNames {
    let (movie, theater) = tokio::join!(movies.movie(showtime.movie_id), movies.theater(showtime.theater_id));
    let mut names = ScreeningNames::default();
    match movie {
        Ok(movie) => names.movie_title = Some(movie.title),
        Err(e) => tracing::warn!(movie_id = %showtime.movie_id, error = %e, "movie title unknown; booking without it"),
    }
    match theater {
        Ok(theater) => {
            names.theater_name = Some(theater.name);
            names.theater_location = Some(theater.location);
        }
        Err(e) => {
            tracing::warn!(theater_id = %showtime.theater_id, error = %e, "theater unknown; booking without its name")
        }
    }
    names
}

pub struct PaymentEvents {
    service: Arc<BookingService>,
}

impl PaymentEvents {
    pub fn new(service: Arc<BookingService>) -> Self {
        Self { service }
    }
}

#[async_trait]
impl EventHandler for PaymentEvents {
    async fn handle(&self, event: &Envelope) -> Result<(), HandlerError> {
        let outcome: PaymentOutcome = event.decode()?;
        let txn = platform::db::begin(&self.service.db, "handle event").await?;
        if !platform::outbox::first_delivery(&txn, QUEUE.name, event.event_id).await? {
            return Ok(());
        }
        let mut seats_changed = None;
        match outcome {
            PaymentOutcome::Failed(failed) => {
                self.service.release_payment_hold(&txn, failed.booking_id, failed.payment_id).await?;
            }
            PaymentOutcome::Completed(paid) => {
                seats_changed = self
                    .service
                    .confirm(&txn, paid.booking_id, paid.accepted_at)
                    .await
                    .map_err(|e| Failure::new("confirming the booking", e))?;
                if seats_changed.is_none() {
                    // Paid after the hold ran out or was cancelled: the booking stays unconfirmed. Its
                    // `booking.cancelled` (from the sweeper, or the cancel) makes payment refund it.
                    tracing::warn!(booking_id = %paid.booking_id, "payment completed for a booking that is no longer pending");
                }
            }
        }
        txn.commit().await?;
        self.service.relay.notify_one();
        if let Some(showtime) = seats_changed {
            self.service.seats_changed(showtime).await;
        }
        Ok(())
    }
}
