//! The notification module's contract, shared by the in-process service and the REST client.

use async_trait::async_trait;
use booking::api::BookingEvent;
use chrono::{DateTime, Utc};
use payment::api::PaymentEvent;
use platform::error::Failure;
use platform::identity::AuthUser;
use platform::pagination::{Page, PageRequest};
use platform::problem::{Problem, ProblemKind, kind};
use platform::validation::FieldErrors;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

platform::id_type!(
    /// One message to one user.
    NotificationId
);

/// What a notification is about: one kind per event it answers. Its name is the same in
/// the API, the database and the template files (`<name>.subject` …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "server", derive(sea_orm::EnumIter, sea_orm::DeriveActiveEnum))]
#[cfg_attr(feature = "server", sea_orm(rs_type = "String", db_type = "Text", rename_all = "snake_case"))]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// `booking.created`: the seats are held, and until when.
    BookingCreated,
    /// `booking.confirmed`: the ticket.
    BookingConfirmed,
    /// `booking.cancelled` by the user or an admin.
    BookingCancelled,
    /// `booking.cancelled` because the hold ran out unpaid.
    BookingExpired,
    /// `payment.failed`: the card was declined; the seats stay held.
    PaymentFailed,
    /// `payment.refunded`.
    PaymentRefunded,
}

/// How a notification reaches its user. Email is the only channel so far; SMS and push are
/// the later ones the channel port is shaped for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "server", derive(sea_orm::EnumIter, sea_orm::DeriveActiveEnum))]
#[cfg_attr(feature = "server", sea_orm(rs_type = "String", db_type = "Text", rename_all = "lowercase"))]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Email,
    Sms,
    Push,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "server", derive(sea_orm::EnumIter, sea_orm::DeriveActiveEnum))]
#[cfg_attr(feature = "server", sea_orm(rs_type = "String", db_type = "Text", rename_all = "lowercase"))]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Not delivered yet: waiting for its first try or for a retry.
    Pending,
    Sent,
    /// Given up after the configured number of attempts.
    Failed,
}

/// A notification as its user sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Notification {
    pub id: NotificationId,
    pub kind: NotificationKind,
    pub channel: Channel,
    pub subject: String,
    pub status: DeliveryStatus,
    pub created_at: DateTime<Utc>,
    /// When it was delivered (`sent` only).
    pub sent_at: Option<DateTime<Utc>>,
}

/// Everything the notification module can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum NotificationError {
    #[error("invalid values: {0}")]
    Validation(FieldErrors),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("notification unavailable: {0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] Failure),
}

impl ProblemKind for NotificationError {
    fn problem_type(&self) -> &'static str {
        match self {
            Self::Validation(_) => kind::VALIDATION,
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

impl From<NotificationError> for Problem {
    fn from(e: NotificationError) -> Self {
        match e {
            NotificationError::Validation(errors) => Problem::validation(&errors),
            NotificationError::Unauthenticated(reason) => Problem::unauthorized(reason),
            NotificationError::Unavailable(reason) => Problem::unavailable(reason),
            NotificationError::Internal(_) => Problem::internal(&e),
        }
    }
}

impl From<Problem> for NotificationError {
    /// The inverse of `From<NotificationError> for Problem`, for answers received over REST.
    fn from(p: Problem) -> Self {
        match p.kind() {
            kind::VALIDATION => Self::Validation(p.field_errors()),
            kind::UNAUTHORIZED => Self::Unauthenticated(p.detail().to_owned()),
            kind::UNAVAILABLE => Self::Unavailable(p.detail().to_owned()),
            _ => Self::Internal(Failure::new("notification answered", p)),
        }
    }
}

/// The notification module, in process or over REST.
///
/// Implementations MUST return the same [`NotificationError`] variants for the same
/// situations; the contract suite in `tests/api/notification_contract.rs` runs against both.
#[async_trait]
pub trait NotificationApi: Send + Sync {
    /// The caller's notifications (never anyone else's, admins included), newest first.
    ///
    /// # Errors
    /// `Validation` for a bad page request.
    async fn list(&self, caller: &AuthUser, page: PageRequest) -> Result<Page<Notification>, NotificationError>;
}

/// The queue notification consumes: every booking event, and the payment events that make a
/// message. (`payment.completed` makes none: the confirmation that follows says what was paid.)
pub const QUEUE: platform::events::QueueSpec = platform::events::QueueSpec {
    name: "notification_queue",
    patterns: &[
        BookingEvent::CREATED,
        BookingEvent::CONFIRMED,
        BookingEvent::CANCELLED,
        PaymentEvent::FAILED,
        PaymentEvent::REFUNDED,
    ],
};

/// The module's configuration defaults (`config.toml` beside this crate's `Cargo.toml`): its
/// `[section]` and the URL it is reached at when served elsewhere.
pub const CONFIG: &str = include_str!("../config.toml");

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// What the REST client receives must map back to what the service returned.
    #[test]
    fn every_error_survives_the_trip_through_a_problem_document() {
        platform::problem::assert_round_trip([
            NotificationError::Validation(FieldErrors::single("per_page", "must be between 1 and 100")),
            NotificationError::Unauthenticated("token expired".to_owned()),
            NotificationError::Unavailable("notification database: down".to_owned()),
        ]);
    }
}
