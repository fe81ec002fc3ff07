//! HTTP plumbing shared by every process: request ids, metrics, the per-client budget and a
//! panic guard as middleware, the operational routes, and a catch-all that gives every other error
//! response (unknown route, wrong method) a problem body too. Extractors are in
//! [`crate::extract`].

use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::InternalError;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpRequest, HttpResponse, ResponseError, web};
use futures_util::FutureExt;
use metrics_exporter_prometheus::PrometheusHandle;
use tracing::Instrument;

use crate::health::{Readiness, ReadinessReport};
use crate::kv::MemoryKv;
use crate::problem::{PROBLEM_JSON, Problem};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    /// The id of the request the current task is serving, for calls it makes to other services.
    static CURRENT_REQUEST_ID: String;
}

/// The id of the request being served by this task, if any: REST clients forward it, so one
/// id follows a request across services.
pub fn current_request_id() -> Option<String> {
    CURRENT_REQUEST_ID.try_with(Clone::clone).ok()
}

fn acceptable_request_id(value: &HeaderValue) -> Option<String> {
    let s = value.to_str().ok()?;
    (!s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic())).then(|| s.to_owned())
}

/// Gives each request an id and a server span, and echoes the id in `X-Request-Id`. The span
/// continues the caller's trace (`traceparent`) and is named by the route's template.
///
/// # Errors
/// Only those of the inner service.
pub async fn request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(acceptable_request_id)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let route = req.resource_map().match_pattern(req.path());
    let span = tracing::info_span!(
        "request",
        otel.name = %format_args!("{} {}", req.method(), route.as_deref().unwrap_or("unmatched")),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        request_id = %id,
        trace_id = tracing::field::Empty,
        method = %req.method(),
        path = %req.path(),
        http.route = route.as_deref(),
        http.response.status_code = tracing::field::Empty,
    );
    crate::trace::follow(&span, req.headers().get(crate::trace::TRACEPARENT).and_then(|v| v.to_str().ok()));
    let mut res = CURRENT_REQUEST_ID.scope(id.clone(), next.call(req)).instrument(span.clone()).await?;
    let status = res.status();
    span.record("http.response.status_code", status.as_u16());
    span.in_scope(|| {
        if status.is_server_error() {
            tracing::Span::current().record("otel.status_code", "ERROR");
            tracing::warn!(status = status.as_u16(), "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), "request done");
        }
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    Ok(res)
}

/// Counts requests and records their latency, labelled by route template, method and status.
///
/// # Errors
/// Only those of the inner service.
pub async fn record_metrics(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let method = req.method().to_string();
    // Matched before the call: an error (see [`catch_panics`]) comes back without the request.
    let route = req.resource_map().match_pattern(req.path()).unwrap_or_else(|| "unmatched".to_owned());
    let res = next.call(req).await;
    let status = match &res {
        Ok(res) => res.status(),
        Err(e) => e.as_response_error().status_code(),
    };
    let labels = [("method", method), ("route", route), ("status", status.as_u16().to_string())];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
    res
}

/// Answers a request whose handling panicked with a 500 problem carrying the request id
/// (in `X-Request-Id` and as `request_id`), logs the panic and counts it in
/// `http_panics_total`: without it actix drops the connection unanswered. Mounted inside
/// [`request_id`] and [`record_metrics`]. The request went down with the panic, so the answer
/// leaves as an error that holds the finished response (actix sends it as it is).
///
/// # Errors
/// Those of the inner service, and the 500 of a panic.
pub async fn catch_panics(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let method = req.method().clone();
    let uri = req.uri().clone();
    match AssertUnwindSafe(next.call(req)).catch_unwind().await {
        Ok(res) => res,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned());
            metrics::counter!("http_panics_total").increment(1);
            let cause = format!("panic while serving {method} {}: {message}", uri.path());
            let mut problem = Problem::internal(&crate::error::Failure::msg(cause.clone()));
            let id = current_request_id();
            if let Some(id) = &id {
                problem = problem.with("request_id", id.clone());
            }
            let mut res = problem.error_response();
            if let Some(v) = id.and_then(|id| HeaderValue::from_str(&id).ok()) {
                res.headers_mut().insert(REQUEST_ID, v);
            }
            Err(InternalError::from_response(cause, res).into())
        }
    }
}

/// Gives error responses that are not problem documents yet (unknown route, wrong method,
/// errors from actix itself) a problem+json body with the same status.
///
/// # Errors
/// Only those of the inner service.
pub async fn problem_bodies(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let res = next.call(req).await?.map_into_boxed_body();
    let status = res.status();
    let is_problem = res.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
    if status.as_u16() < 400 || is_problem {
        return Ok(res);
    }
    let problem = match status {
        StatusCode::NOT_FOUND => {
            Problem::not_found(format!("no route for {} {}", res.request().method(), res.request().path()))
        }
        StatusCode::METHOD_NOT_ALLOWED => Problem::new(
            status,
            "method-not-allowed",
            "Method not allowed",
            format!("{} is not allowed on {}", res.request().method(), res.request().path()),
        ),
        StatusCode::INTERNAL_SERVER_ERROR => {
            Problem::internal(&crate::error::Failure::msg(format!("unhandled 500 from {}", res.request().path())))
        }
        s => Problem::new(s, "http-error", "Request failed", s.canonical_reason().unwrap_or("request failed")),
    };
    let (req, original) = res.into_parts();
    let mut replaced = problem.error_response();
    for (name, value) in original.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            replaced.headers_mut().insert(name.clone(), value.clone());
        }
    }
    Ok(ServiceResponse::new(req, replaced))
}

/// The per-client request budget: a generous fixed window per client address, kept in this
/// process (a person never meets it; it stops a runaway client from starving the others).
pub struct ClientBudget {
    per_minute: u64,
    windows: MemoryKv,
}

impl ClientBudget {
    pub fn new(per_minute: u64) -> Self {
        Self { per_minute, windows: MemoryKv::new() }
    }
}

/// Answers 429 with `Retry-After` once a client has spent its budget for the minute.
/// Probes and scrapes (`/health/*`, `/metrics`) are not counted.
///
/// # Errors
/// Only those of the inner service.
pub async fn client_budget(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let operational = req.path().starts_with("/health/") || req.path() == "/metrics";
    if let Some(budget) = req.app_data::<web::Data<ClientBudget>>().filter(|b| b.per_minute > 0 && !operational) {
        let addr = client_addr(req.request());
        let key = addr.map_or_else(|| "unknown".to_owned(), |a| a.to_string());
        let window = budget.windows.incr_now(&key, Duration::from_secs(60));
        if window.count > budget.per_minute {
            let problem =
                Problem::too_many_requests(window.resets_in.as_secs(), "request budget for this client exhausted");
            return Ok(req.into_response(problem.error_response()));
        }
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// Whether the gateway in front is trusted to set `X-Forwarded-For` (in app data).
#[derive(Debug, Clone, Copy)]
pub struct ForwardedFor {
    pub trusted: bool,
}

/// The client's address: the peer, or — when the gateway in front is trusted — the address
/// that gateway appended last to `X-Forwarded-For` (earlier entries are the client's to forge).
pub fn client_addr(req: &HttpRequest) -> Option<IpAddr> {
    let trusted = req.app_data::<web::Data<ForwardedFor>>().is_some_and(|f| f.trusted);
    if trusted {
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse().ok());
        if forwarded.is_some() {
            return forwarded;
        }
    }
    req.peer_addr().map(|a| a.ip())
}

/// Process-wide state of the operational routes.
pub struct Ops {
    pub readiness: Readiness,
    pub metrics: PrometheusHandle,
    /// The process's module databases, whose pools each scrape samples.
    pub databases: Vec<(&'static str, sea_orm::DatabaseConnection)>,
}

/// The OpenAPI description of the operational routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(live, ready, render_metrics), components(schemas(ReadinessReport)), tags((name = "operations")))]
pub struct OpsDoc;

/// `/health/live`, `/health/ready` and `/metrics`.
pub fn ops_routes(cfg: &mut web::ServiceConfig, ops: Arc<Ops>) {
    // Resources, not bare routes: another method on these paths is a 405 with `Allow`.
    cfg.app_data(web::Data::from(ops))
        .service(web::resource("/health/live").route(web::get().to(live)))
        .service(web::resource("/health/ready").route(web::get().to(ready)))
        .service(web::resource("/metrics").route(web::get().to(render_metrics)));
}

/// 200 while the process runs.
#[utoipa::path(get, path = "/health/live", tag = "operations", responses((status = 200, description = "Alive")))]
async fn live() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// 200 with every check `ok`; otherwise a 503 problem naming the failed dependencies, with
/// the same `checks` map.
#[utoipa::path(get, path = "/health/ready", tag = "operations", responses(
    (status = 200, description = "Every dependency answers", body = ReadinessReport),
    (status = 503, description = "A dependency is down (named in `checks`)", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
))]
async fn ready(ops: web::Data<Ops>) -> HttpResponse {
    let (ok, report) = ops.readiness.report(Duration::from_secs(2)).await;
    if ok {
        return HttpResponse::Ok().json(report);
    }
    let failed: Vec<&str> = report.checks.iter().filter(|(_, v)| *v != "ok").map(|(k, _)| k.as_str()).collect();
    Problem::unavailable(format!("not ready: {} failed", failed.join(", ")))
        .with("checks", serde_json::Value::Object(report.checks.clone()))
        .error_response()
}

/// Prometheus text exposition of this process's metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Metrics", content_type = "text/plain")))]
async fn render_metrics(ops: web::Data<Ops>) -> HttpResponse {
    // The gauge `ready` as `/health/ready` would answer now, whoever probes or not. Before the
    // pools are sampled: its checks' connections are back by then.
    ops.readiness.report(Duration::from_secs(2)).await;
    crate::telemetry::sample_process();
    for (module, db) in &ops.databases {
        crate::db::sample_pool(module, db);
    }
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(ops.metrics.render())
}
