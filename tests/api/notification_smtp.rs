//! Email over SMTP, black-box: apps configured with `notification.email = "smtp"` send to an
//! [`SmtpSink`] (a real SMTP server on loopback), and what the sink received is read back.
//!
//! - the confirmation is the ticket: to its user only (envelope and header), from
//!   `notification.from`, naming the movie, theater, start time, seats, booking and amount in
//!   both its text and its HTML part;
//! - a mail server that is down holds up nothing: the booking and payment flow answers as
//!   usual, the notifications stay `pending` while the delivery worker retries, and each is
//!   delivered exactly once when the server returns;
//! - a notification that cannot be delivered is `failed` after `notification.max_attempts`,
//!   and its booking is unaffected.
//!
//! Retries are shortened (`retry_first_ms` 100, `retry_max_ms` 400) so that they happen within
//! a test. Nothing sleeps for long: the sink, the notifications and the metrics are polled with
//! a deadline; the only fixed waits are short ones that give a wrong extra message, or a wrong
//! change of status, the time to show up.

use std::time::Duration;

use boxoffice::settings::Settings;
use notification::service::channel::{EmailAdapter, SmtpTls};
use serde_json::Value;

use crate::fixtures::{
    GOOD, PaidBesideAnother, ROW_A, ada_pays_beside_bob, book, card, customer, get_booking, pay_ok, screening,
    wait_for_status,
};
use crate::helpers::{Backend, TestApp, counter, spawn_app_with, time};
use crate::notification::{kinds, notifications, wait_for_notifications};
use crate::smtp::{Received, SmtpSink};

/// Where things that happen in the background must have happened by.
const SETTLE: Duration = Duration::from_secs(15);

/// Time given to a message or a status change that must not happen, to show up if it did.
const QUIET: Duration = Duration::from_millis(500);

/// The delivery worker's counter, labelled `kind`, `sender` and `outcome` (`sent`, `retry`,
/// `failed`).
const DELIVERIES: &str = "notification_deliveries_total";

on_both_backends!(
    the_confirmation_email_arrives_with_the_ticket,
    mail_waits_for_the_smtp_server_and_is_delivered_when_it_returns,
    a_notification_fails_after_the_configured_attempts,
);

/// Sends email through plain SMTP on `127.0.0.1:port`, retrying after 100 ms, 200 ms, then
/// every 400 ms.
fn smtp_on(s: &mut Settings, port: u16) {
    s.sections.notification.email = EmailAdapter::Smtp;
    s.sections.notification.smtp.host = "127.0.0.1".into();
    s.sections.notification.smtp.port = port;
    s.sections.notification.smtp.tls = SmtpTls::None;
    s.sections.notification.retry_first_ms = 100;
    s.sections.notification.retry_max_ms = 400;
}

/// `customer(app, name)`'s address.
fn email(username: &str) -> String {
    format!("{username}@example.com")
}

/// The address of a mailbox `Name <address>`, or the mailbox itself when it is bare.
fn address_of(mailbox: &str) -> &str {
    mailbox.rsplit_once('<').map_or(mailbox, |(_, rest)| rest.trim_end_matches('>'))
}

/// The messages whose envelope names `address` among its recipients.
fn addressed_to<'a>(messages: &'a [Received], address: &str) -> Vec<&'a Received> {
    messages.iter().filter(|m| m.rcpt_tos.iter().any(|r| r == address)).collect()
}

fn all_with_status(items: &[Value], status: &str) -> bool {
    items.iter().all(|n| n["status"] == status)
}

/// The subjects of `items` (notifications), sorted.
fn subjects(items: &[Value]) -> Vec<String> {
    sorted(items.iter().map(|n| n["subject"].as_str().unwrap().to_owned()))
}

/// The subjects of `messages`, sorted.
fn message_subjects(messages: &[&Received]) -> Vec<String> {
    sorted(messages.iter().map(|m| m.email.subject.clone().unwrap_or_else(|| panic!("no subject: {m:#?}"))))
}

fn sorted(items: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut items: Vec<String> = items.into_iter().collect();
    items.sort_unstable();
    items
}

/// The deliveries counted with `outcome` so far, over every kind and sender.
async fn deliveries(app: &TestApp, outcome: &str) -> f64 {
    counter(&app.metrics().await, DELIVERIES, &format!(r#"outcome="{outcome}""#))
}

/// Polls the metrics until the deliveries with `outcome` reach `at_least`, for at most `SETTLE`.
async fn wait_for_deliveries(app: &TestApp, outcome: &str, at_least: f64) {
    app.wait_for_counter(DELIVERIES, &format!(r#"outcome="{outcome}""#), at_least, SETTLE).await;
}

async fn the_confirmation_email_arrives_with_the_ticket(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app = spawn_app_with(backend, |s| smtp_on(s, sink.port())).await;
    // Another user's booking at the same time: his mail must not reach her, nor hers him.
    let PaidBesideAnother { screen, ada, booking, bob, bobs } = ada_pays_beside_bob(&app, SETTLE).await;
    let booking_id = booking["id"].as_str().unwrap();
    let bobs_id = bobs["id"].as_str().unwrap();

    // A notification is `sent` once the server accepted it: the sink has it by then.
    let items =
        wait_for_notifications(&app, &ada.token, |items| items.len() == 2 && all_with_status(items, "sent")).await;
    assert_eq!(kinds(&items), ["booking_created", "booking_confirmed"], "{items:#?}");
    for n in &items {
        assert!(time(&n["sent_at"]) >= time(&n["created_at"]), "{n}");
    }
    wait_for_notifications(&app, &bob.token, |items| items.len() == 1 && all_with_status(items, "sent")).await;
    sink.wait_for(3, SETTLE).await;
    tokio::time::sleep(QUIET).await;
    let messages = sink.messages();
    assert_eq!(messages.len(), 3, "{messages:#?}");

    // Created and confirmed, in whatever order they arrived: the confirmation is the message
    // with the subject that the confirmed notification lists.
    let confirmed = items.iter().find(|n| n["kind"] == "booking_confirmed").unwrap();
    let tickets: Vec<&Received> =
        messages.iter().filter(|m| m.email.subject.as_deref() == confirmed["subject"].as_str()).collect();
    assert_eq!(tickets.len(), 1, "one message with the confirmation's subject {}: {messages:#?}", confirmed["subject"]);
    let ticket = tickets[0];

    let from = app.settings.sections.notification.from.as_str();
    assert_eq!(ticket.rcpt_tos, [email("ada")], "{ticket:#?}");
    assert_eq!(ticket.email.to, Some(email("ada")), "{ticket:#?}");
    assert_eq!(ticket.email.from.as_deref(), Some(from), "{ticket:#?}");
    assert_eq!(ticket.mail_from, address_of(from), "{ticket:#?}");
    assert_eq!(ticket.email.content_type, "multipart/alternative", "{ticket:#?}");
    assert!(ticket.email.subject.as_ref().unwrap().contains("Booked Solid"), "{ticket:#?}");

    let starts_at = time(&screen.showtime["start_time"]).format("%a %-d %b %Y, %H:%M UTC").to_string();
    let currency = screen.showtime["currency"].as_str().unwrap();
    assert_eq!(screen.amount(&["A1", "A2"]), 2400);
    let amount = format!("24.00 {currency}");
    for (part, body) in [("text", &ticket.email.text), ("html", &ticket.email.html)] {
        let body = body.as_deref().unwrap_or_else(|| panic!("no {part} part: {ticket:#?}"));
        for needle in ["Booked Solid", "Screen 1", starts_at.as_str(), "A1, A2", booking_id, amount.as_str()] {
            assert!(body.contains(needle), "the {part} part lacks {needle:?}:\n{body}");
        }
    }

    // Her two messages went to her alone, his to him alone, and neither names the other's
    // booking.
    let hers = addressed_to(&messages, &email("ada"));
    let his = addressed_to(&messages, &email("bob"));
    assert_eq!((hers.len(), his.len()), (2, 1), "{messages:#?}");
    assert_eq!(message_subjects(&hers), subjects(&items), "{messages:#?}");
    for (message, owner, own, other) in
        hers.iter().map(|m| (m, "ada", booking_id, bobs_id)).chain(his.iter().map(|m| (m, "bob", bobs_id, booking_id)))
    {
        assert_eq!(message.rcpt_tos, [email(owner)], "{message:#?}");
        assert_eq!(message.email.to, Some(email(owner)), "{message:#?}");
        assert!(message.email.mentions(own), "{message:#?}");
        assert!(!message.email.mentions(other), "{message:#?}");
    }
}

async fn mail_waits_for_the_smtp_server_and_is_delivered_when_it_returns(backend: Backend) {
    let mut sink = SmtpSink::start().await;
    let app = spawn_app_with(backend, |s| {
        smtp_on(s, sink.port());
        // Tries every 400 ms for about 40 s: enough to outlast the outage below.
        s.sections.notification.max_attempts = 100;
    })
    .await;
    sink.stop().await;
    let retries_before = deliveries(&app, "retry").await;

    // The flow answers as usual with the mail server down.
    let screen = screening(&app, ROW_A).await;
    let ada = customer(&app, "ada").await;
    let booking = book(&app, &ada.token, &screen, &["A1", "A2"]).await;
    let booking_id = booking["id"].as_str().unwrap();
    let paid = pay_ok(&app, &ada.token, &card(&booking, GOOD)).await;
    assert_eq!(paid["status"], "completed", "{paid}");
    wait_for_status(&app, &ada.token, booking_id, "confirmed", SETTLE).await;

    // The notifications wait, and keep waiting while the worker retries.
    let pending = wait_for_notifications(&app, &ada.token, |items| items.len() >= 2).await;
    assert_eq!(kinds(&pending), ["booking_created", "booking_confirmed"], "{pending:#?}");
    assert!(all_with_status(&pending, "pending"), "{pending:#?}");
    assert!(pending.iter().all(|n| n["sent_at"].is_null()), "{pending:#?}");
    tokio::time::sleep(QUIET).await;
    let later = notifications(&app, &ada.token, "?per_page=100").await["items"].as_array().unwrap().clone();
    let ids = |items: &[Value]| items.iter().map(|n| n["id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&later), ids(&pending), "{later:#?}");
    assert!(all_with_status(&later, "pending"), "{later:#?}");
    wait_for_deliveries(&app, "retry", retries_before + 1.0).await;
    assert_eq!(sink.messages(), []);

    // The server returns: each notification is delivered, once.
    sink.restart().await;
    let sent =
        wait_for_notifications(&app, &ada.token, |items| items.len() == 2 && all_with_status(items, "sent")).await;
    sink.wait_for(sent.len(), SETTLE).await;
    tokio::time::sleep(QUIET).await;
    let messages = sink.messages();
    let hers = addressed_to(&messages, &email("ada"));
    assert_eq!(hers.len(), sent.len(), "one message per notification: {messages:#?}");
    assert_eq!(messages.len(), hers.len(), "{messages:#?}");
    assert_eq!(message_subjects(&hers), subjects(&sent), "{messages:#?}");
    assert!(messages.iter().all(|m| m.email.mentions(booking_id)), "{messages:#?}");
}

async fn a_notification_fails_after_the_configured_attempts(backend: Backend) {
    // A port that was free a moment ago: connecting to it is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let app = spawn_app_with(backend, |s| {
        smtp_on(s, port);
        s.sections.notification.max_attempts = 3;
    })
    .await;
    let retries_before = deliveries(&app, "retry").await;
    let failed_before = deliveries(&app, "failed").await;

    let screen = screening(&app, ROW_A).await;
    let ada = customer(&app, "ada").await;
    let booking = book(&app, &ada.token, &screen, &["A1"]).await;
    let booking_id = booking["id"].as_str().unwrap();

    let items =
        wait_for_notifications(&app, &ada.token, |items| items.len() == 1 && !all_with_status(items, "pending")).await;
    let created = &items[0];
    assert_eq!(created["kind"], "booking_created", "{created}");
    assert_eq!(created["status"], "failed", "{created}");
    assert!(created["sent_at"].is_null(), "{created}");
    // Three tries: two retried, the last one given up.
    wait_for_deliveries(&app, "failed", failed_before + 1.0).await;
    wait_for_deliveries(&app, "retry", retries_before + 2.0).await;

    // The booking never waited for mail.
    assert_eq!(get_booking(&app, &ada.token, booking_id).await["status"], "pending");
    let paid = pay_ok(&app, &ada.token, &card(&booking, GOOD)).await;
    assert_eq!(paid["status"], "completed", "{paid}");
    wait_for_status(&app, &ada.token, booking_id, "confirmed", SETTLE).await;
}
