//! `spawn_app` and friends: an isolated app per test, and the HTTP calls tests share.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use boxoffice::settings::Settings;
use boxoffice::startup::{Application, ExtraRoutes};
use chrono::{DateTime, Utc};
use platform::identity::{AuthUser, Role, UserId};
use serde_json::{Value, json};
use tempfile::TempDir;

/// Where a test's app keeps its data.
#[derive(Clone, Debug)]
pub enum Backend {
    /// SQLite files in a temporary directory, in-memory key-value store.
    Sqlite,
    /// PostgreSQL (a schema prefix of its own) and Redis (a key prefix of its own).
    Postgres { database_url: String, redis_url: String, amqp_url: String },
}

impl Backend {
    /// The split deployment's adapters (PostgreSQL, Redis, RabbitMQ) named by the environment.
    /// Panics, naming the variables missing, unless all three are set: a test that needs them
    /// must fail without them, never pass untested. nextest's default profile leaves such tests
    /// out (`.config/nextest.toml`); its `ci` profile runs them.
    pub fn postgres() -> Self {
        let vars = ["BOXOFFICE_TEST_DATABASE_URL", "BOXOFFICE_TEST_REDIS_URL", "BOXOFFICE_TEST_AMQP_URL"];
        match vars.map(|name| std::env::var(name).ok().filter(|url| !url.is_empty())) {
            [Some(database_url), Some(redis_url), Some(amqp_url)] => {
                Backend::Postgres { database_url, redis_url, amqp_url }
            }
            urls => {
                let missing: Vec<&str> =
                    vars.iter().zip(&urls).filter(|(_, url)| url.is_none()).map(|(name, _)| *name).collect();
                panic!(
                    "this test needs PostgreSQL, Redis and RabbitMQ: set {} (or run nextest's default profile, \
                     which skips it)",
                    missing.join(", ")
                )
            }
        }
    }
}

/// Generates `sqlite::<name>` and `postgres::<name>` tests from `async fn <name>(Backend)`;
/// after `; postgres only:`, tests of the split deployment alone (see `on_postgres!`).
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)? $(; postgres only: $($only:ident),+ $(,)?)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await;
                }
            )+
        }
        on_postgres!($($name),+ $(, $($only),+)?);
    };
}

/// Generates `postgres::<name>` tests from `async fn <name>(Backend)`. Every test whose path
/// holds `postgres::` needs PostgreSQL, Redis and RabbitMQ (see `Backend::postgres`), and
/// nextest's default profile skips it by that name.
macro_rules! on_postgres {
    ($($name:ident),+ $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::postgres()).await;
                }
            )+
        }
    };
}

/// Settings for a test app: defaults, port 0, small worker pool, cheap Argon2, and the
/// backend's isolated storage.
pub fn test_settings(backend: &Backend, data_dir: &Path) -> Settings {
    let mut s = Settings::load(None).expect("default settings load");
    s.data_dir = data_dir.to_path_buf();
    s.server.bind = "127.0.0.1:0".parse().expect("address");
    s.server.workers = 2;
    // The real cost is exercised by the release binary; tests only need real Argon2id.
    s.sections.auth.argon2_memory_kib = 1024;
    s.sections.auth.argon2_iterations = 1;
    // Every test app has an admin (see `TestApp::admin_token`) and starts with an empty catalog.
    s.sections.auth.admin_email = ADMIN_EMAIL.to_owned();
    s.sections.auth.admin_password = platform::config::Secret::new(ADMIN_PASSWORD);
    s.demo.seed = false;
    let unique = uuid::Uuid::new_v4().simple().to_string();
    match backend {
        Backend::Sqlite => {
            s.database.url = platform::config::Secret::new("");
            s.redis.url = platform::config::Secret::new("");
            s.events.amqp_url = platform::config::Secret::new("");
        }
        Backend::Postgres { database_url, redis_url, amqp_url } => {
            s.database.url = platform::config::Secret::new(database_url.clone());
            s.database.schema_prefix = format!("t_{}_", &unique[..12]);
            // Pools open all their connections at start: 5 modules × 3 keeps a test app at 15 of
            // PostgreSQL's 100, with room for tests that start several apps side by side.
            s.database.max_connections = 3;
            s.redis.url = platform::config::Secret::new(redis_url.clone());
            s.redis.key_prefix = format!("test:{unique}:");
            // The split deployment's bus, on an exchange and queues of this test's own.
            s.events.amqp_url = platform::config::Secret::new(amqp_url.clone());
            s.events.exchange = format!("test.{unique}");
            s.events.queue_prefix = format!("test.{unique}.");
        }
    }
    s
}

/// A base port whose `base + offset` ports are all free, for servers a test starts in other
/// processes (nginx, `deploy/split.sh`). Below Linux's ephemeral range (32768 and up): there
/// a port found free can be taken, before the server binds it, as the local port of any
/// outgoing connection on the machine (the test's own apps' connections to PostgreSQL, say).
pub fn free_port_block(offsets: &[u16]) -> u16 {
    loop {
        let base = 10_000 + (rand::random::<u16>() % 200) * 100;
        if offsets.iter().all(|offset| std::net::TcpListener::bind(("127.0.0.1", base + offset)).is_ok()) {
            return base;
        }
    }
}

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "admin password";

/// A deployment as a client sees it: its base URL. A [`TestApp`] is one; so is the gateway of
/// a split deployment (`tests/api/e2e.rs`).
pub struct Api {
    pub address: String,
    pub client: reqwest::Client,
}

impl Api {
    pub fn new(address: impl Into<String>) -> Self {
        // Bounded, so a request that is never answered fails naming itself rather than leaving
        // the test to nextest's timeout: nothing here should take more than seconds.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .expect("client");
        Api { address: address.into(), client }
    }

    /// The same API, every request carrying `name: value` (a `traceparent`, say).
    pub fn with_header(&self, name: &'static str, value: &str) -> Self {
        let headers = reqwest::header::HeaderMap::from_iter([(
            reqwest::header::HeaderName::from_static(name),
            reqwest::header::HeaderValue::from_str(value).expect("a header value"),
        )]);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(60))
            .default_headers(headers)
            .build()
            .expect("client");
        Api { address: self.address.clone(), client }
    }
}

/// An app of the test's own, in this process: its API and what the test may reach behind it.
pub struct TestApp {
    pub api: Api,
    pub settings: Settings,
    pub data_dir: PathBuf,
    /// The app's event bus, to publish as another module would.
    pub bus: Arc<dyn platform::events::EventBus>,
    _data: Arc<TempDir>,
    handle: boxoffice::startup::StopHandle,
}

impl TestApp {
    /// Stops the app as SIGTERM does (`graceful`) or at once.
    pub fn stop(&self, graceful: bool) -> impl Future<Output = ()> + use<> {
        self.handle.stop(graceful)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Stop accepting at once; the runtime ends with the test anyway.
        drop(self.handle.stop(false));
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let data = Arc::new(TempDir::new().expect("temp dir"));
    let mut settings = test_settings(&backend, data.path());
    configure(&mut settings);
    start(settings, data, Arc::new(|_| {})).await
}

/// Starts an app from complete settings, sharing `data` (e.g. a second app on the same store).
pub async fn start(settings: Settings, data: Arc<TempDir>, extra: ExtraRoutes) -> TestApp {
    // Bounded like the requests (every step of a start has its own deadline, below this one).
    let build =
        tokio::time::timeout(std::time::Duration::from_secs(60), Application::build_with(settings.clone(), extra));
    let app = build.await.expect("the app builds within 60 s").expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    let bus = app.bus();
    tokio::spawn(app.run_until_stopped());
    TestApp { api: Api::new(address), data_dir: data.path().to_path_buf(), settings, bus, _data: data, handle }
}

impl std::ops::Deref for TestApp {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Api {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client.post(self.url(path)).json(body).send().await.expect("request")
    }

    pub async fn get_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.client.get(self.url(path)).bearer_auth(token).send().await.expect("request")
    }

    pub async fn register(&self, username: &str) -> Value {
        let res = self
            .post_json(
                "/api/auth/register",
                &json!({"email": format!("{username}@example.com"), "username": username, "password": "correct horse"}),
            )
            .await;
        assert_eq!(res.status(), 201, "register {username}");
        res.json().await.expect("json")
    }

    pub async fn login(&self, username: &str, password: &str) -> reqwest::Response {
        self.client
            .post(self.url("/api/auth/token"))
            .form(&[("username", username), ("password", password)])
            .send()
            .await
            .expect("request")
    }

    /// An access token of the app's configured admin.
    pub async fn admin_token(&self) -> String {
        let res = self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        assert_eq!(res.status(), 200, "admin login");
        let pair: Value = res.json().await.expect("json");
        pair["access_token"].as_str().expect("access token").to_owned()
    }

    /// A request as `token`, with a JSON body.
    pub async fn send_as(&self, method: reqwest::Method, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.client.request(method, self.url(path)).bearer_auth(token).json(body).send().await.expect("request")
    }

    /// Registers `username` (password `correct horse`) and returns its token pair.
    pub async fn customer(&self, username: &str) -> Value {
        self.register(username).await;
        let res = self.login(username, "correct horse").await;
        assert_eq!(res.status(), 200);
        res.json().await.expect("json")
    }

    /// Registers `username` (password `correct horse`) and returns its access token.
    pub async fn customer_token(&self, username: &str) -> String {
        self.customer(username).await["access_token"].as_str().expect("access token").to_owned()
    }

    /// The caller behind `token`, as the app's auth knows it; it must have `role`.
    pub async fn caller(&self, token: String, role: Role) -> AuthUser {
        let me: Value = self.get_as("/api/auth/me", &token).await.json().await.expect("json");
        assert_eq!(me["role"], serde_json::to_value(role).expect("a role serializes"));
        let id = uuid::Uuid::parse_str(id(&me)).expect("user id");
        AuthUser { id: UserId(id), role, bearer: token }
    }

    /// The app's admin and the customers `customer` and `other`, registered here, as the
    /// app's auth knows them.
    pub async fn callers(&self, customer: &str, other: &str) -> Callers {
        let admin = self.caller(self.admin_token().await, Role::Admin).await;
        let customer = self.caller(self.customer_token(customer).await, Role::Customer).await;
        let other = self.caller(self.customer_token(other).await, Role::Customer).await;
        Callers { admin, customer, other }
    }

    /// Asserts that each route (method, path, JSON body) answers a 401 problem both without a
    /// token and with a malformed one. `prepare` adds what every request carries besides.
    pub async fn assert_routes_need_a_token(
        &self,
        routes: Vec<(reqwest::Method, String, Option<Value>)>,
        prepare: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) {
        for (method, path, body) in routes {
            for token in [None, Some("not.a.token")] {
                let mut request = prepare(self.client.request(method.clone(), self.url(&path)));
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                if let Some(body) = &body {
                    request = request.json(body);
                }
                let res = request.send().await.expect("request");
                assert_eq!(res.status(), 401, "{method} {path} with token {token:?}");
                assert_problem(res, 401).await;
            }
        }
    }

    /// The text of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        self.client.get(self.url("/metrics")).send().await.expect("request").text().await.expect("metrics text")
    }

    /// Polls the counter `name` (summed over the samples with `label`, see [`counter`]) until
    /// it reaches `at_least`, for at most `within`; returns its value then.
    pub async fn wait_for_counter(&self, name: &str, label: &str, at_least: f64, within: std::time::Duration) -> f64 {
        let deadline = std::time::Instant::now() + within;
        loop {
            let now = counter(&self.metrics().await, name, label);
            if now >= at_least {
                return now;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{name}{{{label}}} still {now}, not {at_least}, after {within:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }
}

/// Who calls a module's API in a contract test: an admin and two customers.
pub struct Callers {
    pub admin: AuthUser,
    pub customer: AuthUser,
    pub other: AuthUser,
}

impl Callers {
    /// Callers that in-process services take at their word: fresh ids, no token.
    pub fn made_up() -> Self {
        Callers {
            admin: made_up_caller(Role::Admin),
            customer: made_up_caller(Role::Customer),
            other: made_up_caller(Role::Customer),
        }
    }
}

/// A caller with a fresh id and no token, as an in-process service takes it.
pub fn made_up_caller(role: Role) -> AuthUser {
    AuthUser { id: UserId(uuid::Uuid::new_v4()), role, bearer: String::new() }
}

/// The sum of the samples of counter `name` whose labels contain `label` (any with "").
///
/// The recorder is global to the process; nextest runs every test in a process of its own, so
/// a difference of two readings counts this test's events only.
pub fn counter(metrics: &str, name: &str, label: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' ')))
        .filter(|l| l.contains(label))
        .map(|l| l.rsplit(' ').next().expect("a sample").parse::<f64>().expect("a number"))
        .sum()
}

/// The `id` of a JSON object.
pub fn id(v: &Value) -> &str {
    v["id"].as_str().expect("an id")
}

/// The ids of a page's items, in order.
pub fn ids(page: &Value) -> Vec<&str> {
    page["items"].as_array().expect("items").iter().map(id).collect()
}

/// An RFC 3339 timestamp of a JSON answer.
pub fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().expect("a timestamp")).expect("RFC 3339").to_utc()
}

/// Waits until the clock is past `t` (e.g. a hold's end), polling.
pub async fn wait_past(t: DateTime<Utc>) {
    while Utc::now() <= t {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Asserts a problem+json answer with `status` and returns its body.
pub async fn assert_problem(res: reqwest::Response, status: u16) -> Value {
    assert_eq!(res.status(), status, "status");
    let content_type = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = res.json().await.expect("problem body");
    assert_eq!(body["status"], status);
    assert!(body["type"].as_str().is_some_and(|t| t.starts_with("/problems/")), "{body}");
    assert!(body["title"].is_string(), "{body}");
    body
}

/// Asserts a 422 validation problem naming exactly the fields `expected` (in any order), each
/// with a message, and returns it.
pub async fn assert_invalid(res: reqwest::Response, expected: &[&str], context: &str) -> Value {
    let problem = assert_problem(res, 422).await;
    assert_eq!(problem["type"], "/problems/validation", "{context}: {problem}");
    let errors = problem["errors"].as_array().expect("errors");
    let mut named: Vec<&str> = errors.iter().map(|e| e["field"].as_str().expect("field")).collect();
    named.sort_unstable();
    let mut expected = expected.to_vec();
    expected.sort_unstable();
    assert_eq!(named, expected, "{context}: {problem}");
    for error in errors {
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{context}: {problem}");
    }
    problem
}

/// Asserts a 404 `not-found` problem naming `resource`, and returns it.
pub async fn assert_not_found(res: reqwest::Response, resource: &str) -> Value {
    let problem = assert_problem(res, 404).await;
    assert_eq!(problem["type"], "/problems/not-found", "{problem}");
    assert_eq!(problem["resource"], resource, "{problem}");
    problem
}

/// An in-process bus with its dead letters in `settings`' `events` store.
pub async fn in_process_bus(
    settings: &Settings,
    retry: platform::events::RetryPolicy,
) -> Arc<platform::events::InProcessBus> {
    let store = boxoffice::modules::dead_letter_store(settings).await.expect("the events store opens");
    platform::events::InProcessBus::new(retry, store, std::time::Duration::from_millis(50))
}

/// The modules `settings` serve, started in this test's process with nothing running in the
/// background (no relay: events stay in the outboxes); their APIs, by type.
pub async fn in_process(settings: &Settings) -> platform::module::Peers {
    boxoffice::modules::start(settings).await.expect("the modules start").peers
}
