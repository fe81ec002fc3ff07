//! The module table: every module of boxoffice, how it is reached when it runs elsewhere,
//! and how the ones compiled in start here. A new module is its crate (with its
//! `config.toml`) and its migrator crate under `migrations/`, a Cargo feature and dependency
//! in `Cargo.toml`, and its entry in each list of this file.

use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use auth::api::AuthApi;
use booking::api::BookingApi;
use movie::api::{MovieApi, SeatStates};
use notification::api::NotificationApi;
use payment::api::PaymentApi;
use platform::amqp::RabbitBus;
use platform::events::{DeadLetterStore, EventBus, InProcessBus, QueueSpec};
use platform::health::Readiness;
use platform::identity::JwtVerifier;
use platform::kv::{KeyValue, MemoryKv, RedisKv};
use platform::module::{Context, Mount, Peers};
use serde::Deserialize;

use crate::settings::Settings;

/// The modules a process can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Module {
    Auth,
    Movie,
    Booking,
    Payment,
    Notification,
}

impl Module {
    /// Every module, in start order (a module starts after those whose API it uses).
    pub const ALL: [Module; 5] = [Module::Auth, Module::Movie, Module::Booking, Module::Payment, Module::Notification];

    /// Modules whose Cargo feature is on in this build.
    pub const COMPILED: &'static [Module] = &[
        #[cfg(feature = "auth")]
        Module::Auth,
        #[cfg(feature = "movie")]
        Module::Movie,
        #[cfg(feature = "booking")]
        Module::Booking,
        #[cfg(feature = "payment")]
        Module::Payment,
        #[cfg(feature = "notification")]
        Module::Notification,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Module::Auth => "auth",
            Module::Movie => "movie",
            Module::Booking => "booking",
            Module::Payment => "payment",
            Module::Notification => "notification",
        }
    }

    /// The module's configuration defaults: its `[section]` and its `services.<module>` URL.
    pub fn config(self) -> &'static str {
        match self {
            Module::Auth => auth::api::CONFIG,
            Module::Movie => movie::api::CONFIG,
            Module::Booking => booking::api::CONFIG,
            Module::Payment => payment::api::CONFIG,
            Module::Notification => notification::api::CONFIG,
        }
    }

    /// The queue the module consumes, if any (its crate's API names it, compiled in or not).
    pub fn queue(self) -> Option<QueueSpec> {
        match self {
            Module::Auth => None,
            Module::Movie => Some(movie::api::QUEUE),
            Module::Booking => Some(booking::api::QUEUE),
            Module::Payment => Some(payment::api::QUEUE),
            Module::Notification => Some(notification::api::QUEUE),
        }
    }

    /// Whether the module publishes events (through its outbox).
    pub fn publishes(self) -> bool {
        matches!(self, Module::Booking | Module::Payment)
    }

    /// The module as this binary starts it (`None`: not compiled in).
    pub(crate) fn local(self, settings: &Settings) -> Option<Box<dyn platform::module::Module>> {
        match self {
            #[cfg(feature = "auth")]
            Module::Auth => Some(Box::new(auth::module::Auth {
                settings: settings.sections.auth.clone(),
                jwt: settings.jwt.clone(),
            })),
            #[cfg(feature = "movie")]
            Module::Movie => Some(Box::new(movie::module::Movie {
                settings: settings.sections.movie.clone(),
                seed_demo: settings.demo.seed,
            })),
            #[cfg(feature = "booking")]
            Module::Booking => Some(Box::new(booking::module::Booking { settings: settings.sections.booking.clone() })),
            #[cfg(feature = "payment")]
            Module::Payment => Some(Box::new(payment::module::Payment { settings: settings.sections.payment.clone() })),
            #[cfg(feature = "notification")]
            Module::Notification => {
                Some(Box::new(notification::module::Notification { settings: settings.sections.notification.clone() }))
            }
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }
}

/// The `[section]` of each compiled-in module (`Settings::sections`).
#[derive(Debug, Clone, Deserialize)]
pub struct Sections {
    #[cfg(feature = "auth")]
    pub auth: auth::service::AuthSettings,
    #[cfg(feature = "movie")]
    pub movie: movie::service::MovieSettings,
    #[cfg(feature = "booking")]
    pub booking: booking::service::BookingSettings,
    #[cfg(feature = "payment")]
    pub payment: payment::service::PaymentSettings,
    #[cfg(feature = "notification")]
    pub notification: notification::service::NotificationSettings,
}

/// The REST client of every module (and auth's published keys for verifying tokens): what
/// this process uses of each module it does not serve. [`start`] replaces the entries of
/// the modules it serves with their in-process services.
///
/// # Errors
/// The HTTP client cannot be built.
fn remote_peers(settings: &Settings) -> anyhow::Result<Peers> {
    let http = platform::rest::http_client().context("building the HTTP client")?;
    let url = |module| settings.services.url(module);
    let token = &settings.services.token;
    let mut peers = Peers::default();
    let jwks = format!("{}/api/auth/jwks", url(Module::Auth).trim_end_matches('/'));
    peers.provide(Arc::new(JwtVerifier::remote(&settings.jwt, jwks, http.clone())));
    let auth: Arc<dyn AuthApi> =
        Arc::new(auth::client::AuthClient::new(url(Module::Auth), http.clone(), token.clone()));
    peers.provide(auth);
    let movie: Arc<dyn MovieApi> = Arc::new(movie::client::MovieClient::new(url(Module::Movie), http.clone()));
    peers.provide(movie);
    let booking = Arc::new(booking::client::BookingClient::new(url(Module::Booking), http.clone(), token.clone()));
    peers.provide::<dyn SeatStates>(booking.clone());
    peers.provide::<dyn BookingApi>(booking);
    let payment: Arc<dyn PaymentApi> =
        Arc::new(payment::client::PaymentClient::new(url(Module::Payment), http.clone()));
    peers.provide(payment);
    let notification: Arc<dyn NotificationApi> =
        Arc::new(notification::client::NotificationClient::new(url(Module::Notification), http));
    peers.provide(notification);
    Ok(peers)
}

/// The modules this process serves, started: their APIs in `peers`, their routes to mount,
/// their background tasks waiting in `ctx` (not running yet).
pub struct Started {
    pub ctx: Context,
    pub peers: Peers,
    pub mounts: Vec<Mount>,
    /// The document of the routes this process serves.
    pub openapi: utoipa::openapi::OpenApi,
}

/// Opens the served modules' databases, then starts each in dependency order on the
/// deployment's key-value store and bus. Every consumer has subscribed when this returns;
/// nothing runs in the background until the caller spawns `ctx`'s tasks.
///
/// # Errors
/// Anything that stops a module from starting: configuration, databases, the bus.
pub async fn start(settings: &Settings) -> anyhow::Result<Started> {
    let served: Vec<Box<dyn platform::module::Module>> =
        Module::ALL.into_iter().filter(|m| settings.serves(*m)).filter_map(|m| m.local(settings)).collect();
    let mut ctx = context(settings).await?;
    let mut peers = remote_peers(settings)?;
    for module in &served {
        ctx.open(module.as_ref()).await?;
    }
    for module in &served {
        module.offer(&ctx, &mut peers)?;
    }
    let mut mounts = Vec::with_capacity(served.len());
    for module in &served {
        mounts.push(module.start(&mut ctx, &mut peers).await.with_context(|| format!("starting {}", module.name()))?);
    }
    let openapi = crate::openapi::document(served.iter().map(|m| m.openapi()));
    Ok(Started { ctx, peers, mounts, openapi })
}

/// The OpenAPI document of every module compiled into this binary, served or not: the whole
/// API of a deployment of it, which a gateway in front serves as one document. The single
/// binary serves all of them, so there it is the same as [`Started::openapi`].
pub fn compiled_openapi(settings: &Settings) -> utoipa::openapi::OpenApi {
    crate::openapi::document(Module::COMPILED.iter().filter_map(|m| m.local(settings)).map(|m| m.openapi()))
}

/// Opens `module`'s database and brings its schema up to date (`boxoffice migrate`).
///
/// # Errors
/// The module is not compiled in, the database cannot be reached or a migration fails.
pub async fn migrate(settings: &Settings, module: Module) -> anyhow::Result<sea_orm::DatabaseConnection> {
    let local = module.local(settings).ok_or_else(|| anyhow!("{} is not compiled in", module.name()))?;
    platform::module::open_database(local.as_ref(), &settings.database, &settings.data_dir).await
}

/// The shared infrastructure modules start on: Redis (or memory) and the event bus.
async fn context(settings: &Settings) -> anyhow::Result<Context> {
    let mut readiness = Readiness::default();
    let redis = redis(settings)?;
    if let Some(redis) = &redis {
        readiness.add(redis.clone());
    }
    let kv: Arc<dyn KeyValue> = match &redis {
        Some(redis) => redis.clone(),
        None => Arc::new(MemoryKv::new()),
    };
    let bus = event_bus(settings, &mut readiness).await?;
    Ok(Context::new(
        settings.data_dir.clone(),
        settings.database.clone(),
        settings.events.clone(),
        kv,
        redis,
        bus,
        readiness,
    ))
}

/// The deployment's Redis pool, when `redis.url` is set.
///
/// # Errors
/// A malformed Redis URL.
fn redis(settings: &Settings) -> anyhow::Result<Option<Arc<RedisKv>>> {
    let redis = &settings.redis;
    if redis.url.is_empty() {
        return Ok(None);
    }
    let kv = RedisKv::connect(redis.url.expose(), redis.pool_size, &redis.key_prefix, redis.timeout())
        .map_err(|e| anyhow!("redis.url: {e}"))?;
    Ok(Some(Arc::new(kv)))
}

/// The event bus of this deployment — RabbitMQ when `events.amqp_url` is set, else in process
/// with its dead letters in the `events` store — with every queue of the deployment declared,
/// whichever process consumes it: nothing published from now on can miss a consumer that
/// starts later.
///
/// # Errors
/// RabbitMQ or the `events` store cannot be reached.
pub async fn event_bus(settings: &Settings, readiness: &mut Readiness) -> anyhow::Result<Arc<dyn EventBus>> {
    let events = &settings.events;
    let bus: Arc<dyn EventBus> = if events.amqp_url.is_empty() {
        let store = dead_letter_store(settings).await?;
        readiness.add(Arc::new(platform::db::DatabaseHealth::new("events", store.database())));
        InProcessBus::new(events.retry(), store, std::time::Duration::from_millis(events.relay_poll_ms))
    } else {
        let bus = Arc::new(
            RabbitBus::connect(events.amqp_url.expose(), &events.exchange, events.retry())
                .await
                .map_err(|e| anyhow!("events.amqp_url: {e}"))?,
        );
        readiness.add(bus.clone());
        bus
    };
    for queue in Module::ALL.into_iter().filter_map(Module::queue) {
        let name = format!("{}{}", events.queue_prefix, queue.name);
        bus.declare(&name, queue.patterns).await.map_err(|e| anyhow!("declaring {name}: {e}"))?;
    }
    Ok(bus)
}

/// The in-process bus's durable dead letters: the `events` store, migrated.
///
/// # Errors
/// The store cannot be opened or migrated.
pub async fn dead_letter_store(settings: &Settings) -> anyhow::Result<DeadLetterStore> {
    let db = platform::db::connect(
        &settings.database,
        &settings.data_dir,
        "events",
        migrations::up::<migrations::EventsMigrator>,
    )
    .await
    .context("opening and migrating the events store")?;
    Ok(DeadLetterStore::new(db))
}
