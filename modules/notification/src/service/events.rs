//! What notification does with booking and payment events (`notification_queue`).
//!
//! Each event is read, the message's facts gathered (the user through [`AuthApi`], the
//! screening through [`MovieApi`], the amount from what earlier events of the booking said),
//! the message rendered, and then one transaction records the event in the inbox, updates the
//! booking's facts and stores the notification `pending`: a redelivered event changes nothing.
//! A fact that cannot be had yet (auth or movie unreachable, an event ahead of the one it
//! follows) fails the delivery, which the bus retries with backoff.

use std::sync::Arc;

use async_trait::async_trait;
use auth::api::AuthError;
use booking::api::{BookingCancelled, BookingConfirmed, BookingCreated, BookingId, CancelReason};
use chrono::{DateTime, Utc};
use movie::api::{MovieError, SeatId, ShowtimeId};
use payment::api::{PaymentCompleted, PaymentFailed, PaymentRefunded};
use platform::events::{Envelope, EventHandler, HandlerError};
use platform::identity::UserId;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};
use uuid::Uuid;

use super::NotificationService;
use super::entity::{booking_facts, notification};
use super::templates::{MessageContext, Show};
use crate::api::{DeliveryStatus, NotificationKind};

pub const QUEUE: &str = "notification_queue";
/// `payment.completed` makes no message of its own (the confirmation follows it): it tells
/// the amount paid, which `booking.confirmed` does not carry.
pub const ROUTING_KEYS: &[&str] = &[
    "booking.created",
    "booking.confirmed",
    "booking.cancelled",
    "payment.completed",
    "payment.failed",
    "payment.refunded",
];

pub struct BookingAndPaymentEvents {
    service: Arc<NotificationService>,
}

impl BookingAndPaymentEvents {
    pub fn new(service: Arc<NotificationService>) -> Self {
        Self { service }
    }
}

/// A message to write: to whom, of which kind, with what.
struct Draft {
    user: UserId,
    kind: NotificationKind,
    context: MessageContext,
}

/// What an event changes: the booking's facts, and the message it causes.
#[derive(Default)]
struct Effect {
    facts: Option<booking_facts::ActiveModel>,
    /// `payment.completed`: the amount charged replaces the booking's.
    paid: Option<(BookingId, i64)>,
    draft: Option<Draft>,
}

#[async_trait]
impl EventHandler for BookingAndPaymentEvents {
    async fn handle(&self, event: &Envelope) -> Result<(), HandlerError> {
        let service = &self.service;
        let effect = match event.routing_key.as_str() {
            "booking.created" => service.created(event.decode()?).await?,
            "booking.confirmed" => service.confirmed(event.decode()?).await?,
            "booking.cancelled" => service.cancelled(event.decode()?).await?,
            "payment.completed" => service.completed(event.decode()?).await?,
            "payment.failed" => service.failed(event.decode()?).await?,
            "payment.refunded" => service.refunded(event.decode()?).await?,
            other => return Err(HandlerError(format!("notification does not handle {other}"))),
        };
        service.record(event, effect).await
    }
}

/// `2500` in `EUR` → `25.00 EUR`.
fn money(cents: i64, currency: &str) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    format!("{sign}{}.{:02} {currency}", cents / 100, cents % 100).trim_end().to_owned()
}

fn when(at: DateTime<Utc>) -> String {
    at.format("%a %-d %b %Y, %H:%M UTC").to_string()
}

fn movie_error(e: MovieError) -> HandlerError {
    HandlerError(format!("movie: {e}"))
}

impl NotificationService {
    async fn created(&self, e: BookingCreated) -> Result<Effect, HandlerError> {
        let (show, currency) = self.show(e.showtime_id, &e.seat_ids).await?;
        let now = Utc::now();
        let facts = booking_facts::ActiveModel {
            booking_id: Set(e.booking_id.0),
            showtime_id: Set(e.showtime_id.0),
            seat_ids: Set(serde_json::to_string(&e.seat_ids)?),
            amount_cents: Set(e.amount_cents),
            currency: Set(currency.clone()),
            created_at: Set(now),
        };
        let mut context = self.context(e.user_id, e.booking_id, show).await?;
        if let Some(c) = context.as_mut() {
            c.amount = Some(money(e.amount_cents, &currency));
            c.expires_at = Some(when(e.expires_at));
            c.hold_minutes = Some(((e.expires_at - now).num_seconds().max(0) + 59) / 60);
        }
        let draft = context.map(|context| Draft { user: e.user_id, kind: NotificationKind::BookingCreated, context });
        Ok(Effect { facts: Some(facts), paid: None, draft })
    }

    async fn confirmed(&self, e: BookingConfirmed) -> Result<Effect, HandlerError> {
        let facts = self.facts(e.booking_id).await?.ok_or_else(|| {
            HandlerError(format!("booking {} confirmed before notification heard it was created", e.booking_id))
        })?;
        let (show, _) = self.show(e.showtime_id, &e.seat_ids).await?;
        let mut context = self.context(e.user_id, e.booking_id, show).await?;
        if let Some(c) = context.as_mut() {
            c.amount = Some(money(facts.amount_cents, &facts.currency));
        }
        let draft = context.map(|context| Draft { user: e.user_id, kind: NotificationKind::BookingConfirmed, context });
        Ok(Effect { draft, ..Effect::default() })
    }

    async fn cancelled(&self, e: BookingCancelled) -> Result<Effect, HandlerError> {
        let facts = self.facts(e.booking_id).await?;
        let (show, _) = self.show(e.showtime_id, &e.seat_ids).await?;
        let mut context = self.context(e.user_id, e.booking_id, show).await?;
        let kind = match e.reason {
            CancelReason::Expired => NotificationKind::BookingExpired,
            CancelReason::User | CancelReason::Admin => NotificationKind::BookingCancelled,
        };
        if let Some(c) = context.as_mut() {
            c.cancelled_by = match e.reason {
                CancelReason::User => Some("user".to_owned()),
                CancelReason::Admin => Some("admin".to_owned()),
                CancelReason::Expired => None,
            };
            c.was_paid = e.was_paid;
            c.amount = facts.map(|f| money(f.amount_cents, &f.currency));
        }
        let draft = context.map(|context| Draft { user: e.user_id, kind, context });
        Ok(Effect { draft, ..Effect::default() })
    }

    async fn completed(&self, e: PaymentCompleted) -> Result<Effect, HandlerError> {
        if self.facts(e.booking_id).await?.is_none() {
            return Err(HandlerError(format!(
                "booking {} paid before notification heard it was created",
                e.booking_id
            )));
        }
        Ok(Effect { paid: Some((e.booking_id, e.amount_cents)), ..Effect::default() })
    }

    async fn failed(&self, e: PaymentFailed) -> Result<Effect, HandlerError> {
        let mut context = self.known_booking(e.user_id, e.booking_id).await?;
        if let Some(c) = context.as_mut() {
            c.failure_reason = Some(match e.failure_reason.as_str() {
                "card_declined" => "the card was declined".to_owned(),
                "insufficient_funds" => "the card has insufficient funds".to_owned(),
                other => other.replace('_', " "),
            });
        }
        let draft = context.map(|context| Draft { user: e.user_id, kind: NotificationKind::PaymentFailed, context });
        Ok(Effect { draft, ..Effect::default() })
    }

    async fn refunded(&self, e: PaymentRefunded) -> Result<Effect, HandlerError> {
        let currency = self.facts(e.booking_id).await?.map(|f| f.currency).unwrap_or_default();
        let mut context = self.known_booking(e.user_id, e.booking_id).await?;
        if let Some(c) = context.as_mut() {
            c.amount = Some(money(e.amount_cents, &currency));
        }
        let draft = context.map(|context| Draft { user: e.user_id, kind: NotificationKind::PaymentRefunded, context });
        Ok(Effect { draft, ..Effect::default() })
    }

    /// The context of a payment event: the screening if booking's events told of it.
    async fn known_booking(&self, user: UserId, booking: BookingId) -> Result<Option<MessageContext>, HandlerError> {
        let show = match self.facts(booking).await? {
            Some(f) => {
                let seats: Vec<SeatId> = serde_json::from_str(&f.seat_ids)?;
                self.show(ShowtimeId(f.showtime_id), &seats).await?.0
            }
            None => None,
        };
        self.context(user, booking, show).await
    }

    async fn facts(&self, booking: BookingId) -> Result<Option<booking_facts::Model>, HandlerError> {
        Ok(booking_facts::Entity::find_by_id(booking.0).one(&self.db).await?)
    }

    /// The screening as the message names it, and its currency; none when movie no longer
    /// knows the showtime. Three catalog reads that movie answers from its cache.
    async fn show(&self, showtime: ShowtimeId, seats: &[SeatId]) -> Result<(Option<Show>, String), HandlerError> {
        let st = match self.movies.showtime(showtime).await {
            Ok(st) => st,
            Err(MovieError::NotFound(_)) => return Ok((None, String::new())),
            Err(e) => return Err(movie_error(e)),
        };
        let (movie, theater) = tokio::join!(self.movies.movie(st.movie_id), self.movies.theater(st.theater_id));
        let (movie, theater) = match (movie, theater) {
            (Ok(m), Ok(t)) => (m, t),
            (Err(MovieError::NotFound(_)), _) | (_, Err(MovieError::NotFound(_))) => return Ok((None, st.currency)),
            (Err(e), _) | (_, Err(e)) => return Err(movie_error(e)),
        };
        let labels =
            theater.seats.iter().filter(|s| seats.contains(&s.id)).map(|s| format!("{}{}", s.row, s.number)).collect();
        let show = Show {
            movie_title: movie.title,
            theater: theater.name,
            location: theater.location,
            starts_at: when(st.start_time),
            seats: labels,
        };
        Ok((Some(show), st.currency))
    }

    /// The message context with the user's name; none when the account is gone (no one to
    /// write to).
    async fn context(
        &self,
        user: UserId,
        booking: BookingId,
        show: Option<Show>,
    ) -> Result<Option<MessageContext>, HandlerError> {
        match self.auth.user(user).await {
            Ok(account) => Ok(Some(MessageContext {
                username: account.username,
                email: account.email,
                booking_id: booking.to_string(),
                show,
                amount: None,
                expires_at: None,
                hold_minutes: None,
                cancelled_by: None,
                was_paid: false,
                failure_reason: None,
            })),
            Err(AuthError::NotFound) => {
                tracing::warn!(user_id = %user, "no account for a notification's user; nothing sent");
                Ok(None)
            }
            Err(AuthError::Unauthenticated(reason)) => {
                // Not an outage: this deployment's services.token differs from auth's. The event
                // is retried, then dead-lettered, until the configuration is fixed.
                tracing::error!(reason, "auth refuses this process's services.token: no address can be read");
                Err(HandlerError(format!("auth refused the service token: {reason}")))
            }
            Err(e) => Err(HandlerError(format!("auth: {e}"))),
        }
    }

    /// One transaction: the inbox record, the booking's facts, the notification.
    async fn record(&self, event: &Envelope, effect: Effect) -> Result<(), HandlerError> {
        let rendered = match &effect.draft {
            Some(d) => Some(self.templates.render(d.kind, &d.context).map_err(HandlerError)?),
            None => None,
        };
        let txn = self.db.begin().await?;
        if !platform::outbox::first_delivery(&txn, QUEUE, event.event_id).await? {
            return Ok(());
        }
        if let Some(facts) = effect.facts {
            booking_facts::Entity::insert(facts)
                .on_conflict_do_nothing_on([booking_facts::Column::BookingId])
                .exec(&txn)
                .await?;
        }
        if let Some((booking, amount)) = effect.paid {
            booking_facts::Entity::update_many()
                .col_expr(booking_facts::Column::AmountCents, Expr::value(amount))
                .filter(booking_facts::Column::BookingId.eq(booking.0))
                .exec(&txn)
                .await?;
        }
        let stored = if let (Some(draft), Some(message)) = (effect.draft, rendered) {
            let now = super::now();
            let row = notification::ActiveModel {
                id: Set(Uuid::now_v7()),
                user_id: Set(draft.user.0),
                event_id: Set(event.event_id),
                kind: Set(draft.kind.as_str().to_owned()),
                channel: Set(self.sender.channel().as_str().to_owned()),
                recipient: Set(draft.context.email),
                subject: Set(message.subject),
                body_text: Set(message.text),
                body_html: Set(message.html),
                status: Set(DeliveryStatus::Pending.as_str().to_owned()),
                attempts: Set(0),
                last_error: Set(None),
                next_attempt_at: Set(now),
                created_at: Set(now),
                sent_at: Set(None),
            };
            notification::Entity::insert(row).exec(&txn).await?;
            true
        } else {
            false
        };
        txn.commit().await?;
        if stored {
            self.wake.notify_one();
        }
        Ok(())
    }
}
