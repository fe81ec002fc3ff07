//! The in-process implementation of [`BookingApi`] on the module's own tables.
//!
//! Booking a seat: the seat locks (memory or Redis) settle a race cheaply before any
//! transaction; then one transaction inserts the booking, its seats, one `seat_claims` row
//! per seat (whose primary key refuses a seat that is already live, whatever the locks said)
//! and the `booking.created` event in the outbox. Cancel, expiry and confirmation change the
//! booking and its claims in one transaction with their event.
//!
//! Hold caps: each booking first takes its customer's row in `hold_locks`, so one customer's
//! bookings take turns from there to their commit and the seats they hold are counted without
//! a race (parallel holds of one customer can never exceed the caps).
//!
//! A charge in flight: payment asks for a payment hold ([`BookingApi::hold_for_payment`])
//! before it charges; a booking so marked is left pending by the sweeper until the charge's
//! outcome arrives (bounded by `booking.charge_grace_seconds`), and `payment.completed`
//! confirms it if the charge was accepted before `expires_at`, however late it is handled.
//! Its seats stay claimed meanwhile, so no one else can book them, whatever the seat locks'
//! TTL says.

mod entity;
mod events;
pub mod feed;
pub mod locks;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use movie::api::{MovieApi, MovieError, SeatId, SeatStates, SeatStatus, ShowtimeId, ShowtimePricing};
use platform::db::Transaction;
use platform::error::{Failure, chain};
use platform::events::EventHandler;
use platform::identity::{AuthUser, UserId};
use platform::kv::Versions;
use platform::money::Money;
use platform::pagination::{Page, PageRequest};
use platform::validation::FieldErrors;
use sea_orm::sea_query::{Condition, Expr, OnConflict};
use sea_orm::{
    ActiveEnum, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, SqlErr,
};
use serde::Deserialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::api::{
    BookRequest, BookedSeat, Booking, BookingApi, BookingCancelled, BookingCreated, BookingError, BookingEvent,
    BookingId, BookingQuery, BookingStatus, CancelReason,
};
use entity::{booking, booking_seat, hold_lock, seat_claim};
use feed::SeatFeeds;
use locks::{Acquired, SeatLocks};

/// `[booking]` settings.
#[derive(Debug, Clone, Deserialize)]
pub struct BookingSettings {
    /// How long an unpaid booking holds its seats.
    pub hold_ttl_seconds: u64,
    /// How often the sweeper looks for holds that ran out.
    pub sweep_interval_ms: u64,
    /// Most seats in one booking.
    pub max_seats: usize,
    /// Take seat locks before the database (the fast path); off, the database alone decides.
    pub seat_locks: bool,
    /// Most seats one customer may hold unpaid (pending) at once, over all showtimes.
    pub max_held_seats_per_user: u64,
    /// Most seats one customer may hold unpaid (pending) at once in one showtime.
    pub max_held_seats_per_showtime: u64,
    /// A hold whose charge payment accepted before it ran out stays pending until the
    /// charge's outcome arrives, but at most this many seconds past `expires_at`.
    pub charge_grace_seconds: u64,
    /// How often a followed showtime's seat-state version is checked for changes made by
    /// another booking process (this process's own are sent at once).
    pub seat_feed_poll_ms: u64,
    /// Most seat-state streams this process keeps open; past it a new one is a 503.
    pub seat_feed_max_streams: usize,
}

impl BookingSettings {
    /// Checks that parse but make no sense; each error names its key.
    pub fn check(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.hold_ttl_seconds == 0 {
            errors.push("booking.hold_ttl_seconds must be greater than 0".to_owned());
        }
        if self.sweep_interval_ms == 0 {
            errors.push("booking.sweep_interval_ms must be greater than 0".to_owned());
        }
        if self.seat_feed_poll_ms == 0 {
            errors.push("booking.seat_feed_poll_ms must be greater than 0".to_owned());
        }
        if self.max_seats == 0 {
            errors.push("booking.max_seats must be greater than 0".to_owned());
        }
        // So that one booking of `max_seats` is always possible for a customer who holds nothing.
        if self.max_held_seats_per_showtime < self.max_seats as u64 {
            errors.push("booking.max_held_seats_per_showtime must be at least booking.max_seats".to_owned());
        }
        if self.max_held_seats_per_user < self.max_held_seats_per_showtime {
            errors.push(
                "booking.max_held_seats_per_user must be at least booking.max_held_seats_per_showtime".to_owned(),
            );
        }
        errors
    }
}

pub struct BookingService {
    db: DatabaseConnection,
    settings: BookingSettings,
    movies: Arc<dyn MovieApi>,
    locks: Arc<dyn SeatLocks>,
    /// Wakes the outbox relay after a commit that wrote an event.
    relay: Arc<Notify>,
    /// The showtimes' seat-state versions, bumped after every commit that takes, confirms
    /// or frees seats (movie serves seat maps from copies while they are unchanged).
    seat_versions: Versions,
    /// Told of the same commits: followers of the showtime hear of them at once.
    feeds: SeatFeeds,
}

impl From<DbErr> for BookingError {
    fn from(e: DbErr) -> Self {
        platform::db::db_err("booking database", e)
    }
}

fn seat_keys(seats: &[SeatId]) -> Vec<String> {
    seats.iter().map(ToString::to_string).collect()
}

fn booked_seats(seats: Vec<booking_seat::Model>) -> Vec<BookedSeat> {
    seats
        .into_iter()
        .map(|s| BookedSeat {
            id: SeatId(s.seat_id),
            row: s.row_label,
            number: u32::try_from(s.number).unwrap_or(0),
            price_cents: Money::from_cents(s.price_cents),
        })
        .collect()
}

/// The seats of `booking` as its events name them, read in `txn`.
async fn seats_in(txn: &impl ConnectionTrait, booking: Uuid) -> Result<Vec<BookedSeat>, BookingError> {
    let rows = booking_seat::Entity::find()
        .filter(booking_seat::Column::BookingId.eq(booking))
        .order_by_asc(booking_seat::Column::RowLabel)
        .order_by_asc(booking_seat::Column::Number)
        .all(txn)
        .await?;
    Ok(booked_seats(rows))
}

fn view(b: booking::Model, seats: Vec<booking_seat::Model>) -> Result<Booking, BookingError> {
    Ok(Booking {
        id: BookingId(b.id),
        user_id: UserId(b.user_id),
        showtime_id: ShowtimeId(b.showtime_id),
        status: b.status,
        seats: booked_seats(seats),
        amount_cents: Money::from_cents(b.amount_cents),
        currency: b.currency,
        created_at: b.created_at,
        expires_at: b.expires_at,
    })
}

impl BookingService {
    pub fn new(
        db: DatabaseConnection,
        settings: &BookingSettings,
        movies: Arc<dyn MovieApi>,
        locks: Arc<dyn SeatLocks>,
        relay: Arc<Notify>,
        seat_versions: Versions,
        feeds: SeatFeeds,
    ) -> Self {
        Self { db, settings: settings.clone(), movies, locks, relay, seat_versions, feeds }
    }

    /// The live seat states of followed showtimes.
    pub fn feeds(&self) -> &SeatFeeds {
        &self.feeds
    }

    /// Call after committing a change to `showtime`'s seat claims: copies of its seat map
    /// made before are out of date. A bump that cannot reach the store leaves them in use
    /// for at most their maximum age (movie's `seat_maps`).
    async fn seats_changed(&self, showtime: ShowtimeId) {
        if let Err(e) = self.seat_versions.bump(&movie::api::seat_version_key(showtime)).await {
            tracing::warn!(showtime_id = %showtime.0, error = %e, "seat map version not bumped");
        }
        self.feeds.changed(showtime);
    }

    /// The handler of `booking_queue` (payment events).
    pub fn events_handler(self: &Arc<Self>) -> Arc<dyn EventHandler> {
        Arc::new(events::PaymentEvents::new(Arc::clone(self)))
    }

    async fn seats_of(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Vec<booking_seat::Model>>, BookingError> {
        let mut by_booking: HashMap<Uuid, Vec<booking_seat::Model>> = HashMap::new();
        let rows = booking_seat::Entity::find()
            .filter(booking_seat::Column::BookingId.is_in(ids.iter().copied()))
            .order_by_asc(booking_seat::Column::RowLabel)
            .order_by_asc(booking_seat::Column::Number)
            .all(&self.db)
            .await?;
        for row in rows {
            by_booking.entry(row.booking_id).or_default().push(row);
        }
        Ok(by_booking)
    }

    /// The booking if `caller` may see it (owner or admin); `NotFound` otherwise.
    async fn visible(&self, caller: &AuthUser, id: BookingId) -> Result<booking::Model, BookingError> {
        let found = booking::Entity::find_by_id(id.0).one(&self.db).await?;
        found.filter(|b| b.user_id == caller.id.0 || caller.is_admin()).ok_or(BookingError::NotFound("booking"))
    }

    async fn full(&self, b: booking::Model) -> Result<Booking, BookingError> {
        let seats = self.seats_of(&[b.id]).await?.remove(&b.id).unwrap_or_default();
        view(b, seats)
    }

    /// Which of `seats` are claimed in `showtime` (after the database refused a booking).
    async fn claimed(&self, showtime: ShowtimeId, seats: &[SeatId]) -> Result<Vec<SeatId>, BookingError> {
        let rows = seat_claim::Entity::find()
            .filter(seat_claim::Column::ShowtimeId.eq(showtime.0))
            .filter(seat_claim::Column::SeatId.is_in(seats.iter().map(|s| s.0)))
            .all(&self.db)
            .await?;
        let taken: Vec<Uuid> = rows.iter().map(|r| r.seat_id).collect();
        Ok(seats.iter().copied().filter(|s| taken.contains(&s.0)).collect())
    }

    /// Ends a live booking: `status` in its row, its claims gone, `booking.cancelled` in the
    /// outbox, in one transaction. `false` if it was no longer live (someone else ended it).
    async fn end(&self, b: &booking::Model, status: BookingStatus, reason: CancelReason) -> Result<bool, BookingError> {
        let txn = platform::db::begin(&self.db, "end booking").await?;
        let was_paid = b.status == BookingStatus::Confirmed;
        let ended = booking::Entity::update_many()
            .col_expr(booking::Column::Status, Expr::value(status))
            .col_expr(booking::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(booking::Column::Id.eq(b.id))
            .filter(booking::Column::Status.eq(b.status))
            .exec(&txn)
            .await?;
        if ended.rows_affected != 1 {
            return Ok(false);
        }
        let seats: Vec<SeatId> = seat_claim::Entity::find()
            .filter(seat_claim::Column::BookingId.eq(b.id))
            .all(&txn)
            .await?
            .into_iter()
            .map(|c| SeatId(c.seat_id))
            .collect();
        seat_claim::Entity::delete_many().filter(seat_claim::Column::BookingId.eq(b.id)).exec(&txn).await?;
        let cancelled = BookingCancelled {
            booking_id: BookingId(b.id),
            user_id: UserId(b.user_id),
            showtime_id: ShowtimeId(b.showtime_id),
            seat_ids: seats.clone(),
            reason,
            was_paid,
            amount_cents: Some(b.amount_cents),
            ticket: events::ticket(b, seats_in(&txn, b.id).await?),
        };
        platform::outbox::publish(&txn, &BookingEvent::Cancelled(cancelled)).await?;
        txn.commit().await?;
        self.relay.notify_one();
        self.seats_changed(ShowtimeId(b.showtime_id)).await;
        if let Err(e) = self.locks.release(&b.showtime_id.to_string(), &seat_keys(&seats), &b.id.to_string()).await {
            tracing::warn!(error = %e, "seat locks not released; they expire on their own");
        }
        Ok(true)
    }

    /// Expires the pending bookings whose hold ran out; returns how many.
    ///
    /// # Errors
    /// Database failures.
    pub async fn expire_due(&self) -> Result<u64, BookingError> {
        let now = Utc::now();
        let grace = chrono::Duration::seconds(i64::try_from(self.settings.charge_grace_seconds).unwrap_or(i64::MAX));
        // A booking with a charge in flight waits for its outcome (see the module's comment),
        // up to the grace period: a hold is never kept forever.
        let waited_out = now.checked_sub_signed(grace).unwrap_or(chrono::DateTime::<Utc>::MIN_UTC);
        let due = booking::Entity::find()
            .filter(booking::Column::Status.eq(BookingStatus::Pending))
            .filter(booking::Column::ExpiresAt.lte(now))
            .filter(
                Condition::any()
                    .add(booking::Column::ChargingPaymentId.is_null())
                    .add(booking::Column::ExpiresAt.lte(waited_out)),
            )
            .order_by_asc(booking::Column::ExpiresAt)
            .limit(100)
            .all(&self.db)
            .await?;
        let mut expired = 0;
        for b in &due {
            if self.end(b, BookingStatus::Expired, CancelReason::Expired).await? {
                metrics::counter!("bookings_total", "outcome" => "expired").increment(1);
                expired += 1;
            }
        }
        Ok(expired)
    }

    /// Expires due holds every `booking.sweep_interval_ms` until `stop` is cancelled.
    pub async fn run_sweeper(self: Arc<Self>, stop: CancellationToken) {
        let interval = Duration::from_millis(self.settings.sweep_interval_ms);
        platform::tasks::every(interval, stop, || async {
            if let Err(e) = self.expire_due().await {
                tracing::warn!(error = %chain(&e), "expiring holds failed; retrying");
            }
        })
        .await;
    }

    /// Confirms a pending booking whose charge was accepted (`accepted_at`, or now for an event
    /// without it) before its hold ran out, and gives its showtime (whose seat states the
    /// caller reports changed once `txn` commits); `None` otherwise (the sweeper then expires
    /// it, whether or not it got there yet).
    async fn confirm(
        &self,
        txn: &impl ConnectionTrait,
        id: BookingId,
        accepted_at: Option<chrono::DateTime<Utc>>,
    ) -> Result<Option<ShowtimeId>, BookingError> {
        let now = Utc::now();
        let confirmed = booking::Entity::update_many()
            .col_expr(booking::Column::Status, Expr::value(BookingStatus::Confirmed))
            .col_expr(booking::Column::UpdatedAt, Expr::value(now))
            .filter(booking::Column::Id.eq(id.0))
            .filter(booking::Column::Status.eq(BookingStatus::Pending))
            .filter(booking::Column::ExpiresAt.gt(accepted_at.unwrap_or(now)))
            .exec_with_returning(txn)
            .await?;
        let Some(b) = confirmed.into_iter().next() else {
            return Ok(None);
        };
        seat_claim::Entity::update_many()
            .col_expr(seat_claim::Column::Confirmed, Expr::value(true))
            .filter(seat_claim::Column::BookingId.eq(b.id))
            .exec(txn)
            .await?;
        let seats = seats_in(txn, b.id).await?;
        let payload = crate::api::BookingConfirmed {
            booking_id: id,
            user_id: UserId(b.user_id),
            showtime_id: ShowtimeId(b.showtime_id),
            seat_ids: seats.iter().map(|s| s.id).collect(),
            amount_cents: Some(b.amount_cents),
            ticket: events::ticket(&b, seats),
        };
        platform::outbox::publish(txn, &BookingEvent::Confirmed(payload)).await?;
        Ok(Some(ShowtimeId(b.showtime_id)))
    }

    /// Forgets the charge of `payment` (it failed): the booking expires as any other once
    /// its hold has run out.
    async fn release_payment_hold(
        &self,
        txn: &impl ConnectionTrait,
        id: BookingId,
        payment: Uuid,
    ) -> Result<(), DbErr> {
        booking::Entity::update_many()
            .col_expr(booking::Column::ChargingPaymentId, Expr::value(Option::<Uuid>::None))
            .col_expr(booking::Column::ChargingSince, Expr::value(Option::<chrono::DateTime<Utc>>::None))
            .filter(booking::Column::Id.eq(id.0))
            .filter(booking::Column::ChargingPaymentId.eq(payment))
            .exec(txn)
            .await?;
        Ok(())
    }
}

fn movie_error(e: MovieError) -> BookingError {
    match e {
        MovieError::NotFound(_) => BookingError::NotFound("showtime"),
        MovieError::Unavailable(reason) => BookingError::Unavailable(reason),
        other => BookingError::Internal(Failure::new("movie", other)),
    }
}

#[async_trait]
impl BookingApi for BookingService {
    #[tracing::instrument(skip_all, fields(showtime_id = %request.showtime_id))]
    async fn book(&self, caller: &AuthUser, request: BookRequest) -> Result<Booking, BookingError> {
        let (showtime, seats) = (request.showtime_id, request.seat_ids);
        check_seat_list(&seats, self.settings.max_seats)?;
        let now = platform::db::now();
        let pricing = self.price(showtime, &seats, now).await?;
        let id = BookingId(Uuid::now_v7());
        let locks = SeatLockSet { scope: showtime.to_string(), keys: seat_keys(&seats), owner: id.to_string() };
        // The names only dress the messages: read while the locks are taken, not after.
        let (locked, names) = tokio::join!(
            self.lock_seats(&locks, showtime, &seats),
            events::screening_names(self.movies.as_ref(), &pricing.showtime)
        );
        locked?;
        let new = self.new_booking(id, caller.id, &pricing, &seats, names, now)?;
        if let Err(e) = self.insert(&new.row, &new.seats, &new.created).await {
            self.unlock_seats(&locks).await;
            return Err(self.refusal(e, showtime, &seats).await);
        }
        self.relay.notify_one();
        self.seats_changed(showtime).await;
        metrics::counter!("bookings_total", "outcome" => "created").increment(1);
        view(new.row, new.seats)
    }

    async fn list(&self, caller: &AuthUser, query: BookingQuery) -> Result<Page<Booking>, BookingError> {
        let pagination =
            PageRequest { page: query.page, per_page: query.per_page }.validate().map_err(BookingError::Validation)?;
        let mut select = booking::Entity::find().filter(booking::Column::UserId.eq(caller.id.0));
        if let Some(status) = query.status {
            select = select.filter(booking::Column::Status.eq(status));
        }
        let total = select.clone().count(&self.db).await?;
        let rows = select
            .order_by_desc(booking::Column::CreatedAt)
            .order_by_desc(booking::Column::Id)
            .offset(pagination.offset())
            .limit(pagination.per_page)
            .all(&self.db)
            .await?;
        let mut seats = self.seats_of(&rows.iter().map(|b| b.id).collect::<Vec<_>>()).await?;
        let items = rows
            .into_iter()
            .map(|b| {
                let s = seats.remove(&b.id).unwrap_or_default();
                view(b, s)
            })
            .collect::<Result<_, _>>()?;
        Ok(Page::new(items, pagination, total))
    }

    async fn booking(&self, caller: &AuthUser, id: BookingId) -> Result<Booking, BookingError> {
        let b = self.visible(caller, id).await?;
        self.full(b).await
    }

    async fn seat_states(&self, showtime: ShowtimeId) -> Result<HashMap<SeatId, SeatStatus>, BookingError> {
        taken_seats(&self.db, showtime).await.map_err(Into::into)
    }

    #[tracing::instrument(skip_all, fields(booking_id = %id, payment_id = %payment))]
    async fn hold_for_payment(&self, caller: &AuthUser, id: BookingId, payment: Uuid) -> Result<Booking, BookingError> {
        let b = self.visible(caller, id).await?;
        // Only the owner pays (an admin sees the booking, but pays none of another's).
        if b.user_id != caller.id.0 {
            return Err(BookingError::NotFound("booking"));
        }
        let now = Utc::now();
        let held = booking::Entity::update_many()
            .col_expr(booking::Column::ChargingPaymentId, Expr::value(payment))
            .col_expr(booking::Column::ChargingSince, Expr::value(now))
            .filter(booking::Column::Id.eq(id.0))
            .filter(booking::Column::Status.eq(BookingStatus::Pending))
            .filter(
                Condition::any()
                    .add(booking::Column::ExpiresAt.gt(now))
                    // Asked again for the same charge (a retry of it): it was accepted in time.
                    .add(booking::Column::ChargingPaymentId.eq(payment)),
            )
            .exec(&self.db)
            .await?;
        let b = self.visible(caller, id).await?;
        if held.rows_affected == 1 {
            return self.full(b).await;
        }
        Err(BookingError::NotPayable(if b.status == BookingStatus::Pending {
            "its hold has expired".to_owned()
        } else {
            format!("it is {}", b.status.to_value())
        }))
    }

    #[tracing::instrument(skip_all, fields(booking_id = %id))]
    async fn cancel(&self, caller: &AuthUser, id: BookingId) -> Result<Booking, BookingError> {
        let b = self.visible(caller, id).await?;
        if !b.status.is_live() {
            return Err(BookingError::NotCancellable(format!("it is already {}", b.status.to_value())));
        }
        if b.starts_at <= Utc::now() {
            return Err(BookingError::NotCancellable("the showtime has started".to_owned()));
        }
        let reason = if b.user_id == caller.id.0 { CancelReason::User } else { CancelReason::Admin };
        if !self.end(&b, BookingStatus::Cancelled, reason).await? {
            return Err(BookingError::NotCancellable("it changed meanwhile (expired or cancelled)".to_owned()));
        }
        metrics::counter!("bookings_total", "outcome" => "cancelled").increment(1);
        let b = self.visible(caller, id).await?;
        self.full(b).await
    }
}

/// The seat locks of one booking attempt (when `booking.seat_locks` is on).
struct SeatLockSet {
    scope: String,
    keys: Vec<String>,
    owner: String,
}

/// The rows and the event of a booking about to be inserted.
struct NewBooking {
    row: booking::Model,
    seats: Vec<booking_seat::Model>,
    created: BookingCreated,
}

/// One to `max` distinct seats.
fn check_seat_list(seats: &[SeatId], max: usize) -> Result<(), BookingError> {
    let mut errors = FieldErrors::new();
    if seats.is_empty() {
        errors.add("seat_ids", "must name at least one seat");
    } else if seats.len() > max {
        errors.add("seat_ids", format!("at most {max} seats per booking"));
    } else if seats.iter().enumerate().any(|(i, s)| seats[..i].contains(s)) {
        errors.add("seat_ids", "names a seat twice");
    }
    errors.into_result().map_err(BookingError::Validation)
}

impl BookingService {
    /// The showtime's prices, if it has not started and every seat is one of its theater's.
    /// They come from the catalog uncached: what the seat map shows is what is charged.
    async fn price(
        &self,
        showtime: ShowtimeId,
        seats: &[SeatId],
        now: chrono::DateTime<Utc>,
    ) -> Result<ShowtimePricing, BookingError> {
        let pricing = self.movies.pricing(showtime).await.map_err(movie_error)?;
        if pricing.showtime.start_time <= now {
            return Err(BookingError::Validation(FieldErrors::single("showtime_id", "the showtime has started")));
        }
        let foreign: Vec<String> = seats
            .iter()
            .filter(|s| !pricing.seats.iter().any(|priced| priced.id == **s))
            .map(ToString::to_string)
            .collect();
        if !foreign.is_empty() {
            return Err(BookingError::Validation(FieldErrors::single(
                "seat_ids",
                format!("not seats of this showtime's theater: {}", foreign.join(", ")),
            )));
        }
        Ok(pricing)
    }

    /// Takes the seat locks, or answers which seats are unavailable. The locks only keep load
    /// off the database, which decides anyway: without them the insert does.
    async fn lock_seats(
        &self,
        locks: &SeatLockSet,
        showtime: ShowtimeId,
        seats: &[SeatId],
    ) -> Result<(), BookingError> {
        if !self.settings.seat_locks {
            return Ok(());
        }
        let hold = Duration::from_secs(self.settings.hold_ttl_seconds);
        let taken = match self.locks.acquire(&locks.scope, &locks.keys, &locks.owner, hold).await {
            Ok(Acquired::Held) => return Ok(()),
            Ok(Acquired::Conflict { taken }) => taken,
            Err(e) => {
                tracing::warn!(error = %e, "seat locks unavailable; the database decides alone");
                return Ok(());
            }
        };
        metrics::counter!("bookings_total", "outcome" => "conflict").increment(1);
        let (mut locked, free): (Vec<SeatId>, Vec<SeatId>) = seats.iter().partition(|s| taken.contains(&s.to_string()));
        // Seats free in the lock layer may still be claimed (a confirmed seat whose lock ran
        // out): ask the database about those only, so a rush for one seat never reaches it and
        // the answer still names every unavailable seat.
        if !free.is_empty() {
            locked.extend(self.claimed(showtime, &free).await?);
            locked.sort_by_key(|s| seats.iter().position(|r| r == s));
        }
        Err(BookingError::SeatsUnavailable(locked))
    }

    /// Gives back the locks of a booking that was not inserted; those not given back run out
    /// with the hold.
    async fn unlock_seats(&self, locks: &SeatLockSet) {
        if !self.settings.seat_locks {
            return;
        }
        if let Err(e) = self.locks.release(&locks.scope, &locks.keys, &locks.owner).await {
            tracing::warn!(error = %e, "seat locks not released; they run out with the hold");
        }
    }

    /// The pending booking of `seats` at their current prices, held until the hold runs out.
    fn new_booking(
        &self,
        id: BookingId,
        user: UserId,
        pricing: &ShowtimePricing,
        seats: &[SeatId],
        names: events::ScreeningNames,
        now: chrono::DateTime<Utc>,
    ) -> Result<NewBooking, BookingError> {
        let expires_at = now + chrono::Duration::seconds(i64::try_from(self.settings.hold_ttl_seconds).unwrap_or(600));
        let priced: Vec<&movie::api::PricedSeat> =
            seats.iter().filter_map(|s| pricing.seats.iter().find(|p| p.id == *s)).collect();
        let amount = Money::checked_sum(priced.iter().map(|s| s.price_cents))
            .ok_or_else(|| BookingError::Internal(Failure::msg("the booking's total overflows")))?;
        let row = booking::Model {
            id: id.0,
            user_id: user.0,
            showtime_id: pricing.showtime.id.0,
            status: BookingStatus::Pending,
            amount_cents: amount.cents(),
            currency: pricing.showtime.currency.clone(),
            starts_at: pricing.showtime.start_time,
            created_at: now,
            expires_at,
            updated_at: now,
            charging_payment_id: None,
            charging_since: None,
            movie_title: names.movie_title,
            theater_name: names.theater_name,
            theater_location: names.theater_location,
        };
        let mut booked: Vec<booking_seat::Model> = priced
            .iter()
            .map(|s| booking_seat::Model {
                booking_id: id.0,
                seat_id: s.id.0,
                row_label: s.row.clone(),
                number: i32::try_from(s.number).unwrap_or(0),
                price_cents: s.price_cents.cents(),
            })
            .collect();
        // The order every read gives them in.
        booked.sort_by(|a, b| (&a.row_label, a.number).cmp(&(&b.row_label, b.number)));
        let created = BookingCreated {
            booking_id: id,
            user_id: user,
            showtime_id: pricing.showtime.id,
            seat_ids: seats.to_vec(),
            amount_cents: amount.cents(),
            expires_at,
            ticket: events::ticket(&row, booked_seats(booked.clone())),
        };
        Ok(NewBooking { row, seats: booked, created })
    }

    /// What the customer is told when the insert refused the booking.
    async fn refusal(&self, e: InsertError, showtime: ShowtimeId, seats: &[SeatId]) -> BookingError {
        match e {
            InsertError::Refused(e) => {
                metrics::counter!("bookings_total", "outcome" => "hold_limit").increment(1);
                e
            }
            InsertError::Taken => {
                metrics::counter!("bookings_total", "outcome" => "conflict").increment(1);
                self.claimed(showtime, seats).await.map_or_else(|e| e, BookingError::SeatsUnavailable)
            }
            InsertError::Failed(e) => e,
        }
    }
}

enum InsertError {
    /// A seat is claimed by a live booking (the primary key of `seat_claims` said so).
    Taken,
    /// A hold cap: nothing was booked.
    Refused(BookingError),
    Failed(BookingError),
}

impl BookingService {
    async fn insert(
        &self,
        row: &booking::Model,
        seats: &[booking_seat::Model],
        created: &BookingCreated,
    ) -> Result<(), InsertError> {
        let failed = |e: DbErr| InsertError::Failed(e.into());
        let txn = platform::db::begin(&self.db, "book").await.map_err(failed)?;
        self.check_hold_caps(&txn, row, seats.len() as u64).await?;
        booking::Entity::insert(booking::ActiveModel::from(row.clone())).exec(&txn).await.map_err(failed)?;
        booking_seat::Entity::insert_many(seats.iter().cloned().map(booking_seat::ActiveModel::from))
            .exec(&txn)
            .await
            .map_err(failed)?;
        let claims = seats.iter().map(|s| seat_claim::ActiveModel {
            showtime_id: Set(row.showtime_id),
            seat_id: Set(s.seat_id),
            booking_id: Set(row.id),
            confirmed: Set(false),
        });
        if let Err(e) = seat_claim::Entity::insert_many(claims).exec(&txn).await {
            return Err(match e.sql_err() {
                Some(SqlErr::UniqueConstraintViolation(_)) => InsertError::Taken,
                _ => failed(e),
            });
        }
        platform::outbox::publish(&txn, &BookingEvent::Created(created.clone())).await.map_err(failed)?;
        txn.commit().await.map_err(failed)
    }
}

impl BookingService {
    /// Takes the customer's hold lock in `txn` (their bookings take turns from here to the
    /// commit) and refuses `row` if its `seats` would take the customer past a hold cap.
    async fn check_hold_caps(&self, txn: &Transaction, row: &booking::Model, seats: u64) -> Result<(), InsertError> {
        let failed = |e: DbErr| InsertError::Failed(e.into());
        hold_lock::Entity::insert(hold_lock::ActiveModel {
            user_id: Set(row.user_id),
            updated_at: Set(row.created_at),
        })
        .on_conflict(
            OnConflict::column(hold_lock::Column::UserId).update_column(hold_lock::Column::UpdatedAt).to_owned(),
        )
        .exec_without_returning(txn)
        .await
        .map_err(failed)?;
        let pending: Vec<(Uuid, Uuid, chrono::DateTime<Utc>)> = booking::Entity::find()
            .select_only()
            .columns([booking::Column::Id, booking::Column::ShowtimeId, booking::Column::ExpiresAt])
            .filter(booking::Column::UserId.eq(row.user_id))
            .filter(booking::Column::Status.eq(BookingStatus::Pending))
            .into_tuple()
            .all(txn)
            .await
            .map_err(failed)?;
        if pending.is_empty() {
            return Ok(());
        }
        let held_seats: Vec<Uuid> = booking_seat::Entity::find()
            .select_only()
            .column(booking_seat::Column::BookingId)
            .filter(booking_seat::Column::BookingId.is_in(pending.iter().map(|p| p.0)))
            .into_tuple()
            .all(txn)
            .await
            .map_err(failed)?;
        let here: Vec<Uuid> = pending.iter().filter(|p| p.1 == row.showtime_id).map(|p| p.0).collect();
        let held = held_seats.len() as u64;
        let held_here = held_seats.iter().filter(|b| here.contains(b)).count() as u64;
        // Waiting helps once the oldest hold has run out (or been paid).
        let first_expiry = pending.iter().map(|p| p.2).min().unwrap_or(row.created_at);
        let retry_after_seconds = u64::try_from((first_expiry - row.created_at).num_seconds()).unwrap_or(1).max(1);
        let (scope, limit, held) = if held_here + seats > self.settings.max_held_seats_per_showtime {
            ("showtime", self.settings.max_held_seats_per_showtime, held_here)
        } else if held + seats > self.settings.max_held_seats_per_user {
            ("user", self.settings.max_held_seats_per_user, held)
        } else {
            return Ok(());
        };
        Err(InsertError::Refused(BookingError::HoldLimit { scope, limit, held, retry_after_seconds }))
    }
}

/// The seat states the movie module's seat map reads: held (pending) and booked (confirmed)
/// seats, straight from the claims — exact, one query.
pub struct BookingSeatStates {
    db: DatabaseConnection,
}

impl BookingSeatStates {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

#[async_trait]
impl SeatStates for BookingSeatStates {
    async fn taken_seats(&self, showtime: ShowtimeId) -> Result<HashMap<SeatId, SeatStatus>, MovieError> {
        taken_seats(&self.db, showtime).await.map_err(|e| platform::db::db_err("booking database", e))
    }

    /// [`BookingService`] bumps the versions in the same process's store.
    fn versioned_here(&self) -> bool {
        true
    }
}

/// Held (pending) and booked (confirmed) seats of a showtime, from its claims.
async fn taken_seats(db: &DatabaseConnection, showtime: ShowtimeId) -> Result<HashMap<SeatId, SeatStatus>, DbErr> {
    let claims = seat_claim::Entity::find().filter(seat_claim::Column::ShowtimeId.eq(showtime.0)).all(db).await?;
    Ok(claims
        .into_iter()
        .map(|c| (SeatId(c.seat_id), if c.confirmed { SeatStatus::Booked } else { SeatStatus::Held }))
        .collect())
}
