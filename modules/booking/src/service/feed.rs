//! Live seat states of showtimes, for seat maps that follow other people's bookings (the site's,
//! over Server-Sent Events: `GET /api/bookings/showtimes/{id}/seat-states/stream`).
//!
//! One watcher task per showtime that someone follows, shared by all its followers: it reads
//! the showtime's held and booked seats at once when this process changed them, and otherwise
//! every `seat_feed_poll_ms` when the showtime's seat-state version moved (another booking
//! replica changed them; the version is the one the seat maps' copies are checked against, so
//! one key read per showtime per poll), at most one read per `COALESCE` however fast the
//! commits come (a premiere's rush is followed at ten updates a second, not a read per
//! booking). Each update carries its change from the one before, serialized once for every
//! follower; a follower that was slow (it missed updates) sends its own difference from what
//! it last sent, so it skips intermediate states but never a change. The watcher ends with its
//! last follower; every stream ends when the server begins to stop.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actix_web::web::Bytes;

use movie::api::{MovieApi, SeatId, SeatStatus, ShowtimeId, seat_version_key};
use platform::kv::Versions;
use sea_orm::DatabaseConnection;
use serde::Serialize;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::api::BookingError;

/// The held and booked seats of a showtime (a seat not in it is free).
pub type SeatStates = HashMap<SeatId, SeatStatus>;

/// The shortest time between two reads of one showtime's seats: the changes of the commits
/// made meanwhile go out together.
const COALESCE: Duration = Duration::from_millis(100);

/// A comment line this often keeps idle streams open through proxies (nginx closes an
/// upstream connection silent for 60 s).
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What a follower sends: the whole state first, then changes.
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum FeedEvent {
    /// Every held and booked seat, and the most seats one booking may take.
    Snapshot { seats: Arc<SeatStates>, max_seats: usize },
    /// Seats whose state changed since the last event (`available` when freed).
    Change { seats: HashMap<SeatId, SeatStatus> },
}

impl FeedEvent {
    /// The event as an SSE message (`event:` and one `data:` line).
    pub fn to_sse(&self) -> Bytes {
        let name = match self {
            Self::Snapshot { .. } => "snapshot",
            Self::Change { .. } => "change",
        };
        let data = serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned());
        Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
    }
}

/// A showtime's seats as a watcher read them: the `seq`-th state it published, and its change
/// from the one before as an SSE message (none for the first).
pub struct Update {
    seq: u64,
    states: Arc<SeatStates>,
    change: Option<Bytes>,
}

type Published = watch::Receiver<Option<Arc<Update>>>;

struct Watched {
    states: Published,
    wake: Arc<Notify>,
}

struct Inner {
    db: DatabaseConnection,
    movies: Arc<dyn MovieApi>,
    versions: Versions,
    poll: Duration,
    max_seats: usize,
    max_streams: usize,
    streams: AtomicUsize,
    watched: Mutex<HashMap<ShowtimeId, Watched>>,
    /// Cancelled when the server begins to stop: open streams end so that the graceful stop
    /// does not wait for them (browsers reconnect to another replica).
    draining: CancellationToken,
}

/// The watchers of this process (cheap to clone).
#[derive(Clone)]
pub struct SeatFeeds {
    inner: Arc<Inner>,
}

/// A follower's place: one of `max_streams`, given back when dropped.
pub struct Follower {
    inner: Arc<Inner>,
    states: Published,
    sent: Option<Arc<Update>>,
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.inner.streams.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!("seat_feed_streams").decrement(1.0);
    }
}

impl SeatFeeds {
    pub fn new(
        db: DatabaseConnection,
        movies: Arc<dyn MovieApi>,
        versions: Versions,
        settings: &super::BookingSettings,
        draining: CancellationToken,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                movies,
                versions,
                poll: Duration::from_millis(settings.seat_feed_poll_ms),
                max_seats: settings.max_seats,
                max_streams: settings.seat_feed_max_streams,
                streams: AtomicUsize::new(0),
                watched: Mutex::new(HashMap::new()),
                draining,
            }),
        }
    }

    /// This process committed a change to `showtime`'s seats: its followers hear of it now.
    pub fn changed(&self, showtime: ShowtimeId) {
        let watched = self.inner.watched.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(w) = watched.get(&showtime) {
            w.wake.notify_one();
        }
    }

    /// A new follower of `showtime`.
    ///
    /// # Errors
    /// `NotFound("showtime")`; `Unavailable` when `seat_feed_max_streams` streams are open (or
    /// the catalog cannot be reached).
    pub async fn follow(&self, showtime: ShowtimeId) -> Result<Follower, BookingError> {
        let inner = &self.inner;
        inner.movies.showtime(showtime).await.map_err(super::movie_error)?;
        if inner.streams.fetch_add(1, Ordering::Relaxed) >= inner.max_streams {
            inner.streams.fetch_sub(1, Ordering::Relaxed);
            return Err(BookingError::Unavailable(format!(
                "{} seat-state streams are open (booking.seat_feed_max_streams)",
                inner.max_streams
            )));
        }
        metrics::gauge!("seat_feed_streams").increment(1.0);
        let mut watched = inner.watched.lock().unwrap_or_else(PoisonError::into_inner);
        let states = match watched.get(&showtime) {
            Some(w) => w.states.clone(),
            None => {
                let (tx, rx) = watch::channel(None);
                let wake = Arc::new(Notify::new());
                watched.insert(showtime, Watched { states: rx.clone(), wake: Arc::clone(&wake) });
                tokio::spawn(watch_showtime(Arc::clone(inner), showtime, tx, wake));
                rx
            }
        };
        Ok(Follower { inner: Arc::clone(inner), states, sent: None })
    }
}

impl Follower {
    /// The next message of the stream: the snapshot, then each change, with keep-alive
    /// comments between; `None` when the server stops.
    pub async fn next(&mut self) -> Option<Bytes> {
        loop {
            let current = self.states.borrow_and_update().clone();
            if let Some(now) = current {
                let message = match &self.sent {
                    None => Some(
                        FeedEvent::Snapshot { seats: Arc::clone(&now.states), max_seats: self.inner.max_seats }
                            .to_sse(),
                    ),
                    Some(sent) if sent.seq == now.seq => None,
                    Some(sent) if sent.seq + 1 == now.seq => now.change.clone(),
                    Some(sent) => Some(FeedEvent::Change { seats: difference(&sent.states, &now.states) }.to_sse()),
                };
                self.sent = Some(now);
                if message.is_some() {
                    return message;
                }
            }
            tokio::select! {
                () = self.inner.draining.cancelled() => return None,
                changed = self.states.changed() => if changed.is_err() { return None },
                () = tokio::time::sleep(KEEP_ALIVE) => return Some(Bytes::from_static(b": keep-alive\n\n")),
            }
        }
    }
}

/// The seats whose state differs from `before` to `after` (`available` for those freed).
fn difference(before: &SeatStates, after: &SeatStates) -> HashMap<SeatId, SeatStatus> {
    let mut changes: HashMap<SeatId, SeatStatus> =
        after.iter().filter(|(seat, state)| before.get(seat) != Some(state)).map(|(s, st)| (*s, *st)).collect();
    for seat in before.keys().filter(|seat| !after.contains_key(seat)) {
        changes.insert(*seat, SeatStatus::Available);
    }
    changes
}

async fn watch_showtime(
    inner: Arc<Inner>,
    showtime: ShowtimeId,
    tx: watch::Sender<Option<Arc<Update>>>,
    wake: Arc<Notify>,
) {
    let key = seat_version_key(showtime);
    let mut read_at: Option<Vec<u8>> = None;
    let mut woken = true;
    loop {
        {
            // Under the lock `follow` subscribes under: no follower is added to a watcher
            // that is leaving.
            let mut watched = inner.watched.lock().unwrap_or_else(PoisonError::into_inner);
            if tx.receiver_count() <= 1 {
                watched.remove(&showtime);
                return;
            }
        }
        // The version before the read: a change committed after it moves the version on.
        let version = inner.versions.current(&key).await.ok();
        if woken || version.is_none() || version != read_at {
            match super::taken_seats(&inner.db, showtime).await {
                Ok(states) => {
                    tx.send_if_modified(|current| {
                        let update = match current {
                            None => Update { seq: 0, states: Arc::new(states), change: None },
                            Some(before) if *before.states == states => return false,
                            Some(before) => {
                                let change = FeedEvent::Change { seats: difference(&before.states, &states) }.to_sse();
                                Update { seq: before.seq + 1, states: Arc::new(states), change: Some(change) }
                            }
                        };
                        *current = Some(Arc::new(update));
                        true
                    });
                    read_at = version;
                }
                Err(e) => tracing::warn!(showtime_id = %showtime.0, error = %e, "seat feed: seat states not read"),
            }
        }
        // A wake that comes meanwhile is kept (`notify_one` stores it) and answered after.
        let coalesced = async {
            tokio::time::sleep(COALESCE).await;
            wake.notified().await;
        };
        woken = tokio::select! {
            () = inner.draining.cancelled() => {
                inner.watched.lock().unwrap_or_else(PoisonError::into_inner).remove(&showtime);
                return;
            }
            () = coalesced => true,
            () = tokio::time::sleep(inner.poll) => false,
        };
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn difference_names_taken_changed_and_freed_seats() {
        let (a, b, c) = (SeatId(uuid::Uuid::now_v7()), SeatId(uuid::Uuid::now_v7()), SeatId(uuid::Uuid::now_v7()));
        let before = SeatStates::from([(a, SeatStatus::Held), (b, SeatStatus::Held)]);
        let after = SeatStates::from([(b, SeatStatus::Booked), (c, SeatStatus::Held)]);
        let changes = difference(&before, &after);
        assert_eq!(
            changes,
            HashMap::from([(a, SeatStatus::Available), (b, SeatStatus::Booked), (c, SeatStatus::Held)])
        );
        assert!(difference(&after, &after).is_empty());
    }
}
