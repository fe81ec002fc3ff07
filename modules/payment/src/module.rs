//! The payment module as the composition root starts it.

use std::sync::Arc;

use anyhow::anyhow;
use booking::api::BookingApi;
use platform::module::{Context, Module, Mount, Peers};
use sea_orm::{ActiveEnum, Iterable};

use crate::api::{PaymentApi, PaymentStatus, QUEUE};
use crate::service::{PaymentService, PaymentSettings};

pub struct Payment {
    pub settings: PaymentSettings,
}

#[async_trait::async_trait]
impl Module for Payment {
    fn name(&self) -> &'static str {
        "payment"
    }

    fn migrate(&self) -> platform::db::Migrate {
        migrations::up::<payment_migrations::Migrator>
    }

    fn openapi(&self) -> utoipa::openapi::OpenApi {
        <crate::http::PaymentDoc as utoipa::OpenApi>::openapi()
    }

    fn check(&self) -> Vec<String> {
        self.settings.check()
    }

    /// With its outbox relay, the refund worker, the reconciler of cut-off charges and the
    /// consumer of booking events.
    async fn start(&self, ctx: &mut Context, peers: &mut Peers) -> anyhow::Result<Mount> {
        // Each outcome's counter exists at 0 from the start, so that dashboards and `rate()`
        // read an outcome that has not happened (a decline, a reconciled charge) as 0, not as
        // no data.
        for status in PaymentStatus::iter() {
            metrics::counter!("payments_total", "status" => status.to_value()).increment(0);
        }
        for source in ["cache", "database"] {
            metrics::counter!("payment_replays_total", "source" => source).increment(0);
        }
        for outcome in ["approved", "declined", "forgotten"] {
            metrics::counter!("payment_reconciled_total", "outcome" => outcome).increment(0);
        }
        let db = ctx.database(self.name())?;
        let relay = ctx.outbox_relay(self.name(), db.clone(), booking::api::EVENT_ORDER);
        // Saved answers are copied to Redis when there is one (a fast path for replays); in
        // one process the database is as near as memory would be.
        let answer_cache = ctx.redis.is_some().then(|| ctx.kv.clone());
        let service = PaymentService::new(
            db.clone(),
            &self.settings,
            &ctx.data_dir,
            peers.get::<dyn BookingApi>()?,
            relay,
            answer_cache,
        )
        .map_err(|e| anyhow!("payment.fingerprint_key: {e}"))?;
        let service = Arc::new(service);
        ctx.subscribe(QUEUE, service.events_handler()).await?;
        ctx.retention(self.name(), db, true);
        ctx.spawn(Arc::clone(&service).run_refunds(ctx.stop.clone()));
        ctx.spawn(Arc::clone(&service).run_reconciler(ctx.stop.clone()));
        // The concrete service too, for the command line's and the tests' own calls.
        peers.provide(Arc::clone(&service));
        let api: Arc<dyn PaymentApi> = service;
        peers.provide(Arc::clone(&api));
        Ok(platform::module::mount(api, crate::http::configure))
    }
}
