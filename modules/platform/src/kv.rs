//! The key-value port: short-lived shared state with expiry — rate-limit windows, caches,
//! idempotency fast paths. Two implementations pass one conformance suite
//! (`tests/kv_conformance.rs`): [`MemoryKv`] for the single binary and [`RedisKv`] for the
//! split deployment, where every replica must see the same counters.
//!
//! Nothing here is the source of truth for money or seats: a lost key only loosens a
//! limit or costs a cache miss.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deadpool_redis::redis::{self, AsyncCommands, Script};
use deadpool_redis::{Config as PoolConfig, Pool, PoolConfig as PoolSize, Runtime};

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

/// Expiring keys and fixed-window counters.
///
/// Contract (checked by the conformance suite for every implementation):
/// a key is gone once its TTL has passed; `set_if_absent` stores only when the key is
/// absent and says whether it stored; `incr` starts a window of `window` on the first hit
/// and counts up until it expires; `peek` reads a counter without counting.
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
}

/// Redis store through a deadpool connection pool. Every key is prefixed (a deployment
/// or a test can share one Redis without collisions).
pub struct RedisKv {
    pool: Pool,
    prefix: String,
    incr_script: Script,
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

fn unavailable(e: impl std::fmt::Display) -> KvError {
    KvError::Unavailable(e.to_string())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisKv {
    /// Builds the pool (connections are opened lazily; readiness reports reachability).
    ///
    /// # Errors
    /// The URL is not a valid Redis URL.
    pub fn connect(url: &str, pool_size: usize, prefix: &str) -> Result<Self, KvError> {
        let mut cfg = PoolConfig::from_url(url);
        cfg.pool = Some(PoolSize::new(pool_size));
        let pool = cfg.create_pool(Some(Runtime::Tokio1)).map_err(unavailable)?;
        Ok(Self { pool, prefix: prefix.to_owned(), incr_script: Script::new(INCR_WINDOW) })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    async fn conn(&self) -> Result<deadpool_redis::Connection, KvError> {
        self.pool.get().await.map_err(unavailable)
    }

    /// The pool, for other Redis-backed adapters of the same deployment.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }
}

#[async_trait]
impl KeyValue for RedisKv {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.conn().await?.get(self.key(key)).await.map_err(unavailable)
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), KvError> {
        self.conn().await?.pset_ex(self.key(key), value, millis(ttl)).await.map_err(unavailable)
    }

    async fn set_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, KvError> {
        let stored: Option<String> = redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl))
            .query_async(&mut self.conn().await?)
            .await
            .map_err(unavailable)?;
        Ok(stored.is_some())
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.conn().await?.del(self.key(key)).await.map_err(unavailable)
    }

    async fn incr(&self, key: &str, window: Duration) -> Result<WindowCount, KvError> {
        let (count, ttl_ms): (u64, i64) = self
            .incr_script
            .key(self.key(key))
            .arg(millis(window))
            .invoke_async(&mut self.conn().await?)
            .await
            .map_err(unavailable)?;
        Ok(WindowCount { count, resets_in: Duration::from_millis(u64::try_from(ttl_ms).unwrap_or(0)) })
    }

    async fn peek(&self, key: &str) -> Result<Option<WindowCount>, KvError> {
        let (count, ttl_ms): (Option<u64>, i64) = redis::pipe()
            .get(self.key(key))
            .pttl(self.key(key))
            .query_async(&mut self.conn().await?)
            .await
            .map_err(unavailable)?;
        Ok(count
            .map(|count| WindowCount { count, resets_in: Duration::from_millis(u64::try_from(ttl_ms).unwrap_or(0)) }))
    }
}

#[async_trait]
impl HealthCheck for RedisKv {
    fn name(&self) -> &str {
        "redis"
    }

    async fn check(&self) -> Result<(), String> {
        let pong: String = redis::cmd("PING")
            .query_async(&mut self.conn().await.map_err(|e| e.to_string())?)
            .await
            .map_err(|e| e.to_string())?;
        if pong == "PONG" { Ok(()) } else { Err(format!("unexpected PING answer {pong}")) }
    }
}
