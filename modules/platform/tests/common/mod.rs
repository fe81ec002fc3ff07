//! What the platform's test binaries share: the services they run against when configured.
#![allow(dead_code)] // each test binary uses a part

mod private_redis;

use platform::health::HealthCheck;
use platform::kv::RedisKv;
#[allow(unused_imports)] // each test binary uses a part
pub use private_redis::PrivateRedis;

/// The URL in the environment variable `var`, or `None` (the caller skips its test). Under
/// `CI=true` a missing URL fails the test instead.
pub fn service_url(var: &str) -> Option<String> {
    let url = std::env::var(var).ok().filter(|u| !u.is_empty());
    if url.is_none() {
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "CI=true requires {var}");
        eprintln!("skipped: set {var} to run this test against the real service");
    }
    url
}

/// A Redis store on `BOXOFFICE_TEST_REDIS_URL` with a key prefix of its own, answering PING;
/// `None` when no Redis is configured. Returns the prefix too.
pub async fn redis() -> Option<(RedisKv, String)> {
    let url = service_url("BOXOFFICE_TEST_REDIS_URL")?;
    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let kv = RedisKv::connect(&url, 8, &prefix, std::time::Duration::from_secs(5)).expect("a valid Redis URL");
    kv.check().await.expect("redis answers PING");
    Some((kv, prefix))
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
