//! Notification as a process of its own: it hears booking's and payment's events over RabbitMQ,
//! reads screenings from movie and users' addresses from auth over REST, the latter through
//! auth's internal route with the deployment's service token; a process holding the wrong
//! token reads no address and sends nothing. And the settings that such a process needs.

use std::sync::Arc;
use std::time::Duration;

use auth::api::{AuthApi, AuthError};
use auth::client::AuthClient;
use boxoffice::settings::{Module, Settings};
use notification::service::channel::{EmailAdapter, SmtpTls};
use platform::config::Secret;
use platform::identity::UserId;
use reqwest::Method;
use serde_json::{Value, json};

use crate::fixtures::{GOOD, ROW_A, ROWS_A_AND_B, book, cancel_ok, card, customer, pay_ok, screening, wait_for_status};
use crate::helpers::{Backend, TestApp, assert_problem, counter, start, test_settings};
use crate::notification::{NOTIFICATIONS, all_sent, kinds, notifications, wait_for_notifications};
use crate::smtp::SmtpSink;

on_postgres!(
    notification_runs_as_its_own_process_and_reads_addresses_from_auth,
    mail_waits_for_an_unreachable_auth_and_is_written_when_auth_is_back,
    two_notification_replicas_send_each_message_once,
    mail_names_the_screening_without_reading_movie,
);

/// How long anything in the background (events crossing RabbitMQ, retries) may take.
const PATIENCE: Duration = Duration::from_secs(30);

/// The deployment's service token, shared by auth's process and notification's.
const TOKEN: &str = "the-deployment-service-token-0123456789";
/// A token of the right length that is not the deployment's.
const WRONG_TOKEN: &str = "not-the-deployment-service-token-987654321";

/// A process serving notification alone, on `a`'s database, Redis and bus, reaching auth and
/// movie at `a` and presenting `token` to auth's internal routes. `configure` changes the
/// rest (e.g. storage and queues of its own).
async fn notification_process(a: &TestApp, token: &str, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let data = Arc::new(tempfile::TempDir::new().unwrap());
    let mut settings = a.settings.clone();
    settings.data_dir = data.path().to_path_buf();
    settings.modules = Some(vec![Module::Notification]);
    settings.server.bind = "127.0.0.1:0".parse().unwrap();
    settings.services.set(Module::Auth, a.address.clone());
    settings.services.set(Module::Movie, a.address.clone());
    settings.services.token = Secret::new(token);
    configure(&mut settings);
    settings.validate().unwrap();
    start(settings, data, Arc::new(|_| {})).await
}

/// Process A: auth, movie, booking and payment, holding the service token.
async fn everything_but_notification(backend: &Backend) -> TestApp {
    let data = Arc::new(tempfile::TempDir::new().unwrap());
    let mut settings = test_settings(backend, data.path());
    settings.modules = Some(vec![Module::Auth, Module::Movie, Module::Booking, Module::Payment]);
    settings.services.token = Secret::new(TOKEN);
    settings.validate().unwrap();
    start(settings, data, Arc::new(|_| {})).await
}

async fn notification_runs_as_its_own_process_and_reads_addresses_from_auth(backend: Backend) {
    let a = everything_but_notification(&backend).await;

    // Process B: notification alone, on A's database, Redis and bus, with the same token.
    // Started before anything happens at A: its queue must exist to receive A's events.
    let b = notification_process(&a, TOKEN, |_| {}).await;

    // Each serves only its own routes.
    assert_problem(a.send_as(Method::GET, NOTIFICATIONS, "no token", &json!({})).await, 404).await;
    assert_problem(b.post_json("/api/auth/register", &json!({})).await, 404).await;
    let doc: Value = b.client.get(b.url("/api/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(doc["paths"].get(NOTIFICATIONS).is_some(), "{}", doc["paths"]);
    assert!(doc["paths"].get("/api/auth/register").is_none(), "{}", doc["paths"]);
    let doc: Value = a.client.get(a.url("/api/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(doc["paths"].get(NOTIFICATIONS).is_none(), "{}", doc["paths"]);
    assert!(doc["paths"].get("/internal/auth/users/{id}").is_none(), "internal routes are not documented");

    // Book → pay → confirmed → cancel (and refunded), all at A.
    let screen = screening(&a, ROW_A).await;
    let nora = customer(&a, "nora").await;
    let otto = customer(&a, "otto").await;
    let booking = book(&a, &nora.token, &screen, &["A1"]).await;
    let booking_id = booking["id"].as_str().unwrap();
    let paid = pay_ok(&a, &nora.token, &card(&booking, GOOD)).await;
    assert_eq!(paid["status"], "completed", "{paid}");
    wait_for_status(&a, &nora.token, booking_id, "confirmed", PATIENCE).await;
    cancel_ok(&a, &nora.token, booking_id).await;

    // B made and sent a message of every step, to the user behind A's token.
    let expected = ["booking_created", "booking_confirmed", "booking_cancelled", "payment_refunded"];
    let items = wait_for_notifications(&b, &nora.token, |items| items.len() == expected.len() && all_sent(items)).await;
    // booking.cancelled and payment.refunded come from two modules: their order may vary;
    // a confirmation is written only once its booking's creation was heard.
    let mut seen = kinds(&items);
    seen[2..].sort_unstable();
    let mut in_order = expected;
    in_order[2..].sort_unstable();
    assert_eq!(seen, in_order, "{items:#?}");
    assert_eq!(kinds(&items)[..2], ["booking_created", "booking_confirmed"], "{items:#?}");
    for n in &items {
        assert_eq!(n["channel"], "email", "{n}");
    }
    // The screening, read from A's movie.
    let confirmed = items.iter().find(|n| n["kind"] == "booking_confirmed").unwrap();
    assert!(confirmed["subject"].as_str().unwrap().contains("Booked Solid"), "{confirmed}");
    let refunded = items.iter().find(|n| n["kind"] == "payment_refunded").unwrap();
    assert!(refunded["subject"].as_str().unwrap().contains("12.00 USD"), "{refunded}");

    // Another user sees none of them at B.
    let page = notifications(&b, &otto.token, "").await;
    assert_eq!((&page["items"], &page["total"]), (&json!([]), &json!(0)), "{page}");

    // Auth's internal route: the deployment's token reads an address; no token, or another,
    // reads nothing.
    let user = format!("/internal/auth/users/{}", nora.id);
    assert_problem(a.client.get(a.url(&user)).send().await.unwrap(), 401).await;
    assert_problem(a.get_as(&user, WRONG_TOKEN).await, 401).await;
    assert_problem(a.get_as(&user, &nora.token).await, 401).await;
    let res = a.get_as(&user, TOKEN).await;
    assert_eq!(res.status(), 200, "GET {user} with the service token");
    let account: Value = res.json().await.unwrap();
    assert_eq!((&account["email"], &account["username"]), (&json!("nora@example.com"), &json!("nora")), "{account}");
    let nora_id = UserId(nora.id.parse().unwrap());
    let right = AuthClient::new(&a.address, reqwest::Client::new(), Secret::new(TOKEN));
    assert_eq!(right.user(nora_id).await.unwrap().email, "nora@example.com");
    assert!(matches!(right.user(UserId(uuid::Uuid::new_v4())).await, Err(AuthError::NotFound)));
    let wrong = AuthClient::new(&a.address, reqwest::Client::new(), Secret::new(WRONG_TOKEN));
    match wrong.user(nora_id).await {
        Err(AuthError::Unauthenticated(_)) => {}
        other => panic!("expected Unauthenticated, got {other:?}"),
    }

    // B': notification with the wrong token, on tables and a queue of its own (so it hears
    // every event, beside B), giving a message up after two tries.
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let queue_prefix = format!("test.{unique}.");
    let b_wrong = notification_process(&a, WRONG_TOKEN, |s| {
        s.database.schema_prefix = format!("t_{}_", &unique[..12]);
        s.events.queue_prefix.clone_from(&queue_prefix);
        s.sections.notification.max_attempts = 2;
        s.sections.notification.retry_first_ms = 50;
    })
    .await;

    // Another booking at A: B writes to its user; B' records the event but cannot learn the
    // address, so its message ends failed (visible in the list and the metrics) and no event is
    // dead-lettered.
    let failed_before = counter(&b_wrong.metrics().await, "notification_deliveries_total", "outcome=\"failed\"");
    book(&a, &nora.token, &screen, &["A2"]).await;
    let items = wait_for_notifications(&b, &nora.token, |items| items.len() == 5 && all_sent(items)).await;
    assert_eq!(items[0]["kind"], "booking_created", "{items:#?}");
    let items =
        wait_for_notifications(&b_wrong, &nora.token, |items| items.len() == 1 && items[0]["status"] == "failed").await;
    assert_eq!(items[0]["kind"], "booking_created", "{items:#?}");
    assert_eq!(items[0]["sent_at"], Value::Null, "{items:#?}");
    let metrics = b_wrong.metrics().await;
    assert!(counter(&metrics, "notification_deliveries_total", "outcome=\"failed\"") >= failed_before + 1.0);
    let dead_letters = format!("queue=\"{queue_prefix}notification_queue\"");
    assert_eq!(counter(&metrics, "events_dead_lettered_total", &dead_letters), 0.0);
}

#[test]
fn a_notification_process_without_auth_needs_a_service_token_of_32_characters() {
    let data = tempfile::TempDir::new().unwrap();
    let mut settings = test_settings(&Backend::Sqlite, data.path());
    // The single binary reads addresses in process: no token needed.
    settings.validate().unwrap();

    settings.modules = Some(vec![Module::Notification]);
    settings.services.set(Module::Auth, "http://127.0.0.1:8001");
    let error = settings.validate().unwrap_err();
    assert!(error.contains("services.token must be set"), "{error}");

    settings.services.token = Secret::new("x".repeat(31));
    let error = settings.validate().unwrap_err();
    assert!(error.contains("services.token must be at least 32 characters"), "{error}");
    assert!(!error.contains("services.token must be set"), "{error}");

    settings.services.token = Secret::new("x".repeat(32));
    settings.validate().unwrap();

    // Beside auth, notification needs none.
    settings.modules = Some(vec![Module::Auth, Module::Notification]);
    settings.services.token = Secret::new("");
    settings.validate().unwrap();
}

/// Booking's events carry the screening (issue 12): a notification process that cannot
/// reach movie still writes every message, naming the movie (for a refund, as
/// `booking.created` told it).
async fn mail_names_the_screening_without_reading_movie(backend: Backend) {
    let a = everything_but_notification(&backend).await;
    let b = notification_process(&a, TOKEN, |s| s.services.set(Module::Movie, "http://127.0.0.1:9")).await;
    let screen = screening(&a, ROW_A).await;
    let pia = customer(&a, "pia").await;
    let booking = book(&a, &pia.token, &screen, &["A2"]).await;
    let booking_id = booking["id"].as_str().unwrap();
    pay_ok(&a, &pia.token, &card(&booking, GOOD)).await;
    wait_for_status(&a, &pia.token, booking_id, "confirmed", PATIENCE).await;
    cancel_ok(&a, &pia.token, booking_id).await;

    let items = wait_for_notifications(&b, &pia.token, |items| items.len() == 4 && all_sent(items)).await;
    let mut seen = kinds(&items);
    seen.sort_unstable();
    assert_eq!(seen, ["booking_cancelled", "booking_confirmed", "booking_created", "payment_refunded"]);
    for n in &items {
        assert!(n["subject"].as_str().unwrap().contains("Booked Solid"), "{n}");
    }
}

async fn mail_waits_for_an_unreachable_auth_and_is_written_when_auth_is_back(backend: Backend) {
    let a = everything_but_notification(&backend).await;
    let screen = screening(&a, ROW_A).await;
    let olga = customer(&a, "olga").await;

    // B1 cannot reach auth: it records the event and retries writing the message.
    let retries_before = counter(&a.metrics().await, "notification_deliveries_total", "outcome=\"retry\"");
    let b1 = notification_process(&a, TOKEN, |s| {
        s.services.set(Module::Auth, "http://127.0.0.1:9");
        s.sections.notification.retry_first_ms = 50;
        s.sections.notification.retry_max_ms = 200;
    })
    .await;
    let booking = book(&a, &olga.token, &screen, &["A1"]).await;
    a.wait_for_counter("notification_deliveries_total", "outcome=\"retry\"", retries_before + 2.0, PATIENCE).await;
    // Booking went on regardless.
    assert_eq!(booking["status"], "pending");
    drop(b1);

    // B2, the same notification service once auth is reachable again: the message is written
    // and sent, once.
    let b2 = notification_process(&a, TOKEN, |_| {}).await;
    let items = wait_for_notifications(&b2, &olga.token, |items| items.len() == 1 && all_sent(items)).await;
    assert_eq!(kinds(&items), ["booking_created"], "{items:#?}");
    assert!(items[0]["subject"].as_str().unwrap().contains("Booked Solid"), "{items:#?}");
}

async fn two_notification_replicas_send_each_message_once(backend: Backend) {
    let a = everything_but_notification(&backend).await;
    let screen = screening(&a, ROWS_A_AND_B).await;
    let sink = SmtpSink::start().await;

    // Two replicas of one notification service: the same tables, the same queue (competing
    // consumers), one mail server.
    let replica = || {
        notification_process(&a, TOKEN, |s| {
            s.sections.notification.email = EmailAdapter::Smtp;
            s.sections.notification.smtp.host = "127.0.0.1".to_owned();
            s.sections.notification.smtp.port = sink.port();
            s.sections.notification.smtp.tls = SmtpTls::None;
        })
    };
    let (r1, r2) = (replica().await, replica().await);

    let petra = customer(&a, "petra").await;
    // Ten: one customer's unpaid seats of a showtime are capped at booking.max_held_seats_per_showtime.
    let labels: [&[&str]; 10] =
        [&["A1"], &["A2"], &["A3"], &["A4"], &["A5"], &["A6"], &["B1"], &["B2"], &["B3"], &["B4"]];
    futures_util::future::join_all(labels.iter().map(|label| book(&a, &petra.token, &screen, label))).await;

    let items = wait_for_notifications(&r1, &petra.token, |items| items.len() == labels.len() && all_sent(items)).await;
    sink.wait_for(labels.len(), PATIENCE).await;
    // Give a doubled send the time to arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = sink.messages();
    assert_eq!(received.len(), labels.len(), "one email per notification: {received:#?}");
    let mut subjects: Vec<&str> = received.iter().map(|m| m.email.subject.as_deref().unwrap()).collect();
    let mut listed: Vec<&str> = items.iter().map(|n| n["subject"].as_str().unwrap()).collect();
    subjects.sort_unstable();
    listed.sort_unstable();
    assert_eq!(subjects, listed);
    // Both replicas answer the same list.
    assert_eq!(notifications(&r2, &petra.token, "?per_page=100").await["total"], labels.len());
}
