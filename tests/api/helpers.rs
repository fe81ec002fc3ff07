//! `spawn_app` and friends: an isolated app per test, and the HTTP calls tests share.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use boxoffice::settings::Settings;
use boxoffice::startup::{Application, ExtraRoutes};
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
    /// The split deployment's adapters (PostgreSQL, Redis, RabbitMQ) when the environment
    /// names all three. Under `CI=true` a missing variable fails the test instead of skipping it.
    pub fn postgres() -> Option<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|s| !s.is_empty());
        let urls =
            (var("BOXOFFICE_TEST_DATABASE_URL"), var("BOXOFFICE_TEST_REDIS_URL"), var("BOXOFFICE_TEST_AMQP_URL"));
        match urls {
            (Some(database_url), Some(redis_url), Some(amqp_url)) => {
                Some(Backend::Postgres { database_url, redis_url, amqp_url })
            }
            _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("CI=true but BOXOFFICE_TEST_DATABASE_URL / _REDIS_URL / _AMQP_URL are not all set")
            }
            _ => {
                eprintln!("skipped: set BOXOFFICE_TEST_DATABASE_URL, _REDIS_URL and _AMQP_URL for the split adapters");
                None
            }
        }
    }
}

/// Generates `sqlite::<name>` and `postgres::<name>` tests from `async fn <name>(Backend)`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(backend) = $crate::helpers::Backend::postgres() {
                        super::$name(backend).await;
                    }
                }
            )*
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
    s.auth.argon2_memory_kib = 1024;
    s.auth.argon2_iterations = 1;
    // Every test app has an admin (see `TestApp::admin_token`) and starts with an empty catalog.
    s.auth.admin_email = ADMIN_EMAIL.to_owned();
    s.auth.admin_password = platform::config::Secret::new(ADMIN_PASSWORD);
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
            s.database.max_connections = 5;
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

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "admin password";

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub settings: Settings,
    pub data_dir: PathBuf,
    /// The app's event bus, to publish as another module would.
    pub bus: Arc<dyn platform::events::EventBus>,
    _data: Arc<TempDir>,
    handle: actix_web::dev::ServerHandle,
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
    let app = Application::build_with(settings.clone(), extra).await.expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    let bus = app.bus();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client"),
        data_dir: data.path().to_path_buf(),
        settings,
        bus,
        _data: data,
        handle,
    }
}

impl TestApp {
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
