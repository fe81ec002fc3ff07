//! The movie module as the composition root starts it.

use std::sync::Arc;

use anyhow::anyhow;
use platform::module::{Context, Module, Mount, Peers};

use crate::api::{MovieApi, QUEUE, SeatStates};
use crate::service::{MovieService, MovieSettings};
use platform::kv::Versions;

pub struct Movie {
    pub settings: MovieSettings,
    /// Create the demo catalog when the catalog is empty (`demo.seed`).
    pub seed_demo: bool,
}

impl Movie {
    /// The service on its opened database, showing the seat states `peers` provide.
    ///
    /// # Errors
    /// The database is not open, or no seat states are provided.
    pub fn service(&self, ctx: &Context, peers: &Peers) -> anyhow::Result<Arc<MovieService>> {
        let db = ctx.database(self.name())?;
        let seat_states = peers.get::<dyn SeatStates>()?;
        // Seat maps are copied only where booking's bumps of their versions are seen.
        let seat_versions =
            (seat_states.versioned_here() || ctx.redis.is_some()).then(|| Versions::new(ctx.kv.clone()));
        Ok(Arc::new(MovieService::new(db, &self.settings, ctx.kv.clone(), seat_states, seat_versions)))
    }
}

#[async_trait::async_trait]
impl Module for Movie {
    fn name(&self) -> &'static str {
        "movie"
    }

    fn migrate(&self) -> platform::db::Migrate {
        migrations::up::<movie_migrations::Migrator>
    }

    fn openapi(&self) -> utoipa::openapi::OpenApi {
        <crate::http::MovieDoc as utoipa::OpenApi>::openapi()
    }

    fn check(&self) -> Vec<String> {
        self.settings.check()
    }

    /// Keeps `seats_available` from booking's events.
    async fn start(&self, ctx: &mut Context, peers: &mut Peers) -> anyhow::Result<Mount> {
        // Both results' counters exist at 0 from the start: the hit ratio is 0, not no data,
        // until the first hit.
        for result in ["hit", "miss"] {
            metrics::counter!("movie_cache_requests_total", "result" => result).increment(0);
        }
        let service = self.service(ctx, peers)?;
        let indexed = service.index_titles().await.map_err(|e| anyhow!("title search index: {e}"))?;
        if indexed > 0 {
            tracing::info!(movies = indexed, "indexed the titles of movies created before the title search index");
        }
        if self.seed_demo && service.seed_demo().await.map_err(|e| anyhow!("demo catalog: {e}"))? {
            tracing::info!("demo catalog created (demo.seed = false turns this off)");
        }
        ctx.subscribe(QUEUE, service.events_handler()).await?;
        ctx.retention(self.name(), ctx.database(self.name())?, false);
        // The concrete service too, for the command line's and the tests' own calls.
        peers.provide(Arc::clone(&service));
        let api: Arc<dyn MovieApi> = service;
        peers.provide(Arc::clone(&api));
        Ok(platform::module::mount(api, crate::http::configure))
    }
}
