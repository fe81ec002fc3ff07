//! The catalog cache: movie list/detail, theater and showtime lookups, in two tiers.
//!
//! - **This process's memory**: the values themselves, so a hit costs a map lookup and a clone,
//!   no decode and no network.
//! - **The deployment's `KeyValue` store** (this process's memory, or Redis shared by every
//!   replica): the values as JSON, so a replica's miss is usually another's hit and the
//!   database sees one read per entry and TTL across the deployment.
//!
//! Invalidation is by generation: every entry belongs to the catalog generation it was read in,
//! and an admin write bumps the shared generation, so every entry written before the write is
//! unreachable at once (and expires on its own). A process reads the shared generation every
//! [`GENERATION_CHECK`], one reader at a time, so a replica serves its memory tier for that long
//! plus one round trip after another replica's write (never more than
//! [`GENERATION_STALE_LIMIT`], however slow the store); the writing process sees its own write
//! at once. Misses of one key in one process load it once: the others wait for that load (at
//! most [`LOAD_WAIT`]) and take its value. The cache is never needed for correctness: when
//! the store fails, reads go to the
//! database (the memory tier too, since its generation cannot be checked). Prices for bookings
//! are never read through it.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use platform::kv::KeyValue;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::MovieError;

const GENERATION_KEY: &str = "movie:catalog:generation";
/// The generation counter lives far longer than any entry, so a reset can never make an
/// old entry reachable again.
const GENERATION_LIFETIME: Duration = Duration::from_secs(60 * 60 * 24 * 365);
/// How stale another replica's admin write may be seen here: between two reads of the
/// shared generation. At thousands of catalog reads per second this is one store round trip
/// per few hundred reads, instead of two per read.
const GENERATION_CHECK: Duration = Duration::from_millis(5);
/// Past this age the generation is read by every reader that needs it, not left to the one
/// reading it: a store that hangs cannot stretch staleness beyond it.
const GENERATION_STALE_LIMIT: Duration = Duration::from_secs(1);
/// How long a miss waits for another reader's load of the same key before loading itself
/// (a load that hangs must not hold every other reader). Without the wait, every reader that
/// missed a search at once ran it: at 100,000 movies the misses after a cold start queued for
/// up to 3.5 s on SQLite's connections.
const LOAD_WAIT: Duration = Duration::from_secs(1);
/// Entries kept in memory; past it the memory tier starts afresh (keys of free-form searches
/// are many, each bounded in length).
const LOCAL_ENTRIES: usize = 4096;

pub struct CatalogCache {
    kv: Arc<dyn KeyValue>,
    ttl: Duration,
    local: Local,
    /// The keys being loaded, each with the turn its loaders take; removed when the last one
    /// lets go (clones are only made under this lock, so the count it sees is exact).
    loads: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// This process's tier: entries of the generation last read from the store.
struct Local {
    started: Instant,
    /// The shared generation as last read, and when (milliseconds since `started`, plus one,
    /// so 0 means never).
    generation: AtomicU64,
    checked_at: AtomicU64,
    /// Set while one reader reads the generation for everyone.
    checking: AtomicBool,
    entries: RwLock<HashMap<String, Entry>>,
}

struct Entry {
    generation: u64,
    expires: Instant,
    value: Arc<dyn Any + Send + Sync>,
}

impl CatalogCache {
    pub fn new(kv: Arc<dyn KeyValue>, ttl: Duration) -> Self {
        let local = Local {
            started: Instant::now(),
            generation: AtomicU64::new(0),
            checked_at: AtomicU64::new(0),
            checking: AtomicBool::new(false),
            entries: RwLock::new(HashMap::new()),
        };
        Self { kv, ttl, local, loads: std::sync::Mutex::default() }
    }

    /// The cached value of `key`, or `load`'s answer, stored for next time.
    pub async fn get_or_load<T, F>(&self, key: &str, load: F) -> Result<T, MovieError>
    where
        T: Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
        F: Future<Output = Result<T, MovieError>>,
    {
        if self.ttl.is_zero() {
            return load.await;
        }
        let generation = match self.generation().await {
            Ok(generation) => generation,
            Err(e) => {
                tracing::warn!(error = %e, "catalog cache unavailable; reading the database");
                return load.await;
            }
        };
        if let Some(value) = self.local.get::<T>(key, generation) {
            metrics::counter!("movie_cache_requests_total", "result" => "hit").increment(1);
            return Ok(value);
        }
        let shared_key = format!("movie:catalog:{generation}:{key}");
        if let Ok(Some(bytes)) = self.kv.get(&shared_key).await
            && let Ok(value) = serde_json::from_slice::<T>(&bytes)
        {
            metrics::counter!("movie_cache_requests_total", "result" => "hit").increment(1);
            self.local.put(key, generation, self.ttl, value.clone());
            return Ok(value);
        }
        let loading = Loading::join(&self.loads, shared_key);
        self.load_once(&loading.turn, key, &loading.key, generation, load).await
    }

    /// Loads `key` and stores it in both tiers, unless the reader that took `turn` before this
    /// one has just done so.
    async fn load_once<T, F>(
        &self,
        turn: &tokio::sync::Mutex<()>,
        key: &str,
        shared_key: &str,
        generation: u64,
        load: F,
    ) -> Result<T, MovieError>
    where
        T: Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
        F: Future<Output = Result<T, MovieError>>,
    {
        let _turn = tokio::time::timeout(LOAD_WAIT, turn.lock()).await.ok();
        if let Some(value) = self.local.get::<T>(key, generation) {
            metrics::counter!("movie_cache_requests_total", "result" => "hit").increment(1);
            return Ok(value);
        }
        metrics::counter!("movie_cache_requests_total", "result" => "miss").increment(1);
        let value = load.await?;
        if let Ok(bytes) = serde_json::to_vec(&value)
            && let Err(e) = self.kv.set(shared_key, &bytes, self.ttl).await
        {
            tracing::warn!(error = %e, "catalog cache write failed");
        }
        self.local.put(key, generation, self.ttl, value.clone());
        Ok(value)
    }

    /// Makes every cached entry unreachable, in every process; called after each committed
    /// admin write.
    pub async fn invalidate(&self) {
        match self.kv.incr(GENERATION_KEY, GENERATION_LIFETIME).await {
            Ok(count) => self.local.saw(count.count),
            // Entries then live out their TTL: readers may see the old catalog that long.
            Err(e) => tracing::error!(error = %e, "catalog cache invalidation failed"),
        }
    }

    /// The shared generation: as last read if that was within [`GENERATION_CHECK`]; else one
    /// reader reads it while the others go on with the last one (many readers at once would
    /// each wait a round trip for the same answer); past [`GENERATION_STALE_LIMIT`] (a store
    /// that hangs), every reader reads it.
    async fn generation(&self) -> Result<u64, platform::kv::KvError> {
        let checked = self.local.checked_at.load(Ordering::Acquire);
        let age = self.local.now().saturating_sub(checked);
        let last = self.local.generation.load(Ordering::Acquire);
        if checked != 0 && age < millis(GENERATION_CHECK) {
            return Ok(last);
        }
        let turn = Turn::take(&self.local.checking);
        if turn.is_none() && checked != 0 && age < millis(GENERATION_STALE_LIMIT) {
            return Ok(last);
        }
        // The turn may be free because another reader has just read it: then it is fresh.
        if turn.is_some() && self.local.checked_at.load(Ordering::Acquire) != checked {
            return Ok(self.local.generation.load(Ordering::Acquire));
        }
        let read = self.kv.peek(GENERATION_KEY).await;
        drop(turn);
        let generation = read?.map_or(0, |g| g.count);
        self.local.saw(generation);
        Ok(generation)
    }
}

/// A reader's place among the loaders of one key; when the last one lets go (also when its
/// request is abandoned mid-load), the key leaves the map.
struct Loading<'a> {
    loads: &'a std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    key: String,
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl<'a> Loading<'a> {
    fn join(loads: &'a std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>, key: String) -> Self {
        let turn =
            Arc::clone(loads.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(key.clone()).or_default());
        Self { loads, key, turn }
    }
}

impl Drop for Loading<'_> {
    fn drop(&mut self) {
        let mut loads = self.loads.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // This reader's clone and the map's: no one else waits.
        if Arc::strong_count(&self.turn) == 2 {
            loads.remove(&self.key);
        }
    }
}

/// The one reader's turn to read the generation, given back when dropped (also when its
/// request is abandoned mid-read).
struct Turn<'a>(&'a AtomicBool);

impl<'a> Turn<'a> {
    fn take(flag: &'a AtomicBool) -> Option<Self> {
        (!flag.swap(true, Ordering::AcqRel)).then_some(Turn(flag))
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Local {
    /// Milliseconds since start, plus one (0 is "never").
    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX) + 1
    }

    /// Records `generation` as read now; entries of older ones are dropped.
    fn saw(&self, generation: u64) {
        let before = self.generation.swap(generation, Ordering::AcqRel);
        self.checked_at.store(self.now(), Ordering::Release);
        if before != generation {
            self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
        }
    }

    fn get<T: Clone + 'static>(&self, key: &str, generation: u64) -> Option<T> {
        let entries = self.entries.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = entries.get(key)?;
        if entry.generation != generation || entry.expires <= Instant::now() {
            return None;
        }
        entry.value.downcast_ref::<T>().cloned()
    }

    fn put<T: Send + Sync + 'static>(&self, key: &str, generation: u64, ttl: Duration, value: T) {
        let mut entries = self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= LOCAL_ENTRIES {
            entries.clear();
        }
        let entry = Entry { generation, expires: Instant::now() + ttl, value: Arc::new(value) };
        entries.insert(key.to_owned(), entry);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use platform::kv::MemoryKv;

    use super::CatalogCache;

    #[tokio::test]
    async fn readers_that_miss_together_load_once() {
        let cache = Arc::new(CatalogCache::new(Arc::new(MemoryKv::new()), Duration::from_secs(60)));
        let loads = Arc::new(AtomicUsize::new(0));
        let readers: Vec<_> = (0..16)
            .map(|_| {
                let (cache, loads) = (Arc::clone(&cache), Arc::clone(&loads));
                tokio::spawn(async move {
                    cache
                        .get_or_load("movies:q", async {
                            loads.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Ok(7_u32)
                        })
                        .await
                })
            })
            .collect();
        for reader in readers {
            assert_eq!(reader.await.unwrap().unwrap(), 7);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        assert!(cache.loads.lock().unwrap().is_empty(), "no turn is kept once its loaders are done");

        // A request abandoned mid-load (the client went away) lets go of its turn too.
        let abandoned = {
            let cache = Arc::clone(&cache);
            tokio::spawn(
                async move { cache.get_or_load("movies:gone", std::future::pending::<Result<u32, _>>()).await },
            )
        };
        while cache.loads.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        abandoned.abort();
        assert!(abandoned.await.unwrap_err().is_cancelled());
        assert!(cache.loads.lock().unwrap().is_empty(), "an abandoned load keeps no turn");
    }
}
