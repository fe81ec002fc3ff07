//! What booking does with payment events (`booking_queue`): `payment.completed` confirms a
//! pending booking and publishes `booking.confirmed`; `payment.failed` leaves it pending so
//! the customer can retry until the hold runs out (the failed charge no longer keeps an
//! expired hold from the sweeper). `payment.completed` confirms against the time the charge
//! was accepted (`accepted_at`), not the time the event is handled. Each event is recorded in the inbox in the
//! transaction of its effect.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use platform::error::Failure;
use platform::events::{Envelope, EventHandler, HandlerError};
use sea_orm::TransactionTrait;
use serde::Deserialize;
use uuid::Uuid;

use super::BookingService;
use crate::api::BookingId;

use crate::api::QUEUE;

#[derive(Deserialize)]
struct PaymentOutcome {
    booking_id: BookingId,
    payment_id: Uuid,
    /// When payment accepted the charge (absent in events of older versions: then the time
    /// of handling decides).
    #[serde(default)]
    accepted_at: Option<DateTime<Utc>>,
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
        if event.routing_key == "payment.failed" {
            self.service.release_payment_hold(&txn, outcome.booking_id, outcome.payment_id).await?;
        } else if event.routing_key == "payment.completed"
            && !self
                .service
                .confirm(&txn, outcome.booking_id, outcome.accepted_at)
                .await
                .map_err(|e| Failure::new("confirming the booking", e))?
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
