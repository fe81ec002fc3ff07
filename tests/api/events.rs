//! The event backbone as an operator meets it: dead letters kept durably, listed and replayed
//! (admin route and `boxoffice events dead-letters`), and queues declared before anything is
//! published, so a consumer that starts later misses nothing.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use boxoffice::settings::Module;
use platform::events::Envelope;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, assert_problem, start, test_settings};

/// A `booking.cancelled` no consumer can read: every queue bound to it dead-letters it.
fn poison() -> Envelope {
    Envelope::new("booking.cancelled", &json!({"booking_id": "not a uuid", "reason": "user"})).unwrap()
}

/// The dead letters the admin route lists for `event_id`, once there are `expected` of them.
async fn wait_for_dead(app: &TestApp, admin: &str, event_id: &str, expected: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let res = app.get_as("/api/events/dead-letters", admin).await;
        assert_eq!(res.status(), 200);
        let letters: Vec<Value> = res.json().await.unwrap();
        let of_event: Vec<Value> =
            letters.into_iter().filter(|l| l["event_id"] == event_id && l["replay_requested_at"].is_null()).collect();
        if of_event.len() == expected {
            return of_event;
        }
        assert!(Instant::now() < deadline, "{} dead letters of {event_id}, expected {expected}", of_event.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `boxoffice events dead-letters …` on the app's storage and bus.
fn cli(app: &TestApp, args: &[&str]) -> String {
    let s = &app.settings;
    let out = Command::new(env!("CARGO_BIN_EXE_boxoffice"))
        .args(["events", "dead-letters"])
        .args(args)
        .env_remove("BOXOFFICE_PROFILE")
        .env("BOXOFFICE__DATA_DIR", &app.data_dir)
        .env("BOXOFFICE__DATABASE__URL", s.database.url.expose())
        .env("BOXOFFICE__DATABASE__SCHEMA_PREFIX", &s.database.schema_prefix)
        .env("BOXOFFICE__REDIS__URL", s.redis.url.expose())
        .env("BOXOFFICE__EVENTS__AMQP_URL", s.events.amqp_url.expose())
        .env("BOXOFFICE__EVENTS__EXCHANGE", &s.events.exchange)
        .env("BOXOFFICE__EVENTS__QUEUE_PREFIX", &s.events.queue_prefix)
        .env("BOXOFFICE__LOG__LEVEL", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{args:?}: {}{stdout}", String::from_utf8_lossy(&out.stderr));
    stdout
}

async fn a_dead_letter_is_kept_across_a_restart_listed_and_replayed(backend: Backend) {
    let data = Arc::new(tempfile::TempDir::new().unwrap());
    let mut settings = test_settings(&backend, data.path());
    settings.events.max_attempts = 2;
    settings.events.first_backoff_ms = 1;
    let app = start(settings.clone(), data.clone(), Arc::new(|_| {})).await;
    let admin = app.admin_token().await;
    let event = poison();
    let event_id = event.event_id.to_string();
    app.bus.publish(&event).await.expect("taken: handled or durably dead-lettered");
    let dead = wait_for_dead(&app, &admin, &event_id, 3).await;
    let mut queues: Vec<String> = dead.iter().map(|l| l["queue"].as_str().unwrap().to_owned()).collect();
    queues.sort();
    let prefix = settings.events.queue_prefix.clone();
    assert_eq!(
        queues,
        [format!("{prefix}movie_queue"), format!("{prefix}notification_queue"), format!("{prefix}payment_queue")]
    );
    assert!(dead.iter().all(|l| l["routing_key"] == "booking.cancelled" && l["event"]["booking_id"] == "not a uuid"));
    assert!(dead.iter().all(|l| l["attempts"] == 2), "{dead:?}");

    // Admins only.
    let customer = app.customer_token("dora").await;
    assert_problem(app.get_as("/api/events/dead-letters", &customer).await, 403).await;
    let anonymous = app.client.get(app.url("/api/events/dead-letters")).send().await.unwrap();
    assert_problem(anonymous, 401).await;

    // A restart keeps them (the events store in process; `<queue>.dlq` on RabbitMQ).
    drop(app);
    let app = start(settings, data, Arc::new(|_| {})).await;
    wait_for_dead(&app, &admin, &event_id, 3).await;
    let listed = cli(&app, &["list"]);
    assert_eq!(listed.lines().filter(|l| l.contains(&event_id)).count(), 3, "{listed}");

    // Replayed to every queue where it is dead: still unreadable, it comes back dead.
    let dead_lettered = format!("queue=\"{prefix}payment_queue\"");
    let before = crate::helpers::counter(&app.metrics().await, "events_dead_lettered_total", &dead_lettered);
    let res = app
        .send_as(reqwest::Method::POST, &format!("/api/events/dead-letters/{event_id}/replay"), &admin, &json!({}))
        .await;
    assert_eq!(res.status(), 202);
    assert_eq!(res.json::<Value>().await.unwrap()["requested"], 3);
    app.wait_for_counter("events_dead_lettered_total", &dead_lettered, before + 1.0, Duration::from_secs(20)).await;
    wait_for_dead(&app, &admin, &event_id, 3).await;

    let unknown = uuid::Uuid::new_v4();
    let res = app
        .send_as(reqwest::Method::POST, &format!("/api/events/dead-letters/{unknown}/replay"), &admin, &json!({}))
        .await;
    assert_problem(res, 404).await;
    assert!(cli(&app, &["replay", "--all"]).starts_with("3 dead letter(s)"));
    app.wait_for_counter("events_dead_lettered_total", &dead_lettered, before + 2.0, Duration::from_secs(20)).await;
}

on_both_backends!(
    a_dead_letter_is_kept_across_a_restart_listed_and_replayed;
    postgres only: a_consumer_that_starts_after_the_publisher_gets_what_was_published_before,
);

/// Booking publishes while no payment or notification process has ever run: their queues,
/// declared by booking's process at start, keep the events until they start.
async fn a_consumer_that_starts_after_the_publisher_gets_what_was_published_before(backend: Backend) {
    let token = platform::config::Secret::new("a service token of at least thirty-two characters");
    let data = Arc::new(tempfile::TempDir::new().unwrap());
    let mut first = test_settings(&backend, data.path());
    first.modules = Some(vec![Module::Auth, Module::Movie, Module::Booking]);
    first.services.token = token.clone();
    let publisher = start(first.clone(), data, Arc::new(|_| {})).await;
    let screen = crate::fixtures::screening(&publisher, crate::fixtures::ROW_A).await;
    let customer = crate::fixtures::customer(&publisher, "early").await;
    crate::fixtures::book(&publisher, &customer.token, &screen, &["A1"]).await;
    let published = "routing_key=\"booking.created\"";
    publisher.wait_for_counter("events_published_total", published, 1.0, Duration::from_secs(20)).await;

    let data = Arc::new(tempfile::TempDir::new().unwrap());
    let mut second = test_settings(&backend, data.path());
    second.modules = Some(vec![Module::Payment, Module::Notification]);
    second.database.schema_prefix.clone_from(&first.database.schema_prefix);
    second.events = first.events.clone();
    second.services.token = token;
    for module in [Module::Auth, Module::Movie, Module::Booking] {
        second.services.set(module, publisher.address.clone());
    }
    let consumer = start(second, data, Arc::new(|_| {})).await;
    let queue = format!("queue=\"{}notification_queue\"", first.events.queue_prefix);
    consumer.wait_for_counter("events_consumed_total", &queue, 1.0, Duration::from_secs(20)).await;
}
