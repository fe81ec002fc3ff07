//! The booking module as the composition root starts it.

use std::sync::Arc;

use movie::api::{MovieApi, SeatStates};
use platform::module::{Context, Module, Mount, Peers};

use crate::api::{BookingApi, QUEUE};
use crate::service::feed::SeatFeeds;
use crate::service::locks::{MemorySeatLocks, RedisSeatLocks, SeatLocks};
use crate::service::{BookingSeatStates, BookingService, BookingSettings};
use platform::kv::Versions;

pub struct Booking {
    pub settings: BookingSettings,
}

impl Booking {
    /// The seat locks of this deployment: Redis when configured (shared by every booking
    /// replica), else this process's memory.
    fn seat_locks(ctx: &Context) -> Arc<dyn SeatLocks> {
        match &ctx.redis {
            Some(redis) => Arc::new(RedisSeatLocks::new(redis, &format!("{}seats:", redis.prefix()))),
            None => Arc::new(MemorySeatLocks::new()),
        }
    }
}

#[async_trait::async_trait]
impl Module for Booking {
    fn name(&self) -> &'static str {
        "booking"
    }

    fn migrate(&self) -> platform::db::Migrate {
        migrations::up::<booking_migrations::Migrator>
    }

    fn openapi(&self) -> utoipa::openapi::OpenApi {
        <crate::http::BookingDoc as utoipa::OpenApi>::openapi()
    }

    fn check(&self) -> Vec<String> {
        self.settings.check()
    }

    /// Booking's claims are what movie's seat map shows, read from booking's tables.
    fn offer(&self, ctx: &Context, peers: &mut Peers) -> anyhow::Result<()> {
        let states: Arc<dyn SeatStates> = Arc::new(BookingSeatStates::new(ctx.database(self.name())?));
        peers.provide(states);
        Ok(())
    }

    /// With its outbox relay, the sweeper of unpaid holds and the consumer of payment events.
    async fn start(&self, ctx: &mut Context, peers: &mut Peers) -> anyhow::Result<Mount> {
        // Each outcome's counter exists at 0 from the start, so that dashboards and `rate()`
        // read an outcome that has not happened (expiry, a lock refusal) as 0, not as no data.
        for outcome in ["created", "conflict", "hold_limit", "cancelled", "expired"] {
            metrics::counter!("bookings_total", "outcome" => outcome).increment(0);
        }
        metrics::counter!("seat_lock_conflicts_total").increment(0);
        metrics::gauge!("seat_feed_streams").increment(0.0);
        let db = ctx.database(self.name())?;
        let relay = ctx.outbox_relay(self.name(), db.clone(), crate::api::EVENT_ORDER);
        let movies = peers.get::<dyn MovieApi>()?;
        let feeds = SeatFeeds::new(
            db.clone(),
            Arc::clone(&movies),
            Versions::new(ctx.kv.clone()),
            &self.settings,
            ctx.draining.clone(),
        );
        let service = Arc::new(BookingService::new(
            db.clone(),
            &self.settings,
            movies,
            Self::seat_locks(ctx),
            relay,
            Versions::new(ctx.kv.clone()),
            feeds.clone(),
        ));
        ctx.subscribe(QUEUE, service.events_handler()).await?;
        ctx.retention(self.name(), db, true);
        ctx.spawn(Arc::clone(&service).run_sweeper(ctx.stop.clone()));
        // The concrete service too, for the command line's and the tests' own calls.
        peers.provide(Arc::clone(&service));
        let api: Arc<dyn BookingApi> = service;
        peers.provide(Arc::clone(&api));
        let feeds = actix_web::web::Data::new(feeds);
        let mount = platform::module::mount(api, crate::http::configure);
        // The seat feeds are this process's own (not part of BookingApi: a stream, served
        // only where booking runs).
        Ok(Arc::new(move |cfg: &mut actix_web::web::ServiceConfig| {
            cfg.app_data(feeds.clone());
            mount(cfg);
        }))
    }
}
