//! The auth module as the composition root starts it.

use std::sync::Arc;

use anyhow::anyhow;
use platform::config::JwtSettings;
use platform::identity::JwtVerifier;
use platform::module::{Context, Mount, Peers};

use crate::api::AuthApi;
use crate::service::{AuthService, AuthSettings};

pub struct Auth {
    pub settings: AuthSettings,
    pub jwt: JwtSettings,
}

impl Auth {
    /// The service on its opened database, the configured admin ensured.
    ///
    /// # Errors
    /// An unusable signing key or Argon2 setting, or the admin cannot be written.
    pub async fn service(&self, ctx: &Context) -> anyhow::Result<Arc<AuthService>> {
        let db = ctx.database(platform::module::Module::name(self))?;
        let service =
            AuthService::new(db, &self.settings, &self.jwt, &ctx.data_dir, ctx.kv.clone()).map_err(|e| anyhow!(e))?;
        service.ensure_configured_admin().await.map_err(|e| anyhow!("auth.admin_email: {e}"))?;
        Ok(Arc::new(service))
    }
}

#[async_trait::async_trait]
impl platform::module::Module for Auth {
    fn name(&self) -> &'static str {
        "auth"
    }

    fn migrate(&self) -> platform::db::Migrate {
        migrations::up::<auth_migrations::Migrator>
    }

    fn openapi(&self) -> utoipa::openapi::OpenApi {
        <crate::http::AuthDoc as utoipa::OpenApi>::openapi()
    }

    fn check(&self) -> Vec<String> {
        self.settings.check()
    }

    /// Tokens are verified with the service's own keys, not fetched from `/api/auth/jwks`.
    async fn start(&self, ctx: &mut Context, peers: &mut Peers) -> anyhow::Result<Mount> {
        let service = self.service(ctx).await?;
        peers.provide(Arc::new(JwtVerifier::with_keys(&self.jwt, &service.public_keys())));
        ctx.spawn(Arc::clone(&service).run_session_purge(ctx.stop.clone()));
        // The concrete service too, for the command line's and the tests' own calls.
        peers.provide(Arc::clone(&service));
        let api: Arc<dyn AuthApi> = service;
        peers.provide(Arc::clone(&api));
        Ok(platform::module::mount(api, crate::http::configure))
    }
}
