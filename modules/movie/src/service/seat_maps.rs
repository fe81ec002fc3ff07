//! Served seat maps kept in this process, each under the version of its showtime's seat
//! states it was read at ([`platform::kv::Versions`] under [`seat_version_key`], which booking
//! bumps after every commit that changes the showtime's seats). Every read checks the version
//! (one round trip to the deployment's key-value store; in one process without Redis, to
//! memory) and answers from the copy while it is current, so a read never shows a seat free
//! that was taken before it began. Without the store (down, or no versions: booking runs in
//! another process and there is no Redis to share them), reads are built from the databases.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use platform::kv::Versions;

use crate::api::{MovieError, SeatMap, SeatMapDocument, ShowtimeId, seat_version_key};

/// Copies kept at most; past it the copies are dropped all at once (a few hundred showtimes
/// are on sale at a time).
const MAX_COPIES: usize = 4096;

/// A copy is not used past this age even at an unchanged version: it bounds what a lost bump
/// (booking could not reach the store after a commit) can cost.
const MAX_AGE: Duration = Duration::from_secs(1);

struct Copy {
    version: Vec<u8>,
    read_at: Instant,
    document: Arc<SeatMapDocument>,
}

pub(super) struct SeatMaps {
    versions: Option<Versions>,
    copies: Mutex<HashMap<ShowtimeId, Copy>>,
}

impl SeatMaps {
    pub fn new(versions: Option<Versions>) -> Self {
        Self { versions, copies: Mutex::new(HashMap::new()) }
    }

    /// The served seat map of `id`: the copy if it is current, else `build`'s, kept under the
    /// version read before `build` read the states (a change committed meanwhile then bumps
    /// the version past the copy).
    pub async fn get_or_build(
        &self,
        id: ShowtimeId,
        build: impl Future<Output = Result<SeatMap, MovieError>>,
    ) -> Result<Arc<SeatMapDocument>, MovieError> {
        let version = match &self.versions {
            Some(versions) => versions
                .current(&seat_version_key(id))
                .await
                .inspect_err(|e| tracing::debug!(showtime_id = %id.0, error = %e, "seat map version unknown"))
                .ok(),
            None => None,
        };
        let read_at = Instant::now();
        if let Some(version) = &version {
            let copies = self.copies.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(copy) = copies.get(&id)
                && copy.version == *version
                && copy.read_at.elapsed() < MAX_AGE
            {
                metrics::counter!("seat_map_reads_total", "copy" => "current").increment(1);
                return Ok(Arc::clone(&copy.document));
            }
        }
        let document = Arc::new(SeatMapDocument::of(&build.await?)?);
        let Some(version) = version else {
            metrics::counter!("seat_map_reads_total", "copy" => "unversioned").increment(1);
            return Ok(document);
        };
        metrics::counter!("seat_map_reads_total", "copy" => "rebuilt").increment(1);
        let mut copies = self.copies.lock().unwrap_or_else(PoisonError::into_inner);
        if copies.len() >= MAX_COPIES && !copies.contains_key(&id) {
            copies.clear();
        }
        // A slower reader of an older version never replaces a younger copy.
        if copies.get(&id).is_none_or(|copy| copy.read_at <= read_at) {
            copies.insert(id, Copy { version, read_at, document: Arc::clone(&document) });
        }
        Ok(document)
    }
}
