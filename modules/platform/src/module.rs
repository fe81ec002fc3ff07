//! One face for every module: what the composition root knows of a module, and what a
//! module gets from the root when it starts.
//!
//! A module crate exports one value implementing [`Module`]. The root opens every served
//! module's database ([`Module::migrate`]), registers a REST client for every module, lets
//! the served modules replace theirs with the in-process service ([`Module::start`]), mounts
//! their routes, and only then runs their background tasks — so every consumer has
//! subscribed before any outbox relay publishes.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use anyhow::{Context as _, anyhow};
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

use crate::config::{DatabaseSettings, EventSettings};
use crate::events::{EventBus, EventHandler, QueueSpec};
use crate::health::Readiness;
use crate::kv::{KeyValue, RedisKv};
use crate::outbox::OutboxRelay;

/// A background task (a relay, a sweeper, a worker): runs until the context's stop token.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Mounts a started module's routes, with its API as app data.
pub type Mount = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

/// A module of boxoffice, as the composition root sees it.
#[async_trait::async_trait]
pub trait Module: Send + Sync {
    /// Its name: its database, its `[services]` URL key, its `modules` entry.
    fn name(&self) -> &'static str;

    /// Brings its schema up to date.
    fn migrate(&self) -> crate::db::Migrate;

    /// The OpenAPI description of its routes.
    fn openapi(&self) -> utoipa::openapi::OpenApi;

    /// What is wrong with its `[section]` of the configuration, each message naming its key.
    fn check(&self) -> Vec<String>;

    /// Offers, before any module starts, the ports other modules read from this module's
    /// storage (booking's seat states for movie's seat map): the one cycle between modules.
    fn offer(&self, _ctx: &Context, _peers: &mut Peers) -> anyhow::Result<()> {
        Ok(())
    }

    /// Builds the in-process service on its database, provides its API to `peers` (replacing
    /// the REST client), subscribes its consumer, and hands its background tasks to `ctx`.
    async fn start(&self, ctx: &mut Context, peers: &mut Peers) -> anyhow::Result<Mount>;
}

/// The APIs this process reaches, by type (`dyn BookingApi`, `JwtVerifier`...): the
/// in-process service of a module served here, else its REST client.
#[derive(Default, Clone)]
pub struct Peers {
    apis: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl Peers {
    /// Makes `api` the `T` of this process (replacing any earlier one).
    pub fn provide<T: ?Sized + Send + Sync + 'static>(&mut self, api: Arc<T>) {
        self.apis.insert(TypeId::of::<T>(), Arc::new(api));
    }

    /// # Errors
    /// Nothing provides a `T` (a wiring bug: the root registers every module's client).
    pub fn get<T: ?Sized + Send + Sync + 'static>(&self) -> anyhow::Result<Arc<T>> {
        self.apis
            .get(&TypeId::of::<T>())
            .and_then(|api| api.downcast_ref::<Arc<T>>())
            .cloned()
            .ok_or_else(|| anyhow!("nothing provides {}", std::any::type_name::<T>()))
    }
}

/// What a module starts on: the deployment's shared infrastructure, its opened databases,
/// and the tasks collected so far.
pub struct Context {
    pub data_dir: PathBuf,
    pub database: DatabaseSettings,
    pub events: EventSettings,
    /// Redis when configured, else this process's memory.
    pub kv: Arc<dyn KeyValue>,
    /// The same Redis pool as `kv`, when Redis is configured: one pool, watched by readiness.
    pub redis: Option<Arc<RedisKv>>,
    pub bus: Arc<dyn EventBus>,
    /// What `/health/ready` checks: each opened database is added here.
    pub readiness: Readiness,
    /// Cancelled when the server has stopped.
    pub stop: CancellationToken,
    /// Cancelled when the server begins to stop: what would hold a graceful stop open (a
    /// response that streams for as long as its client listens) ends.
    pub draining: CancellationToken,
    databases: HashMap<&'static str, DatabaseConnection>,
    /// Behind a mutex only so that a module may hold `&Context` across an await (a task
    /// future is `Send`, not `Sync`); it is only reached through `&mut self`.
    tasks: std::sync::Mutex<Vec<Task>>,
    relays: Vec<OutboxRelay>,
}

impl Context {
    pub fn new(
        data_dir: PathBuf,
        database: DatabaseSettings,
        events: EventSettings,
        kv: Arc<dyn KeyValue>,
        redis: Option<Arc<RedisKv>>,
        bus: Arc<dyn EventBus>,
        readiness: Readiness,
    ) -> Self {
        Self {
            data_dir,
            database,
            events,
            kv,
            redis,
            bus,
            readiness,
            stop: CancellationToken::new(),
            draining: CancellationToken::new(),
            databases: HashMap::new(),
            tasks: std::sync::Mutex::default(),
            relays: Vec::new(),
        }
    }

    /// Opens `module`'s database and brings its schema up to date; readiness watches it.
    ///
    /// # Errors
    /// The database cannot be reached or a migration fails.
    pub async fn open(&mut self, module: &dyn Module) -> anyhow::Result<DatabaseConnection> {
        let name = module.name();
        let db = open_database(module, &self.database, &self.data_dir).await?;
        self.readiness.add(Arc::new(crate::db::DatabaseHealth::new(name, db.clone())));
        self.databases.insert(name, db.clone());
        Ok(db)
    }

    /// Every database [`Context::open`] opened, by module: `/metrics` samples their pools.
    pub fn databases(&self) -> Vec<(&'static str, DatabaseConnection)> {
        self.databases.iter().map(|(name, db)| (*name, db.clone())).collect()
    }

    /// The database [`Context::open`] opened for `module`.
    ///
    /// # Errors
    /// It was not opened (a wiring bug).
    pub fn database(&self, module: &str) -> anyhow::Result<DatabaseConnection> {
        self.databases.get(module).cloned().ok_or_else(|| anyhow!("the {module} database is not open"))
    }

    /// Subscribes `handler` to `queue` (named after `events.queue_prefix`).
    ///
    /// # Errors
    /// The bus refuses the subscription.
    pub async fn subscribe(&self, queue: QueueSpec, handler: Arc<dyn EventHandler>) -> anyhow::Result<()> {
        let name = format!("{}{}", self.events.queue_prefix, queue.name);
        // The queue's counters exist at 0 from the start (both buses count under this name): a
        // dashboard then shows "none consumed, none dead-lettered" rather than no data.
        for counter in ["events_consumed_total", "events_dead_lettered_total"] {
            metrics::counter!(counter, "queue" => name.clone()).increment(0);
        }
        self.bus.subscribe(&name, queue.patterns, handler).await.with_context(|| format!("subscribing {name}"))
    }

    /// The relay of `module`'s outbox on this context's bus, keeping the order of events
    /// with the same body field `ordered_by` ([`OutboxRelay::ordered_by`]). It runs with the
    /// other tasks, after every consumer of this process has subscribed; its waker wakes it
    /// on commit.
    pub fn outbox_relay(
        &mut self,
        module: &'static str,
        db: DatabaseConnection,
        ordered_by: &'static str,
    ) -> Arc<tokio::sync::Notify> {
        let poll = Duration::from_millis(self.events.relay_poll_ms);
        let relay = OutboxRelay::new(module, db.clone(), self.bus.clone(), poll).ordered_by(ordered_by);
        let waker = relay.waker();
        self.relays.push(relay);
        waker
    }

    /// Runs the purge of `module`'s old inbox (and, when it publishes, outbox) rows.
    pub fn retention(&mut self, module: &'static str, db: DatabaseConnection, publishes: bool) {
        let task = crate::outbox::run_retention(module, db, self.events.retention(), publishes, self.stop.clone());
        self.spawn(task);
    }

    /// Runs `task` with the others once every module has started.
    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner).push(Box::pin(task));
    }

    /// The background tasks the started modules handed over, relays last.
    pub fn take_tasks(&mut self) -> Vec<Task> {
        let stop = self.stop.clone();
        let relays =
            std::mem::take(&mut self.relays).into_iter().map(|relay| -> Task { Box::pin(relay.run(stop.clone())) });
        let tasks = std::mem::take(self.tasks.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner));
        tasks.into_iter().chain(relays).collect()
    }
}

/// The [`Mount`] of a module whose routes (`configure`) serve `api` from app data.
pub fn mount<A: ?Sized + Send + Sync + 'static>(api: Arc<A>, configure: fn(&mut web::ServiceConfig)) -> Mount {
    Arc::new(move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::from(Arc::clone(&api))).configure(configure);
    })
}

/// Opens `module`'s database and brings its schema up to date.
///
/// # Errors
/// The database cannot be reached or a migration fails.
pub async fn open_database(
    module: &dyn Module,
    database: &DatabaseSettings,
    data_dir: &std::path::Path,
) -> anyhow::Result<DatabaseConnection> {
    let name = module.name();
    crate::db::connect(database, data_dir, name, module.migrate())
        .await
        .with_context(|| format!("opening and migrating the {name} database"))
}
