//! The in-process implementation of [`PaymentApi`] on the module's own tables.
//!
//! Paying: the card is checked, the `Idempotency-Key` claimed (see [`idempotency`]), the
//! booking's ledger row set `charging` for this payment — so no second payment of the same
//! booking can charge meanwhile — an attempt taken in the booking's and the customer's
//! windows ([`attempts`]), and the booking held for the charge through
//! [`BookingApi::hold_for_payment`] (the caller's, pending, hold not run out: from then on
//! booking keeps it pending until the charge's outcome arrives). The charge about to be sent
//! is written on the key (the intent), and the gateway is called outside any transaction.
//! One transaction then records the payment, its charge, the event and the saved answer, and
//! moves the ledger to `paid` (or back to `free` after a decline).
//!
//! A request that dies mid-charge (a crash, a kill) leaves its key `running`; so does one
//! released after a 409/503. The reconciler ([`PaymentService::run_reconciler`]) takes such a
//! key over one lease after its lease ran out: with no intent nothing was sent, and the key is
//! forgotten (with a `payment.failed` for the booking the request was about to hold, so a hold
//! it took does not keep the seats); otherwise it asks the gateway what became of the reference and records that
//! like the request would have (`processing_error` if the gateway never got it). A charge
//! the gateway approved completes the booking if the ledger still has it (the booking is
//! pending and held for it: the customer paid in time, and keeps the seats), and is refunded
//! if the booking was closed meanwhile.
//!
//! The expiry race: booking confirms a paid booking if the charge was accepted before its
//! hold ran out (`accepted_at` in `payment.completed`); a booking
//! cancelled or expired is `closed` in the ledger when `booking.cancelled` arrives. Closing
//! and finishing a charge both write the ledger row, so they take turns: whichever comes
//! second sees the other, and a completed payment of a closed booking is marked
//! `refund_due` in that same transaction. The refund worker gives the money back (at once,
//! and again after a crash or a gateway outage until it succeeds).

mod attempts;
mod card;
mod entity;
mod events;
pub mod gateway;
mod idempotency;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use booking::api::{BookingApi, BookingError, BookingId};
use chrono::Utc;
use platform::config::Secret;
use platform::error::{Failure, chain};
use platform::events::EventHandler;
use platform::identity::{AuthUser, UserId};
use platform::kv::KeyValue;
use platform::money::Money;
use platform::pagination::{Page, PageRequest};
use platform::validation::FieldErrors;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveEnum, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, ExprTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::Deserialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::api::{
    PayRequest, Payment, PaymentApi, PaymentCompleted, PaymentError, PaymentEvent, PaymentFailed, PaymentId,
    PaymentQuery, PaymentRefunded, PaymentStatus, Transaction, TransactionId, TransactionKind, TransactionStatus,
};
use attempts::Attempts;
use card::Card;
use entity::ledger::{self, LedgerState};
use entity::{payment, transaction};
use gateway::{Charge, ChargeOutcome, GatewaySettings, PaymentGateway, SimulatedGateway};
use idempotency::{Answer, Claim, Intent, Lease};

/// The generated fingerprint key of a process whose configuration leaves it empty.
pub const FINGERPRINT_KEY_FILE: &str = "payment-fingerprint.key";

/// `[payment]` settings.
#[derive(Debug, Clone, Deserialize)]
pub struct PaymentSettings {
    /// How long a duplicate request waits for the first with its key before a 409.
    pub duplicate_wait_ms: u64,
    /// How long a running charge keeps its key and its booking; then it is presumed dead.
    pub lease_seconds: u64,
    /// Answered idempotency keys are kept at least this long.
    pub idempotency_ttl_hours: u64,
    /// How often the refund worker looks for refunds due (it is also woken when one is).
    pub refund_interval_ms: u64,
    /// HMAC key of request fingerprints; empty: generated into the data directory.
    pub fingerprint_key: Secret,
    /// How often the reconciler looks for charges whose request died.
    pub reconcile_interval_ms: u64,
    /// Declined (or unfinished) payment attempts allowed per booking, and per customer, in
    /// one window of `attempt_window_seconds`.
    pub max_failed_attempts_per_booking: u32,
    pub max_failed_attempts_per_user: u32,
    pub attempt_window_seconds: u64,
    pub gateway: GatewaySettings,
}

impl PaymentSettings {
    /// Checks that parse but make no sense; each error names its key.
    pub fn check(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.lease_seconds == 0 {
            errors.push("payment.lease_seconds must be greater than 0".to_owned());
        }
        if self.idempotency_ttl_hours < 24 {
            errors.push("payment.idempotency_ttl_hours must be at least 24".to_owned());
        }
        if self.refund_interval_ms == 0 {
            errors.push("payment.refund_interval_ms must be greater than 0".to_owned());
        }
        if self.reconcile_interval_ms == 0 {
            errors.push("payment.reconcile_interval_ms must be greater than 0".to_owned());
        }
        if self.max_failed_attempts_per_booking == 0 || self.max_failed_attempts_per_user == 0 {
            errors.push("payment.max_failed_attempts_per_booking and _per_user must be greater than 0".to_owned());
        }
        if self.attempt_window_seconds == 0 {
            errors.push("payment.attempt_window_seconds must be greater than 0".to_owned());
        }
        if !(0.0..=1.0).contains(&self.gateway.failure_rate) {
            errors.push("payment.gateway.failure_rate must be between 0.0 and 1.0".to_owned());
        }
        errors
    }

    fn lease(&self) -> chrono::Duration {
        chrono::Duration::seconds(i64::try_from(self.lease_seconds).unwrap_or(30))
    }
}

pub struct PaymentService {
    db: DatabaseConnection,
    settings: PaymentSettings,
    bookings: Arc<dyn BookingApi>,
    gateway: Arc<dyn PaymentGateway>,
    fingerprint_key: Vec<u8>,
    /// Wakes the outbox relay after a commit that wrote an event.
    relay: Arc<Notify>,
    /// Wakes the refund worker when a refund became due.
    refunds: Notify,
    /// Copies of saved answers in Redis (split deployment), so replays skip the database.
    answers: Option<idempotency::AnswerCache>,
    attempts: Attempts,
}

/// The failure reason of a charge the gateway never received (found by the reconciler).
const NOT_CHARGED: &str = "processing_error";

impl From<DbErr> for PaymentError {
    fn from(e: DbErr) -> Self {
        platform::db::db_err("payment database", e)
    }
}

use platform::db::now;

fn booking_error(e: BookingError) -> PaymentError {
    match e {
        BookingError::NotFound(_) => PaymentError::NotFound("booking"),
        BookingError::Unauthenticated(reason) => PaymentError::Unauthenticated(reason),
        BookingError::Unavailable(reason) => PaymentError::Unavailable(format!("booking: {reason}")),
        BookingError::NotPayable(reason) => PaymentError::BookingNotPending(reason),
        other => PaymentError::Internal(Failure::new("booking", other)),
    }
}

fn view(p: payment::Model, txs: Vec<transaction::Model>) -> Result<Payment, PaymentError> {
    let transactions = txs
        .into_iter()
        .map(|t| Transaction {
            id: TransactionId(t.id),
            kind: t.kind,
            amount_cents: Money::from_cents(t.amount_cents),
            status: t.status,
            created_at: t.created_at,
        })
        .collect();
    Ok(Payment {
        id: PaymentId(p.id),
        booking_id: BookingId(p.booking_id),
        user_id: UserId(p.user_id),
        amount_cents: Money::from_cents(p.amount_cents),
        currency: p.currency,
        status: p.status,
        failure_reason: p.failure_reason,
        card_brand: p.card_brand,
        card_last4: p.card_last4,
        created_at: p.created_at,
        transactions,
    })
}

fn key_reused() -> PaymentError {
    PaymentError::Validation(FieldErrors::single("Idempotency-Key", "was used before with a different request body"))
}

fn taken_over() -> PaymentError {
    PaymentError::InProgress("another request took this Idempotency-Key over".to_owned())
}

/// The rows and the event that record a charge's outcome.
struct ChargeRecord {
    payment: payment::Model,
    charge: transaction::Model,
    event: PaymentEvent,
}

impl ChargeRecord {
    fn of(user: UserId, lease: Lease, intent: &Intent, outcome: ChargeOutcome, now: chrono::DateTime<Utc>) -> Self {
        let booking_id = BookingId(intent.booking_id);
        let payment_id = PaymentId(lease.payment_id);
        let (status, charge_status, failure_reason, event) = match outcome {
            ChargeOutcome::Approved => {
                let completed = PaymentCompleted {
                    payment_id,
                    booking_id,
                    user_id: user,
                    amount_cents: intent.amount_cents,
                    accepted_at: Some(intent.accepted_at),
                    currency: Some(intent.currency.clone()),
                };
                (PaymentStatus::Completed, TransactionStatus::Succeeded, None, PaymentEvent::Completed(completed))
            }
            ChargeOutcome::Declined(reason) => {
                let failed = PaymentFailed {
                    payment_id,
                    booking_id,
                    user_id: user,
                    failure_reason: reason.clone(),
                    amount_cents: Some(intent.amount_cents),
                    currency: Some(intent.currency.clone()),
                };
                (PaymentStatus::Failed, TransactionStatus::Failed, Some(reason), PaymentEvent::Failed(failed))
            }
        };
        let payment = payment::Model {
            id: lease.payment_id,
            user_id: user.0,
            booking_id: booking_id.0,
            amount_cents: intent.amount_cents,
            currency: intent.currency.clone(),
            status,
            failure_reason,
            card_brand: intent.card_brand.clone(),
            card_last4: intent.card_last4.clone(),
            refund_due: false,
            created_at: now,
            updated_at: now,
        };
        let charge = transaction::Model {
            id: Uuid::now_v7(),
            payment_id: lease.payment_id,
            kind: TransactionKind::Charge,
            amount_cents: intent.amount_cents,
            status: charge_status,
            created_at: now,
        };
        Self { payment, charge, event }
    }
}

impl PaymentService {
    /// # Errors
    /// The generated fingerprint key cannot be read or written.
    pub fn new(
        db: DatabaseConnection,
        settings: &PaymentSettings,
        data_dir: &Path,
        bookings: Arc<dyn BookingApi>,
        relay: Arc<Notify>,
        answer_cache: Option<Arc<dyn KeyValue>>,
    ) -> Result<Self, String> {
        let fingerprint_key = if settings.fingerprint_key.is_empty() {
            platform::config::private_file(&data_dir.join(FINGERPRINT_KEY_FILE), || {
                Ok(rand::random::<[u8; 32]>().iter().map(|b| format!("{b:02x}")).collect::<String>().into_bytes())
            })?
        } else {
            settings.fingerprint_key.expose().as_bytes().to_vec()
        };
        let attempts = Attempts {
            per_booking: settings.max_failed_attempts_per_booking,
            per_user: settings.max_failed_attempts_per_user,
            window: chrono::Duration::seconds(i64::try_from(settings.attempt_window_seconds).unwrap_or(3600)),
        };
        let gateway = Arc::new(SimulatedGateway::new(db.clone(), &settings.gateway));
        Ok(Self {
            attempts,
            db,
            settings: settings.clone(),
            bookings,
            gateway,
            fingerprint_key,
            relay,
            refunds: Notify::new(),
            answers: answer_cache.map(|kv| {
                let hours = settings.idempotency_ttl_hours;
                idempotency::AnswerCache::new(kv, Duration::from_secs(hours.saturating_mul(3600)))
            }),
        })
    }

    /// The handler of `payment_queue` (`booking.cancelled`).
    pub fn events_handler(self: &Arc<Self>) -> Arc<dyn EventHandler> {
        Arc::new(events::BookingEvents::new(Arc::clone(self)))
    }

    async fn transactions_of(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Vec<transaction::Model>>, PaymentError> {
        let mut by_payment: HashMap<Uuid, Vec<transaction::Model>> = HashMap::new();
        let rows = transaction::Entity::find()
            .filter(transaction::Column::PaymentId.is_in(ids.iter().copied()))
            .order_by_asc(transaction::Column::CreatedAt)
            .order_by_asc(transaction::Column::Id)
            .all(&self.db)
            .await?;
        for row in rows {
            by_payment.entry(row.payment_id).or_default().push(row);
        }
        Ok(by_payment)
    }

    async fn full(&self, p: payment::Model) -> Result<Payment, PaymentError> {
        let txs = self.transactions_of(&[p.id]).await?.remove(&p.id).unwrap_or_default();
        view(p, txs)
    }

    /// Takes, in one transaction, what a charge needs before the booking is held: the booking's
    /// ledger row, an attempt in each window, and the booking's id on the key. A refusal takes
    /// none of them. (They were four commits: the payment's share of a booking's commits is
    /// the funnel's largest, docs/benchmarks.md "Funnel ceiling".)
    async fn begin_charge(
        &self,
        user: Uuid,
        key: &str,
        lease: Lease,
        booking: BookingId,
        now: chrono::DateTime<Utc>,
    ) -> Result<attempts::Taken, PaymentError> {
        let txn = platform::db::begin(&self.db, "begin charge").await?;
        self.take_ledger(&txn, booking, lease.payment_id, now).await?;
        let attempt = self.attempts.take(&txn, user, booking.0, now).await?;
        if !idempotency::record_hold(&txn, user, key, lease, booking.0).await? {
            return Err(taken_over());
        }
        txn.commit().await?;
        Ok(attempt)
    }

    /// Sets the booking's ledger row `charging` for `payment`: a new row, or one that is free,
    /// or whose charge's lease ran out, or this payment's own; else says who has it.
    async fn take_ledger(
        &self,
        txn: &impl ConnectionTrait,
        booking: BookingId,
        payment: Uuid,
        now: chrono::DateTime<Utc>,
    ) -> Result<(), PaymentError> {
        let row = ledger::Model {
            booking_id: booking.0,
            state: LedgerState::Charging,
            payment_id: Some(payment),
            lease_until: Some(now + self.settings.lease()),
            updated_at: now,
        };
        let current = |column| Expr::col((ledger::Entity, column));
        let charging = current(ledger::Column::State).eq(Expr::value(LedgerState::Charging));
        let takeable = current(ledger::Column::State).eq(Expr::value(LedgerState::Free)).or(charging
            .and(current(ledger::Column::LeaseUntil).lt(now).or(current(ledger::Column::PaymentId).eq(payment))));
        let taken = ledger::Entity::insert(ledger::ActiveModel::from(row))
            .on_conflict(
                OnConflict::column(ledger::Column::BookingId)
                    .update_columns([
                        ledger::Column::State,
                        ledger::Column::PaymentId,
                        ledger::Column::LeaseUntil,
                        ledger::Column::UpdatedAt,
                    ])
                    .action_and_where(takeable)
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
        if taken == 1 {
            return Ok(());
        }
        let state = ledger::Entity::find_by_id(booking.0).one(txn).await?.map(|l| l.state);
        Err(match state {
            Some(LedgerState::Paid) => PaymentError::BookingNotPending("it is already paid".to_owned()),
            Some(LedgerState::Closed) => PaymentError::BookingNotPending("it was cancelled or has expired".to_owned()),
            _ => PaymentError::InProgress("another payment of this booking is being charged".to_owned()),
        })
    }

    /// Gives the booking's ledger row back after a charge that did not happen.
    async fn abandon_charge(&self, booking: BookingId, payment: Uuid) {
        let freed = ledger::Entity::update_many()
            .col_expr(ledger::Column::State, Expr::value(LedgerState::Free))
            .col_expr(ledger::Column::UpdatedAt, Expr::value(now()))
            .filter(ledger::Column::BookingId.eq(booking.0))
            .filter(ledger::Column::State.eq(LedgerState::Charging))
            .filter(ledger::Column::PaymentId.eq(payment))
            .exec(&self.db)
            .await;
        if let Err(e) = freed {
            tracing::warn!(error = %e, "booking ledger not freed; its lease runs out on its own");
        }
    }

    /// Takes the booking's ledger, an attempt and the booking's hold for this charge, writes
    /// the intent down, charges, and records the outcome with the saved answer. Whatever
    /// fails before the gateway answered gives the ledger and the attempt back.
    #[tracing::instrument(skip_all, fields(booking_id = %booking_id, payment_id = %lease.payment_id))]
    async fn charge(
        &self,
        caller: &AuthUser,
        key: &str,
        lease: Lease,
        card: &Card,
        booking_id: BookingId,
    ) -> Result<Payment, PaymentError> {
        let accepted_at = now();
        let attempt = self.begin_charge(caller.id.0, key, lease, booking_id, accepted_at).await?;
        let (intent, outcome) = match self.hold_and_send(caller, key, lease, card, booking_id, accepted_at).await {
            Ok(sent) => sent,
            Err(e) => {
                self.abandon_charge(booking_id, lease.payment_id).await;
                self.attempts.give_back(&self.db, attempt).await;
                return Err(e);
            }
        };
        // Only declines count against the attempt limits.
        if outcome == ChargeOutcome::Approved {
            self.attempts.give_back(&self.db, attempt).await;
        }
        self.record(caller.id, key, lease, &intent, outcome).await
    }

    /// Holds the booking for the charge, writes the intent down, and sends the charge.
    async fn hold_and_send(
        &self,
        caller: &AuthUser,
        key: &str,
        lease: Lease,
        card: &Card,
        booking_id: BookingId,
        accepted_at: chrono::DateTime<Utc>,
    ) -> Result<(Intent, ChargeOutcome), PaymentError> {
        let intent = self.prepare(caller, key, lease, card, booking_id, accepted_at).await?;
        let outcome = self.send_charge(lease, card, &intent).await?;
        Ok((intent, outcome))
    }

    /// Holds the booking for the charge (booking checks it is the caller's, pending, its hold
    /// not run out) and writes the charge about to be sent on the key.
    async fn prepare(
        &self,
        caller: &AuthUser,
        key: &str,
        lease: Lease,
        card: &Card,
        booking_id: BookingId,
        accepted_at: chrono::DateTime<Utc>,
    ) -> Result<Intent, PaymentError> {
        let booking =
            self.bookings.hold_for_payment(caller, booking_id, lease.payment_id).await.map_err(booking_error)?;
        let intent = Intent {
            booking_id: booking.id.0,
            amount_cents: booking.amount_cents.cents(),
            currency: booking.currency,
            card_brand: card.brand.to_owned(),
            card_last4: card.last4.clone(),
            accepted_at,
        };
        if !idempotency::record_intent(&self.db, caller.id.0, key, lease, &intent).await? {
            return Err(taken_over());
        }
        Ok(intent)
    }

    /// Asks the gateway to charge `intent` under the lease's payment id.
    async fn send_charge(&self, lease: Lease, card: &Card, intent: &Intent) -> Result<ChargeOutcome, PaymentError> {
        let charge = Charge {
            reference: PaymentId(lease.payment_id),
            amount_cents: intent.amount_cents,
            currency: &intent.currency,
            card,
        };
        // Bounded well within the lease, so neither the key nor the booking is taken over
        // while the gateway still works on this charge. A timeout is an unknown outcome: the
        // retry charges under the same reference (and the reconciler asks about it if none
        // comes).
        let timeout = Duration::from_secs(self.settings.lease_seconds) / 2;
        match tokio::time::timeout(timeout, self.gateway.charge(&charge)).await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(e)) => Err(PaymentError::Unavailable(e.to_string())),
            Err(_) => Err(PaymentError::Unavailable(format!("payment gateway: no answer within {timeout:?}"))),
        }
    }

    /// Records the outcome of the charge of `intent` under `lease`: the payment, its charge
    /// transaction, its event and the key's answer in one transaction, and the ledger moved
    /// on; a charge of a booking closed meanwhile is refunded at once.
    async fn record(
        &self,
        user: UserId,
        key: &str,
        lease: Lease,
        intent: &Intent,
        outcome: ChargeOutcome,
    ) -> Result<Payment, PaymentError> {
        let rows = ChargeRecord::of(user, lease, intent, outcome, now());
        let answer = view(rows.payment.clone(), vec![rows.charge.clone()])?;
        let status = rows.payment.status;
        let refund_due = self.commit_outcome(user, key, lease, rows, &answer).await?;
        self.relay.notify_one();
        metrics::counter!("payments_total", "status" => status.to_value()).increment(1);
        if refund_due { Ok(self.refund_at_once(user, key, answer).await) } else { Ok(answer) }
    }

    /// Writes `rows` and the key's answer in one transaction; `true` if the booking was closed
    /// (or its ledger taken over) while the gateway charged: the payment is then marked
    /// `refund_due`, and booking never hears of this charge (a `payment.completed` could
    /// confirm the booking for another payment's sake); `payment.refunded` follows.
    async fn commit_outcome(
        &self,
        user: UserId,
        key: &str,
        lease: Lease,
        rows: ChargeRecord,
        answer: &Payment,
    ) -> Result<bool, PaymentError> {
        let ChargeRecord { mut payment, charge, event } = rows;
        let approved = payment.status == PaymentStatus::Completed;
        let txn = platform::db::begin(&self.db, "commit outcome").await?;
        // First the key: a request whose lease was taken over (it ran longer than
        // `payment.lease_seconds`) records nothing; the one that took over charged under the
        // same reference and answers.
        let saved = Answer::Charged { payment: answer.clone() };
        if !idempotency::save_answer(&txn, user.0, key, lease, &saved).await? {
            return Err(taken_over());
        }
        let kept = ledger::Entity::update_many()
            .col_expr(ledger::Column::State, Expr::value(if approved { LedgerState::Paid } else { LedgerState::Free }))
            .col_expr(ledger::Column::UpdatedAt, Expr::value(payment.updated_at))
            .filter(ledger::Column::BookingId.eq(payment.booking_id))
            // `free` still naming this payment: its request gave the ledger back after a gateway
            // error (the outcome was unknown) and no other charge began since, so the charge
            // the reconciler found is still the booking's.
            .filter(ledger::Column::State.is_in([LedgerState::Charging, LedgerState::Free]))
            .filter(ledger::Column::PaymentId.eq(lease.payment_id))
            .exec(&txn)
            .await?;
        payment.refund_due = approved && kept.rows_affected == 0;
        let refund_due = payment.refund_due;
        payment::Entity::insert(payment::ActiveModel::from(payment)).exec(&txn).await?;
        transaction::Entity::insert(transaction::ActiveModel::from(charge)).exec(&txn).await?;
        if !refund_due {
            platform::outbox::publish(&txn, &event).await?;
        }
        txn.commit().await?;
        Ok(refund_due)
    }

    /// Refunds a charge whose booking was closed meanwhile; the key's answer (and every
    /// replay of it) then says what happened: refunded. If the gateway refuses now, the
    /// refund worker retries and `answer` stands.
    async fn refund_at_once(&self, user: UserId, key: &str, answer: Payment) -> Payment {
        tracing::warn!("charged a booking that was closed meanwhile; refunding");
        if let Err(e) = self.refund_payment(answer.id.0).await {
            tracing::warn!(error = %chain(&e), "refund failed; the refund worker retries");
            self.refunds.notify_one();
            return answer;
        }
        let refunded = match self.full_by_id(answer.id.0).await {
            Ok(refunded) => refunded,
            Err(e) => {
                tracing::warn!(error = %chain(&e), "refunded, but not read back; answering the charge");
                return answer;
            }
        };
        let saved = Answer::Charged { payment: refunded.clone() };
        if let Err(e) = idempotency::replace_answer(&self.db, user.0, key, &saved).await {
            tracing::warn!(error = %chain(&e), "a replay of this key answers the payment before its refund");
        }
        if let Some(cache) = &self.answers {
            cache.forget(user.0, key).await;
        }
        refunded
    }

    /// Claims `key` for this request, waiting up to `payment.duplicate_wait_ms` while
    /// another request with it runs: the lease to charge under, or the saved answer of the
    /// first request.
    async fn claim_key(&self, user: Uuid, key: &str, fingerprint: &str) -> Result<Result<Lease, Answer>, PaymentError> {
        if let Some(cache) = &self.answers {
            match cache.claim(user, key, fingerprint).await {
                Some(Claim::Replay(saved)) => {
                    metrics::counter!("payment_replays_total", "source" => "cache").increment(1);
                    return Ok(Err(saved));
                }
                Some(_) => return Err(key_reused()),
                None => {}
            }
        }
        let deadline = Instant::now() + Duration::from_millis(self.settings.duplicate_wait_ms);
        let mut pause = Duration::from_millis(5);
        loop {
            let now = now();
            match idempotency::claim(&self.db, user, key, fingerprint, now, now + self.settings.lease()).await? {
                Claim::Run(lease) => return Ok(Ok(lease)),
                Claim::Replay(saved) => {
                    // Copied on the first replay, not with every payment: most keys are never
                    // sent twice, and a payment should not wait for Redis.
                    metrics::counter!("payment_replays_total", "source" => "database").increment(1);
                    if let Some(cache) = &self.answers {
                        cache.put(user, key, fingerprint, &saved).await;
                    }
                    return Ok(Err(saved));
                }
                Claim::Mismatch => return Err(key_reused()),
                Claim::Busy if Instant::now() >= deadline => {
                    return Err(PaymentError::InProgress(
                        "a request with this Idempotency-Key is still running".to_owned(),
                    ));
                }
                Claim::Busy => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
            }
        }
    }

    async fn full_by_id(&self, id: Uuid) -> Result<Payment, PaymentError> {
        let p = payment::Entity::find_by_id(id).one(&self.db).await?;
        self.full(p.ok_or(PaymentError::NotFound("payment"))?).await
    }

    /// Refunds a completed payment in full: the gateway first, then the payment, its refund
    /// transaction and `payment.refunded` in one transaction. `false` if it was not completed
    /// (anymore).
    async fn refund_payment(&self, id: Uuid) -> Result<bool, PaymentError> {
        let Some(p) = payment::Entity::find_by_id(id).one(&self.db).await? else {
            return Err(PaymentError::NotFound("payment"));
        };
        if p.status != PaymentStatus::Completed {
            return Ok(false);
        }
        self.gateway
            .refund(PaymentId(p.id), p.amount_cents, &p.currency)
            .await
            .map_err(|e| PaymentError::Unavailable(e.to_string()))?;
        let now = now();
        let txn = platform::db::begin(&self.db, "refund").await?;
        let refunded = payment::Entity::update_many()
            .col_expr(payment::Column::Status, Expr::value(PaymentStatus::Refunded))
            .col_expr(payment::Column::RefundDue, Expr::value(false))
            .col_expr(payment::Column::UpdatedAt, Expr::value(now))
            .filter(payment::Column::Id.eq(id))
            .filter(payment::Column::Status.eq(PaymentStatus::Completed))
            .exec(&txn)
            .await?;
        if refunded.rows_affected != 1 {
            return Ok(false);
        }
        transaction::Entity::insert(transaction::ActiveModel {
            id: Set(Uuid::now_v7()),
            payment_id: Set(id),
            kind: Set(TransactionKind::Refund),
            amount_cents: Set(p.amount_cents),
            status: Set(TransactionStatus::Succeeded),
            created_at: Set(now),
        })
        .exec(&txn)
        .await?;
        let payload = PaymentRefunded {
            payment_id: PaymentId(id),
            booking_id: BookingId(p.booking_id),
            user_id: UserId(p.user_id),
            amount_cents: p.amount_cents,
            currency: Some(p.currency.clone()),
        };
        platform::outbox::publish(&txn, &PaymentEvent::Refunded(payload)).await?;
        txn.commit().await?;
        self.relay.notify_one();
        metrics::counter!("payments_total", "status" => "refunded").increment(1);
        Ok(true)
    }

    /// Closes the booking in the ledger (no charge may start or complete for it any more) and
    /// marks its completed payments `refund_due`, in `txn`.
    async fn close_booking(&self, txn: &impl ConnectionTrait, booking: BookingId) -> Result<u64, DbErr> {
        let now = now();
        let closed = ledger::ActiveModel {
            booking_id: Set(booking.0),
            state: Set(LedgerState::Closed),
            payment_id: Set(None),
            lease_until: Set(None),
            updated_at: Set(now),
        };
        ledger::Entity::insert(closed)
            .on_conflict(
                OnConflict::column(ledger::Column::BookingId)
                    .update_columns([ledger::Column::State, ledger::Column::UpdatedAt])
                    .to_owned(),
            )
            .exec(txn)
            .await?;
        let due = payment::Entity::update_many()
            .col_expr(payment::Column::RefundDue, Expr::value(true))
            .filter(payment::Column::BookingId.eq(booking.0))
            .filter(payment::Column::Status.eq(PaymentStatus::Completed))
            .exec(txn)
            .await?;
        Ok(due.rows_affected)
    }

    /// Refunds every payment marked `refund_due`; returns how many.
    ///
    /// # Errors
    /// Database failures (a gateway failure leaves the payment due for the next round).
    async fn refund_due(&self) -> Result<u64, PaymentError> {
        let due = payment::Entity::find()
            .filter(payment::Column::RefundDue.eq(true))
            .order_by_asc(payment::Column::UpdatedAt)
            .limit(100)
            .all(&self.db)
            .await?;
        let mut refunded = 0;
        for p in due {
            match self.refund_payment(p.id).await {
                Ok(true) => refunded += 1,
                Ok(false) => {}
                Err(e) => tracing::warn!(payment_id = %p.id, error = %chain(&e), "refund failed; retrying later"),
            }
        }
        Ok(refunded)
    }

    /// Refunds what is due every `payment.refund_interval_ms` (and when woken), and forgets
    /// idempotency keys older than `payment.idempotency_ttl_hours`, until `stop`.
    pub async fn run_refunds(self: Arc<Self>, stop: CancellationToken) {
        let interval = Duration::from_millis(self.settings.refund_interval_ms);
        let ttl = chrono::Duration::hours(i64::try_from(self.settings.idempotency_ttl_hours).unwrap_or(24));
        let mut last_purge: Option<Instant> = None;
        loop {
            if let Err(e) = self.refund_due().await {
                tracing::warn!(error = %chain(&e), "refund round failed; retrying");
            }
            if last_purge.is_none_or(|at| at.elapsed() > Duration::from_secs(600)) {
                match idempotency::purge(&self.db, Utc::now() - ttl).await {
                    Ok(n) if n > 0 => tracing::info!(purged = n, "forgot old idempotency keys"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %chain(&e), "purging idempotency keys failed"),
                }
                last_purge = Some(Instant::now());
            }
            if platform::tasks::pause(&stop, &self.refunds, interval).await == platform::tasks::Resume::Stop {
                return;
            }
        }
    }

    /// Resolves every key left `running` one lease after its lease ran out (see the module's
    /// comment); returns how many.
    ///
    /// # Errors
    /// Database failures (a key that cannot be resolved now is tried again next round).
    pub async fn reconcile(&self) -> Result<u64, PaymentError> {
        let now = now();
        // A key released after a 409/503 is left to its client's retry for one lease first.
        let rows = idempotency::abandoned(&self.db, now - self.settings.lease(), 100).await?;
        let mut resolved = 0;
        for row in rows {
            match self.reconcile_key(&row, now).await {
                Ok(true) => resolved += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(payment_id = %row.payment_id, error = %chain(&e), "reconciling failed; retrying later")
                }
            }
        }
        Ok(resolved)
    }

    async fn reconcile_key(
        &self,
        row: &entity::idempotency_key::Model,
        now: chrono::DateTime<Utc>,
    ) -> Result<bool, PaymentError> {
        let cutoff = now - self.settings.lease();
        let Some(lease) = idempotency::take_over(&self.db, row, cutoff, now + self.settings.lease()).await? else {
            return Ok(false);
        };
        let Some(intent) = idempotency::intent_of(row) else {
            // The request never sent its charge: nothing to record, the key starts afresh.
            let txn = platform::db::begin(&self.db, "reconcile").await?;
            idempotency::forget(&txn, row.user_id, &row.key, lease).await?;
            // It may have held the booking for this charge (killed, or failed, between the hold
            // and its intent): booking keeps such a hold pending until the charge's outcome
            // arrives, so it is told the charge failed (nothing was charged); otherwise the
            // seats would stay claimed for `booking.charge_grace_seconds`.
            if let Some(booking_id) = row.booking_id {
                let failed = PaymentFailed {
                    payment_id: PaymentId(lease.payment_id),
                    booking_id: BookingId(booking_id),
                    user_id: UserId(row.user_id),
                    failure_reason: NOT_CHARGED.to_owned(),
                    amount_cents: None,
                    currency: None,
                };
                platform::outbox::publish(&txn, &PaymentEvent::Failed(failed)).await?;
            }
            ledger::Entity::update_many()
                .col_expr(ledger::Column::State, Expr::value(LedgerState::Free))
                .col_expr(ledger::Column::UpdatedAt, Expr::value(now))
                .filter(ledger::Column::State.eq(LedgerState::Charging))
                .filter(ledger::Column::PaymentId.eq(lease.payment_id))
                .exec(&txn)
                .await?;
            txn.commit().await?;
            self.relay.notify_one();
            metrics::counter!("payment_reconciled_total", "outcome" => "forgotten").increment(1);
            return Ok(true);
        };
        let outcome = match self.gateway.status(PaymentId(lease.payment_id)).await {
            Ok(Some(outcome)) => outcome,
            Ok(None) => ChargeOutcome::Declined(NOT_CHARGED.to_owned()),
            Err(e) => {
                if let Err(release) = idempotency::release(&self.db, row.user_id, &row.key, lease, cutoff).await {
                    tracing::warn!(error = %chain(&release), "reconciled key not released; its lease runs out on its own");
                }
                return Err(PaymentError::Unavailable(e.to_string()));
            }
        };
        tracing::warn!(payment_id = %lease.payment_id, ?outcome, "recording a charge whose request died");
        let label = if outcome == ChargeOutcome::Approved { "approved" } else { "declined" };
        self.record(UserId(row.user_id), &row.key, lease, &intent, outcome).await?;
        metrics::counter!("payment_reconciled_total", "outcome" => label).increment(1);
        Ok(true)
    }

    /// Reconciles every `payment.reconcile_interval_ms` until `stop`.
    pub async fn run_reconciler(self: Arc<Self>, stop: CancellationToken) {
        let interval = Duration::from_millis(self.settings.reconcile_interval_ms);
        platform::tasks::every(interval, stop, || async {
            if let Err(e) = self.reconcile().await {
                tracing::warn!(error = %chain(&e), "reconciling charges failed; retrying");
            }
        })
        .await;
    }
}

#[async_trait]
impl PaymentApi for PaymentService {
    async fn pay(&self, caller: &AuthUser, key: &str, request: PayRequest) -> Result<Payment, PaymentError> {
        crate::api::check_idempotency_key(key)?;
        let card = Card::parse(&request, Utc::now().date_naive()).map_err(PaymentError::Validation)?;
        let fingerprint = idempotency::fingerprint(&self.fingerprint_key, &request, &card);
        let lease = match self.claim_key(caller.id.0, key, &fingerprint).await? {
            Ok(lease) => lease,
            Err(saved) => return saved.into_result(),
        };
        let charged = self.charge(caller, key, lease, &card, request.booking_id).await;
        if let Err(e) = &charged {
            match Answer::of_refusal(e) {
                // Final answers about the booking are saved: the same request answers them again.
                Some(refusal) => {
                    idempotency::save_answer(&self.db, caller.id.0, key, lease, &refusal).await?;
                }
                // Nothing was charged: the key is free for the next try, under the same payment id.
                None => {
                    if let Err(e) = idempotency::release(&self.db, caller.id.0, key, lease, now()).await {
                        tracing::warn!(error = %chain(&e), "idempotency key not released; its lease runs out on its own");
                    }
                }
            }
        }
        charged
    }

    async fn list(&self, caller: &AuthUser, query: PaymentQuery) -> Result<Page<Payment>, PaymentError> {
        let pagination =
            PageRequest { page: query.page, per_page: query.per_page }.validate().map_err(PaymentError::Validation)?;
        let mut select = payment::Entity::find();
        if query.all == Some(true) {
            if !caller.is_admin() {
                return Err(PaymentError::Forbidden("only an admin can list every customer's payments".to_owned()));
            }
        } else {
            select = select.filter(payment::Column::UserId.eq(caller.id.0));
        }
        if let Some(booking) = query.booking_id {
            select = select.filter(payment::Column::BookingId.eq(booking.0));
        }
        if let Some(status) = query.status {
            select = select.filter(payment::Column::Status.eq(status));
        }
        let total = select.clone().count(&self.db).await?;
        let rows = select
            .order_by_desc(payment::Column::CreatedAt)
            .order_by_desc(payment::Column::Id)
            .offset(pagination.offset())
            .limit(pagination.per_page)
            .all(&self.db)
            .await?;
        let mut txs = self.transactions_of(&rows.iter().map(|p| p.id).collect::<Vec<_>>()).await?;
        let items = rows
            .into_iter()
            .map(|p| {
                let t = txs.remove(&p.id).unwrap_or_default();
                view(p, t)
            })
            .collect::<Result<_, _>>()?;
        Ok(Page::new(items, pagination, total))
    }

    async fn payment(&self, caller: &AuthUser, id: PaymentId) -> Result<Payment, PaymentError> {
        let found = payment::Entity::find_by_id(id.0).one(&self.db).await?;
        let p =
            found.filter(|p| p.user_id == caller.id.0 || caller.is_admin()).ok_or(PaymentError::NotFound("payment"))?;
        self.full(p).await
    }

    #[tracing::instrument(skip_all, fields(payment_id = %id))]
    async fn refund(&self, caller: &AuthUser, id: PaymentId) -> Result<Payment, PaymentError> {
        if !caller.is_admin() {
            return Err(PaymentError::Forbidden("only an admin can refund a payment".to_owned()));
        }
        let p = payment::Entity::find_by_id(id.0).one(&self.db).await?;
        let p = p.ok_or(PaymentError::NotFound("payment"))?;
        if p.status != PaymentStatus::Completed {
            return Err(PaymentError::NotRefundable(format!("it is {}", p.status.to_value())));
        }
        if !self.refund_payment(id.0).await? {
            return Err(PaymentError::NotRefundable("it was refunded meanwhile".to_owned()));
        }
        self.full_by_id(id.0).await
    }
}
