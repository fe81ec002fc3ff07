//! Failed-login limits as an attacker meets them (issue 11, findings 5–7): guesses are
//! counted before they are verified, so concurrency cannot exceed a budget; an attacker can
//! neither guess without bound nor lock the owner out; a hung Redis neither stalls logins nor
//! lifts the limits. Client addresses are set through a trusted `X-Forwarded-For`.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use platform::config::Secret;
use serde_json::Value;

use crate::fixtures::{ROW_A, book, customer, post_book, screening};
use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, Backend, TestApp, assert_problem, spawn_app_with};
use crate::private_redis::PrivateRedis;

on_both_backends!(
    concurrent_guesses_on_one_account_verify_at_most_its_budget,
    concurrent_guesses_from_one_address_verify_at_most_its_budget,
    an_attacker_elsewhere_can_neither_guess_nor_lock_the_owner_out,
    a_mistyping_owner_waits_seconds_not_the_whole_window,
    failures_from_a_shared_address_leave_its_known_users_alone,
);

/// The tests that hang a redis-server of their own, on both backends: they need `redis-server`
/// installed, so nextest's default profile skips them by their `redis::` path.
mod redis {
    use super::{booking_and_the_catalog_go_on_when_redis_hangs, logins_stay_limited_when_redis_hangs};

    on_both_backends!(logins_stay_limited_when_redis_hangs, booking_and_the_catalog_go_on_when_redis_hangs);
}

/// A wait no test outlives: a refused attempt stays refused for the whole test.
const LONG_WAIT_SECONDS: u64 = 3600;

/// Per-address budget `limit`, with the account budgets out of reach and a long first wait.
fn only_the_address_budget(s: &mut boxoffice::settings::Settings, limit: u64) {
    s.sections.auth.login_max_failures_per_account_address = 100;
    s.sections.auth.login_max_failures_per_account = 100;
    s.sections.auth.login_max_failures_per_address = limit;
    s.sections.auth.login_first_wait_seconds = LONG_WAIT_SECONDS;
}

async fn login_from(app: &TestApp, address: &str, username: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/auth/token"))
        .header("x-forwarded-for", address)
        .form(&[("username", username), ("password", password)])
        .send()
        .await
        .unwrap()
}

/// The statuses of `answers`, after checking that every 429 is a problem with `Retry-After`.
async fn statuses(answers: Vec<reqwest::Response>) -> Vec<u16> {
    let mut statuses = Vec::new();
    for res in answers {
        let status = res.status().as_u16();
        if status == 429 {
            let retry_after: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            assert!(retry_after >= 1, "{retry_after}");
            assert_problem(res, 429).await;
        }
        statuses.push(status);
    }
    statuses
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

async fn concurrent_guesses_on_one_account_verify_at_most_its_budget(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.sections.auth.login_max_failures_per_account_address = 5;
        s.sections.auth.login_first_wait_seconds = LONG_WAIT_SECONDS;
    })
    .await;
    app.register("olga").await;
    // 60 guesses at once, the right password among them.
    let guesses: Vec<String> =
        (0..60).map(|i| if i == 30 { "correct horse".to_owned() } else { format!("guess {i}") }).collect();
    let answers = join_all(guesses.iter().map(|password| app.login("olga", password))).await;
    let statuses = statuses(answers).await;
    let (wrong, right) = (count(&statuses, 401), count(&statuses, 200));
    assert!(wrong <= 5, "at most the budget of wrong guesses is verified: {statuses:?}");
    assert!(right <= 1 && wrong + right >= 5, "the budget is used: {statuses:?}");
    assert_eq!(count(&statuses, 429), 60 - wrong - right, "{statuses:?}");
}

async fn concurrent_guesses_from_one_address_verify_at_most_its_budget(backend: Backend) {
    let app = spawn_app_with(backend, |s| only_the_address_budget(s, 20)).await;
    let names: Vec<String> = (0..10).map(|i| format!("sprayed{i}")).collect();
    for name in &names {
        app.register(name).await;
    }
    // 150 guesses at once over 10 accounts, from one address.
    let answers = join_all((0..150).map(|i| app.login(&names[i % 10], "guess guess"))).await;
    let statuses = statuses(answers).await;
    assert_eq!(count(&statuses, 401), 20, "exactly the address's budget is verified: {statuses:?}");
    assert_eq!(count(&statuses, 429), 130, "{statuses:?}");
}

async fn an_attacker_elsewhere_can_neither_guess_nor_lock_the_owner_out(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.server.trust_forwarded_for = true;
        s.sections.auth.login_max_failures_per_account_address = 5;
        s.sections.auth.login_max_failures_per_account = 20;
        s.sections.auth.login_first_wait_seconds = LONG_WAIT_SECONDS;
    })
    .await;
    const OFFICE: &str = "198.51.100.7";
    assert_eq!(login_from(&app, OFFICE, ADMIN_EMAIL, ADMIN_PASSWORD).await.status(), 200);

    // The attacker guesses the admin's password from 30 addresses, 6 guesses each.
    let mut answers = Vec::new();
    for address in 1..=30 {
        for guess in 0..6 {
            answers
                .push(login_from(&app, &format!("203.0.113.{address}"), ADMIN_EMAIL, &format!("guess {guess}")).await);
        }
    }
    let statuses = statuses(answers).await;
    assert_eq!(count(&statuses, 401), 20, "the account's budget bounds guesses from all addresses: {statuses:?}");
    assert_eq!(count(&statuses, 429), 180 - 20);
    // Whatever the attacker does, the admin still logs in from the office.
    assert_eq!(login_from(&app, OFFICE, ADMIN_EMAIL, ADMIN_PASSWORD).await.status(), 200);
    // And even the right password is refused to the attacker's addresses.
    assert_problem(login_from(&app, "203.0.113.1", ADMIN_EMAIL, ADMIN_PASSWORD).await, 429).await;
}

async fn a_mistyping_owner_waits_seconds_not_the_whole_window(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.sections.auth.login_max_failures_per_account_address = 2;
        s.sections.auth.login_first_wait_seconds = 1;
        s.sections.auth.login_failure_window_seconds = 3600;
    })
    .await;
    app.register("pia").await;
    assert_problem(app.login("pia", "wrong horse").await, 401).await;
    assert_problem(app.login("pia", "wronger horse").await, 401).await;
    let refused = app.login("pia", "correct horse").await;
    let retry_after: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert_eq!(retry_after, 1, "the first wait, not the window");
    assert_problem(refused, 429).await;
    // Refused attempts are not counted: once the wait is over, the right password gets in.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let res = app.login("pia", "correct horse").await;
        if res.status() == 200 {
            break;
        }
        assert_problem(res, 429).await;
        assert!(Instant::now() < deadline, "the wait never ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn failures_from_a_shared_address_leave_its_known_users_alone(backend: Backend) {
    // No trusted X-Forwarded-For: every client shares the gateway's address.
    let app = spawn_app_with(backend, |s| only_the_address_budget(s, 5)).await;
    app.register("ivan").await;
    assert_eq!(app.login("ivan", "correct horse").await.status(), 200);
    // Someone behind the same gateway sprays guesses over many names.
    let mut answers = Vec::new();
    for i in 0..10 {
        answers.push(app.login(&format!("victim{i}"), "guess guess").await);
    }
    let statuses = statuses(answers).await;
    assert_eq!(count(&statuses, 401), 5, "{statuses:?}");
    // Users who have logged in through the gateway before are not affected.
    assert_eq!(app.login("ivan", "correct horse").await.status(), 200);
    assert_eq!(app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.status(), 429, "a first login from there waits");
}

/// An app whose Redis is a private server, hung (paused) once `pause` is called.
async fn app_on_private_redis(
    backend: Backend,
    configure: impl FnOnce(&mut boxoffice::settings::Settings),
) -> (TestApp, PrivateRedis) {
    let redis = PrivateRedis::start().await;
    let url = redis.url();
    let app = spawn_app_with(backend, |s| {
        s.redis.url = Secret::new(url);
        s.redis.timeout_ms = 200;
        configure(s);
    })
    .await;
    (app, redis)
}

async fn logins_stay_limited_when_redis_hangs(backend: Backend) {
    let (app, redis) = app_on_private_redis(backend, |s| {
        s.sections.auth.login_max_failures_per_account_address = 3;
        s.sections.auth.login_first_wait_seconds = LONG_WAIT_SECONDS;
    })
    .await;
    app.register("uma").await;
    assert_eq!(app.login("uma", "correct horse").await.status(), 200);
    redis.pause(Duration::from_secs(300)).await;
    // Logins go on, limited by this process's own limiter: a hung Redis lifts no limit.
    assert_eq!(app.login("uma", "correct horse").await.status(), 200);
    for guess in ["guess 1", "guess 2", "guess 3"] {
        assert_problem(app.login("uma", guess).await, 401).await;
    }
    assert_problem(app.login("uma", "guess 4").await, 429).await;
    assert_problem(app.login("uma", "correct horse").await, 429).await;
    let metrics = app.metrics().await;
    assert!(crate::helpers::counter(&metrics, "auth_login_limiter_fallbacks_total", "") >= 6.0, "{metrics}");
}

async fn booking_and_the_catalog_go_on_when_redis_hangs(backend: Backend) {
    let (app, redis) = app_on_private_redis(backend, |_| {}).await;
    let screen = screening(&app, ROW_A).await;
    let (ann, bob) = (customer(&app, "ann").await, customer(&app, "bob").await);
    redis.pause(Duration::from_secs(300)).await;
    // Seat locks are skipped; the booking database's unique key still gives a seat once.
    book(&app, &ann.token, &screen, &["A1"]).await;
    assert_problem(post_book(&app, &bob.token, &screen.request(&["A1"])).await, 409).await;
    // The catalog cache is skipped: reads come from the database.
    let movies: Value = app.client.get(app.url("/api/movies/movies")).send().await.unwrap().json().await.unwrap();
    assert_eq!(movies["total"], 1);
    // Readiness names Redis.
    let ready = app.client.get(app.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let report: Value = ready.json().await.unwrap();
    assert_ne!(report["checks"]["redis"], "ok", "{report}");
}
