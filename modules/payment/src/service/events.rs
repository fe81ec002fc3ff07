//! What payment does with booking events (`payment_queue`): a cancelled or expired booking
//! is closed in the ledger and its completed payment becomes due for a refund, in one
//! transaction with the inbox record; the refund worker is woken to pay it back at once.
//!
//! `was_paid` is not read: whatever the booking knew, the payment's own records say whether
//! there is money to give back (a charge that completed after the hold ran out was never
//! confirmed, so `was_paid` is false).

use std::sync::Arc;

use async_trait::async_trait;
use booking::api::BookingEvent;
use platform::events::{Envelope, EventHandler, HandlerError};

use super::PaymentService;

use crate::api::QUEUE;

pub struct BookingEvents {
    service: Arc<PaymentService>,
}

impl BookingEvents {
    pub fn new(service: Arc<PaymentService>) -> Self {
        Self { service }
    }
}

#[async_trait]
impl EventHandler for BookingEvents {
    async fn handle(&self, event: &Envelope) -> Result<(), HandlerError> {
        let BookingEvent::Cancelled(cancelled) = event.decode()? else {
            // `payment_queue` binds only `booking.cancelled`; another key is a binding mistake.
            return Err(HandlerError::msg(format!("payment does not handle {}", event.routing_key)));
        };
        let txn = platform::db::begin(&self.service.db, "handle event").await?;
        if !platform::outbox::first_delivery(&txn, QUEUE.name, event.event_id).await? {
            return Ok(());
        }
        let due = self.service.close_booking(&txn, cancelled.booking_id).await?;
        txn.commit().await?;
        if due > 0 {
            // The refund worker pays it back at once: the gateway call stays off this queue's
            // consumer, and only the worker refunds what is due.
            tracing::info!(booking_id = %cancelled.booking_id, "booking cancelled; its payment is due a refund");
            self.service.refunds.notify_one();
        }
        Ok(())
    }
}
