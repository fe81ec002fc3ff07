//! The seat-lock port: short holds on the seats of a showtime, taken all-or-nothing per
//! request and expiring on their own. Two implementations pass one conformance suite
//! (`tests/seat_locks_conformance.rs` of this crate): [`MemorySeatLocks`] for the single
//! binary and [`RedisSeatLocks`] for the split deployment, where every booking replica must
//! see the same holds.
//!
//! The locks are a fast path, not the truth: they turn a race for a seat into one cheap
//! winner and quick conflicts before anyone opens a database transaction. The booking
//! database's unique key decides whether a seat is booked, whatever the locks say — a
//! lost Redis key or a hold that expired mid-request can cost a 409 from the database,
//! never a double booking.
//!
//! Every Redis call is bounded by `redis.timeout_ms` (see [`platform::kv`]): with Redis hung,
//! `acquire` answers `Unavailable` within it and booking goes on with the database alone.
//!
//! The port speaks plain strings (a scope, the showtime id; seat ids; an owner, the booking
//! id): what the Redis keys and values hold, and all the conformance suite needs to name.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deadpool_redis::Pool;
use deadpool_redis::redis::Script;

use platform::kv::{RedisKv, within};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The lock store cannot be reached or answered an error.
    #[error("seat-lock store unavailable: {0}")]
    Unavailable(String),
}

/// The outcome of [`SeatLocks::acquire`].
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// Every seat of the request is now held by the caller.
    Held,
    /// Nothing was taken: these seats of the request (every one of them, each once, in
    /// request order) are held by another owner.
    Conflict { taken: Vec<String> },
}

/// Expiring, owner-tagged holds on seats, grouped by scope.
///
/// Contract (checked by the conformance suite for every implementation):
/// - a seat is identified by `(scope, seat)`; the same seat id in two scopes is two seats;
/// - `acquire` is all-or-nothing: either every seat of the request ends up held by `owner`
///   or none changes hands, and the answer lists every seat another owner holds;
/// - seats the caller already holds count as free for it, so retrying an acquire succeeds
///   and restarts the TTL of every seat of the request;
/// - only the owner can release a hold;
/// - a hold is gone once its TTL has passed;
/// - duplicate seat ids in a request count once; an empty request succeeds and does nothing;
/// - every call is one step for the store (one Redis round trip), whatever the number of seats,
///   and unrelated seats never wait on one another.
#[async_trait]
pub trait SeatLocks: Send + Sync {
    /// Takes every seat of `seats` in `scope` for `owner` for `ttl`, or none of them.
    ///
    /// # Errors
    /// [`LockError::Unavailable`] when the store cannot be reached; then nothing is known
    /// about the seats, and the caller may fall back on the database alone.
    async fn acquire(&self, scope: &str, seats: &[String], owner: &str, ttl: Duration) -> Result<Acquired, LockError>;

    /// Releases those of `seats` that `owner` holds; seats held by others or by nobody are
    /// left alone. Returns how many holds were released.
    ///
    /// # Errors
    /// [`LockError::Unavailable`] when the store cannot be reached.
    async fn release(&self, scope: &str, seats: &[String], owner: &str) -> Result<u64, LockError>;

    /// Who holds which of `seats`: seat id → owner, for held seats only. Booking needs no
    /// more than `acquire` and `release`; this is how the conformance suite observes a store.
    ///
    /// # Errors
    /// [`LockError::Unavailable`] when the store cannot be reached.
    async fn holders(&self, scope: &str, seats: &[String]) -> Result<HashMap<String, String>, LockError>;
}

/// The request's seats, each once, in request order.
fn distinct(seats: &[String]) -> Vec<&str> {
    let mut seen = HashSet::with_capacity(seats.len());
    seats.iter().map(String::as_str).filter(|s| seen.insert(*s)).collect()
}

fn conflict(taken: Vec<String>) -> Acquired {
    metrics::counter!("seat_lock_conflicts_total").increment(1);
    Acquired::Conflict { taken }
}

const SHARDS: usize = 64;
/// Expired holds of a shard are swept once this many new holds (or as many as survived
/// the last sweep, if more) have been added since — amortised O(1) per hold.
const SWEEP_EVERY: usize = 1024;

struct Hold {
    owner: String,
    expires_at: Instant,
}

#[derive(Default)]
struct Shard {
    /// scope → seat → hold; nested so lookups need no allocated key.
    scopes: HashMap<String, HashMap<String, Hold>>,
    added_since_sweep: usize,
    sweep_after: usize,
}

impl Shard {
    fn holder(&self, scope: &str, seat: &str, now: Instant) -> Option<&str> {
        let hold = self.scopes.get(scope)?.get(seat)?;
        (hold.expires_at > now).then_some(hold.owner.as_str())
    }

    fn hold(&mut self, scope: &str, seat: &str, owner: &str, expires_at: Instant, now: Instant) {
        if let Some(hold) = self.scopes.get_mut(scope).and_then(|seats| seats.get_mut(seat)) {
            owner.clone_into(&mut hold.owner);
            hold.expires_at = expires_at;
            return;
        }
        let hold = Hold { owner: owner.to_owned(), expires_at };
        match self.scopes.get_mut(scope) {
            Some(seats) => {
                seats.insert(seat.to_owned(), hold);
            }
            None => {
                self.scopes.insert(scope.to_owned(), HashMap::from([(seat.to_owned(), hold)]));
            }
        }
        self.added_since_sweep += 1;
        if self.added_since_sweep >= self.sweep_after.max(SWEEP_EVERY) {
            self.sweep(now);
        }
    }

    fn remove(&mut self, scope: &str, seat: &str) {
        if let Some(seats) = self.scopes.get_mut(scope) {
            seats.remove(seat);
            if seats.is_empty() {
                self.scopes.remove(scope);
            }
        }
    }

    fn sweep(&mut self, now: Instant) {
        let mut live = 0;
        self.scopes.retain(|_, seats| {
            seats.retain(|_, hold| hold.expires_at > now);
            live += seats.len();
            !seats.is_empty()
        });
        self.added_since_sweep = 0;
        self.sweep_after = live;
    }
}

/// The shards one request touches, locked in ascending index order so that two requests
/// sharing shards can never wait on each other in a cycle.
struct Locked<'a> {
    guards: Vec<MutexGuard<'a, Shard>>,
    /// For each seat of the request, its shard's position in `guards`.
    slot: Vec<usize>,
}

/// In-process seat locks: sharded maps under short, never-awaited locks. A request locks
/// only the shards of its own seats, so unrelated seats (even of one showtime) rarely
/// share a lock and never wait for long.
pub struct MemorySeatLocks {
    shards: Vec<Mutex<Shard>>,
}

impl Default for MemorySeatLocks {
    fn default() -> Self {
        Self { shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect() }
    }
}

fn shard_of(scope: &str, seat: &str) -> usize {
    let mut h = DefaultHasher::new();
    scope.hash(&mut h);
    seat.hash(&mut h);
    (h.finish() as usize) % SHARDS
}

/// `now + ttl`, saturating far in the future instead of overflowing on absurd TTLs.
fn deadline(now: Instant, ttl: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    now.checked_add(ttl.min(FAR)).unwrap_or(now)
}

impl MemorySeatLocks {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self, scope: &str, seats: &[&str]) -> Locked<'_> {
        let of_seat: Vec<usize> = seats.iter().map(|seat| shard_of(scope, seat)).collect();
        let mut order = of_seat.clone();
        order.sort_unstable();
        order.dedup();
        // Every operation checks before it writes and each write is one map call, so a
        // panic under the lock cannot leave a request half-applied; recover from poisoning.
        let guards = order.iter().map(|&i| self.shards[i].lock().unwrap_or_else(PoisonError::into_inner)).collect();
        let slot = of_seat.iter().map(|i| order.partition_point(|j| j < i)).collect();
        Locked { guards, slot }
    }

    /// The synchronous form of [`SeatLocks::acquire`].
    fn acquire_now(&self, scope: &str, seats: &[String], owner: &str, ttl: Duration) -> Acquired {
        let seats = distinct(seats);
        let mut locked = self.lock(scope, &seats);
        let now = Instant::now();
        let taken: Vec<String> = seats
            .iter()
            .zip(&locked.slot)
            .filter(|&(seat, &i)| locked.guards[i].holder(scope, seat, now).is_some_and(|holder| holder != owner))
            .map(|(seat, _)| (*seat).to_owned())
            .collect();
        if !taken.is_empty() {
            return conflict(taken);
        }
        let expires_at = deadline(now, ttl);
        for (seat, &i) in seats.iter().zip(&locked.slot) {
            locked.guards[i].hold(scope, seat, owner, expires_at, now);
        }
        Acquired::Held
    }
}

#[async_trait]
impl SeatLocks for MemorySeatLocks {
    async fn acquire(&self, scope: &str, seats: &[String], owner: &str, ttl: Duration) -> Result<Acquired, LockError> {
        Ok(self.acquire_now(scope, seats, owner, ttl))
    }

    async fn release(&self, scope: &str, seats: &[String], owner: &str) -> Result<u64, LockError> {
        let seats = distinct(seats);
        let mut locked = self.lock(scope, &seats);
        let now = Instant::now();
        let mut released = 0;
        for (seat, &i) in seats.iter().zip(&locked.slot) {
            let shard = &mut locked.guards[i];
            if shard.holder(scope, seat, now) == Some(owner) {
                shard.remove(scope, seat);
                released += 1;
            }
        }
        Ok(released)
    }

    async fn holders(&self, scope: &str, seats: &[String]) -> Result<HashMap<String, String>, LockError> {
        let seats = distinct(seats);
        let locked = self.lock(scope, &seats);
        let now = Instant::now();
        Ok(seats
            .iter()
            .zip(&locked.slot)
            .filter_map(|(seat, &i)| {
                locked.guards[i].holder(scope, seat, now).map(|owner| ((*seat).to_owned(), owner.to_owned()))
            })
            .collect())
    }
}

/// KEYS: the request's seats; ARGV: owner, TTL in ms. Returns the 1-based positions of the
/// seats another owner holds; when there are none, holds every seat. A script runs
/// atomically, so nothing can slip in between the check and the sets; that is also why a
/// plain `SET PX` suffices where a lone command would need `NX` (and it restarts the TTL of
/// the seats the owner already held, which makes a retry succeed).
const ACQUIRE: &str = r"
local taken = {}
for i, key in ipairs(KEYS) do
  local holder = redis.call('GET', key)
  if holder and holder ~= ARGV[1] then
    taken[#taken + 1] = i
  end
end
if #taken == 0 then
  for _, key in ipairs(KEYS) do
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
  end
end
return taken
";

/// KEYS: seats; ARGV: owner. Deletes the keys the owner holds; returns how many.
const RELEASE: &str = r"
local released = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('DEL', key)
    released = released + 1
  end
end
return released
";

fn unavailable(e: impl std::fmt::Display) -> LockError {
    LockError::Unavailable(e.to_string())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Redis seat locks: one key per seat holding its owner, with a PX expiry. Every call is
/// one script (or one `MGET`) over the request's keys: one round trip, atomic, whatever the
/// number of seats.
pub struct RedisSeatLocks {
    pool: Pool,
    prefix: String,
    timeout: Duration,
    acquire: Script,
    release: Script,
}

impl RedisSeatLocks {
    /// Seat locks on the pool of `kv`, each call bounded by its timeout; every key starts
    /// with `prefix` so a deployment or a test can share one Redis without collisions.
    pub fn new(kv: &RedisKv, prefix: &str) -> Self {
        Self {
            pool: kv.pool().clone(),
            prefix: prefix.to_owned(),
            timeout: kv.timeout(),
            acquire: Script::new(ACQUIRE),
            release: Script::new(RELEASE),
        }
    }

    /// `<prefix>{<scope>}:<seat>`: the hash tag puts every seat of a scope in one Redis
    /// Cluster slot, so a script over one request's keys stays legal on a cluster. (The
    /// tag is whatever lies between the key's first braces, so it is the same for every
    /// key of a scope whatever the prefix or scope contain; only an empty scope would
    /// spread its keys over slots.)
    fn keys(&self, scope: &str, seats: &[&str]) -> Vec<String> {
        seats.iter().map(|seat| format!("{}{{{scope}}}:{seat}", self.prefix)).collect()
    }

    async fn conn(&self) -> Result<deadpool_redis::Connection, LockError> {
        self.pool.get().await.map_err(unavailable)
    }

    /// `call`, given up as unavailable after the timeout.
    async fn timed<T>(&self, call: impl Future<Output = Result<T, LockError>>) -> Result<T, LockError> {
        within(self.timeout, call).await.map_err(LockError::Unavailable)?
    }
}

#[async_trait]
impl SeatLocks for RedisSeatLocks {
    async fn acquire(&self, scope: &str, seats: &[String], owner: &str, ttl: Duration) -> Result<Acquired, LockError> {
        let seats = distinct(seats);
        if seats.is_empty() {
            return Ok(Acquired::Held);
        }
        let taken: Vec<usize> = self
            .timed(async {
                self.acquire
                    .key(self.keys(scope, &seats))
                    .arg(owner)
                    .arg(millis(ttl))
                    .invoke_async(&mut self.conn().await?)
                    .await
                    .map_err(unavailable)
            })
            .await?;
        if taken.is_empty() {
            return Ok(Acquired::Held);
        }
        Ok(conflict(
            taken.iter().filter_map(|i| i.checked_sub(1).and_then(|i| seats.get(i))).map(|s| (*s).to_owned()).collect(),
        ))
    }

    async fn release(&self, scope: &str, seats: &[String], owner: &str) -> Result<u64, LockError> {
        let seats = distinct(seats);
        if seats.is_empty() {
            return Ok(0);
        }
        self.timed(async {
            self.release
                .key(self.keys(scope, &seats))
                .arg(owner)
                .invoke_async(&mut self.conn().await?)
                .await
                .map_err(unavailable)
        })
        .await
    }

    async fn holders(&self, scope: &str, seats: &[String]) -> Result<HashMap<String, String>, LockError> {
        let seats = distinct(seats);
        if seats.is_empty() {
            return Ok(HashMap::new());
        }
        let owners: Vec<Option<String>> = self
            .timed(async {
                deadpool_redis::redis::cmd("MGET")
                    .arg(self.keys(scope, &seats))
                    .query_async(&mut self.conn().await?)
                    .await
                    .map_err(unavailable)
            })
            .await?;
        Ok(seats.iter().zip(owners).filter_map(|(seat, owner)| Some(((*seat).to_owned(), owner?))).collect())
    }
}
