//! The HTTP server of a process: the modules [`crate::modules::start`] started, behind the
//! platform's middleware and operational routes. The single binary and every split service
//! are built here alike.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context as _;
use platform::events::EventBus;
use platform::http::{ClientBudget, ForwardedFor, Ops};
use platform::identity::{JwtVerifier, ServiceToken};
use tokio_util::sync::CancellationToken;

use crate::modules::Started;
use crate::settings::Settings;

/// Extra routes mounted after the modules' (tests use it to probe a process's auth wiring).
pub type ExtraRoutes = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

/// A running (or ready to run) boxoffice HTTP server.
pub struct Application {
    port: u16,
    server: Server,
    /// Held for the life of the server: its consumers stop when it is dropped.
    bus: Arc<dyn EventBus>,
    /// Cancelled when the server has stopped: background tasks finish (relays flush).
    stop: CancellationToken,
    /// Cancelled when a stop begins: open streams end (see [`StopHandle`]).
    draining: CancellationToken,
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
        // The recorder first: what the modules record while they start (the first RabbitMQ
        // connection's `amqp_connected`, the counters made at 0) is dropped without one.
        platform::telemetry::prometheus();
        let mut started = crate::modules::start(&settings).await?;
        let listener = TcpListener::bind(settings.server.bind)
            .with_context(|| format!("server.bind: cannot listen on {}", settings.server.bind))?;
        let port = listener.local_addr()?.port();
        let bus = Arc::clone(&started.ctx.bus);
        let stop = started.ctx.stop.clone();
        let draining = started.ctx.draining.clone();
        // Every consumer has subscribed: the relays (and the other tasks) may run now.
        let tasks = started.ctx.take_tasks().into_iter().map(tokio::spawn).collect();
        let server = http_server(&settings, started, extra, listener)?;
        let served: Vec<&str> = settings.served().into_iter().map(|m| m.name()).collect();
        tracing::info!(
            port,
            modules = served.join(","),
            url = format!("http://{}:{port}/", settings.server.bind.ip()),
            docs = format!("http://{}:{port}/api/docs/", settings.server.bind.ip()),
            "listening"
        );
        Ok(Self { port, server, bus, stop, draining, tasks })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The event bus this process publishes to and consumes from.
    pub fn bus(&self) -> Arc<dyn EventBus> {
        Arc::clone(&self.bus)
    }

    /// A handle to stop the server gracefully (what SIGTERM does).
    pub fn handle(&self) -> StopHandle {
        StopHandle { server: self.server.handle(), draining: self.draining.clone() }
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

/// Stops an [`Application`]. A graceful stop lets requests finish, but a stream (the seat
/// feeds' Server-Sent Events) lasts as long as its client listens: streams are told to end
/// first, so the stop does not wait `server.shutdown_timeout_seconds` for them.
#[derive(Clone)]
pub struct StopHandle {
    server: ServerHandle,
    draining: CancellationToken,
}

impl StopHandle {
    /// Stops the server; `graceful` lets in-flight requests finish. As actix's own: the stop
    /// is under way when this returns, and the future resolves when it is done.
    pub fn stop(&self, graceful: bool) -> impl Future<Output = ()> + use<> {
        self.draining.cancel();
        self.server.stop(graceful)
    }
}

/// The platform's middleware, the operational and admin routes, the started modules' routes,
/// the API docs and the web site, on `listener`.
fn http_server(
    settings: &Settings,
    started: Started,
    extra: ExtraRoutes,
    listener: TcpListener,
) -> anyhow::Result<Server> {
    let Started { ctx, peers, mounts, openapi } = started;
    let documents = crate::openapi::Documents::new(&openapi, &crate::modules::compiled_openapi(settings))
        .context("serializing the OpenAPI documents")?;
    let documents = web::Data::new(documents);
    let ops = Arc::new(Ops {
        databases: ctx.databases(),
        readiness: ctx.readiness,
        metrics: platform::telemetry::prometheus(),
    });
    let verifier = web::Data::from(peers.get::<JwtVerifier>()?);
    let budget = web::Data::new(ClientBudget::new(settings.server.client_budget_per_minute));
    let forwarded = web::Data::new(ForwardedFor { trusted: settings.server.trust_forwarded_for });
    let service_token = web::Data::new(ServiceToken(settings.services.token.clone()));
    let bus: web::Data<dyn EventBus> = web::Data::from(ctx.bus);
    let body_limit = settings.server.body_limit_bytes;
    let site = web::Data::new(crate::site::Site::new(settings.demo.test_cards));
    let mut server = HttpServer::new(move || {
        let mut app = App::new()
            .wrap(from_fn(platform::http::catch_panics))
            .wrap(from_fn(platform::http::problem_bodies))
            .wrap(from_fn(platform::http::client_budget))
            .wrap(from_fn(platform::http::record_metrics))
            .wrap(from_fn(platform::http::request_id))
            .app_data(verifier.clone())
            .app_data(budget.clone())
            .app_data(forwarded.clone())
            .app_data(service_token.clone())
            .app_data(bus.clone())
            .configure(|cfg| platform::extract::configure(cfg, body_limit))
            .configure(|cfg| platform::http::ops_routes(cfg, ops.clone()))
            .configure(platform::dead_letters::configure);
        for mount in &mounts {
            app = app.configure(|cfg| mount(cfg));
        }
        app.configure(|cfg| crate::site::routes(cfg, site.clone()))
            .route("/api/docs", web::get().to(|| redirect_to_docs(HttpResponse::PermanentRedirect())))
            .configure(|cfg| crate::openapi::routes(cfg, documents.clone()))
            .configure(|cfg| extra(cfg))
    })
    .shutdown_timeout(settings.server.shutdown_timeout_seconds)
    // `main` turns SIGTERM and SIGINT alike into a graceful stop (actix alone would stop at
    // once on SIGINT).
    .disable_signals()
    .listen(listener)?;
    if settings.server.workers > 0 {
        server = server.workers(settings.server.workers);
    }
    Ok(server.run())
}

/// `/api/docs` is for good the docs' address without its slash.
async fn redirect_to_docs(mut redirect: actix_web::HttpResponseBuilder) -> HttpResponse {
    redirect.insert_header(("Location", "/api/docs/")).finish()
}
