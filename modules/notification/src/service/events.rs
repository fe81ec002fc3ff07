//! What notification does with booking and payment events (`notification_queue`): it
//! records them. One transaction writes the inbox record, what `booking.created` says about
//! its booking (`booking_facts`: the screening, for the messages of payment events, which do
//! not name it), and the notification `pending` with the event's facts as its payload; the
//! delivery worker writes and sends the message afterwards (see [`compose`](super::compose)).
//! A `payment.completed` (still bound on queues declared before issue 12) is recorded in the
//! inbox and changes nothing: the confirmation that follows it says what was paid.
//! Nothing here calls another module, so a consumer never waits for auth, movie or a mail
//! server, and an outage of any of them delays mail without failing or dead-lettering an
//! event.

use std::sync::Arc;

use async_trait::async_trait;
use booking::api::{BookingCreated, BookingEvent, BookingId, CancelReason, Ticket};
use chrono::{DateTime, Utc};
use movie::api::{SeatId, ShowtimeId};
use payment::api::PaymentEvent;
use platform::db::Transaction;
use platform::db::now;
use platform::events::{Envelope, Event, EventHandler, HandlerError};
use platform::identity::UserId;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, EntityTrait};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::NotificationService;
use super::entity::{booking_facts, notification};
use crate::api::{Channel, DeliveryStatus, NotificationKind};

use crate::api::QUEUE;

/// A notification's payload: what its event said that the message needs. What the event did
/// not say (a payment event's screening, the amount in an event older than issue 12) comes
/// from `booking_facts` when the message is written.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Payload {
    pub booking_id: BookingId,
    pub showtime_id: Option<ShowtimeId>,
    #[serde(default)]
    pub seat_ids: Vec<SeatId>,
    /// The amount the message names: the booking's (paid or refunded with a cancellation),
    /// the failed charge's, or the refund's.
    pub amount_cents: Option<i64>,
    pub expires_at: Option<DateTime<Utc>>,
    pub reason: Option<CancelReason>,
    #[serde(default)]
    pub was_paid: bool,
    pub failure_reason: Option<String>,
    /// The screening and the currency as the event told them (absent from payloads written
    /// before issue 12; a payment event tells only the currency).
    #[serde(default)]
    pub ticket: Ticket,
}

impl Payload {
    /// Nothing known but the booking.
    fn of(booking_id: BookingId) -> Self {
        Self {
            booking_id,
            showtime_id: None,
            seat_ids: Vec::new(),
            amount_cents: None,
            expires_at: None,
            reason: None,
            was_paid: false,
            failure_reason: None,
            ticket: Ticket::default(),
        }
    }
}

pub struct BookingAndPaymentEvents {
    service: Arc<NotificationService>,
}

impl BookingAndPaymentEvents {
    pub fn new(service: Arc<NotificationService>) -> Self {
        Self { service }
    }
}

/// What one event records.
enum Effect {
    /// `booking.created`: the booking's facts, and its message.
    Created(BookingCreated),
    /// `payment.completed`, still bound on queues declared before issue 12: nothing.
    Nothing,
    /// Any other: a message.
    Message(UserId, NotificationKind, Payload),
}

/// The currency alone, as a payment event tells it.
fn currency(currency: Option<String>) -> Ticket {
    Ticket { currency, ..Ticket::default() }
}

fn decode(event: &Envelope) -> Result<Effect, HandlerError> {
    if BookingEvent::KEYS.contains(&event.routing_key.as_str()) {
        return Ok(match event.decode()? {
            BookingEvent::Created(e) => Effect::Created(e),
            BookingEvent::Confirmed(e) => {
                let payload = Payload {
                    showtime_id: Some(e.showtime_id),
                    seat_ids: e.seat_ids,
                    amount_cents: e.amount_cents,
                    ticket: e.ticket,
                    ..Payload::of(e.booking_id)
                };
                Effect::Message(e.user_id, NotificationKind::BookingConfirmed, payload)
            }
            BookingEvent::Cancelled(e) => {
                let kind = match e.reason {
                    CancelReason::Expired => NotificationKind::BookingExpired,
                    CancelReason::User | CancelReason::Admin => NotificationKind::BookingCancelled,
                };
                let payload = Payload {
                    showtime_id: Some(e.showtime_id),
                    seat_ids: e.seat_ids,
                    amount_cents: e.amount_cents,
                    reason: Some(e.reason),
                    was_paid: e.was_paid,
                    ticket: e.ticket,
                    ..Payload::of(e.booking_id)
                };
                Effect::Message(e.user_id, kind, payload)
            }
        });
    }
    Ok(match event.decode()? {
        PaymentEvent::Completed(_) => Effect::Nothing,
        PaymentEvent::Failed(e) => {
            let payload = Payload {
                failure_reason: Some(e.failure_reason),
                amount_cents: e.amount_cents,
                ticket: currency(e.currency),
                ..Payload::of(e.booking_id)
            };
            Effect::Message(e.user_id, NotificationKind::PaymentFailed, payload)
        }
        PaymentEvent::Refunded(e) => {
            let payload = Payload {
                amount_cents: Some(e.amount_cents),
                ticket: currency(e.currency),
                ..Payload::of(e.booking_id)
            };
            Effect::Message(e.user_id, NotificationKind::PaymentRefunded, payload)
        }
    })
}

#[async_trait]
impl EventHandler for BookingAndPaymentEvents {
    async fn handle(&self, event: &Envelope) -> Result<(), HandlerError> {
        let effect = decode(event)?;
        let service = &self.service;
        let txn = platform::db::begin(&service.db, "handle event").await?;
        if !platform::outbox::first_delivery(&txn, QUEUE.name, event.event_id).await? {
            return Ok(());
        }
        let message = match effect {
            Effect::Created(e) => {
                record_booking(&txn, &e).await?;
                let payload = Payload {
                    showtime_id: Some(e.showtime_id),
                    seat_ids: e.seat_ids,
                    amount_cents: Some(e.amount_cents),
                    expires_at: Some(e.expires_at),
                    ticket: e.ticket,
                    ..Payload::of(e.booking_id)
                };
                Some((e.user_id, NotificationKind::BookingCreated, payload))
            }
            Effect::Nothing => None,
            Effect::Message(user, kind, payload) => Some((user, kind, payload)),
        };
        let stored = match message {
            Some((user, kind, payload)) => {
                insert(&txn, event.event_id, user, kind, &payload, service.sender.channel()).await?;
                true
            }
            None => false,
        };
        txn.commit().await?;
        if stored {
            service.wake.notify_one();
        }
        Ok(())
    }
}

/// The booking's screening, seats and amount, for the messages of its payments.
async fn record_booking(txn: &Transaction, e: &BookingCreated) -> Result<(), HandlerError> {
    let row = booking_facts::ActiveModel {
        booking_id: Set(e.booking_id.0),
        showtime_id: Set(Some(e.showtime_id.0)),
        seat_ids: Set(Some(serde_json::to_string(&e.seat_ids)?)),
        amount_cents: Set(Some(e.amount_cents)),
        updated_at: Set(now()),
        ticket: Set(Some(serde_json::to_string(&e.ticket)?)),
    };
    // A row may be there already: written by a `payment.completed` before issue 12.
    let columns = [
        booking_facts::Column::ShowtimeId,
        booking_facts::Column::SeatIds,
        booking_facts::Column::AmountCents,
        booking_facts::Column::UpdatedAt,
        booking_facts::Column::Ticket,
    ];
    booking_facts::Entity::insert(row)
        .on_conflict(OnConflict::column(booking_facts::Column::BookingId).update_columns(columns).to_owned())
        .exec(txn)
        .await?;
    Ok(())
}

async fn insert(
    txn: &Transaction,
    event_id: Uuid,
    user: UserId,
    kind: NotificationKind,
    payload: &Payload,
    channel: Channel,
) -> Result<(), HandlerError> {
    let now = now();
    let row = notification::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user.0),
        event_id: Set(event_id),
        kind: Set(kind),
        channel: Set(channel),
        payload: Set(serde_json::to_string(payload)?),
        recipient: Set(None),
        subject: Set(None),
        body_text: Set(None),
        body_html: Set(None),
        status: Set(DeliveryStatus::Pending),
        attempts: Set(0),
        last_error: Set(None),
        next_attempt_at: Set(now),
        created_at: Set(now),
        sent_at: Set(None),
        traceparent: Set(platform::trace::current()),
    };
    notification::Entity::insert(row).exec(txn).await?;
    Ok(())
}
