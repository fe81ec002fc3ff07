//! What payment does with booking events (`payment_queue`): a cancelled or expired booking
//! is closed in the ledger and its completed payment becomes due for a refund, in one
//! transaction with the inbox record; the refund worker is woken to pay it back at once.

use std::sync::Arc;

use async_trait::async_trait;
use booking::api::BookingId;
use platform::events::{Envelope, EventHandler, HandlerError};
use sea_orm::TransactionTrait;
use serde::Deserialize;

use super::PaymentService;

use crate::api::QUEUE;

/// The fields payment reads of `booking.cancelled`. `was_paid` is not needed: whatever the
/// booking knew, the payment's own records say whether there is money to give back (a charge
/// that completed after the hold ran out was never confirmed, so `was_paid` is false).
#[derive(Deserialize)]
struct Cancelled {
    booking_id: BookingId,
}

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
        let cancelled: Cancelled = event.decode()?;
        let txn = self.service.db.begin().await?;
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
