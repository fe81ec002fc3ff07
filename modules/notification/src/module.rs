//! The notification module as the composition root starts it.

use std::sync::Arc;

use anyhow::anyhow;
use auth::api::AuthApi;
use movie::api::MovieApi;
use platform::module::{Context, Module, Mount, Peers};

use crate::api::{NotificationApi, QUEUE};
use crate::service::{NotificationService, NotificationSettings};

pub struct Notification {
    pub settings: NotificationSettings,
}

#[async_trait::async_trait]
impl Module for Notification {
    fn name(&self) -> &'static str {
        "notification"
    }

    fn migrate(&self) -> platform::db::Migrate {
        migrations::up::<notification_migrations::Migrator>
    }

    fn openapi(&self) -> utoipa::openapi::OpenApi {
        <crate::http::NotificationDoc as utoipa::OpenApi>::openapi()
    }

    fn check(&self) -> Vec<String> {
        self.settings.check()
    }

    /// With its delivery worker and the consumer of booking and payment events; it reads
    /// addresses from auth and screenings from movie.
    async fn start(&self, ctx: &mut Context, peers: &mut Peers) -> anyhow::Result<Mount> {
        let db = ctx.database(self.name())?;
        let service = NotificationService::new(
            db.clone(),
            &self.settings,
            &ctx.data_dir,
            peers.get::<dyn AuthApi>()?,
            peers.get::<dyn MovieApi>()?,
        )
        .map_err(|e| anyhow!(e))?;
        let service = Arc::new(service);
        ctx.subscribe(QUEUE, service.events_handler()).await?;
        ctx.retention(self.name(), db, false);
        ctx.spawn(Arc::clone(&service).run_deliveries(ctx.stop.clone()));
        // The concrete service too, for the command line's and the tests' own calls.
        peers.provide(Arc::clone(&service));
        let api: Arc<dyn NotificationApi> = service;
        peers.provide(Arc::clone(&api));
        Ok(platform::module::mount(api, crate::http::configure))
    }
}
