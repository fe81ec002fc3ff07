//! What the platform's test binaries share: the services they run against when configured.
#![allow(dead_code)] // each test binary uses a part

mod private_redis;

use platform::health::HealthCheck;
use platform::kv::RedisKv;
#[allow(unused_imports)] // each test binary uses a part
pub use private_redis::PrivateRedis;

/// The URL in the environment variable `var`. Panics, naming it, when it is not set: a test
/// that needs a real service fails without it, never passes untested (nextest's default
/// profile skips such tests by their `postgres::`, `redis::` or `rabbitmq::` path).
pub fn service_url(var: &str) -> String {
    std::env::var(var).ok().filter(|url| !url.is_empty()).unwrap_or_else(|| {
        panic!("this test needs a real service: set {var} (or run nextest's default profile, which skips it)")
    })
}

/// A Redis store on `BOXOFFICE_TEST_REDIS_URL` with a key prefix of its own, answering PING.
/// Returns the prefix too.
pub async fn redis() -> (RedisKv, String) {
    let url = service_url("BOXOFFICE_TEST_REDIS_URL");
    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let kv = RedisKv::connect(&url, 8, &prefix, std::time::Duration::from_secs(5)).expect("a valid Redis URL");
    kv.check().await.expect("redis answers PING");
    (kv, prefix)
}

/// Dead letters of an in-process bus in a SQLite file under `dir`.
pub async fn dead_letter_store(dir: &std::path::Path) -> platform::events::DeadLetterStore {
    use sea_orm::ConnectionTrait;
    let url = format!("sqlite://{}?mode=rwc", dir.join("events.db").display());
    let db = sea_orm::Database::connect(url).await.expect("a SQLite file");
    let mut table = platform::dead_letters::dead_letter_table();
    db.execute(table.if_not_exists()).await.expect("the dead-letter table");
    platform::events::DeadLetterStore::new(db)
}

/// The value of the sample `series` (a name with its labels as rendered, e.g.
/// `outbox_backlog{module="test"}`) in this process's Prometheus text; `None` when absent.
/// Call [`platform::telemetry::prometheus`] before recording: earlier metrics are dropped.
pub fn sample(series: &str) -> Option<f64> {
    let text = platform::telemetry::prometheus().render();
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')).map(|v| v.parse().expect("a number"))
}
