//! The payment module's contract, shared by the in-process service and the REST client,
//! and the payloads of the events payment publishes.

use std::fmt;

use async_trait::async_trait;
use booking::api::BookingId;
use chrono::{DateTime, Utc};
use platform::error::Failure;
use platform::identity::{AuthUser, UserId};
use platform::money::Money;
use platform::pagination::Page;
use platform::problem::{Problem, ProblemKind, StatusCode, kind};
use platform::validation::FieldErrors;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

platform::id_type!(
    /// A payment (also the gateway's reference for its charge and refund).
    PaymentId
);

platform::id_type!(
    /// One movement of money: a charge or a refund.
    TransactionId
);

/// Stored under the same names it has on the wire, as are the transactions' kind and status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "server", derive(sea_orm::EnumIter, sea_orm::DeriveActiveEnum))]
#[cfg_attr(feature = "server", sea_orm(rs_type = "String", db_type = "Text", rename_all = "lowercase"))]
#[serde(rename_all = "lowercase")]
pub enum PaymentStatus {
    /// Charged; the booking is (or is being) confirmed.
    Completed,
    /// The gateway declined; nothing was charged (`failure_reason` says why).
    Failed,
    /// Charged, then given back.
    Refunded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "server", derive(sea_orm::EnumIter, sea_orm::DeriveActiveEnum))]
#[cfg_attr(feature = "server", sea_orm(rs_type = "String", db_type = "Text", rename_all = "lowercase"))]
#[serde(rename_all = "lowercase")]
pub enum TransactionKind {
    Charge,
    Refund,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "server", derive(sea_orm::EnumIter, sea_orm::DeriveActiveEnum))]
#[cfg_attr(feature = "server", sea_orm(rs_type = "String", db_type = "Text", rename_all = "lowercase"))]
#[serde(rename_all = "lowercase")]
pub enum TransactionStatus {
    Succeeded,
    Failed,
}

/// Body of `POST /api/payments/pay`. Its `Debug` shows neither the card number nor the CVC.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct PayRequest {
    pub booking_id: BookingId,
    /// 12–19 digits (spaces and dashes are ignored), Luhn-valid.
    #[schema(example = "4242424242424242")]
    pub card_number: String,
    /// `MM/YY`, not in the past.
    #[schema(example = "12/30")]
    pub card_expiry: String,
    /// 3 or 4 digits.
    #[schema(example = "123")]
    pub card_cvc: String,
}

impl fmt::Debug for PayRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PayRequest")
            .field("booking_id", &self.booking_id)
            .field("card_number", &"[redacted]")
            .field("card_expiry", &self.card_expiry)
            .field("card_cvc", &"[redacted]")
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Transaction {
    pub id: TransactionId,
    #[serde(rename = "type")]
    pub kind: TransactionKind,
    pub amount_cents: Money,
    pub status: TransactionStatus,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Payment {
    pub id: PaymentId,
    pub booking_id: BookingId,
    pub user_id: UserId,
    pub amount_cents: Money,
    pub currency: String,
    pub status: PaymentStatus,
    /// Why the gateway declined (`card_declined`, `insufficient_funds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// `visa`, `mastercard`, `amex`, `discover` or `unknown`.
    pub card_brand: String,
    /// The only digits of the card that are kept.
    pub card_last4: String,
    pub created_at: DateTime<Utc>,
    /// Oldest first: the charge, then a refund if there was one.
    pub transactions: Vec<Transaction>,
}

/// `GET /api/payments/payments` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PaymentQuery {
    /// Only the payments of this booking.
    pub booking_id: Option<BookingId>,
    pub status: Option<PaymentStatus>,
    /// Every customer's payments, not only the caller's (admins only: `403` for a customer).
    pub all: Option<bool>,
    /// 1-based page number, at most 1000000 (default 1).
    #[param(minimum = 1, maximum = 1_000_000)]
    pub page: Option<u64>,
    /// Items per page, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<u64>,
}

/// Everything the payment module can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// A missing or malformed `Idempotency-Key`.
    #[error("{0}")]
    BadRequest(String),
    /// Malformed card fields, or an `Idempotency-Key` used before with another body.
    #[error("invalid values: {0}")]
    Validation(FieldErrors),
    /// A booking or payment that does not exist or is not the caller's.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The booking is paid, expired or cancelled.
    #[error("the booking cannot be paid: {0}")]
    BookingNotPending(String),
    /// The same key (or another payment of the same booking) is still being charged.
    #[error("a payment is in progress: {0}")]
    InProgress(String),
    #[error("the payment cannot be refunded: {0}")]
    NotRefundable(String),
    /// Too many declined (or unfinished) payment attempts for the booking or the customer.
    #[error("{detail}")]
    TooManyAttempts { detail: String, retry_after_seconds: u64 },
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("payment unavailable: {0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] Failure),
}

impl PaymentError {
    pub const BOOKING_NOT_PENDING: &str = "booking-not-pending";
    pub const IN_PROGRESS: &str = "payment-in-progress";
    pub const NOT_REFUNDABLE: &str = "payment-not-refundable";
    pub const TOO_MANY_ATTEMPTS: &str = "payment-attempts-exceeded";
}

impl ProblemKind for PaymentError {
    fn problem_type(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => kind::MALFORMED_REQUEST,
            Self::Validation(_) => kind::VALIDATION,
            Self::NotFound(_) => kind::NOT_FOUND,
            Self::BookingNotPending(_) => Self::BOOKING_NOT_PENDING,
            Self::InProgress(_) => Self::IN_PROGRESS,
            Self::NotRefundable(_) => Self::NOT_REFUNDABLE,
            Self::TooManyAttempts { .. } => Self::TOO_MANY_ATTEMPTS,
            Self::Unauthenticated(_) => kind::UNAUTHORIZED,
            Self::Forbidden(_) => kind::FORBIDDEN,
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

impl From<PaymentError> for Problem {
    fn from(e: PaymentError) -> Self {
        let kind = e.problem_type();
        match e {
            PaymentError::BadRequest(detail) => Problem::bad_request(detail),
            PaymentError::Validation(errors) => Problem::validation(&errors),
            PaymentError::NotFound(what) => Problem::not_found(e.to_string()).with("resource", what),
            PaymentError::BookingNotPending(ref reason) => {
                Problem::conflict(kind, "Booking cannot be paid", e.to_string()).with("reason", reason.clone())
            }
            PaymentError::InProgress(ref reason) => Problem::conflict(kind, "Payment in progress", e.to_string())
                .with("reason", reason.clone())
                .with_retry_after(1),
            PaymentError::NotRefundable(ref reason) => {
                Problem::conflict(kind, "Payment cannot be refunded", e.to_string()).with("reason", reason.clone())
            }
            PaymentError::TooManyAttempts { detail, retry_after_seconds } => {
                Problem::new(StatusCode::TOO_MANY_REQUESTS, kind, "Too many payment attempts", detail)
                    .with_retry_after(retry_after_seconds)
            }
            PaymentError::Unauthenticated(reason) => Problem::unauthorized(reason),
            PaymentError::Forbidden(reason) => Problem::forbidden(reason),
            PaymentError::Unavailable(reason) => Problem::unavailable(reason),
            PaymentError::Internal(_) => Problem::internal(&e),
        }
    }
}

impl From<Problem> for PaymentError {
    /// The inverse of `From<PaymentError> for Problem`, for answers received over REST.
    fn from(p: Problem) -> Self {
        let reason = || p.extra("reason").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        match p.kind() {
            kind::MALFORMED_REQUEST => Self::BadRequest(p.detail().to_owned()),
            kind::VALIDATION => Self::Validation(p.field_errors()),
            kind::NOT_FOUND => Self::NotFound(match p.extra("resource").and_then(|v| v.as_str()) {
                Some("payment") => "payment",
                _ => "booking",
            }),
            Self::BOOKING_NOT_PENDING => Self::BookingNotPending(reason()),
            Self::IN_PROGRESS => Self::InProgress(reason()),
            Self::NOT_REFUNDABLE => Self::NotRefundable(reason()),
            Self::TOO_MANY_ATTEMPTS => Self::TooManyAttempts {
                detail: p.detail().to_owned(),
                retry_after_seconds: p.retry_after_seconds().unwrap_or(1),
            },
            kind::UNAUTHORIZED => Self::Unauthenticated(p.detail().to_owned()),
            kind::FORBIDDEN => Self::Forbidden(p.detail().to_owned()),
            kind::UNAVAILABLE => Self::Unavailable(p.detail().to_owned()),
            _ => Self::Internal(Failure::new("payment answered", p)),
        }
    }
}

/// Checks an `Idempotency-Key` as HTTP would carry it: 1–255 printable ASCII characters,
/// without surrounding whitespace (which HTTP strips). Both implementations apply it, so a key
/// means the same in process and over REST.
///
/// # Errors
/// `BadRequest` saying what is wrong.
pub fn check_idempotency_key(key: &str) -> Result<(), PaymentError> {
    if key.is_empty() || key.len() > 255 {
        return Err(PaymentError::BadRequest("the Idempotency-Key header must be 1 to 255 characters".to_owned()));
    }
    if !key.bytes().all(|b| (b' '..=b'~').contains(&b)) || key.trim() != key {
        return Err(PaymentError::BadRequest(
            "the Idempotency-Key header must be printable ASCII without surrounding spaces".to_owned(),
        ));
    }
    Ok(())
}

/// The payment module, in process or over REST. Every method takes the caller: a payment is
/// visible to its owner and to admins only.
///
/// Implementations MUST return the same [`PaymentError`] variants for the same situations;
/// the contract suite in `tests/api/payment_contract.rs` runs against both.
#[async_trait]
pub trait PaymentApi: Send + Sync {
    /// Charges the caller's pending booking, once per `idempotency_key`: the same key with the
    /// same request answers the first answer again (an error included), however often and
    /// however concurrently it is sent. A declined card is a `Failed` payment, not an error.
    ///
    /// # Errors
    /// `BadRequest` for a key [`check_idempotency_key`] refuses; `Validation` for
    /// malformed card fields or a key used before with another request; `NotFound("booking")`
    /// unless the booking is the caller's; `BookingNotPending` when it is paid, expired or
    /// cancelled; `InProgress` when the same key still runs after the wait, or another key is
    /// charging the same booking; `Unavailable` when the gateway or booking cannot be reached
    /// (nothing was charged; the same key may be sent again).
    async fn pay(&self, caller: &AuthUser, idempotency_key: &str, request: PayRequest)
    -> Result<Payment, PaymentError>;

    /// The caller's payments (every customer's with `all`, for an admin), newest first.
    ///
    /// # Errors
    /// `Validation` for a bad page request; `Forbidden` for `all` asked by a customer.
    async fn list(&self, caller: &AuthUser, query: PaymentQuery) -> Result<Page<Payment>, PaymentError>;

    /// A payment with its transactions.
    ///
    /// # Errors
    /// `NotFound("payment")` unless the caller owns it or is an admin.
    async fn payment(&self, caller: &AuthUser, id: PaymentId) -> Result<Payment, PaymentError>;

    /// Refunds a completed payment in full (admins only).
    ///
    /// # Errors
    /// `Forbidden` for a customer; `NotFound("payment")`; `NotRefundable` unless completed.
    async fn refund(&self, caller: &AuthUser, id: PaymentId) -> Result<Payment, PaymentError>;
}

platform::events! {
    /// The events payment publishes (topic exchange `booking_events`), one variant per routing
    /// key; see [`platform::events::Event`] for how they may change. `currency` (and the failed
    /// charge's amount) were added in issue 12 and are absent from events written before.
    #[derive(Debug, Clone, PartialEq)]
    pub enum PaymentEvent {
        COMPLETED = "payment.completed" => Completed(PaymentCompleted),
        FAILED = "payment.failed" => Failed(PaymentFailed),
        REFUNDED = "payment.refunded" => Refunded(PaymentRefunded),
    }
}

/// `payment.completed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentCompleted {
    pub payment_id: PaymentId,
    pub booking_id: BookingId,
    pub user_id: UserId,
    pub amount_cents: i64,
    /// When the charge was accepted (the booking was held for it, before its hold ran out):
    /// booking confirms against this, not against when it handles the event. Added in
    /// issue 11; absent from older events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_at: Option<DateTime<Utc>>,
    /// ISO 4217, of `amount_cents`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

/// `payment.failed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentFailed {
    pub payment_id: PaymentId,
    pub booking_id: BookingId,
    pub user_id: UserId,
    pub failure_reason: String,
    /// What the charge asked for; absent when it was never sent (and in older events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_cents: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

/// `payment.refunded`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentRefunded {
    pub payment_id: PaymentId,
    pub booking_id: BookingId,
    pub user_id: UserId,
    pub amount_cents: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

/// The queue payment consumes: a cancelled booking that was paid is refunded.
pub const QUEUE: platform::events::QueueSpec =
    platform::events::QueueSpec { name: "payment_queue", patterns: &[booking::api::BookingEvent::CANCELLED] };

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
            PaymentError::BadRequest("the Idempotency-Key header is required".to_owned()),
            PaymentError::Validation(FieldErrors::single("card_number", "must be 12 to 19 digits")),
            PaymentError::NotFound("booking"),
            PaymentError::NotFound("payment"),
            PaymentError::BookingNotPending("it is already paid".to_owned()),
            PaymentError::InProgress("another payment of this booking is being charged".to_owned()),
            PaymentError::NotRefundable("it is failed".to_owned()),
            PaymentError::TooManyAttempts { detail: "3 declined payments".to_owned(), retry_after_seconds: 60 },
            PaymentError::Unauthenticated("token expired".to_owned()),
            PaymentError::Forbidden("only an admin can refund a payment".to_owned()),
            PaymentError::Unavailable("payment gateway: down".to_owned()),
        ]);
    }
}
