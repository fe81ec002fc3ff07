//! The operational surface and the handling of bad input, common to every process.

use boxoffice::settings::Module;
use serde_json::{Value, json};

use crate::helpers::{Backend, assert_problem, counter, spawn_app, spawn_app_with};

on_both_backends!(
    health_and_readiness_answer,
    metrics_count_requests_by_route_template,
    bad_input_gets_problem_documents
);

async fn health_and_readiness_answer(backend: Backend) {
    let app = spawn_app(backend.clone()).await;
    let live = app.client.get(app.url("/health/live")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    let ready = app.client.get(app.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let report: Value = ready.json().await.unwrap();
    assert_eq!(report["checks"]["database:auth"], "ok");
    if matches!(backend, Backend::Postgres { .. }) {
        assert_eq!(report["checks"]["redis"], "ok");
    }
    // A scrape runs the same checks: the gauge says ready.
    assert!(app.metrics().await.lines().any(|l| l == "ready 1"), "the gauge says ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_names_a_dependency_that_is_down_and_logins_go_on() {
    let app =
        spawn_app_with(Backend::Sqlite, |s| s.redis.url = platform::config::Secret::new("redis://127.0.0.1:9/0")).await;
    let ready = app.client.get(app.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert!(ready.headers().contains_key("retry-after"));
    let report: Value = ready.json().await.unwrap();
    assert_eq!(report["checks"]["database:auth"], "ok");
    assert_ne!(report["checks"]["redis"], "ok");
    assert!(app.metrics().await.lines().any(|l| l == "ready 0"), "the gauge says not ready");
    assert_eq!(app.client.get(app.url("/health/live")).send().await.unwrap().status(), 200);
    // The login limiter is a guard, not a dependency: without Redis, logins still work.
    app.register("uma").await;
    assert_eq!(app.login("uma", "correct horse").await.status(), 200);
}

async fn metrics_count_requests_by_route_template(backend: Backend) {
    let app = spawn_app(backend).await;
    let pair = app.customer("victor").await;
    app.get_as("/api/auth/me", pair["access_token"].as_str().unwrap()).await;
    let text = app.metrics().await;
    assert!(text.contains(r#"http_requests_total{method="POST",route="/api/auth/register",status="201"}"#), "{text}");
    assert!(
        text.contains(
            r#"http_request_duration_seconds_bucket{method="GET",route="/api/auth/me",status="200",le="0.05"}"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"auth_logins_total{outcome="succeeded"}"#));
    // Each scrape samples the pool of every database the process opened.
    assert!(text.contains(r#"db_pool_max_connections{module="auth"}"#), "{text}");
}

/// The app runs in the test's process, so its process metrics are the kernel's figures for
/// this process: CPU time moves with work done between two scrapes, resident memory is the
/// kernel's `VmRSS`, and the memory limit is the cgroup's or absent.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_report_this_process_cpu_and_memory() {
    let app = spawn_app(Backend::Sqlite).await;
    let cpu = |text: &str| counter(text, "process_cpu_seconds_total", "");
    let before = cpu(&app.metrics().await);
    // Spins until this thread has had 0.3 s of CPU, however busy the machine (wall time
    // would give less CPU when other processes share the cores).
    let thread_cpu = || {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 1..].split_whitespace().collect();
        (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / 100.0
    };
    let spun_from = thread_cpu();
    let mut spins = 0_u64;
    while thread_cpu() - spun_from < 0.3 {
        for _ in 0..100_000 {
            spins = std::hint::black_box(spins.wrapping_add(1));
        }
    }
    let text = app.metrics().await;
    let after = cpu(&text);
    assert!(before > 0.0 && after - before >= 0.2, "CPU seconds {before} then {after}");

    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    let rss = counter(&text, "process_resident_memory_bytes", "");
    assert!((kb * 512.0..kb * 2048.0).contains(&rss), "resident {rss} bytes, the kernel says {kb} kB");

    match platform::telemetry::memory_limit() {
        Some(limit) => assert_eq!(counter(&text, "process_memory_limit_bytes", ""), limit),
        None => assert!(!text.contains("process_memory_limit_bytes"), "no limit, no series"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_a_request_id() {
    let app = spawn_app(Backend::Sqlite).await;
    let res = app.client.get(app.url("/health/live")).send().await.unwrap();
    let generated = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&generated).is_ok());
    let echoed = app.client.get(app.url("/nowhere")).header("x-request-id", "trace-me-42").send().await.unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-me-42");
    let unfit = app.client.get(app.url("/health/live")).header("x-request-id", "x".repeat(500)).send().await.unwrap();
    assert_ne!(unfit.headers()["x-request-id"].to_str().unwrap(), "x".repeat(500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_the_served_routes_and_docs_render_it() {
    let app = spawn_app(Backend::Sqlite).await;
    let doc: Value = app.client.get(app.url("/api/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/health/live",
        "/health/ready",
        "/metrics",
        "/api/auth/register",
        "/api/auth/token",
        "/api/auth/refresh",
        "/api/auth/logout",
        "/api/auth/me",
        "/api/auth/jwks",
        "/api/movies/showtimes/{id}/seats",
        "/api/bookings/book",
        "/api/bookings/bookings/{id}/cancel",
        "/api/payments/pay",
        "/api/payments/payments",
        "/api/payments/payments/{id}",
        "/api/payments/payments/{id}/refund",
        "/api/notifications/notifications",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    // Internal routes are for modules, not clients: never documented.
    for path in doc["paths"].as_object().unwrap().keys() {
        assert!(!path.starts_with("/internal"), "{path} documented");
    }
    let pay_params = doc["paths"]["/api/payments/pay"]["post"]["parameters"].as_array().unwrap();
    assert!(
        pay_params.iter().any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"),
        "the pay route documents its Idempotency-Key header: {pay_params:?}"
    );
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let redirect = app.client.get(app.url("/api/docs")).send().await.unwrap();
    assert_eq!(redirect.status(), 308);
    let page = app.client.get(app.url("/api/docs/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(!html.contains("https://"), "the docs page must not fetch anything from outside");
    let config =
        app.client.get(app.url("/api/docs/swagger-initializer.js")).send().await.unwrap().text().await.unwrap();
    assert!(config.contains("/api/openapi.json"));
}

/// A split service documents its own routes, and on request the whole deployment's: what a
/// gateway in front serves as the one document of the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_service_also_documents_the_whole_deployment() {
    let app = spawn_app_with(Backend::Sqlite, |s| s.modules = Some(vec![Module::Auth])).await;
    let document = |query: &'static str| {
        let request = app.client.get(app.url(&format!("/api/openapi.json{query}"))).send();
        async move { request.await.unwrap().json::<Value>().await.unwrap() }
    };
    let prefixes = ["/api/auth/", "/api/movies/", "/api/bookings/", "/api/payments/", "/api/notifications/"];
    let documented =
        |doc: &Value, prefix: &str| doc["paths"].as_object().unwrap().keys().any(|p| p.starts_with(prefix));

    let served = document("").await;
    assert_eq!(document("?scope=process").await, served);
    assert!(documented(&served, "/api/auth/"));
    for prefix in &prefixes[1..] {
        assert!(!documented(&served, prefix), "{prefix} documented by a process that does not serve it");
    }
    let deployment = document("?scope=deployment").await;
    for prefix in prefixes {
        assert!(documented(&deployment, prefix), "{prefix} missing from the deployment's document");
    }
    assert!(deployment["components"]["securitySchemes"]["bearer"].is_object());
    assert!(deployment["paths"].as_object().unwrap().keys().all(|p| !p.starts_with("/internal")));

    let unknown = app.client.get(app.url("/api/openapi.json?scope=everything")).send().await.unwrap();
    assert_eq!(assert_problem(unknown, 422).await["errors"][0]["field"], "scope");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_single_binary_documents_the_same_api_in_both_scopes() {
    let app = spawn_app(Backend::Sqlite).await;
    let get = |query: &'static str| app.client.get(app.url(&format!("/api/openapi.json{query}"))).send();
    let served: Value = get("").await.unwrap().json().await.unwrap();
    let deployment: Value = get("?scope=deployment").await.unwrap().json().await.unwrap();
    assert_eq!(served, deployment);
}

async fn bad_input_gets_problem_documents(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.server.body_limit_bytes = 4096).await;
    let url = app.url("/api/auth/register");
    let send = |body: String| app.client.post(&url).header("content-type", "application/json").body(body).send();

    let malformed = assert_problem(send(r#"{"email": "a@b.co", "#.to_owned()).await.unwrap(), 400).await;
    assert!(malformed["detail"].as_str().unwrap().contains("JSON"));
    assert_problem(send("[1, 2, 3]".to_owned()).await.unwrap(), 422).await;
    let wrong_type = assert_problem(
        send(r#"{"email": 5, "username": "abc", "password": "xxxxxxxx"}"#.to_owned()).await.unwrap(),
        422,
    )
    .await;
    assert!(wrong_type["detail"].as_str().unwrap().contains("invalid type"));
    assert_eq!(wrong_type["errors"][0]["field"], "email");
    assert_problem(send(r#"{"username": "abc", "password": "xxxxxxxx"}"#.to_owned()).await.unwrap(), 422).await;
    let huge = json!({"email": "a@b.co", "username": "abc", "password": "p".repeat(5000)}).to_string();
    assert_problem(send(huge).await.unwrap(), 413).await;
    let huge_form = app
        .client
        .post(app.url("/api/auth/token"))
        .form(&[("username", "u"), ("password", &"p".repeat(5000))])
        .send()
        .await
        .unwrap();
    assert_problem(huge_form, 413).await;
    let not_json = app.client.post(&url).header("content-type", "text/plain").body("hello").send().await.unwrap();
    assert_problem(not_json, 415).await;

    let unknown = assert_problem(app.client.get(app.url("/api/auth/nope")).send().await.unwrap(), 404).await;
    assert_eq!(unknown["type"], "/problems/not-found");
    assert_problem(app.client.get(app.url("/no/such/route")).send().await.unwrap(), 404).await;
    assert_problem(app.client.delete(app.url("/api/auth/register")).send().await.unwrap(), 405).await;

    // None of it created anything: the account is still free.
    app.register("abc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_request_budget_gets_429_with_retry_after() {
    let app = spawn_app_with(Backend::Sqlite, |s| s.server.client_budget_per_minute = 5).await;
    for _ in 0..5 {
        assert_eq!(app.client.get(app.url("/api/auth/jwks")).send().await.unwrap().status(), 200);
    }
    // Probes and scrapes are not counted.
    for _ in 0..10 {
        assert_eq!(app.client.get(app.url("/health/live")).send().await.unwrap().status(), 200);
    }
    let over = app.client.get(app.url("/api/auth/jwks")).send().await.unwrap();
    let retry_after: u64 = over.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after));
    assert!(over.headers().contains_key("x-request-id"));
    let problem = assert_problem(over, 429).await;
    assert_eq!(problem["type"], "/problems/rate-limited");
}
