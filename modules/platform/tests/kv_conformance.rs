//! One conformance suite for the `KeyValue` port, run against every implementation:
//! `MemoryKv` always, `RedisKv` when `BOXOFFICE_TEST_REDIS_URL` is set (required under CI).
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use platform::health::HealthCheck;
use platform::kv::{KeyValue, MemoryKv, RedisKv};

async fn conformance(kv: Arc<dyn KeyValue>) {
    // get / set / delete
    assert_eq!(kv.get("absent").await.unwrap(), None);
    kv.set("k", b"v1", Duration::from_secs(60)).await.unwrap();
    assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&b"v1"[..]));
    kv.set("k", b"v2", Duration::from_secs(60)).await.unwrap();
    assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&b"v2"[..]));
    kv.delete("k").await.unwrap();
    assert_eq!(kv.get("k").await.unwrap(), None);
    kv.delete("k").await.unwrap();

    // set_if_absent stores once
    assert!(kv.set_if_absent("once", b"first", Duration::from_secs(60)).await.unwrap());
    assert!(!kv.set_if_absent("once", b"second", Duration::from_secs(60)).await.unwrap());
    assert_eq!(kv.get("once").await.unwrap().as_deref(), Some(&b"first"[..]));

    // keys expire
    kv.set("short", b"x", Duration::from_millis(150)).await.unwrap();
    assert!(kv.set_if_absent("short-nx", b"x", Duration::from_millis(150)).await.unwrap());
    wait_until_gone(&*kv, "short").await;
    wait_until_gone(&*kv, "short-nx").await;
    assert!(kv.set_if_absent("short-nx", b"again", Duration::from_secs(60)).await.unwrap());

    // fixed-window counters
    assert_eq!(kv.peek("hits").await.unwrap(), None);
    let window = Duration::from_secs(60);
    for expected in 1..=3 {
        let c = kv.incr("hits", window).await.unwrap();
        assert_eq!(c.count, expected);
        assert!(c.resets_in <= window && c.resets_in > Duration::from_secs(50), "{c:?}");
    }
    let peeked = kv.peek("hits").await.unwrap().unwrap();
    assert_eq!(peeked.count, 3);
    assert_eq!(kv.peek("hits").await.unwrap().unwrap().count, 3, "peek must not count");
    kv.delete("hits").await.unwrap();
    assert_eq!(kv.incr("hits", window).await.unwrap().count, 1);

    // a window closes and counting starts again
    assert_eq!(kv.incr("brief", Duration::from_millis(150)).await.unwrap().count, 1);
    assert_eq!(kv.incr("brief", Duration::from_millis(150)).await.unwrap().count, 2);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while kv.peek("brief").await.unwrap().is_some() {
        assert!(std::time::Instant::now() < deadline, "window never closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(kv.incr("brief", Duration::from_secs(60)).await.unwrap().count, 1);

    // concurrent increments are all counted
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let kv = Arc::clone(&kv);
            tokio::spawn(async move { kv.incr("busy", Duration::from_secs(60)).await.unwrap().count })
        })
        .collect();
    let mut counts = Vec::new();
    for t in tasks {
        counts.push(t.await.unwrap());
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=50).collect::<Vec<u64>>());
}

async fn wait_until_gone(kv: &dyn KeyValue, key: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while kv.get(key).await.unwrap().is_some() {
        assert!(std::time::Instant::now() < deadline, "{key} never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn memory_kv_keeps_the_contract() {
    conformance(Arc::new(MemoryKv::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_kv_keeps_the_contract() {
    let Some((kv, _)) = common::redis().await else { return };
    conformance(Arc::new(kv)).await;
}

#[tokio::test]
async fn redis_kv_reports_an_unreachable_server() {
    let kv = RedisKv::connect("redis://127.0.0.1:9/0", 1, "x:").unwrap();
    assert!(kv.check().await.is_err());
    assert!(kv.get("k").await.is_err());
}
