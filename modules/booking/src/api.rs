//! The booking module's contract, shared by the in-process service and the REST client,
//! and the payloads of the events booking publishes.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::HashMap;

use movie::api::{SeatId, SeatStatus, ShowtimeId};
use platform::error::Failure;
use platform::identity::{AuthUser, UserId};
use platform::money::Money;
use platform::pagination::Page;
use platform::problem::{Problem, ProblemKind, kind};
use platform::validation::FieldErrors;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

platform::id_type!(
    /// A booking.
    BookingId
);

/// Stored under the same names it has on the wire (the `bookings.status` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "server", derive(sea_orm::EnumIter, sea_orm::DeriveActiveEnum))]
#[cfg_attr(feature = "server", sea_orm(rs_type = "String", db_type = "Text", rename_all = "lowercase"))]
#[serde(rename_all = "lowercase")]
pub enum BookingStatus {
    /// Seats held until `expires_at`, waiting for payment.
    Pending,
    Confirmed,
    /// The hold ran out unpaid; the seats were released.
    Expired,
    Cancelled,
}

impl BookingStatus {
    /// Whether its seats are taken (a live booking).
    pub fn is_live(self) -> bool {
        matches!(self, Self::Pending | Self::Confirmed)
    }
}

/// Body of `POST /api/bookings/book`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BookRequest {
    pub showtime_id: ShowtimeId,
    /// 1 to 10 distinct seats of the showtime's theater.
    pub seat_ids: Vec<SeatId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BookedSeat {
    pub id: SeatId,
    pub row: String,
    pub number: u32,
    /// What the seat costs in this booking (fixed when booked).
    pub price_cents: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Booking {
    pub id: BookingId,
    pub user_id: UserId,
    pub showtime_id: ShowtimeId,
    pub status: BookingStatus,
    pub seats: Vec<BookedSeat>,
    pub amount_cents: Money,
    pub currency: String,
    pub created_at: DateTime<Utc>,
    /// Until when the seats are held unpaid.
    pub expires_at: DateTime<Utc>,
}

/// `GET /api/bookings/bookings` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BookingQuery {
    pub status: Option<BookingStatus>,
    /// 1-based page number, at most 1000000 (default 1).
    #[param(minimum = 1, maximum = 1_000_000)]
    pub page: Option<u64>,
    /// Items per page, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<u64>,
}

/// Everything the booking module can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum BookingError {
    #[error("invalid values: {0}")]
    Validation(FieldErrors),
    /// Unknown showtime, or a booking that does not exist or is not the caller's.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Some of the requested seats are held or booked: nothing was booked.
    #[error("{} seat(s) are held or booked", .0.len())]
    SeatsUnavailable(Vec<SeatId>),
    #[error("the booking cannot be cancelled: {0}")]
    NotCancellable(String),
    /// The customer already holds (pending, unpaid) as many seats as `booking.max_held_seats_per_user`
    /// (`scope` `user`) or `booking.max_held_seats_per_showtime` (`scope` `showtime`) allow.
    #[error("you hold {held} unpaid seat(s){}; at most {limit} may be held at once: pay or cancel a booking first", if *.scope == "showtime" { " of this showtime" } else { "" })]
    HoldLimit { scope: &'static str, limit: u64, held: u64, retry_after_seconds: u64 },
    /// The booking cannot be paid: it is not pending, or its hold ran out.
    #[error("the booking cannot be paid: {0}")]
    NotPayable(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("booking unavailable: {0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] Failure),
}

impl BookingError {
    pub const SEATS_UNAVAILABLE: &str = "seats-unavailable";
    pub const NOT_CANCELLABLE: &str = "booking-not-cancellable";
    pub const HOLD_LIMIT: &str = "seat-hold-limit";
    pub const NOT_PAYABLE: &str = "booking-not-pending";
}

impl ProblemKind for BookingError {
    fn problem_type(&self) -> &'static str {
        match self {
            Self::Validation(_) => kind::VALIDATION,
            Self::NotFound(_) => kind::NOT_FOUND,
            Self::SeatsUnavailable(_) => Self::SEATS_UNAVAILABLE,
            Self::NotCancellable(_) => Self::NOT_CANCELLABLE,
            Self::HoldLimit { .. } => Self::HOLD_LIMIT,
            Self::NotPayable(_) => Self::NOT_PAYABLE,
            Self::Unauthenticated(_) => kind::UNAUTHORIZED,
            Self::Unavailable(_) => kind::UNAVAILABLE,
            Self::Internal(_) => kind::INTERNAL,
        }
    }

    fn unavailable(reason: String) -> Self {
        Self::Unavailable(reason)
    }

    fn internal(cause: Failure) -> Self {
        Self::Internal(cause)
    }
}

impl From<BookingError> for Problem {
    fn from(e: BookingError) -> Self {
        let kind = e.problem_type();
        match e {
            BookingError::Validation(errors) => Problem::validation(&errors),
            BookingError::NotFound(what) => Problem::not_found(e.to_string()).with("resource", what),
            BookingError::SeatsUnavailable(ref seats) => {
                let ids: Vec<String> = seats.iter().map(ToString::to_string).collect();
                Problem::conflict(kind, "Seats unavailable", e.to_string()).with("unavailable_seat_ids", ids)
            }
            BookingError::NotCancellable(ref reason) => {
                Problem::conflict(kind, "Booking cannot be cancelled", e.to_string()).with("reason", reason.clone())
            }
            BookingError::HoldLimit { scope, limit, held, retry_after_seconds } => {
                Problem::conflict(kind, "Too many seats held", e.to_string())
                    .with("scope", scope)
                    .with("limit", limit)
                    .with("held", held)
                    .with_retry_after(retry_after_seconds)
            }
            BookingError::NotPayable(ref reason) => {
                Problem::conflict(kind, "Booking cannot be paid", e.to_string()).with("reason", reason.clone())
            }
            BookingError::Unauthenticated(reason) => Problem::unauthorized(reason),
            BookingError::Unavailable(reason) => Problem::unavailable(reason),
            BookingError::Internal(_) => Problem::internal(&e),
        }
    }
}

impl From<Problem> for BookingError {
    /// The inverse of `From<BookingError> for Problem`, for answers received over REST.
    fn from(p: Problem) -> Self {
        let text = |key: &str| p.extra(key).and_then(|v| v.as_str()).map(str::to_owned);
        let number = |key: &str| p.extra(key).and_then(serde_json::Value::as_u64).unwrap_or(0);
        match p.kind() {
            kind::VALIDATION => Self::Validation(p.field_errors()),
            kind::NOT_FOUND => {
                Self::NotFound(if text("resource").as_deref() == Some("showtime") { "showtime" } else { "booking" })
            }
            Self::SEATS_UNAVAILABLE => Self::SeatsUnavailable(
                p.extra("unavailable_seat_ids")
                    .and_then(|v| serde_json::from_value::<Vec<Uuid>>(v.clone()).ok())
                    .unwrap_or_default()
                    .into_iter()
                    .map(SeatId)
                    .collect(),
            ),
            Self::NOT_CANCELLABLE => Self::NotCancellable(text("reason").unwrap_or_default()),
            Self::HOLD_LIMIT => Self::HoldLimit {
                scope: if text("scope").as_deref() == Some("showtime") { "showtime" } else { "user" },
                limit: number("limit"),
                held: number("held"),
                retry_after_seconds: p.retry_after_seconds().unwrap_or(1),
            },
            Self::NOT_PAYABLE => Self::NotPayable(text("reason").unwrap_or_default()),
            kind::UNAUTHORIZED => Self::Unauthenticated(p.detail().to_owned()),
            kind::UNAVAILABLE => Self::Unavailable(p.detail().to_owned()),
            _ => Self::Internal(Failure::new("booking answered", p)),
        }
    }
}

/// The booking module, in process or over REST. Every method takes the caller: a booking is
/// visible to its owner and to admins only.
///
/// Implementations MUST return the same [`BookingError`] variants for the same situations;
/// the contract suite in `tests/api/booking_contract.rs` runs against both.
#[async_trait]
pub trait BookingApi: Send + Sync {
    /// Holds every requested seat for the caller until `expires_at`, or none.
    ///
    /// # Errors
    /// `Validation` (no seats, more than the maximum, duplicates, a seat of another theater,
    /// a showtime that has started); `NotFound("showtime")`; `SeatsUnavailable` listing every
    /// requested seat that is held or booked.
    async fn book(&self, caller: &AuthUser, request: BookRequest) -> Result<Booking, BookingError>;

    /// The caller's bookings, newest first.
    ///
    /// # Errors
    /// `Validation` for a bad page request.
    async fn list(&self, caller: &AuthUser, query: BookingQuery) -> Result<Page<Booking>, BookingError>;

    /// # Errors
    /// `NotFound("booking")` unless the caller owns it or is an admin.
    async fn booking(&self, caller: &AuthUser, id: BookingId) -> Result<Booking, BookingError>;

    /// Cancels a pending or confirmed booking before its showtime starts; its seats are free
    /// again at once.
    ///
    /// # Errors
    /// `NotFound("booking")` as for [`BookingApi::booking`]; `NotCancellable` when it is
    /// already cancelled or expired, or the showtime has started.
    async fn cancel(&self, caller: &AuthUser, id: BookingId) -> Result<Booking, BookingError>;

    /// Payment is about to charge the caller's pending booking under `payment`: the booking
    /// records that charge, and stays pending (the sweeper leaves it) until the charge's
    /// outcome arrives, even if its hold runs out meanwhile. A charge accepted before the hold
    /// ran out thus confirms the booking however late `payment.completed` is handled.
    /// Idempotent per `payment`: the same payment may ask again after its hold ran out.
    ///
    /// # Errors
    /// `NotFound("booking")` unless the caller owns it; `NotPayable` when it is not pending,
    /// or its hold ran out (and no charge of `payment` was accepted before).
    async fn hold_for_payment(&self, caller: &AuthUser, id: BookingId, payment: Uuid) -> Result<Booking, BookingError>;

    /// The held and booked seats of a showtime (what the seat map shows; public).
    ///
    /// # Errors
    /// Only `Unavailable` / `Internal`.
    async fn seat_states(&self, showtime: ShowtimeId) -> Result<HashMap<SeatId, SeatStatus>, BookingError>;
}

/// Body of `POST /internal/bookings/bookings/{id}/payment-hold`: payment's call with the
/// service token, vouching for the customer it has authenticated. Internal, never routed by
/// the gateway: a customer who could call it would freeze their own hold past its expiry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PaymentHold {
    /// The payment about to be charged.
    pub payment_id: Uuid,
    /// The customer paying (payment checked their token).
    pub user_id: platform::identity::UserId,
}

/// The field every booking and payment event carries and is ordered by: the events of one
/// booking reach each consumer in the order they happened; those of different bookings may
/// overtake one another ([`platform::outbox::OutboxRelay::ordered_by`]).
pub const EVENT_ORDER: &str = "booking_id";

platform::events! {
    /// The events booking publishes (topic exchange `booking_events`), one variant per routing
    /// key; see [`platform::events::Event`] for how they may change. Every variant names the
    /// booking's screening and seats; the fields added in issue 12 (`currency`, `starts_at`,
    /// `seats` and, past creation, `amount_cents`) are absent from events written before, so
    /// they decode as `None` / empty.
    #[derive(Debug, Clone, PartialEq)]
    pub enum BookingEvent {
        CREATED = "booking.created" => Created(BookingCreated),
        CONFIRMED = "booking.confirmed" => Confirmed(BookingConfirmed),
        /// Also for an expired hold (reason `expired`).
        CANCELLED = "booking.cancelled" => Cancelled(BookingCancelled),
    }
}

/// `booking.created`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BookingCreated {
    pub booking_id: BookingId,
    pub user_id: UserId,
    pub showtime_id: ShowtimeId,
    pub seat_ids: Vec<SeatId>,
    pub amount_cents: i64,
    pub expires_at: DateTime<Utc>,
    #[serde(flatten)]
    pub ticket: Ticket,
}

/// `booking.confirmed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BookingConfirmed {
    pub booking_id: BookingId,
    pub user_id: UserId,
    pub showtime_id: ShowtimeId,
    pub seat_ids: Vec<SeatId>,
    /// What was paid (absent before issue 12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_cents: Option<i64>,
    #[serde(flatten)]
    pub ticket: Ticket,
}

/// Why a booking was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CancelReason {
    User,
    Expired,
    Admin,
}

/// `booking.cancelled` (also for an expired hold, with reason `expired`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BookingCancelled {
    pub booking_id: BookingId,
    pub user_id: UserId,
    pub showtime_id: ShowtimeId,
    pub seat_ids: Vec<SeatId>,
    pub reason: CancelReason,
    pub was_paid: bool,
    /// The booking's amount, refunded when `was_paid` (absent before issue 12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_cents: Option<i64>,
    #[serde(flatten)]
    pub ticket: Ticket,
}

/// What every booking event says of the screening and seats, so a consumer writing to the
/// customer needs no read of booking or movie for them. Empty in events written before
/// issue 12; the names are also absent when movie could not tell them when the booking was
/// made.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    /// ISO 4217, of every amount in the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<DateTime<Utc>>,
    /// The booked seats with their labels and prices, in row and number order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seats: Vec<BookedSeat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub movie_title: Option<String>,
    /// The theater's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub theater: Option<String>,
    /// The theater's location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// The payment events booking consumes, read as this tolerant view of
/// `payment::api::PaymentEvent`: booking cannot depend on payment, which depends on it. Only
/// the fields booking acts on; the root's tests (`tests/api/event_contract.rs`) check that every
/// payment event decodes here and that the keys agree.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type")]
pub enum PaymentOutcome {
    #[serde(rename = "payment.completed")]
    Completed(ChargeOutcome),
    #[serde(rename = "payment.failed")]
    Failed(ChargeOutcome),
}

impl PaymentOutcome {
    pub const COMPLETED: &'static str = "payment.completed";
    pub const FAILED: &'static str = "payment.failed";
}

/// What booking reads of a charge's outcome.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ChargeOutcome {
    pub booking_id: BookingId,
    pub payment_id: Uuid,
    /// When payment accepted the charge (absent in events of older versions: then the time
    /// of handling decides).
    #[serde(default)]
    pub accepted_at: Option<DateTime<Utc>>,
}

/// The queue booking consumes: payment outcomes confirm or release a hold.
pub const QUEUE: platform::events::QueueSpec = platform::events::QueueSpec {
    name: "booking_queue",
    patterns: &[PaymentOutcome::COMPLETED, PaymentOutcome::FAILED],
};

/// The module's configuration defaults (`config.toml` beside this crate's `Cargo.toml`): its
/// `[section]` and the URL it is reached at when served elsewhere.
pub const CONFIG: &str = include_str!("../config.toml");

#[cfg(test)]
mod tests {
    use super::*;

    /// What the REST client receives must map back to what the service returned.
    #[test]
    fn every_error_survives_the_trip_through_a_problem_document() {
        platform::problem::assert_round_trip([
            BookingError::Validation(FieldErrors::single("seat_ids", "must not be empty")),
            BookingError::NotFound("showtime"),
            BookingError::NotFound("booking"),
            BookingError::SeatsUnavailable(vec![SeatId(Uuid::now_v7()), SeatId(Uuid::now_v7())]),
            BookingError::NotCancellable("the showtime has started".to_owned()),
            BookingError::HoldLimit { scope: "showtime", limit: 6, held: 4, retry_after_seconds: 30 },
            BookingError::HoldLimit { scope: "user", limit: 10, held: 9, retry_after_seconds: 1 },
            BookingError::NotPayable("its hold ran out".to_owned()),
            BookingError::Unauthenticated("token expired".to_owned()),
            BookingError::Unavailable("booking database: down".to_owned()),
        ]);
    }
}
