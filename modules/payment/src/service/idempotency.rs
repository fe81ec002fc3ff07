//! `Idempotency-Key` records (the pretix semantics): the first request with a key claims its
//! row and runs; a later one with the same key and body gets the saved answer, waits while
//! the first still runs, or takes over once the first's lease ran out (its process died).
//! Every write is conditional on the attempt number, so a request that lost its lease can
//! never overwrite the answer of the one that took over.
//!
//! The saved answer is an [`Answer`], what happened in the module's own terms; how it looks
//! over HTTP is `http.rs`'s business, as for any other answer. (Rows saved before issue 12
//! held an HTTP status and body; migration `m20261207_000001_saved_answers` rewrote them.)

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use platform::error::Failure;
use platform::kv::KeyValue;
use sea_orm::sea_query::{Condition, Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect, SqlErr,
};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

use super::card::Card;
use super::entity::idempotency_key::{self as key_row, KeyState};
use crate::api::{PayRequest, Payment, PaymentError};

/// Who runs a request: the id it pays under and its attempt number.
#[derive(Debug, Clone, Copy)]
pub struct Lease {
    pub payment_id: Uuid,
    pub attempt: i32,
}

/// What the first request with a key came to, saved (as JSON) and answered again to every
/// later request with the key and the same body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Answer {
    /// The charge ran: the payment as it then stood (completed, declined as `failed`, or
    /// refunded at once because its booking was closed meanwhile).
    Charged { payment: Payment },
    /// The booking does not exist or is not the caller's.
    BookingNotFound,
    /// The booking is paid, expired or cancelled.
    BookingNotPending { reason: String },
}

impl Answer {
    /// The answer for a refusal that is final for the booking, so the same request gets it
    /// again; `None` for any other error (nothing was charged, the key is free for a retry).
    pub fn of_refusal(e: &PaymentError) -> Option<Self> {
        match e {
            PaymentError::NotFound(_) => Some(Self::BookingNotFound),
            PaymentError::BookingNotPending(reason) => Some(Self::BookingNotPending { reason: reason.clone() }),
            _ => None,
        }
    }

    /// What `pay` answers.
    ///
    /// # Errors
    /// The saved refusal.
    pub fn into_result(self) -> Result<Payment, PaymentError> {
        match self {
            Self::Charged { payment } => Ok(payment),
            Self::BookingNotFound => Err(PaymentError::NotFound("booking")),
            Self::BookingNotPending { reason } => Err(PaymentError::BookingNotPending(reason)),
        }
    }

    fn encode(&self) -> Result<String, PaymentError> {
        serde_json::to_string(self).map_err(|e| PaymentError::Internal(Failure::new("encoding a saved answer", e)))
    }

    fn decode(saved: &str) -> Result<Self, PaymentError> {
        serde_json::from_str(saved).map_err(|e| PaymentError::Internal(Failure::new("reading a saved answer", e)))
    }
}

pub enum Claim {
    /// This request runs (first, or taking over a dead one).
    Run(Lease),
    /// The saved answer of the first request.
    Replay(Answer),
    /// The key was used with another body.
    Mismatch,
    /// Another request with this key is running.
    Busy,
}

/// HMAC-SHA256 of everything in the request under the module's fingerprint key: equal bodies
/// give equal fingerprints, and the stored value reveals nothing of the card.
pub fn fingerprint(secret: &[u8], request: &PayRequest, card: &Card) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else { unreachable!("HMAC takes keys of any length") };
    for part in [request.booking_id.to_string().as_str(), card.number(), request.card_expiry.trim(), &request.card_cvc]
    {
        mac.update(part.as_bytes());
        mac.update(&[0]);
    }
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// The saved answers again, in the split deployment's Redis: a key sent more than twice is then
/// answered without the database. Only a copy, made at the first replay: every answer is saved
/// in the database first, and a miss or an unreachable Redis falls back to it.
pub struct AnswerCache {
    kv: Arc<dyn KeyValue>,
    ttl: Duration,
}

/// An entry cached before issue 12 (an HTTP status and body) does not read as this: it is a
/// miss, and the database answers.
#[derive(Serialize, Deserialize)]
struct Cached {
    fingerprint: String,
    answer: Answer,
}

impl AnswerCache {
    pub fn new(kv: Arc<dyn KeyValue>, ttl: Duration) -> Self {
        Self { kv, ttl }
    }

    fn key(user: Uuid, key: &str) -> String {
        format!("payment:answer:{user}:{key}")
    }

    /// The cached answer of `key` as a claim would give it: a replay or a mismatch.
    pub async fn claim(&self, user: Uuid, key: &str, fingerprint: &str) -> Option<Claim> {
        let bytes = match self.kv.get(&Self::key(user, key)).await {
            Ok(found) => found?,
            Err(e) => {
                tracing::debug!(error = %e, "answer cache unavailable; asking the database");
                return None;
            }
        };
        let cached: Cached = serde_json::from_slice(&bytes).ok()?;
        Some(if cached.fingerprint == fingerprint { Claim::Replay(cached.answer) } else { Claim::Mismatch })
    }

    /// Drops the copy of an answer the database has replaced.
    pub async fn forget(&self, user: Uuid, key: &str) {
        if let Err(e) = self.kv.delete(&Self::key(user, key)).await {
            tracing::warn!(error = %e, "a replaced answer stays cached until its TTL");
        }
    }

    /// Keeps a copy of an answer the database has saved.
    pub async fn put(&self, user: Uuid, key: &str, fingerprint: &str, answer: &Answer) {
        let cached = Cached { fingerprint: fingerprint.to_owned(), answer: answer.clone() };
        let Ok(bytes) = serde_json::to_vec(&cached) else { return };
        if let Err(e) = self.kv.set(&Self::key(user, key), &bytes, self.ttl).await {
            tracing::debug!(error = %e, "answer not cached");
        }
    }
}

/// The row of `key` while attempt `attempt` runs it.
fn running(user: Uuid, key: &str, attempt: i32) -> Condition {
    Condition::all()
        .add(key_row::Column::UserId.eq(user))
        .add(key_row::Column::Key.eq(key))
        .add(key_row::Column::State.eq(KeyState::Running))
        .add(key_row::Column::Attempt.eq(attempt))
}

/// Claims `key` for `user`, or says why not.
///
/// # Errors
/// Database failures.
pub async fn claim(
    db: &DatabaseConnection,
    user: Uuid,
    key: &str,
    fingerprint: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<Claim, PaymentError> {
    // Read first: a replay or a waiting duplicate is then a primary-key read, never a write.
    let existing = key_row::Entity::find_by_id((user, key.to_owned())).one(db).await?;
    let found = match existing {
        Some(found) => found,
        None => {
            let fresh = key_row::Model {
                user_id: user,
                key: key.to_owned(),
                fingerprint: fingerprint.to_owned(),
                payment_id: Uuid::now_v7(),
                state: KeyState::Running,
                attempt: 0,
                lease_until,
                answer: None,
                created_at: now,
                booking_id: None,
                amount_cents: None,
                currency: None,
                card_brand: None,
                card_last4: None,
                charging_since: None,
            };
            // The unique key decides between first requests that arrive together.
            match key_row::Entity::insert(key_row::ActiveModel::from(fresh.clone())).exec(db).await {
                Ok(_) => return Ok(Claim::Run(Lease { payment_id: fresh.payment_id, attempt: 0 })),
                Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => return Ok(Claim::Busy),
                Err(e) => return Err(e.into()),
            }
        }
    };
    if found.fingerprint != fingerprint {
        return Ok(Claim::Mismatch);
    }
    if found.state == KeyState::Done {
        let saved =
            found.answer.ok_or_else(|| PaymentError::Internal(Failure::msg("an answered key without its answer")))?;
        return Ok(Claim::Replay(Answer::decode(&saved)?));
    }
    if found.lease_until > now {
        return Ok(Claim::Busy);
    }
    let attempt = found.attempt + 1;
    let taken = key_row::Entity::update_many()
        .col_expr(key_row::Column::Attempt, Expr::value(attempt))
        .col_expr(key_row::Column::LeaseUntil, Expr::value(lease_until))
        .filter(running(user, key, found.attempt))
        .exec(db)
        .await?;
    Ok(if taken.rows_affected == 1 {
        tracing::warn!(payment_id = %found.payment_id, attempt, "taking over a payment whose request died");
        Claim::Run(Lease { payment_id: found.payment_id, attempt })
    } else {
        Claim::Busy
    })
}

/// Saves the answer of `lease`'s request; `false` if another request took the key over.
///
/// # Errors
/// Database failures.
pub async fn save_answer(
    db: &impl ConnectionTrait,
    user: Uuid,
    key: &str,
    lease: Lease,
    answer: &Answer,
) -> Result<bool, PaymentError> {
    let saved = key_row::Entity::update_many()
        .col_expr(key_row::Column::State, Expr::value(KeyState::Done))
        .col_expr(key_row::Column::Answer, Expr::value(answer.encode()?))
        .filter(running(user, key, lease.attempt))
        .exec(db)
        .await?;
    Ok(saved.rows_affected == 1)
}

/// Replaces the saved answer of a done key (a charge refunded at once: the answer says so).
///
/// # Errors
/// Database failures.
pub async fn replace_answer(
    db: &DatabaseConnection,
    user: Uuid,
    key: &str,
    answer: &Answer,
) -> Result<(), PaymentError> {
    key_row::Entity::update_many()
        .col_expr(key_row::Column::Answer, Expr::value(answer.encode()?))
        .filter(key_row::Column::UserId.eq(user))
        .filter(key_row::Column::Key.eq(key))
        .filter(key_row::Column::State.eq(KeyState::Done))
        .exec(db)
        .await?;
    Ok(())
}

/// Ends `lease` without an answer (a transient failure): the next request with the key runs
/// at once, under the same payment id.
///
/// # Errors
/// Database failures.
pub async fn release(
    db: &DatabaseConnection,
    user: Uuid,
    key: &str,
    lease: Lease,
    now: DateTime<Utc>,
) -> Result<(), PaymentError> {
    key_row::Entity::update_many()
        .col_expr(key_row::Column::LeaseUntil, Expr::value(now))
        .filter(running(user, key, lease.attempt))
        .exec(db)
        .await?;
    Ok(())
}

/// Writes on the key the booking its request is about to hold for the charge, before it asks
/// booking to: a request that dies between the hold and its intent leaves the reconciler the
/// booking to let go of (`PaymentService::reconcile_key`). `false` if the key was taken over.
///
/// # Errors
/// Database failures.
pub async fn record_hold(
    db: &impl ConnectionTrait,
    user: Uuid,
    key: &str,
    lease: Lease,
    booking: Uuid,
) -> Result<bool, PaymentError> {
    let recorded = key_row::Entity::update_many()
        .col_expr(key_row::Column::BookingId, Expr::value(booking))
        .filter(running(user, key, lease.attempt))
        .exec(db)
        .await?;
    Ok(recorded.rows_affected == 1)
}

/// The charge a key's request is about to send (see [`record_intent`]).
pub struct Intent {
    pub booking_id: Uuid,
    pub amount_cents: i64,
    pub currency: String,
    pub card_brand: String,
    pub card_last4: String,
    /// When the booking was held for the charge.
    pub accepted_at: DateTime<Utc>,
}

/// Writes down the charge `lease`'s request is about to send, before it calls the gateway:
/// if the request dies, the reconciler finds it here. `false` if another took the key over.
///
/// # Errors
/// Database failures.
pub async fn record_intent(
    db: &DatabaseConnection,
    user: Uuid,
    key: &str,
    lease: Lease,
    intent: &Intent,
) -> Result<bool, PaymentError> {
    let recorded = key_row::Entity::update_many()
        .col_expr(key_row::Column::BookingId, Expr::value(intent.booking_id))
        .col_expr(key_row::Column::AmountCents, Expr::value(intent.amount_cents))
        .col_expr(key_row::Column::Currency, Expr::value(intent.currency.clone()))
        .col_expr(key_row::Column::CardBrand, Expr::value(intent.card_brand.clone()))
        .col_expr(key_row::Column::CardLast4, Expr::value(intent.card_last4.clone()))
        .col_expr(key_row::Column::ChargingSince, Expr::value(intent.accepted_at))
        .filter(running(user, key, lease.attempt))
        .exec(db)
        .await?;
    Ok(recorded.rows_affected == 1)
}

/// The intent written for a key, if its request got that far.
pub fn intent_of(row: &key_row::Model) -> Option<Intent> {
    Some(Intent {
        booking_id: row.booking_id?,
        amount_cents: row.amount_cents?,
        currency: row.currency.clone()?,
        card_brand: row.card_brand.clone()?,
        card_last4: row.card_last4.clone()?,
        accepted_at: row.charging_since?,
    })
}

/// Running keys whose lease ran out before `now` (their request died, or was released
/// without an answer): the reconciler's work.
///
/// # Errors
/// Database failures.
pub async fn abandoned(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<key_row::Model>, PaymentError> {
    key_row::Entity::find()
        .filter(key_row::Column::State.eq(KeyState::Running))
        .filter(key_row::Column::LeaseUntil.lt(now))
        .order_by_asc(key_row::Column::LeaseUntil)
        .limit(limit)
        .all(db)
        .await
        .map_err(Into::into)
}

/// Takes the abandoned `row` over (as a retry of its request would); `None` if someone else
/// did first.
///
/// # Errors
/// Database failures.
pub async fn take_over(
    db: &DatabaseConnection,
    row: &key_row::Model,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<Option<Lease>, PaymentError> {
    let attempt = row.attempt + 1;
    let taken = key_row::Entity::update_many()
        .col_expr(key_row::Column::Attempt, Expr::value(attempt))
        .col_expr(key_row::Column::LeaseUntil, Expr::value(lease_until))
        .filter(running(row.user_id, &row.key, row.attempt))
        .filter(key_row::Column::LeaseUntil.lt(now))
        .exec(db)
        .await?;
    Ok((taken.rows_affected == 1).then_some(Lease { payment_id: row.payment_id, attempt }))
}

/// Forgets a key whose request never sent its charge: the next request with it starts afresh.
///
/// # Errors
/// Database failures.
pub async fn forget(db: &impl ConnectionTrait, user: Uuid, key: &str, lease: Lease) -> Result<bool, PaymentError> {
    let gone = key_row::Entity::delete_many().filter(running(user, key, lease.attempt)).exec(db).await?;
    Ok(gone.rows_affected == 1)
}

/// Forgets the answered keys created before `before`; returns how many.
///
/// # Errors
/// Database failures.
pub async fn purge(db: &DatabaseConnection, before: DateTime<Utc>) -> Result<u64, PaymentError> {
    let purged = key_row::Entity::delete_many()
        .filter(key_row::Column::CreatedAt.lt(before))
        .filter(Expr::col(key_row::Column::State).eq(Expr::value(KeyState::Done)))
        .exec(db)
        .await?;
    Ok(purged.rows_affected)
}
