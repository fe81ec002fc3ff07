//! One conformance suite for the `SeatLocks` port, run against every implementation:
//! `MemorySeatLocks`, and `RedisSeatLocks` on a real Redis (the `redis::` tests).
#![allow(clippy::expect_used, clippy::unwrap_used)]

// The platform's test helpers (Redis on `BOXOFFICE_TEST_REDIS_URL`, a private redis-server),
// shared by path as the API tests share them.
#[path = "../../platform/tests/common/mod.rs"]
mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use booking::service::locks::{Acquired, LockError, MemorySeatLocks, RedisSeatLocks, SeatLocks};
use platform::kv::RedisKv;

const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_millis(150);

fn seats(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort_unstable();
    v
}

fn taken(outcome: Acquired) -> Vec<String> {
    match outcome {
        Acquired::Conflict { taken } => sorted(taken),
        Acquired::Held => panic!("expected a conflict"),
    }
}

async fn conformance(locks: Arc<dyn SeatLocks>) {
    let l = &*locks;

    // all-or-nothing: a request overlapping held seats takes nothing and names every one of them
    assert_eq!(l.acquire("show-1", &seats(&["A1", "A2"]), "alice", LONG).await.unwrap(), Acquired::Held);
    let outcome = l.acquire("show-1", &seats(&["A2", "A3", "A1", "A4"]), "bob", LONG).await.unwrap();
    assert_eq!(taken(outcome), seats(&["A1", "A2"]));
    let held = l.holders("show-1", &seats(&["A1", "A2", "A3", "A4"])).await.unwrap();
    assert_eq!(held, HashMap::from([("A1".into(), "alice".into()), ("A2".into(), "alice".into())]));
    assert_eq!(l.acquire("show-1", &seats(&["A3", "A4"]), "bob", LONG).await.unwrap(), Acquired::Held);

    // a conflict names each seat once, however often the request repeats it
    let outcome = l.acquire("show-1", &seats(&["A1", "A1", "A5"]), "carol", LONG).await.unwrap();
    assert_eq!(taken(outcome), seats(&["A1"]));
    assert!(l.holders("show-1", &seats(&["A5"])).await.unwrap().is_empty());

    // an empty request holds nothing and succeeds
    assert_eq!(l.acquire("show-1", &[], "carol", LONG).await.unwrap(), Acquired::Held);
    assert_eq!(l.release("show-1", &[], "carol").await.unwrap(), 0);
    assert!(l.holders("show-1", &[]).await.unwrap().is_empty());

    // the owner may acquire again (a retry, or a superset of its seats) and that restarts the TTLs
    assert_eq!(l.acquire("show-1", &seats(&["A1", "A2", "A6"]), "alice", LONG).await.unwrap(), Acquired::Held);
    assert_eq!(l.holders("show-1", &seats(&["A6"])).await.unwrap().get("A6").map(String::as_str), Some("alice"));
    assert_eq!(l.acquire("show-1", &seats(&["B1", "B2"]), "alice", SHORT).await.unwrap(), Acquired::Held);
    assert_eq!(l.acquire("show-1", &seats(&["B1"]), "alice", LONG).await.unwrap(), Acquired::Held);
    wait_until_free(l, "show-1", "B2").await;
    assert_eq!(l.holders("show-1", &seats(&["B1"])).await.unwrap().get("B1").map(String::as_str), Some("alice"));
    assert_eq!(l.acquire("show-1", &seats(&["B3"]), "alice", LONG).await.unwrap(), Acquired::Held);
    assert_eq!(l.acquire("show-1", &seats(&["B3"]), "alice", SHORT).await.unwrap(), Acquired::Held);
    wait_until_free(l, "show-1", "B3").await;

    // holds expire, and an expired seat is anybody's
    assert_eq!(l.acquire("show-1", &seats(&["C1", "C2"]), "alice", SHORT).await.unwrap(), Acquired::Held);
    wait_until_free(l, "show-1", "C1").await;
    wait_until_free(l, "show-1", "C2").await;
    assert_eq!(l.acquire("show-1", &seats(&["C1", "C2"]), "bob", LONG).await.unwrap(), Acquired::Held);
    assert_eq!(l.release("show-1", &seats(&["C1", "C2"]), "alice").await.unwrap(), 0, "alice's hold expired");

    // only the owner releases; it releases only its own seats
    assert_eq!(l.release("show-1", &seats(&["A1", "A2"]), "bob").await.unwrap(), 0);
    assert_eq!(l.holders("show-1", &seats(&["A1", "A2"])).await.unwrap().len(), 2);
    assert_eq!(l.release("show-1", &seats(&["A1", "A3", "A9", "A1"]), "alice").await.unwrap(), 1);
    let held = l.holders("show-1", &seats(&["A1", "A2", "A3"])).await.unwrap();
    assert_eq!(held, HashMap::from([("A2".into(), "alice".into()), ("A3".into(), "bob".into())]));
    assert_eq!(l.acquire("show-1", &seats(&["A1"]), "bob", LONG).await.unwrap(), Acquired::Held);

    // scopes are independent: the same seat id in another showtime is another seat
    assert_eq!(l.acquire("show-2", &seats(&["A1", "A2"]), "carol", LONG).await.unwrap(), Acquired::Held);
    assert_eq!(l.holders("show-2", &seats(&["A1"])).await.unwrap().get("A1").map(String::as_str), Some("carol"));
    assert_eq!(l.holders("show-1", &seats(&["A1"])).await.unwrap().get("A1").map(String::as_str), Some("bob"));
    assert_eq!(l.release("show-2", &seats(&["A2"]), "alice").await.unwrap(), 0);
    assert_eq!(l.release("show-1", &seats(&["A2"]), "alice").await.unwrap(), 1);
    assert_eq!(l.holders("show-2", &seats(&["A2"])).await.unwrap().get("A2").map(String::as_str), Some("carol"));

    one_seat_race_has_exactly_one_winner(&locks).await;
    overlapping_requests_win_disjoint_seat_sets(&locks).await;
}

/// 50 buyers want seat R0 and each a seat of its own besides: one wins both, the rest win nothing.
async fn one_seat_race_has_exactly_one_winner(locks: &Arc<dyn SeatLocks>) {
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let locks = Arc::clone(locks);
            tokio::spawn(async move {
                let request = seats(&["R0", &format!("R{}", i + 1)]);
                (i, locks.acquire("race-1", &request, &format!("buyer-{i}"), LONG).await.unwrap())
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            (i, Acquired::Held) => winners.push(i),
            (_, Acquired::Conflict { taken }) => assert_eq!(taken, seats(&["R0"])),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let winner = format!("buyer-{}", winners[0]);
    let all: Vec<String> = (0..=50).map(|i| format!("R{i}")).collect();
    let held = locks.holders("race-1", &all).await.unwrap();
    let expected = HashMap::from([("R0".to_owned(), winner.clone()), (format!("R{}", winners[0] + 1), winner)]);
    assert_eq!(held, expected, "only the winner's two seats are held");
}

/// 20 buyers ask for overlapping sets of three seats among ten: the winners' sets are
/// disjoint, and every held seat is held by the winner that asked for it.
async fn overlapping_requests_win_disjoint_seat_sets(locks: &Arc<dyn SeatLocks>) {
    let request = |i: usize| -> Vec<String> {
        // Every other buyer lists its seats backwards, so requests also overlap in opposite orders.
        let mut s = vec![format!("P{}", i % 10), format!("P{}", (i + 1) % 10), format!("P{}", (i + 3) % 10)];
        if i % 2 == 1 {
            s.reverse();
        }
        s
    };
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let locks = Arc::clone(locks);
            tokio::spawn(async move {
                (i, locks.acquire("race-2", &request(i), &format!("buyer-{i}"), LONG).await.unwrap())
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            (i, Acquired::Held) => winners.push(i),
            (i, Acquired::Conflict { taken }) => {
                assert!(!taken.is_empty());
                assert!(taken.iter().all(|s| request(i).contains(s)), "{taken:?} outside buyer-{i}'s request");
            }
        }
    }
    assert!(!winners.is_empty(), "somebody must win");
    let mut claimed = HashMap::new();
    for &w in &winners {
        for seat in request(w) {
            assert!(claimed.insert(seat.clone(), format!("buyer-{w}")).is_none(), "{seat} won twice");
        }
    }
    let all: Vec<String> = (0..10).map(|i| format!("P{i}")).collect();
    let held = locks.holders("race-2", &all).await.unwrap();
    assert_eq!(held, claimed, "held seats are exactly the winners' seats");
    let owners: HashSet<&String> = held.values().collect();
    assert_eq!(owners.len(), winners.len());
}

async fn wait_until_free(locks: &dyn SeatLocks, scope: &str, seat: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !locks.holders(scope, &seats(&[seat])).await.unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "{scope}/{seat} never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_seat_locks_keep_the_contract() {
    conformance(Arc::new(MemorySeatLocks::new())).await;
}

#[tokio::test]
async fn redis_seat_locks_report_an_unreachable_server() {
    let kv = RedisKv::connect("redis://127.0.0.1:9/0", 1, "x:", LONG).unwrap();
    let locks = RedisSeatLocks::new(&kv, "x:");
    let request = seats(&["A1"]);
    let unavailable = |r: Result<_, LockError>| matches!(r, Err(LockError::Unavailable(_)));
    assert!(unavailable(locks.acquire("show", &request, "alice", LONG).await.map(|_| ())));
    assert!(unavailable(locks.release("show", &request, "alice").await.map(|_| ())));
    assert!(unavailable(locks.holders("show", &request).await.map(|_| ())));
}

/// Against a real Redis: `BOXOFFICE_TEST_REDIS_URL`, or a private `redis-server`. nextest's default
/// profile skips them by their `redis::` path; without the service they fail.
mod redis {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_seat_locks_keep_the_contract() {
        let (kv, prefix) = common::redis().await;
        conformance(Arc::new(RedisSeatLocks::new(&kv, &format!("{prefix}seat:")))).await;
    }

    /// A hung Redis answers `Unavailable` within `redis.timeout_ms` (booking then goes on with
    /// the database alone); without the timeout each call would wait out the whole pause.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_seat_locks_give_up_on_a_hung_server() {
        let redis = common::PrivateRedis::start().await;
        let kv = RedisKv::connect(&redis.url(), 2, "x:", Duration::from_millis(200)).unwrap();
        let locks = RedisSeatLocks::new(&kv, "x:");
        let request = seats(&["A1"]);
        assert_eq!(locks.acquire("show", &request, "alice", LONG).await.unwrap(), Acquired::Held);
        redis.pause(Duration::from_secs(120)).await;
        let unavailable = |r: Result<_, LockError>| matches!(r, Err(LockError::Unavailable(_)));
        assert!(unavailable(locks.acquire("show", &request, "bob", LONG).await.map(|_| ())));
        assert!(unavailable(locks.release("show", &request, "alice").await.map(|_| ())));
        assert!(unavailable(locks.holders("show", &request).await.map(|_| ())));
    }
}
