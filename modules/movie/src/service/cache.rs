//! The catalog cache: movie list/detail, theater and showtime lookups, kept in the
//! deployment's `KeyValue` store (this process's memory, or Redis) for a short TTL.
//!
//! Invalidation is by generation: every key embeds the current catalog generation, and an
//! admin write bumps it, so every entry written before the write is unreachable at once
//! (and expires on its own). The cache is never needed for correctness: when the store
//! fails, reads go to the database. Prices for bookings are never read through it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use platform::kv::KeyValue;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::MovieError;

const GENERATION_KEY: &str = "movie:catalog:generation";
/// The generation counter lives far longer than any entry, so a reset can never make an
/// old entry reachable again.
const GENERATION_LIFETIME: Duration = Duration::from_secs(60 * 60 * 24 * 365);

pub struct CatalogCache {
    kv: Arc<dyn KeyValue>,
    ttl: Duration,
}

impl CatalogCache {
    pub fn new(kv: Arc<dyn KeyValue>, ttl: Duration) -> Self {
        Self { kv, ttl }
    }

    /// The cached value of `key`, or `load`'s answer, stored for next time.
    pub async fn get_or_load<T, F>(&self, key: &str, load: F) -> Result<T, MovieError>
    where
        T: Serialize + DeserializeOwned,
        F: Future<Output = Result<T, MovieError>>,
    {
        if self.ttl.is_zero() {
            return load.await;
        }
        let key = match self.kv.peek(GENERATION_KEY).await {
            Ok(generation) => format!("movie:catalog:{}:{key}", generation.map_or(0, |g| g.count)),
            Err(e) => {
                tracing::warn!(error = %e, "catalog cache unavailable; reading the database");
                return load.await;
            }
        };
        if let Ok(Some(bytes)) = self.kv.get(&key).await
            && let Ok(value) = serde_json::from_slice(&bytes)
        {
            metrics::counter!("movie_cache_requests_total", "result" => "hit").increment(1);
            return Ok(value);
        }
        metrics::counter!("movie_cache_requests_total", "result" => "miss").increment(1);
        let value = load.await?;
        if let Ok(bytes) = serde_json::to_vec(&value)
            && let Err(e) = self.kv.set(&key, &bytes, self.ttl).await
        {
            tracing::warn!(error = %e, "catalog cache write failed");
        }
        Ok(value)
    }

    /// Makes every cached entry unreachable; called after each committed admin write.
    pub async fn invalidate(&self) {
        if let Err(e) = self.kv.incr(GENERATION_KEY, GENERATION_LIFETIME).await {
            // Entries then live out their TTL: readers may see the old catalog that long.
            tracing::error!(error = %e, "catalog cache invalidation failed");
        }
    }
}
