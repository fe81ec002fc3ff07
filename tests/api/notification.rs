//! The notification route and what fills it, black-box: the messages of a book → pay →
//! cancel flow (created, payment failed, confirmed, cancelled, refund), an expired hold, one
//! notification per event however often it is delivered, ownership and pagination.
//!
//! Apps here send email with the single binary's default adapter (`file`); what the outbox
//! holds is tested in `notification_file.rs`, SMTP in `notification_smtp.rs`. Nothing sleeps
//! for a fixed time: notifications are polled for with a deadline.

use std::time::{Duration as StdDuration, Instant};

use booking::api::{BookingCancelled, BookingEvent, BookingId, CancelReason, Ticket};
use movie::api::{SeatId, ShowtimeId};
use platform::events::Envelope;
use platform::identity::UserId;
use serde_json::{Value, json};

use crate::fixtures::{DECLINED, GOOD, ROW_A, book, cancel_ok, card, customer, pay_ok, screening, wait_for_status};
use crate::helpers::{Api, Backend, assert_invalid, assert_problem, counter, spawn_app, spawn_app_with, time};

pub const NOTIFICATIONS: &str = "/api/notifications/notifications";

/// Where things that happen in the background must have happened by.
const SETTLE: StdDuration = StdDuration::from_secs(15);

on_both_backends!(
    a_full_flow_notifies_its_user_of_every_step_and_no_one_else,
    an_expired_hold_notifies_that_the_booking_expired,
    an_event_delivered_twice_makes_one_notification,
    the_list_is_paginated_and_needs_a_token,
);

/// The caller's notifications page (must answer 200).
pub async fn notifications(app: &Api, token: &str, query: &str) -> Value {
    let res = app.get_as(&format!("{NOTIFICATIONS}{query}"), token).await;
    assert_eq!(res.status(), 200, "GET notifications{query}");
    res.json().await.unwrap()
}

/// Polls the caller's notifications until `done` holds of the items (newest first), for at
/// most `SETTLE`; returns them.
pub async fn wait_for_notifications(app: &Api, token: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let page = notifications(app, token, "?per_page=100").await;
        let items = page["items"].as_array().unwrap().clone();
        if done(&items) {
            return items;
        }
        assert!(Instant::now() < deadline, "notifications still {items:#?}");
        tokio::time::sleep(StdDuration::from_millis(25)).await;
    }
}

/// The kinds of `items`, oldest first.
pub fn kinds(items: &[Value]) -> Vec<&str> {
    items.iter().rev().map(|n| n["kind"].as_str().unwrap()).collect()
}

fn uuid(v: &Value) -> uuid::Uuid {
    v.as_str().unwrap().parse().unwrap()
}

/// Whether every notification of `items` is `sent`.
pub fn all_sent(items: &[Value]) -> bool {
    items.iter().all(|n| n["status"] == "sent")
}

async fn a_full_flow_notifies_its_user_of_every_step_and_no_one_else(backend: Backend) {
    let app = spawn_app(backend).await;
    let screen = screening(&app, ROW_A).await;
    let ada = customer(&app, "ada").await;
    let bob = customer(&app, "bob").await;

    // booking.created and payment.failed come from two modules' outboxes, in no set order:
    // like a person, the test pays once the booking's message is there, and retries once the
    // decline's is.
    let booking = book(&app, &ada.token, &screen, &["A1", "A2"]).await;
    wait_for_notifications(&app, &ada.token, |items| items.len() == 1).await;
    let declined = pay_ok(&app, &ada.token, &card(&booking, DECLINED)).await;
    assert_eq!(declined["status"], "failed");
    wait_for_notifications(&app, &ada.token, |items| items.len() == 2).await;
    let paid = pay_ok(&app, &ada.token, &card(&booking, GOOD)).await;
    assert_eq!(paid["status"], "completed");
    wait_for_status(&app, &ada.token, booking["id"].as_str().unwrap(), "confirmed", SETTLE).await;
    cancel_ok(&app, &ada.token, booking["id"].as_str().unwrap()).await;

    let expected = ["booking_created", "payment_failed", "booking_confirmed", "booking_cancelled", "payment_refunded"];
    let items =
        wait_for_notifications(&app, &ada.token, |items| items.len() == expected.len() && all_sent(items)).await;
    // booking.cancelled and payment.refunded come from two modules: their order may vary.
    let mut seen = kinds(&items);
    seen[3..].sort_unstable();
    assert_eq!(seen, expected, "{items:#?}");
    for n in &items {
        let keys: Vec<&str> = n.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 7, "{n}");
        assert_eq!(n["channel"], "email", "{n}");
        assert!(!n["subject"].as_str().unwrap().is_empty(), "{n}");
        assert!(time(&n["sent_at"]) >= time(&n["created_at"]), "{n}");
    }
    // Newest first.
    for pair in items.windows(2) {
        assert!(time(&pair[0]["created_at"]) >= time(&pair[1]["created_at"]), "{items:#?}");
    }
    let confirmed = items.iter().find(|n| n["kind"] == "booking_confirmed").unwrap();
    assert!(confirmed["subject"].as_str().unwrap().contains("Booked Solid"), "{confirmed}");

    // Another user sees none of them.
    let page = notifications(&app, &bob.token, "").await;
    assert_eq!(page["items"], json!([]));
    assert_eq!(page["total"], 0);
}

async fn an_expired_hold_notifies_that_the_booking_expired(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.sections.booking.hold_ttl_seconds = 1).await;
    let screen = screening(&app, ROW_A).await;
    let cy = customer(&app, "cyra").await;
    let booking = book(&app, &cy.token, &screen, &["A3"]).await;
    wait_for_status(&app, &cy.token, booking["id"].as_str().unwrap(), "expired", SETTLE).await;
    let items = wait_for_notifications(&app, &cy.token, |items| items.len() == 2 && all_sent(items)).await;
    assert_eq!(kinds(&items), ["booking_created", "booking_expired"], "{items:#?}");
}

async fn an_event_delivered_twice_makes_one_notification(backend: Backend) {
    let app = spawn_app(backend).await;
    let screen = screening(&app, ROW_A).await;
    let di = customer(&app, "dina").await;
    let queue = format!("queue=\"{}{}\"", app.settings.events.queue_prefix, notification::api::QUEUE.name);
    let handled = counter(&app.metrics().await, "events_consumed_total", &queue);
    let booking = book(&app, &di.token, &screen, &["A4"]).await;
    wait_for_notifications(&app, &di.token, |items| items.len() == 1).await;

    // An admin cancellation, as booking announced it before issue 12 (no amount, no ticket:
    // such events may still wait in outboxes), delivered twice (a redelivery).
    let cancelled = BookingCancelled {
        booking_id: BookingId(uuid(&booking["id"])),
        user_id: UserId(di.id.parse().unwrap()),
        showtime_id: ShowtimeId(uuid(&screen.showtime["id"])),
        seat_ids: vec![SeatId(screen.seat_id("A4").parse().unwrap())],
        reason: CancelReason::Admin,
        was_paid: false,
        amount_cents: None,
        ticket: Ticket::default(),
    };
    let event = Envelope::of(&BookingEvent::Cancelled(cancelled)).unwrap();
    app.bus.publish(&event).await.unwrap();
    app.bus.publish(&event).await.unwrap();
    // Every delivery handled: booking.created and the cancellation twice. (The counter is the
    // process's: on SQLite other tests' queues share the name, but there publish returns once
    // the in-process bus has handled the event.)
    app.wait_for_counter("events_consumed_total", &queue, handled + 3.0, SETTLE).await;
    let items = wait_for_notifications(&app, &di.token, |items| items.len() >= 2 && all_sent(items)).await;
    assert_eq!(kinds(&items), ["booking_created", "booking_cancelled"], "{items:#?}");
}

async fn the_list_is_paginated_and_needs_a_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let screen = screening(&app, ROW_A).await;
    let eve = customer(&app, "eve").await;
    for label in ["A1", "A2", "A3"] {
        book(&app, &eve.token, &screen, &[label]).await;
    }
    let all = wait_for_notifications(&app, &eve.token, |items| items.len() == 3).await;
    let first = notifications(&app, &eve.token, "?per_page=2").await;
    assert_eq!(
        (first["page"].as_u64(), first["per_page"].as_u64(), first["total"].as_u64()),
        (Some(1), Some(2), Some(3))
    );
    let second = notifications(&app, &eve.token, "?per_page=2&page=2").await;
    let paged: Vec<&Value> =
        first["items"].as_array().unwrap().iter().chain(second["items"].as_array().unwrap()).collect();
    let ids = |items: Vec<&Value>| items.iter().map(|n| n["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    assert_eq!(ids(paged), ids(all.iter().collect()));

    assert_invalid(app.get_as(&format!("{NOTIFICATIONS}?per_page=0"), &eve.token).await, &["per_page"], "per_page 0")
        .await;
    assert_invalid(app.get_as(&format!("{NOTIFICATIONS}?page=0"), &eve.token).await, &["page"], "page 0").await;
    assert_problem(app.get_as(&format!("{NOTIFICATIONS}?per_page=x"), &eve.token).await, 422).await;
    assert_problem(app.client.get(app.url(NOTIFICATIONS)).send().await.unwrap(), 401).await;
    assert_problem(app.get_as(NOTIFICATIONS, "not-a-token").await, 401).await;
}
