//! The key-value port: short-lived shared state with expiry — rate-limit windows, caches,
//! idempotency fast paths. Two implementations pass one conformance suite
//! (`tests/kv_conformance.rs`): [`MemoryKv`] for the single binary and [`RedisKv`] for the
//! split deployment, where every replica must see the same counters.
//!
//! Nothing here is the source of truth for money or seats: a lost key only loosens a
//! limit or costs a cache miss. Every Redis call is bounded by one timeout (`redis.timeout_ms`:
//! pool wait, connect and command together), so a hung Redis answers `Unavailable` quickly
//! and each caller takes its fallback instead of stalling the request.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::redis::{self, AsyncCommands, AsyncConnectionConfig, RedisError, Script};
use deadpool_redis::{Manager, Pool, PoolConfig as PoolSize, Runtime, Timeouts};

use crate::health::HealthCheck;

#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// The store cannot be reached or answered an error.
    #[error("key-value store unavailable: {0}")]
    Unavailable(String),
}

/// A fixed-window counter's state after a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCount {
    /// Hits in the current window, this one included.
    pub count: u64,
    /// Time until the window closes and the count starts again at zero.
    pub resets_in: Duration,
}

/// How [`KeyValue::throttle`] spaces the hits of a key: the first `free` hits of a window pass
/// at once; after them one hit passes per wait, the wait starting at `first_wait` and
/// doubling with each hit that passes, at most `max_wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub free: u64,
    pub first_wait: Duration,
    pub max_wait: Duration,
    /// How long the count lasts from the window's first hit.
    pub window: Duration,
}

/// The answer of [`KeyValue::throttle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttled {
    /// The hit passed and is counted; `count` hits passed in the window, this one included.
    Passed { count: u64 },
    /// The hit must wait this long; it was not counted.
    Wait { retry_after: Duration },
}

/// Expiring keys and fixed-window counters.
///
/// Contract (checked by the conformance suite for every implementation):
/// a key is gone once its TTL has passed; `set_if_absent` stores only when the key is
/// absent and says whether it stored; `incr` starts a window of `window` on the first hit
/// and counts up until it expires; `peek` reads a counter without counting; `throttle`
/// decides and counts in one atomic step, so concurrent callers can never pass more hits than
/// its [`Backoff`] allows; `unthrottle` takes one passed hit back.
#[async_trait]
pub trait KeyValue: Send + Sync {
    /// # Errors
    /// [`KvError::Unavailable`] when the store cannot be reached.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    /// # Errors
    /// [`KvError::Unavailable`].
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), KvError>;
    /// # Errors
    /// [`KvError::Unavailable`].
    async fn set_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, KvError>;
    /// # Errors
    /// [`KvError::Unavailable`].
    async fn delete(&self, key: &str) -> Result<(), KvError>;
    /// Counts one hit in the window of `key`.
    ///
    /// # Errors
    /// [`KvError::Unavailable`].
    async fn incr(&self, key: &str, window: Duration) -> Result<WindowCount, KvError>;
    /// The counter of `key` without counting; `None` when no window is open.
    ///
    /// # Errors
    /// [`KvError::Unavailable`].
    async fn peek(&self, key: &str) -> Result<Option<WindowCount>, KvError>;
    /// Counts a hit on the counter of `key` if `backoff` lets it pass now. The counter is the
    /// one [`KeyValue::peek`] sees; the running wait is kept beside it.
    ///
    /// # Errors
    /// [`KvError::Unavailable`].
    async fn throttle(&self, key: &str, backoff: Backoff) -> Result<Throttled, KvError>;
    /// Takes back a hit that [`KeyValue::throttle`] passed (it turned out not to be one to
    /// count): the count drops by one (never below zero, keeping its window) and the running
    /// wait ends, so the next hit is decided by the count alone. Nothing when no window is open.
    ///
    /// # Errors
    /// [`KvError::Unavailable`].
    async fn unthrottle(&self, key: &str) -> Result<(), KvError>;
}

/// The key that holds the running wait of a throttled key.
fn wait_key(key: &str) -> String {
    format!("{key}:wait")
}

/// The wait that starts after the `count`-th passing hit, if any.
fn wait_after(count: u64, backoff: Backoff) -> Option<Duration> {
    let doublings = count.checked_sub(backoff.free)?;
    let factor = 1u32.checked_shl(u32::try_from(doublings).unwrap_or(u32::MAX)).unwrap_or(u32::MAX);
    Some(backoff.first_wait.saturating_mul(factor).min(backoff.max_wait).max(Duration::from_millis(1)))
}

const SHARDS: usize = 32;
/// Expired entries of a shard are swept when it grows by this many since the last sweep.
const SWEEP_EVERY: usize = 1024;

enum Value {
    Bytes(Vec<u8>),
    Count(u64),
}

struct Entry {
    value: Value,
    expires_at: Instant,
}

#[derive(Default)]
struct Shard {
    map: HashMap<String, Entry>,
    len_at_last_sweep: usize,
}

impl Shard {
    fn live(&mut self, key: &str, now: Instant) -> Option<&mut Entry> {
        if self.map.get(key).is_some_and(|e| e.expires_at <= now) {
            self.map.remove(key);
        }
        self.map.get_mut(key)
    }

    fn insert(&mut self, key: &str, entry: Entry, now: Instant) {
        self.map.insert(key.to_owned(), entry);
        if self.map.len() >= self.len_at_last_sweep + SWEEP_EVERY {
            self.map.retain(|_, e| e.expires_at > now);
            self.len_at_last_sweep = self.map.len();
        }
    }
}

/// In-process store: sharded maps under short, never-awaited locks.
pub struct MemoryKv {
    shards: Vec<Mutex<Shard>>,
}

impl Default for MemoryKv {
    fn default() -> Self {
        Self { shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect() }
    }
}

impl MemoryKv {
    pub fn new() -> Self {
        Self::default()
    }

    fn with_shard<R>(&self, key: &str, f: impl FnOnce(&mut Shard, Instant) -> R) -> R {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        let shard = &self.shards[(h.finish() as usize) % SHARDS];
        // A panic while holding the lock cannot leave a shard half-updated in a way that
        // matters (each operation is one map call), so recover from poisoning.
        let mut guard = shard.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard, Instant::now())
    }

    /// The synchronous form of [`KeyValue::incr`], for callers on the request hot path.
    pub fn incr_now(&self, key: &str, window: Duration) -> WindowCount {
        self.with_shard(key, |shard, now| {
            if let Some(Entry { value: Value::Count(n), expires_at }) = shard.live(key, now) {
                *n += 1;
                return WindowCount { count: *n, resets_in: *expires_at - now };
            }
            shard.insert(key, Entry { value: Value::Count(1), expires_at: now + window }, now);
            WindowCount { count: 1, resets_in: window }
        })
    }
}

#[async_trait]
impl KeyValue for MemoryKv {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.with_shard(key, |shard, now| match shard.live(key, now) {
            Some(Entry { value: Value::Bytes(b), .. }) => Some(b.clone()),
            Some(Entry { value: Value::Count(n), .. }) => Some(n.to_string().into_bytes()),
            None => None,
        }))
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), KvError> {
        self.with_shard(key, |shard, now| {
            shard.insert(key, Entry { value: Value::Bytes(value.to_vec()), expires_at: now + ttl }, now);
        });
        Ok(())
    }

    async fn set_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, KvError> {
        Ok(self.with_shard(key, |shard, now| {
            if shard.live(key, now).is_some() {
                return false;
            }
            shard.insert(key, Entry { value: Value::Bytes(value.to_vec()), expires_at: now + ttl }, now);
            true
        }))
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.with_shard(key, |shard, _| shard.map.remove(key));
        Ok(())
    }

    async fn incr(&self, key: &str, window: Duration) -> Result<WindowCount, KvError> {
        Ok(self.incr_now(key, window))
    }

    async fn peek(&self, key: &str) -> Result<Option<WindowCount>, KvError> {
        Ok(self.with_shard(key, |shard, now| match shard.live(key, now) {
            Some(Entry { value: Value::Count(n), expires_at }) => {
                Some(WindowCount { count: *n, resets_in: *expires_at - now })
            }
            _ => None,
        }))
    }

    async fn unthrottle(&self, key: &str) -> Result<(), KvError> {
        let wait = wait_key(key);
        self.with_shard(key, |shard, now| {
            if let Some(Entry { value: Value::Count(n), .. }) = shard.live(key, now) {
                *n = n.saturating_sub(1);
            }
            shard.map.remove(&wait);
        });
        Ok(())
    }

    async fn throttle(&self, key: &str, backoff: Backoff) -> Result<Throttled, KvError> {
        // The wait lives in the counter's shard (whatever its own hash), so one lock covers both.
        let wait = wait_key(key);
        Ok(self.with_shard(key, |shard, now| {
            if let Some(entry) = shard.live(&wait, now) {
                return Throttled::Wait { retry_after: entry.expires_at - now };
            }
            let count = match shard.live(key, now) {
                Some(Entry { value: Value::Count(n), .. }) => {
                    *n += 1;
                    *n
                }
                _ => {
                    shard.insert(key, Entry { value: Value::Count(1), expires_at: now + backoff.window }, now);
                    1
                }
            };
            if let Some(pause) = wait_after(count, backoff) {
                shard.insert(&wait, Entry { value: Value::Bytes(Vec::new()), expires_at: now + pause }, now);
            }
            Throttled::Passed { count }
        }))
    }
}

/// Redis store on one shared multiplexed connection from a deadpool pool (which opens it,
/// and opens another after a connection failure). Every key is prefixed (a deployment
/// or a test can share one Redis without collisions).
pub struct RedisKv {
    pool: Pool,
    shared: Mutex<Option<MultiplexedConnection>>,
    prefix: String,
    timeout: Duration,
    incr_script: Script,
    unthrottle_script: Script,
    throttle_script: Script,
}

/// INCR and, on the window's first hit (or a counter somehow left without TTL), PEXPIRE;
/// one round trip and atomic, so no window can be left without an expiry.
const INCR_WINDOW: &str = r"
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if n == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
";

/// KEYS: the counter, its wait. DECR unless the counter is absent or zero (DECR keeps the
/// key's expiry), and end the wait.
const UNTHROTTLE: &str = r"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n and n > 0 then
  redis.call('DECR', KEYS[1])
end
redis.call('DEL', KEYS[2])
return 0
";

/// KEYS: the counter, its wait; ARGV: free, first wait ms, max wait ms, window ms.
/// Returns {1, count} when the hit passed, {0, wait ms} when it must wait. One script, so no
/// hit can slip between the check of the wait and the count (see `wait_after`).
const THROTTLE: &str = r"
local wait = redis.call('PTTL', KEYS[2])
if wait > 0 then
  return {0, wait}
end
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
local free = tonumber(ARGV[1])
if n >= free then
  local pause = math.min(tonumber(ARGV[2]) * 2 ^ math.min(n - free, 62), tonumber(ARGV[3]))
  redis.call('SET', KEYS[2], '1', 'PX', math.max(1, math.floor(pause)))
end
return {1, n}
";

fn unavailable(e: impl std::fmt::Display) -> KvError {
    KvError::Unavailable(e.to_string())
}

/// `call`, or an error saying it took longer than `timeout`.
///
/// # Errors
/// The timeout passed; `call` is dropped (a pooled connection then goes back or is discarded).
pub async fn within<T>(timeout: Duration, call: impl Future<Output = T>) -> Result<T, String> {
    tokio::time::timeout(timeout, call).await.map_err(|_| format!("no answer from Redis within {timeout:?}"))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisKv {
    /// Builds the pool (connections are opened lazily; readiness reports reachability).
    /// `timeout` bounds every call: waiting for a pooled connection, opening one, and the
    /// command itself, together.
    ///
    /// # Errors
    /// The URL is not a valid Redis URL.
    pub fn connect(url: &str, pool_size: usize, prefix: &str, timeout: Duration) -> Result<Self, KvError> {
        // The pool's and the connection's own timeouts free a pool slot or a socket that hangs;
        // `timed` bounds the whole call whatever the mix of them it met.
        let connection =
            AsyncConnectionConfig::new().set_connection_timeout(Some(timeout)).set_response_timeout(Some(timeout));
        let manager = Manager::new_with_config(url, connection).map_err(unavailable)?;
        let mut size = PoolSize::new(pool_size);
        size.timeouts = Timeouts { wait: Some(timeout), create: Some(timeout), recycle: Some(timeout) };
        let pool = Pool::builder(manager).config(size).runtime(Runtime::Tokio1).build().map_err(unavailable)?;
        Ok(Self {
            pool,
            shared: Mutex::new(None),
            prefix: prefix.to_owned(),
            timeout,
            incr_script: Script::new(INCR_WINDOW),
            unthrottle_script: Script::new(UNTHROTTLE),
            throttle_script: Script::new(THROTTLE),
        })
    }

    /// What every key of this store starts with (other adapters on its pool extend it).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The bound on every call, for other Redis-backed adapters on [`RedisKv::pool`].
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The connection every call shares (commands of concurrent calls are pipelined on it),
    /// taken from the pool on first use. Checking one out of the pool per call would cost
    /// the pool's health check, a PING round trip, on every call.
    async fn conn(&self) -> Result<MultiplexedConnection, KvError> {
        if let Some(shared) = self.shared.lock().unwrap_or_else(PoisonError::into_inner).clone() {
            return Ok(shared);
        }
        let taken = deadpool_redis::Connection::take(self.pool.get().await.map_err(unavailable)?);
        *self.shared.lock().unwrap_or_else(PoisonError::into_inner) = Some(taken.clone());
        Ok(taken)
    }

    /// `e` as the call's error; after a connection failure (or a timeout, which may be a
    /// dead connection) the shared connection is let go, so the next call opens another.
    fn failed(&self, e: &RedisError) -> KvError {
        if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() || e.is_timeout() {
            self.shared.lock().unwrap_or_else(PoisonError::into_inner).take();
        }
        unavailable(e)
    }

    /// `call` (on the shared connection), given up as unavailable after the timeout.
    async fn timed<T>(&self, call: impl Future<Output = Result<T, KvError>>) -> Result<T, KvError> {
        within(self.timeout, call).await.map_err(|e| {
            self.shared.lock().unwrap_or_else(PoisonError::into_inner).take();
            KvError::Unavailable(e)
        })?
    }

    /// The pool, for other Redis-backed adapters of the same deployment.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }
}

#[async_trait]
impl KeyValue for RedisKv {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.timed(async { self.conn().await?.get(self.key(key)).await.map_err(|e| self.failed(&e)) }).await
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), KvError> {
        self.timed(async {
            self.conn().await?.pset_ex(self.key(key), value, millis(ttl)).await.map_err(|e| self.failed(&e))
        })
        .await
    }

    async fn set_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, KvError> {
        let stored: Option<String> = self
            .timed(async {
                redis::cmd("SET")
                    .arg(self.key(key))
                    .arg(value)
                    .arg("NX")
                    .arg("PX")
                    .arg(millis(ttl))
                    .query_async(&mut self.conn().await?)
                    .await
                    .map_err(|e| self.failed(&e))
            })
            .await?;
        Ok(stored.is_some())
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.timed(async { self.conn().await?.del(self.key(key)).await.map_err(|e| self.failed(&e)) }).await
    }

    async fn incr(&self, key: &str, window: Duration) -> Result<WindowCount, KvError> {
        let (count, ttl_ms): (u64, i64) = self
            .timed(async {
                self.incr_script
                    .key(self.key(key))
                    .arg(millis(window))
                    .invoke_async(&mut self.conn().await?)
                    .await
                    .map_err(|e| self.failed(&e))
            })
            .await?;
        Ok(WindowCount { count, resets_in: Duration::from_millis(u64::try_from(ttl_ms).unwrap_or(0)) })
    }

    async fn peek(&self, key: &str) -> Result<Option<WindowCount>, KvError> {
        let (count, ttl_ms): (Option<u64>, i64) = self
            .timed(async {
                redis::pipe()
                    .get(self.key(key))
                    .pttl(self.key(key))
                    .query_async(&mut self.conn().await?)
                    .await
                    .map_err(|e| self.failed(&e))
            })
            .await?;
        Ok(count
            .map(|count| WindowCount { count, resets_in: Duration::from_millis(u64::try_from(ttl_ms).unwrap_or(0)) }))
    }

    async fn unthrottle(&self, key: &str) -> Result<(), KvError> {
        self.timed(async {
            self.unthrottle_script
                .key(self.key(key))
                .key(self.key(&wait_key(key)))
                .invoke_async(&mut self.conn().await?)
                .await
                .map_err(|e| self.failed(&e))
        })
        .await
    }

    async fn throttle(&self, key: &str, backoff: Backoff) -> Result<Throttled, KvError> {
        let (passed, value): (u8, u64) = self
            .timed(async {
                self.throttle_script
                    .key(self.key(key))
                    .key(self.key(&wait_key(key)))
                    .arg(backoff.free)
                    .arg(millis(backoff.first_wait))
                    .arg(millis(backoff.max_wait))
                    .arg(millis(backoff.window))
                    .invoke_async(&mut self.conn().await?)
                    .await
                    .map_err(|e| self.failed(&e))
            })
            .await?;
        Ok(if passed == 1 {
            Throttled::Passed { count: value }
        } else {
            Throttled::Wait { retry_after: Duration::from_millis(value) }
        })
    }
}

#[async_trait]
impl HealthCheck for RedisKv {
    fn name(&self) -> &str {
        "redis"
    }

    async fn check(&self) -> Result<(), String> {
        let pong: String = self
            .timed(async { redis::cmd("PING").query_async(&mut self.conn().await?).await.map_err(unavailable) })
            .await
            .map_err(|e| e.to_string())?;
        if pong == "PONG" { Ok(()) } else { Err(format!("unexpected PING answer {pong}")) }
    }
}

/// Versions of state that other processes cache (a showtime's seat states, say), kept in the
/// deployment's key-value store. A writer calls [`Versions::bump`] after committing a change;
/// a reader calls [`Versions::current`] before it reads the state, and may answer from what
/// it read under a version for as long as `current` still gives that version. So a read that
/// starts after a change's commit and bump never answers from a copy older than the change.
///
/// A version is a random token, never a counter: a store that lost the key (a restart, an
/// eviction, the lifetime's end) gets a new token, so a copy can never be taken for a later
/// state that happens to have the same number.
pub struct Versions {
    kv: std::sync::Arc<dyn KeyValue>,
}

/// How long a version lasts without a bump; then the next reader makes a new one (one miss).
const VERSION_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

impl Versions {
    pub fn new(kv: std::sync::Arc<dyn KeyValue>) -> Self {
        Self { kv }
    }

    /// The version of `key` now, made if there is none.
    ///
    /// # Errors
    /// The store is unavailable: the reader must read the state itself, not a copy.
    pub async fn current(&self, key: &str) -> Result<Vec<u8>, KvError> {
        if let Some(version) = self.kv.get(key).await? {
            return Ok(version);
        }
        let made = uuid::Uuid::new_v4().as_bytes().to_vec();
        if self.kv.set_if_absent(key, &made, VERSION_LIFETIME).await? {
            return Ok(made);
        }
        // Another reader made it first.
        self.kv.get(key).await?.ok_or_else(|| KvError::Unavailable(format!("version {key} vanished")))
    }

    /// Gives `key` a new version: every copy read under an earlier one is out of date.
    ///
    /// # Errors
    /// The store is unavailable: copies may stay in use until it is back and the key bumped.
    pub async fn bump(&self, key: &str) -> Result<(), KvError> {
        self.kv.set(key, uuid::Uuid::new_v4().as_bytes(), VERSION_LIFETIME).await
    }
}
