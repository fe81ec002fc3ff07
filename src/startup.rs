//! The composition root: from [`Settings`], decide for every module whether it runs in
//! this process or is reached over REST, pick the in-memory or Redis adapters, and build
//! the HTTP server. The single binary and every split service are built here alike.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::{Context, anyhow};
use auth::api::AuthApi;
use auth::client::AuthClient;
use booking::api::BookingApi;
use booking::client::BookingClient;
#[cfg(feature = "booking")]
use booking::service::locks::{MemorySeatLocks, RedisSeatLocks, SeatLocks};
use movie::api::{MovieApi, SeatStates};
use movie::client::MovieClient;
use notification::api::NotificationApi;
use notification::client::NotificationClient;
use payment::api::PaymentApi;
use payment::client::PaymentClient;
use platform::amqp::RabbitBus;
use platform::events::{DeadLetterStore, EventBus, InProcessBus};
use platform::health::Readiness;
use platform::http::{ClientBudget, ForwardedFor, Ops};
use platform::identity::{JwtVerifier, ServiceToken};
use platform::kv::{KeyValue, MemoryKv, RedisKv};
use sea_orm::DatabaseConnection;
use sea_orm_migration::MigratorTrait;
use tokio_util::sync::CancellationToken;
use utoipa_swagger_ui::SwaggerUi;

use crate::settings::{Module, Settings};

/// Extra routes mounted after the modules' (tests use it to probe a process's auth wiring).
pub type ExtraRoutes = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

/// Opens the database of `module` and brings its schema up to date.
///
/// # Errors
/// The database cannot be reached or a migration fails.
pub async fn open_database(settings: &Settings, module: Module) -> anyhow::Result<DatabaseConnection> {
    let migrate: platform::db::Migrate = match module {
        Module::Auth => |db| Box::pin(migrations::auth::Migrator::up(db, None)),
        Module::Movie => |db| Box::pin(migrations::movie::Migrator::up(db, None)),
        Module::Booking => |db| Box::pin(migrations::booking::Migrator::up(db, None)),
        Module::Payment => |db| Box::pin(migrations::payment::Migrator::up(db, None)),
        Module::Notification => |db| Box::pin(migrations::notification::Migrator::up(db, None)),
    };
    platform::db::connect(&settings.database, &settings.data_dir, module.name(), migrate)
        .await
        .with_context(|| format!("opening and migrating the {} database", module.name()))
}

/// The key-value store of this deployment: Redis when configured, else this process's memory.
///
/// # Errors
/// A malformed Redis URL.
pub fn key_value(settings: &Settings, readiness: &mut Readiness) -> anyhow::Result<Arc<dyn KeyValue>> {
    if settings.redis.url.is_empty() {
        return Ok(Arc::new(MemoryKv::new()));
    }
    let redis = Arc::new(
        RedisKv::connect(
            settings.redis.url.expose(),
            settings.redis.pool_size,
            &settings.redis.key_prefix,
            settings.redis.timeout(),
        )
        .map_err(|e| anyhow!("redis.url: {e}"))?,
    );
    readiness.add(redis.clone());
    Ok(redis)
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
    let migrate: platform::db::Migrate = |db| Box::pin(migrations::events::Migrator::up(db, None));
    let db = platform::db::connect(&settings.database, &settings.data_dir, "events", migrate)
        .await
        .context("opening and migrating the events store")?;
    Ok(DeadLetterStore::new(db))
}

/// Subscribes `handler` to `queue` (named after `events.queue_prefix`).
///
/// # Errors
/// The bus refuses the subscription.
#[cfg(any(feature = "movie", feature = "booking", feature = "payment", feature = "notification"))]
async fn subscribe(
    settings: &Settings,
    bus: &Arc<dyn EventBus>,
    queue: platform::events::QueueSpec,
    handler: Arc<dyn platform::events::EventHandler>,
) -> anyhow::Result<()> {
    let name = format!("{}{}", settings.events.queue_prefix, queue.name);
    bus.subscribe(&name, queue.patterns, handler).await.map_err(|e| anyhow!("subscribing {name}: {e}"))
}

/// The in-process auth service, its database migrated and the configured admin ensured.
///
/// # Errors
/// Database, signing-key or configuration failures.
#[cfg(feature = "auth")]
pub async fn auth_service(
    settings: &Settings,
    kv: Arc<dyn KeyValue>,
    readiness: &mut Readiness,
) -> anyhow::Result<Arc<auth::service::AuthService>> {
    let db = open_database(settings, Module::Auth).await?;
    readiness.add(Arc::new(platform::db::DatabaseHealth::new("auth", db.clone())));
    let service = auth::service::AuthService::new(db, &settings.auth, &settings.jwt, &settings.data_dir, kv)
        .map_err(|e| anyhow!(e))?;
    service.ensure_configured_admin().await.map_err(|e| anyhow!("auth.admin_email: {e}"))?;
    Ok(Arc::new(service))
}

/// Mounts the routes of the modules this process serves.
fn mount_modules(cfg: &mut web::ServiceConfig, served: &[Module]) {
    for module in served {
        match module {
            #[cfg(feature = "auth")]
            Module::Auth => auth::http::configure(cfg),
            #[cfg(feature = "movie")]
            Module::Movie => movie::http::configure(cfg),
            #[cfg(feature = "booking")]
            Module::Booking => booking::http::configure(cfg),
            #[cfg(feature = "payment")]
            Module::Payment => payment::http::configure(cfg),
            #[cfg(feature = "notification")]
            Module::Notification => notification::http::configure(cfg),
            // Settings validation refuses modules that are not compiled in.
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }
}

/// The in-process movie service, its database migrated. Seat states come from `seat_states`
/// (booking's claims, in this process or over REST).
///
/// # Errors
/// Database failures.
#[cfg(feature = "movie")]
pub async fn movie_service(
    settings: &Settings,
    kv: Arc<dyn KeyValue>,
    seat_states: Arc<dyn SeatStates>,
    readiness: &mut Readiness,
) -> anyhow::Result<Arc<movie::service::MovieService>> {
    let db = open_database(settings, Module::Movie).await?;
    readiness.add(Arc::new(platform::db::DatabaseHealth::new("movie", db.clone())));
    Ok(Arc::new(movie::service::MovieService::new(db, &settings.movie, kv, seat_states)))
}

/// The seat locks of this deployment: Redis when configured (shared by every booking
/// replica), else this process's memory.
///
/// # Errors
/// A malformed Redis URL.
#[cfg(feature = "booking")]
pub fn seat_locks(settings: &Settings) -> anyhow::Result<Arc<dyn SeatLocks>> {
    if settings.redis.url.is_empty() {
        return Ok(Arc::new(MemorySeatLocks::new()));
    }
    let redis = RedisKv::connect(
        settings.redis.url.expose(),
        settings.redis.pool_size,
        &settings.redis.key_prefix,
        settings.redis.timeout(),
    )
    .map_err(|e| anyhow!("redis.url: {e}"))?;
    Ok(Arc::new(RedisSeatLocks::new(&redis, &format!("{}seats:", settings.redis.key_prefix))))
}

/// In-process movie and booking services on `settings`' storage, without a bus or background
/// tasks: booking's events stay in its outbox (the booking contract tests use it;
/// `Application::build` wires the same parts plus the bus, relay and sweeper).
#[cfg(all(feature = "movie", feature = "booking"))]
pub struct BookingStack {
    pub movies: Arc<dyn MovieApi>,
    pub bookings: Arc<dyn BookingApi>,
}

/// # Errors
/// Database or configuration failures.
#[cfg(all(feature = "movie", feature = "booking"))]
pub async fn booking_stack(settings: &Settings) -> anyhow::Result<BookingStack> {
    let mut readiness = Readiness::default();
    let kv = key_value(settings, &mut readiness)?;
    let booking_db = open_database(settings, Module::Booking).await?;
    let seat_states = Arc::new(booking::service::BookingSeatStates::new(booking_db.clone()));
    let movies: Arc<dyn MovieApi> = movie_service(settings, kv, seat_states, &mut readiness).await?;
    let locks = seat_locks(settings)?;
    let bookings = booking::service::BookingService::new(
        booking_db,
        &settings.booking,
        movies.clone(),
        locks,
        Arc::new(tokio::sync::Notify::new()),
    );
    Ok(BookingStack { movies, bookings: Arc::new(bookings) })
}

/// The in-process payment service on its migrated database, reading bookings through
/// `bookings` (and copying saved answers to `kv` when it is Redis), and the relay of its outbox (not running: events stay in the outbox until
/// the caller runs it on `bus`).
///
/// # Errors
/// Database or fingerprint-key failures.
#[cfg(feature = "payment")]
pub async fn payment_service(
    settings: &Settings,
    kv: Arc<dyn KeyValue>,
    bookings: Arc<dyn BookingApi>,
    bus: Arc<dyn EventBus>,
    readiness: &mut Readiness,
) -> anyhow::Result<(Arc<payment::service::PaymentService>, platform::outbox::OutboxRelay)> {
    let db = open_database(settings, Module::Payment).await?;
    readiness.add(Arc::new(platform::db::DatabaseHealth::new("payment", db.clone())));
    let poll = std::time::Duration::from_millis(settings.events.relay_poll_ms);
    let relay = platform::outbox::OutboxRelay::new("payment", db.clone(), bus, poll);
    // Saved answers are copied to Redis when there is one (a fast path for replays); in one
    // process the database is as near as memory would be.
    let answer_cache = if settings.redis.url.is_empty() { None } else { Some(kv) };
    let service = payment::service::PaymentService::new(
        db,
        &settings.payment,
        &settings.data_dir,
        bookings,
        relay.waker(),
        answer_cache,
    )
    .map_err(|e| anyhow!("payment.fingerprint_key: {e}"))?;
    Ok((Arc::new(service), relay))
}

/// The in-process notification service on its migrated database, reading addresses through
/// `auth` and screenings through `movies`.
///
/// # Errors
/// Database failures, templates that do not load, an SMTP adapter that cannot be built.
#[cfg(feature = "notification")]
pub async fn notification_service(
    settings: &Settings,
    auth: Arc<dyn AuthApi>,
    movies: Arc<dyn MovieApi>,
    readiness: &mut Readiness,
) -> anyhow::Result<Arc<notification::service::NotificationService>> {
    let db = open_database(settings, Module::Notification).await?;
    readiness.add(Arc::new(platform::db::DatabaseHealth::new("notification", db.clone())));
    let service =
        notification::service::NotificationService::new(db, &settings.notification, &settings.data_dir, auth, movies)
            .map_err(|e| anyhow!(e))?;
    Ok(Arc::new(service))
}

/// A running (or ready to run) boxoffice HTTP server.
pub struct Application {
    port: u16,
    server: Server,
    /// Held for the life of the server: its consumers stop when it is dropped.
    bus: Arc<dyn EventBus>,
    /// Cancelled when the server has stopped: background tasks finish (relays flush).
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Application {
    /// # Errors
    /// Anything that stops the process from serving: configuration, databases, the port.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, Arc::new(|_| {})).await
    }

    /// [`Application::build`] with extra routes.
    ///
    /// # Errors
    /// As [`Application::build`].
    pub async fn build_with(settings: Settings, extra: ExtraRoutes) -> anyhow::Result<Self> {
        let http = platform::rest::http_client().context("building the HTTP client")?;
        let mut readiness = Readiness::default();
        #[cfg_attr(not(any(feature = "auth", feature = "movie", feature = "payment")), allow(unused_variables))]
        let kv = key_value(&settings, &mut readiness)?;

        // Background tasks (outbox relays, the sweeper, purges) stop with the server.
        let stop = CancellationToken::new();
        #[cfg_attr(
            not(any(
                feature = "auth",
                feature = "movie",
                feature = "booking",
                feature = "payment",
                feature = "notification"
            )),
            allow(unused_mut)
        )]
        let mut tasks = Vec::new();
        // Outbox relays start last, once every consumer of this process has subscribed.
        #[cfg_attr(not(any(feature = "booking", feature = "payment")), allow(unused_mut))]
        let mut relays: Vec<platform::outbox::OutboxRelay> = Vec::new();

        // Auth: the service here, or its REST client and its published keys.
        let (auth_api, verifier): (Arc<dyn AuthApi>, JwtVerifier) = if settings.serves(Module::Auth) {
            #[cfg(feature = "auth")]
            {
                let service = auth_service(&settings, kv.clone(), &mut readiness).await?;
                let verifier = JwtVerifier::with_keys(&settings.jwt, &service.public_keys());
                tasks.push(tokio::spawn(Arc::clone(&service).run_session_purge(stop.clone())));
                (service, verifier)
            }
            #[cfg(not(feature = "auth"))]
            unreachable!("validated: auth is not compiled in")
        } else {
            let jwks_url = format!("{}/api/auth/jwks", settings.services.auth.trim_end_matches('/'));
            let verifier = JwtVerifier::remote(&settings.jwt, jwks_url, http.clone());
            let client = AuthClient::new(&settings.services.auth, http.clone(), settings.services.token.clone());
            (Arc::new(client), verifier)
        };

        // Events: RabbitMQ when configured, else the in-process bus.
        let bus = event_bus(&settings, &mut readiness).await?;

        // Booking's claims are what the seat map shows: booking's database opens first.
        #[cfg(feature = "booking")]
        let booking_db = if settings.serves(Module::Booking) {
            let db = open_database(&settings, Module::Booking).await?;
            readiness.add(Arc::new(platform::db::DatabaseHealth::new("booking", db.clone())));
            Some(db)
        } else {
            None
        };
        let booking_client =
            Arc::new(BookingClient::new(&settings.services.booking, http.clone(), settings.services.token.clone()));
        #[cfg(feature = "booking")]
        let seat_states: Arc<dyn SeatStates> = match &booking_db {
            Some(db) => Arc::new(booking::service::BookingSeatStates::new(db.clone())),
            None => booking_client.clone(),
        };
        #[cfg(not(feature = "booking"))]
        let seat_states: Arc<dyn SeatStates> = booking_client.clone();

        // Movie: the service here (with the demo catalog on an empty catalog), or its client;
        // it keeps `seats_available` from booking events.
        let movie_api: Arc<dyn MovieApi> = if settings.serves(Module::Movie) {
            #[cfg(feature = "movie")]
            {
                let service = movie_service(&settings, kv.clone(), seat_states, &mut readiness).await?;
                if settings.demo.seed && service.seed_demo().await.map_err(|e| anyhow!("demo catalog: {e}"))? {
                    tracing::info!("demo catalog created (demo.seed = false turns this off)");
                }
                subscribe(&settings, &bus, movie::api::QUEUE, service.booking_events_handler()).await?;
                let retention = settings.events.retention();
                tasks.push(tokio::spawn(platform::outbox::run_retention(
                    "movie",
                    service.database(),
                    retention,
                    false,
                    stop.clone(),
                )));
                service
            }
            #[cfg(not(feature = "movie"))]
            unreachable!("validated: movie is not compiled in")
        } else {
            drop(seat_states);
            Arc::new(MovieClient::new(&settings.services.movie, http.clone()))
        };

        // Booking: the service with its outbox relay, sweeper and payment-event consumer, or
        // its client.
        #[cfg(feature = "booking")]
        let booking_api: Arc<dyn BookingApi> = match booking_db {
            Some(db) => {
                let poll = std::time::Duration::from_millis(settings.events.relay_poll_ms);
                let relay = platform::outbox::OutboxRelay::new("booking", db.clone(), bus.clone(), poll);
                let retention = platform::outbox::run_retention(
                    "booking",
                    db.clone(),
                    settings.events.retention(),
                    true,
                    stop.clone(),
                );
                let service = Arc::new(booking::service::BookingService::new(
                    db,
                    &settings.booking,
                    movie_api.clone(),
                    seat_locks(&settings)?,
                    relay.waker(),
                ));
                subscribe(&settings, &bus, booking::api::QUEUE, service.payment_events_handler()).await?;
                relays.push(relay);
                tasks.push(tokio::spawn(retention));
                tasks.push(tokio::spawn(Arc::clone(&service).run_sweeper(stop.clone())));
                service
            }
            None => booking_client,
        };
        #[cfg(not(feature = "booking"))]
        let booking_api: Arc<dyn BookingApi> = booking_client;

        // Payment: the service with its outbox relay, refund worker, reconciler and
        // booking-event consumer, or its client.
        let payment_api: Arc<dyn PaymentApi> = if settings.serves(Module::Payment) {
            #[cfg(feature = "payment")]
            {
                let (service, relay) =
                    payment_service(&settings, kv.clone(), booking_api.clone(), bus.clone(), &mut readiness).await?;
                subscribe(&settings, &bus, payment::api::QUEUE, service.booking_events_handler()).await?;
                relays.push(relay);
                tasks.push(tokio::spawn(Arc::clone(&service).run_refunds(stop.clone())));
                tasks.push(tokio::spawn(Arc::clone(&service).run_reconciler(stop.clone())));
                let retention = settings.events.retention();
                tasks.push(tokio::spawn(platform::outbox::run_retention(
                    "payment",
                    service.database(),
                    retention,
                    true,
                    stop.clone(),
                )));
                service
            }
            #[cfg(not(feature = "payment"))]
            unreachable!("validated: payment is not compiled in")
        } else {
            Arc::new(PaymentClient::new(&settings.services.payment, http.clone()))
        };

        // Notification: the service with its delivery worker and event consumer, or its client.
        let notification_api: Arc<dyn NotificationApi> = if settings.serves(Module::Notification) {
            #[cfg(feature = "notification")]
            {
                let service =
                    notification_service(&settings, auth_api.clone(), movie_api.clone(), &mut readiness).await?;
                subscribe(&settings, &bus, notification::api::QUEUE, service.events_handler()).await?;
                tasks.push(tokio::spawn(Arc::clone(&service).run_deliveries(stop.clone())));
                let retention = settings.events.retention();
                tasks.push(tokio::spawn(platform::outbox::run_retention(
                    "notification",
                    service.database(),
                    retention,
                    false,
                    stop.clone(),
                )));
                service
            }
            #[cfg(not(feature = "notification"))]
            unreachable!("validated: notification is not compiled in")
        } else {
            Arc::new(NotificationClient::new(&settings.services.notification, http.clone()))
        };

        tasks.extend(relays.into_iter().map(|relay| tokio::spawn(relay.run(stop.clone()))));

        let listener = TcpListener::bind(settings.server.bind)
            .with_context(|| format!("server.bind: cannot listen on {}", settings.server.bind))?;
        let port = listener.local_addr()?.port();
        let ops = Arc::new(Ops { readiness, metrics: platform::telemetry::prometheus() });
        let verifier = web::Data::new(verifier);
        let budget = web::Data::new(ClientBudget::new(settings.server.client_budget_per_minute));
        let forwarded = web::Data::new(ForwardedFor { trusted: settings.server.trust_forwarded_for });
        let auth_data: web::Data<dyn AuthApi> = web::Data::from(auth_api);
        let movie_data: web::Data<dyn MovieApi> = web::Data::from(movie_api);
        let booking_data: web::Data<dyn BookingApi> = web::Data::from(booking_api);
        let payment_data: web::Data<dyn PaymentApi> = web::Data::from(payment_api);
        let notification_data: web::Data<dyn NotificationApi> = web::Data::from(notification_api);
        let service_token = web::Data::new(ServiceToken(settings.services.token.clone()));
        let bus_data: web::Data<dyn EventBus> = web::Data::from(Arc::clone(&bus));
        let openapi = crate::openapi::document(&settings);
        let body_limit = settings.server.body_limit_bytes;
        let served = settings.served();

        let mut server = HttpServer::new(move || {
            let extra = extra.clone();
            App::new()
                .wrap(from_fn(platform::http::catch_panics))
                .wrap(from_fn(platform::http::problem_bodies))
                .wrap(from_fn(platform::http::client_budget))
                .wrap(from_fn(platform::http::record_metrics))
                .wrap(from_fn(platform::http::request_id))
                .app_data(verifier.clone())
                .app_data(budget.clone())
                .app_data(forwarded.clone())
                .app_data(auth_data.clone())
                .app_data(movie_data.clone())
                .app_data(booking_data.clone())
                .app_data(payment_data.clone())
                .app_data(notification_data.clone())
                .app_data(service_token.clone())
                .app_data(bus_data.clone())
                .configure(|cfg| platform::extract::configure(cfg, body_limit))
                .configure(|cfg| platform::http::ops_routes(cfg, ops.clone()))
                .configure(platform::dead_letters::configure)
                .configure(|cfg| mount_modules(cfg, &served))
                .route(
                    "/api/docs",
                    web::get().to(|| async {
                        HttpResponse::PermanentRedirect().insert_header(("Location", "/api/docs/")).finish()
                    }),
                )
                .service(SwaggerUi::new("/api/docs/{_:.*}").url("/api/openapi.json", openapi.clone()))
                .configure(|cfg| extra(cfg))
        })
        .shutdown_timeout(settings.server.shutdown_timeout_seconds)
        // `main` turns SIGTERM and SIGINT alike into a graceful stop (actix alone would stop
        // at once on SIGINT).
        .disable_signals()
        .listen(listener)?;
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        tracing::info!(port, modules = ?settings.served(), "listening");
        Ok(Self { port, server: server.run(), bus, stop, tasks })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The event bus this process publishes to and consumes from.
    pub fn bus(&self) -> Arc<dyn EventBus> {
        Arc::clone(&self.bus)
    }

    /// A handle to stop the server gracefully (what SIGTERM does).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until [`ServerHandle::stop`]; a graceful stop lets in-flight requests finish
    /// within `server.shutdown_timeout_seconds`.
    ///
    /// # Errors
    /// The server failed.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        self.stop.cancel();
        for task in self.tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "background task failed");
            }
        }
        drop(self.bus);
        served
    }
}
