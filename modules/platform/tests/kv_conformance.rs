//! One conformance suite for the `KeyValue` port, run against every implementation:
//! `MemoryKv`, and `RedisKv` on a real Redis (the `redis::` tests).
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use platform::health::HealthCheck;
use platform::kv::{Backoff, KeyValue, KvError, MemoryKv, RedisKv, Throttled};

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

    throttle_conformance(&kv).await;
}

async fn throttle_conformance(kv: &Arc<dyn KeyValue>) {
    let minute = Duration::from_secs(60);
    // `free` hits pass at once; then the first wait, and refused hits are not counted.
    let slow = Backoff { free: 2, first_wait: minute, max_wait: Duration::from_secs(600), window: minute * 10 };
    assert_eq!(kv.throttle("login", slow).await.unwrap(), Throttled::Passed { count: 1 });
    assert_eq!(kv.throttle("login", slow).await.unwrap(), Throttled::Passed { count: 2 });
    for _ in 0..3 {
        let Throttled::Wait { retry_after } = kv.throttle("login", slow).await.unwrap() else {
            panic!("a third hit passed at once")
        };
        assert!(retry_after <= minute && retry_after > Duration::from_secs(50), "{retry_after:?}");
    }
    let counted = kv.peek("login").await.unwrap().unwrap();
    assert_eq!(counted.count, 2, "refused hits are not counted");
    assert!(counted.resets_in > Duration::from_secs(590), "the count lasts the window: {counted:?}");
    // A hit given back is uncounted and ends the wait: the next hit passes (and waits again).
    kv.unthrottle("login").await.unwrap();
    assert_eq!(kv.peek("login").await.unwrap().unwrap().count, 1);
    assert_eq!(kv.throttle("login", slow).await.unwrap(), Throttled::Passed { count: 2 });
    assert!(matches!(kv.throttle("login", slow).await.unwrap(), Throttled::Wait { .. }));
    kv.unthrottle("login").await.unwrap();
    kv.unthrottle("login").await.unwrap();
    kv.unthrottle("login").await.unwrap();
    assert_eq!(kv.peek("login").await.unwrap().unwrap().count, 0, "never below zero");
    kv.unthrottle("never-counted").await.unwrap();
    assert_eq!(kv.peek("never-counted").await.unwrap(), None);

    // After each wait one hit passes, and the wait doubles, at most max_wait.
    let quick = Backoff {
        free: 1,
        first_wait: Duration::from_millis(300),
        max_wait: Duration::from_millis(500),
        window: minute,
    };
    assert_eq!(kv.throttle("quick", quick).await.unwrap(), Throttled::Passed { count: 1 });
    assert_eq!(pass_after_waiting(&**kv, "quick", quick).await, 2);
    // Its wait is now min(2 × 300, 500) ms: longer than the first, capped.
    let Throttled::Wait { retry_after } = kv.throttle("quick", quick).await.unwrap() else { panic!("no wait") };
    assert!(retry_after <= Duration::from_millis(500), "{retry_after:?}");
    assert_eq!(pass_after_waiting(&**kv, "quick", quick).await, 3);

    // However many hit at once, exactly `free` pass.
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let kv = Arc::clone(kv);
            tokio::spawn(async move { kv.throttle("rush", slow).await.unwrap() })
        })
        .collect();
    let mut passed = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), Throttled::Passed { .. }) {
            passed += 1;
        }
    }
    assert_eq!(passed, 2);
}

/// Hits `key` until one passes (each refused hit is free); returns the count it passed with.
async fn pass_after_waiting(kv: &dyn KeyValue, key: &str, backoff: Backoff) -> u64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match kv.throttle(key, backoff).await.unwrap() {
            Throttled::Passed { count } => return count,
            Throttled::Wait { retry_after } => {
                assert!(retry_after <= backoff.max_wait, "{retry_after:?}");
                assert!(std::time::Instant::now() < deadline, "the wait never ended");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
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

#[tokio::test]
async fn redis_kv_reports_an_unreachable_server() {
    let kv = RedisKv::connect("redis://127.0.0.1:9/0", 1, "x:", Duration::from_secs(5)).unwrap();
    assert!(kv.check().await.is_err());
    assert!(kv.get("k").await.is_err());
}

/// Against a real Redis: `BOXOFFICE_TEST_REDIS_URL`, or a private `redis-server`. nextest's default
/// profile skips them by their `redis::` path; without the service they fail.
mod redis {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_kv_keeps_the_contract() {
        let (kv, _) = common::redis().await;
        conformance(Arc::new(kv)).await;
    }

    /// The connection every call shares is let go when Redis drops it: one call may fail,
    /// the next opens another connection and succeeds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_kv_reconnects_after_redis_drops_its_connection() {
        let redis = common::PrivateRedis::start().await;
        let kv = RedisKv::connect(&redis.url(), 2, "x:", Duration::from_secs(2)).unwrap();
        kv.set("k", b"v", Duration::from_secs(600)).await.unwrap();
        for round in 0..3 {
            let killed = redis.cli(&["CLIENT", "KILL", "TYPE", "normal"]).await.unwrap();
            assert_ne!(killed, "0", "round {round}: the shared connection was open");
            // The first call after the drop may learn of it by failing; the next must not.
            if kv.get("k").await.is_err() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&b"v"[..]), "round {round}");
        }
    }

    /// Every call on a hung Redis (a private server, paused for longer than the test) answers
    /// `Unavailable` within `redis.timeout_ms`, so callers take their fallback instead of waiting.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_kv_gives_up_on_a_hung_server() {
        let redis = common::PrivateRedis::start().await;
        let kv = RedisKv::connect(&redis.url(), 2, "x:", Duration::from_millis(200)).unwrap();
        kv.set("k", b"v", Duration::from_secs(600)).await.unwrap();
        assert!(kv.check().await.is_ok());
        redis.pause(Duration::from_secs(120)).await;
        let unavailable = |r: Result<(), KvError>| matches!(r, Err(KvError::Unavailable(_)));
        let backoff = Backoff { free: 1, first_wait: Duration::ZERO, max_wait: Duration::ZERO, window: Duration::ZERO };
        assert!(unavailable(kv.get("k").await.map(|_| ())));
        assert!(unavailable(kv.set("k", b"w", Duration::from_secs(1)).await));
        assert!(unavailable(kv.set_if_absent("n", b"w", Duration::from_secs(1)).await.map(|_| ())));
        assert!(unavailable(kv.delete("k").await));
        assert!(unavailable(kv.incr("c", Duration::from_secs(1)).await.map(|_| ())));
        assert!(unavailable(kv.peek("c").await.map(|_| ())));
        assert!(unavailable(kv.unthrottle("c").await));
        assert!(unavailable(kv.throttle("c", backoff).await.map(|_| ())));
        assert!(kv.check().await.is_err(), "readiness reports the hung Redis");
    }
}
