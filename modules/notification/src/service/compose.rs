//! Writing a notification's message, by the delivery worker before its first send: the
//! address through [`AuthApi`], the screening and amount from the payload, then the templates.
//! The address stays a read: auth owns it and it may change (a message goes to the address
//! of the moment, and events do not spread addresses across every module's tables).
//!
//! What the payload lacks comes from elsewhere: a payment event names no screening, so it is
//! what `booking.created` told (`booking_facts`). Only for events older than issue 12, or a
//! booking made while movie could not tell the names, is the screening read from
//! [`MovieApi`] (cached catalog reads). A fact
//! that cannot be had yet (auth or movie unreachable, a confirmation whose amount has not
//! been heard of) is a failed attempt like a mail server that is down: retried with backoff.

use auth::api::AuthError;
use booking::api::{BookingId, CancelReason, Ticket};
use chrono::{DateTime, Utc};
use movie::api::{MovieError, SeatId, ShowtimeId};
use platform::identity::UserId;
use sea_orm::EntityTrait;

use super::NotificationService;
use super::channel::SendError;
use super::entity::{booking_facts, notification};
use super::events::Payload;
use super::templates::{MessageContext, Show};
use crate::api::NotificationKind;

/// A message ready to send.
pub struct Prepared {
    pub recipient: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

fn retry(message: String) -> SendError {
    SendError { message, permanent: false }
}

fn give_up(message: String) -> SendError {
    SendError { message, permanent: true }
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

/// The screening as the event told it: only when it told all of it (booking events since
/// issue 12, of bookings made while movie could tell the names).
fn told(ticket: &Ticket) -> Option<Show> {
    Some(Show {
        movie_title: ticket.movie_title.clone()?,
        theater: ticket.theater.clone()?,
        location: ticket.location.clone()?,
        starts_at: when(ticket.starts_at?),
        seats: ticket.seats.iter().map(|s| format!("{}{}", s.row, s.number)).collect(),
    })
}

fn movie_error(e: MovieError) -> SendError {
    retry(format!("movie: {e}"))
}

impl NotificationService {
    /// # Errors
    /// A fact that cannot be had now (retried), or one that never will: the account is gone,
    /// the payload or a template is broken (given up).
    pub(super) async fn prepare(&self, n: &notification::Model) -> Result<Prepared, SendError> {
        let kind = n.kind;
        let payload: Payload =
            serde_json::from_str(&n.payload).map_err(|e| give_up(format!("unreadable payload: {e}")))?;
        // Booking events carry all their message needs; the others lean on what
        // booking.created said.
        let complete = payload.showtime_id.is_some() && payload.amount_cents.is_some();
        let facts = if complete || kind == NotificationKind::BookingCreated {
            None
        } else {
            booking_facts::Entity::find_by_id(payload.booking_id.0)
                .one(&self.db)
                .await
                .map_err(|e| retry(format!("notification database: {e}")))?
        };
        let unreadable = |e: serde_json::Error| give_up(format!("booking facts: {e}"));
        let (facts_showtime, facts_seats, facts_ticket, booked) = match facts {
            Some(f) => {
                let seats: Vec<SeatId> = match f.seat_ids {
                    Some(s) => serde_json::from_str(&s).map_err(unreadable)?,
                    None => Vec::new(),
                };
                let ticket: Option<Ticket> =
                    f.ticket.map(|t| serde_json::from_str(&t)).transpose().map_err(unreadable)?;
                (f.showtime_id.map(ShowtimeId), seats, ticket.unwrap_or_default(), f.amount_cents)
            }
            None => (None, Vec::new(), Ticket::default(), None),
        };
        // A payment event names only the booking: its screening is what booking.created said.
        let (showtime, seats, ticket) = match payload.showtime_id {
            Some(st) => (Some(st), payload.seat_ids.clone(), payload.ticket.clone()),
            None => (facts_showtime, facts_seats, facts_ticket),
        };
        let (show, show_currency) = match (told(&ticket), showtime) {
            (Some(show), _) => (Some(show), None),
            (None, Some(st)) => self.show(st, &seats).await?,
            (None, None) => (None, None),
        };
        let currency = payload.ticket.currency.clone().or(ticket.currency).or(show_currency).unwrap_or_default();
        let amount_cents = match kind {
            NotificationKind::BookingCreated | NotificationKind::PaymentRefunded => payload.amount_cents,
            NotificationKind::BookingConfirmed => Some(payload.amount_cents.or(booked).ok_or_else(|| {
                retry(format!("booking {} confirmed before notification heard what it cost", payload.booking_id))
            })?),
            NotificationKind::BookingCancelled | NotificationKind::BookingExpired | NotificationKind::PaymentFailed => {
                payload.amount_cents.or(booked)
            }
        };
        let context = MessageContext {
            amount: amount_cents.map(|c| money(c, &currency)),
            expires_at: payload.expires_at.map(when),
            hold_minutes: payload.expires_at.map(|at| ((at - n.created_at).num_seconds().max(0) + 59) / 60),
            cancelled_by: match payload.reason {
                Some(CancelReason::User) => Some("user".to_owned()),
                Some(CancelReason::Admin) => Some("admin".to_owned()),
                Some(CancelReason::Expired) | None => None,
            },
            was_paid: payload.was_paid,
            failure_reason: payload.failure_reason.as_deref().map(|reason| match reason {
                "card_declined" => "the card was declined".to_owned(),
                "insufficient_funds" => "the card has insufficient funds".to_owned(),
                other => other.replace('_', " "),
            }),
            ..self.recipient(UserId(n.user_id), payload.booking_id, show).await?
        };
        let rendered = self.templates.render(kind, &context).map_err(give_up)?;
        Ok(Prepared { recipient: context.email, subject: rendered.subject, text: rendered.text, html: rendered.html })
    }

    /// The screening as the message names it, and its currency, read from movie; none when
    /// movie no longer knows the showtime. Three catalog reads that movie answers from its
    /// cache.
    async fn show(&self, showtime: ShowtimeId, seats: &[SeatId]) -> Result<(Option<Show>, Option<String>), SendError> {
        let st = match self.movies.showtime(showtime).await {
            Ok(st) => st,
            Err(MovieError::NotFound(_)) => return Ok((None, None)),
            Err(e) => return Err(movie_error(e)),
        };
        let (movie, theater) = tokio::join!(self.movies.movie(st.movie_id), self.movies.theater(st.theater_id));
        let (movie, theater) = match (movie, theater) {
            (Ok(m), Ok(t)) => (m, t),
            (Err(MovieError::NotFound(_)), _) | (_, Err(MovieError::NotFound(_))) => {
                return Ok((None, Some(st.currency)));
            }
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
        Ok((Some(show), Some(st.currency)))
    }

    /// The context with the user's name and address, the rest empty.
    async fn recipient(
        &self,
        user: UserId,
        booking: BookingId,
        show: Option<Show>,
    ) -> Result<MessageContext, SendError> {
        match self.auth.user(user).await {
            Ok(account) => Ok(MessageContext {
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
            }),
            Err(AuthError::NotFound) => Err(give_up(format!("auth knows no user {user}: no one to write to"))),
            Err(AuthError::Unauthenticated(reason)) => {
                // Not an outage: this deployment's services.token differs from auth's.
                tracing::error!(reason, "auth refuses this process's services.token: no address can be read");
                Err(retry(format!("auth refused the service token: {reason}")))
            }
            Err(e) => Err(retry(format!("auth: {e}"))),
        }
    }
}
