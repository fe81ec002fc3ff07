//! What booking does with payment events (`booking_queue`): `payment.completed` confirms a
//! pending booking and publishes `booking.confirmed`; `payment.failed` leaves it pending so
//! the customer can retry until the hold runs out. Each event is recorded in the inbox in the
//! transaction of its effect.

use std::sync::Arc;

use async_trait::async_trait;
use platform::events::{Envelope, EventHandler, HandlerError};
use sea_orm::TransactionTrait;
use serde::Deserialize;

use super::BookingService;
use crate::api::BookingId;

use crate::api::QUEUE;

#[derive(Deserialize)]
struct PaymentOutcome {
    booking_id: BookingId,
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
        let txn = self.service.db.begin().await?;
        if !platform::outbox::first_delivery(&txn, QUEUE.name, event.event_id).await? {
            return Ok(());
        }
        if event.routing_key == "payment.completed"
            && !self.service.confirm(&txn, outcome.booking_id).await.map_err(|e| HandlerError(e.to_string()))?
        {
            // Paid after the hold ran out or was cancelled: the booking stays unconfirmed. Its
            // `booking.cancelled` (from the sweeper, or the cancel) makes payment refund it.
            tracing::warn!(booking_id = %outcome.booking_id, "payment completed for a booking that is no longer pending");
        }
        txn.commit().await?;
        self.service.relay.notify_one();
        Ok(())
    }
}
