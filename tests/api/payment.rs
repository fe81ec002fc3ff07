//! The payment routes, black-box: paying a pending booking with the simulated
//! gateway's cards (approved, `card_declined`, `insufficient_funds`), the confirmation of the
//! booking that follows and the refund of a cancelled one, `Idempotency-Key` (replays, 16
//! concurrent requests with one key, a key reused with another body, bad keys), two keys
//! racing for one booking, card validation, who may see and refund a payment, the list of
//! one's payments, and the race between a slow charge and the end of the booking's hold.
//!
//! Every test pays in a fresh screening (see `fixtures::screening`) of `ROW_A`: one row A of
//! 6 standard seats at 1200 cents, two days ahead. Nothing sleeps for a fixed time: what
//! happens in the background (events, the expiry sweeper, refunds) is polled for with a deadline.

use std::collections::BTreeMap;
use std::time::{Duration as StdDuration, Instant};

use chrono::{Duration, Utc};
use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};

use crate::fixtures::{
    DECLINED, GOOD, IDEMPOTENCY_KEY, PAY, PAYMENTS, PRICE, ROW_A, book, cancel_ok, card, customer, get_booking,
    get_payment, new_key, pay, pay_ok, screening, seat_map, wait_for_payment, wait_for_status,
};
use crate::helpers::{
    Backend, TestApp, assert_invalid, assert_not_found, assert_problem, counter, id, ids, spawn_app, spawn_app_with,
    time, wait_past,
};

/// Declined: `insufficient_funds`.
const NO_FUNDS: &str = "4000000000009995";
/// Any other Luhn-valid number is approved too.
const MASTERCARD: &str = "5555555555554444";

/// Where things that happen in the background must have happened by.
const SETTLE: StdDuration = StdDuration::from_secs(15);

on_both_backends!(
    a_declined_card_then_a_good_one_confirms_the_booking_and_cancelling_refunds_it,
    a_card_without_funds_fails_with_insufficient_funds_and_leaves_the_booking_pending,
    the_same_key_and_body_answer_the_first_answer_again_and_charge_once,
    sixteen_concurrent_requests_with_one_key_charge_once_and_answer_alike,
    a_key_reused_with_another_body_is_422_and_charges_nothing,
    two_keys_paying_one_booking_at_once_charge_it_once,
    bad_keys_are_400_and_bad_cards_422_naming_the_field_and_nothing_is_stored,
    a_payment_is_visible_to_its_owner_and_admins_and_every_route_needs_a_token,
    an_expired_or_cancelled_booking_cannot_be_paid,
    a_booking_whose_hold_ran_out_cannot_be_paid_before_the_sweeper_expires_it,
    a_charge_accepted_before_the_hold_ran_out_confirms_however_late_its_outcome,
    a_charge_that_beats_the_hold_confirms_the_booking_for_good,
    charges_racing_the_end_of_their_holds_are_never_kept_for_an_expired_booking,
    a_booking_cancelled_while_its_charge_is_in_flight_gets_the_charge_back,
    a_gateway_outage_is_503_charges_nothing_and_leaves_the_booking_payable,
    a_gateway_slower_than_half_the_lease_is_503_and_the_reconciler_records_what_it_did,
    declined_attempts_are_limited_per_booking_and_per_customer_even_in_parallel,
    only_an_admin_refunds_and_only_a_completed_payment,
    concurrent_refunds_of_one_payment_give_the_money_back_once,
    a_customer_lists_their_own_payments_newest_first_filtered_and_paginated,
    replays_are_answered_from_redis_where_there_is_one,
    answers_saved_as_http_before_issue_12_replay_alike_after_the_upgrade,
);

// ---------------------------------------------------------------------------------------------
// Helpers

/// The status and JSON body of an answer.
async fn answer(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

/// Asserts `payment` is a charge of the whole of `booking` that ended `status` (`completed`,
/// or `failed` for `failure_reason`), with card `number`, and one charge transaction.
fn assert_charge(payment: &Value, booking: &Value, number: &str, status: &str, failure_reason: Option<&str>) {
    assert!(uuid::Uuid::parse_str(id(payment)).is_ok(), "{payment}");
    assert_eq!(payment["booking_id"], booking["id"], "{payment}");
    assert_eq!(payment["user_id"], booking["user_id"], "{payment}");
    assert_eq!(payment["amount_cents"], booking["amount_cents"], "{payment}");
    assert_eq!(payment["currency"], booking["currency"], "{payment}");
    assert_eq!(payment["status"], status, "{payment}");
    assert_eq!(payment.get("failure_reason").and_then(Value::as_str), failure_reason, "{payment}");
    assert_eq!(payment["card_last4"], number[number.len() - 4..], "{payment}");
    let brand = if number.starts_with('4') { "visa" } else { "mastercard" };
    assert_eq!(payment["card_brand"], brand, "{payment}");
    assert!(!payment.to_string().contains(number), "the whole card number is never shown: {payment}");
    let charged_at = time(&payment["created_at"]);
    let transactions = payment["transactions"].as_array().unwrap();
    assert_eq!(transactions.len(), 1, "{payment}");
    let charge = &transactions[0];
    assert_eq!(charge["type"], "charge", "{payment}");
    assert_eq!(charge["amount_cents"], booking["amount_cents"], "{payment}");
    let outcome = if status == "completed" { "succeeded" } else { "failed" };
    assert_eq!(charge["status"], outcome, "{payment}");
    assert!(time(&charge["created_at"]) >= charged_at, "{payment}");
}

/// Asserts `refunded` is `charged` given back in full: the same payment, status `refunded`,
/// its charge and then a succeeded refund of the same amount.
fn assert_refund_of(refunded: &Value, charged: &Value) {
    assert_eq!(refunded["status"], "refunded", "{refunded}");
    for key in ["id", "booking_id", "user_id", "amount_cents", "currency", "card_brand", "card_last4", "created_at"] {
        assert_eq!(refunded[key], charged[key], "{key}: {refunded}");
    }
    let transactions = refunded["transactions"].as_array().unwrap();
    assert_eq!(transactions.len(), 2, "a charge and a refund: {refunded}");
    assert_eq!(transactions[0], charged["transactions"][0], "{refunded}");
    let refund = &transactions[1];
    assert_eq!(refund["type"], "refund", "{refunded}");
    assert_eq!(refund["status"], "succeeded", "{refunded}");
    assert_eq!(refund["amount_cents"], charged["amount_cents"], "{refunded}");
    assert_ne!(refund["id"], transactions[0]["id"], "{refunded}");
    assert!(time(&refund["created_at"]) >= time(&transactions[0]["created_at"]), "{refunded}");
}

async fn list(app: &TestApp, token: &str, query: &str) -> Value {
    let res = app.get_as(&format!("{PAYMENTS}{query}"), token).await;
    assert_eq!(res.status(), 200, "GET {PAYMENTS}{query}");
    res.json().await.unwrap()
}

/// The caller's payments of `booking`, newest first.
async fn payments_of(app: &TestApp, token: &str, booking: &Value) -> Vec<Value> {
    let page = list(app, token, &format!("?booking_id={}&per_page=100", id(booking))).await;
    page["items"].as_array().unwrap().clone()
}

async fn refund(app: &TestApp, token: &str, payment_id: &str) -> reqwest::Response {
    let path = format!("{PAYMENTS}/{payment_id}/refund");
    app.client.post(app.url(&path)).bearer_auth(token).send().await.unwrap()
}

/// Asserts a 409 of type `/problems/{kind}` and returns it.
async fn assert_conflict(res: reqwest::Response, kind: &str) -> Value {
    let problem = assert_problem(res, 409).await;
    assert_eq!(problem["type"], format!("/problems/{kind}"), "{problem}");
    problem
}

async fn payments_counted(app: &TestApp, status: &str) -> f64 {
    counter(&app.metrics().await, "payments_total", &format!(r#"status="{status}""#))
}

/// The events booking has handled so far (`payment.completed` and `payment.failed`).
async fn booking_queue_consumed(app: &TestApp) -> f64 {
    counter(&app.metrics().await, "events_consumed_total", "booking_queue")
}

/// Polls until booking has handled more than `before` payment events.
async fn wait_for_booking_queue(app: &TestApp, before: f64) {
    let deadline = Instant::now() + SETTLE;
    while booking_queue_consumed(app).await <= before {
        assert!(Instant::now() < deadline, "booking never handled the payment event");
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Paying, confirming, refunding

async fn a_declined_card_then_a_good_one_confirms_the_booking_and_cancelling_refunds_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let screen = screening(&app, ROW_A).await;
    let ann = customer(&app, "ann").await;
    let booking = book(&app, &ann.token, &screen, &["A1"]).await;

    // A declined card is an answer, not an error: the payment failed and the booking waits.
    let consumed = booking_queue_consumed(&app).await;
    let declined = pay_ok(&app, &ann.token, &card(&booking, DECLINED)).await;
    assert_charge(&declined, &booking, DECLINED, "failed", Some("card_declined"));
    assert_eq!(declined["user_id"], ann.id.as_str());
    assert_eq!(get_payment(&app, &ann.token, id(&declined)).await, declined);
    wait_for_booking_queue(&app, consumed).await;
    assert_eq!(get_booking(&app, &ann.token, id(&booking)).await, booking, "payment.failed leaves it pending");
    assert_eq!(seat_map(&app, &screen).await["A1"], "held");

    // Another card, under a new key, pays it.
    let paid = pay_ok(&app, &ann.token, &card(&booking, GOOD)).await;
    assert_charge(&paid, &booking, GOOD, "completed", None);
    assert_ne!(paid["id"], declined["id"]);
    assert_eq!(get_payment(&app, &ann.token, id(&paid)).await, paid);
    let confirmed = wait_for_status(&app, &ann.token, id(&booking), "confirmed", SETTLE).await;
    assert_eq!(confirmed["amount_cents"], paid["amount_cents"]);
    assert_eq!(seat_map(&app, &screen).await["A1"], "booked");

    // Cancelling the paid booking gives the money back.
    cancel_ok(&app, &ann.token, id(&booking)).await;
    let refunded = wait_for_payment(&app, SETTLE, &ann.token, id(&paid), "refunded").await;
    assert_refund_of(&refunded, &paid);
    assert_eq!(get_payment(&app, &ann.token, id(&declined)).await, declined, "the declined payment is untouched");
    assert_eq!(seat_map(&app, &screen).await["A1"], "available");

    // A cancelled booking cannot be paid again.
    assert_conflict(pay(&app, &ann.token, &new_key(), &card(&booking, GOOD)).await, "booking-not-pending").await;
    assert_eq!(payments_of(&app, &ann.token, &booking).await, [refunded, declined]);
}

async fn a_card_without_funds_fails_with_insufficient_funds_and_leaves_the_booking_pending(backend: Backend) {
    let app = spawn_app(backend).await;
    let screen = screening(&app, ROW_A).await;
    let ann = customer(&app, "ann").await;
    let booking = book(&app, &ann.token, &screen, &["A1", "A2"]).await;
    let consumed = booking_queue_consumed(&app).await;
    let failed = pay_ok(&app, &ann.token, &card(&booking, NO_FUNDS)).await;
    assert_charge(&failed, &booking, NO_FUNDS, "failed", Some("insufficient_funds"));
    assert_eq!(failed["amount_cents"], 2 * PRICE);
    wait_for_booking_queue(&app, consumed).await;
    assert_eq!(get_booking(&app, &ann.token, id(&booking)).await["status"], "pending");
    assert_eq!(list(&app, &ann.token, "?status=failed").await["items"], json!([failed]));

    // Any other Luhn-valid number is approved.
    let paid = pay_ok(&app, &ann.token, &card(&booking, MASTERCARD)).await;
    assert_charge(&paid, &booking, MASTERCARD, "completed", None);
    wait_for_status(&app, &ann.token, id(&booking), "confirmed", SETTLE).await;
}

// ---------------------------------------------------------------------------------------------
// Idempotency

async fn the_same_key_and_body_answer_the_first_answer_again_and_charge_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let screen = screening(&app, ROW_A).await;
    let ann = customer(&app, "ann").await;
    let bob = customer(&app, "bob").await;
    let booking = book(&app, &ann.token, &screen, &["A1"]).await;
    let body = card(&booking, GOOD);
    let key = new_key();

    let (status, first) = answer(pay(&app, &ann.token, &key, &body).await).await;
    assert_eq!(status, 201, "{first}");
    assert_charge(&first, &booking, GOOD, "completed", None);
    let (status, again) = answer(pay(&app, &ann.token, &key, &body).await).await;
    assert_eq!((status, &again), (201, &first));
    // Still the first answer once the booking is confirmed, when a new key would be a 409.
    wait_for_status(&app, &ann.token, id(&booking), "confirmed", SETTLE).await;
    let res = pay(&app, &ann.token, &key, &body).await;
    assert_eq!(res.headers().get("location").unwrap().to_str().unwrap(), format!("{PAYMENTS}/{}", id(&first)));
    assert_eq!(answer(res).await, (201, first.clone()));
    assert_conflict(pay(&app, &ann.token, &new_key(), &body).await, "booking-not-pending").await;
    assert_eq!(payments_of(&app, &ann.token, &booking).await, [first], "charged once");

    // A failed payment is answered again too.
    let other = book(&app, &ann.token, &screen, &["A2"]).await;
    let declined_body = card(&other, DECLINED);
    let key = new_key();
    let (status, declined) = answer(pay(&app, &ann.token, &key, &declined_body).await).await;
    assert_eq!(status, 201);
    assert_charge(&declined, &other, DECLINED, "failed", Some("card_declined"));
    assert_eq!(answer(pay(&app, &ann.token, &key, &declined_body).await).await, (201, declined.clone()));
    assert_eq!(payments_of(&app, &ann.token, &other).await, [declined]);

    // So are a 409 and a 404.
    let cancelled = book(&app, &ann.token, &screen, &["A3"]).await;
    cancel_ok(&app, &ann.token, id(&cancelled)).await;
    let key = new_key();
    let body = card(&cancelled, GOOD);
    let conflict = assert_conflict(pay(&app, &ann.token, &key, &body).await, "booking-not-pending").await;
    assert_eq!(assert_conflict(pay(&app, &ann.token, &key, &body).await, "booking-not-pending").await, conflict);

    let bobs = book(&app, &bob.token, &screen, &["A4"]).await;
    for booking_id in [bobs["id"].clone(), json!(uuid::Uuid::new_v4())] {
        let body = card(&json!({"id": booking_id}), GOOD);
        let key = new_key();
        let not_found = assert_not_found(pay(&app, &ann.token, &key, &body).await, "booking").await;
        assert_eq!(assert_not_found(pay(&app, &ann.token, &key, &body).await, "booking").await, not_found);
    }
    assert!(payments_of(&app, &bob.token, &bobs).await.is_empty());
    assert_eq!(get_booking(&app, &bob.token, id(&bobs)).await["status"], "pending");
}

async fn sixteen_concurrent_requests_with_one_key_charge_once_and_answer_alike(backend: Backend) {
    // A slow gateway, so every request arrives while the first is still charging.
    let app = spawn_app_with(backend, |s| s.sections.payment.gateway.latency_ms = 200).await;
    let screen = screening(&app, ROW_A).await;
    let ann = customer(&app, "ann").await;
    let booking = book(&app, &ann.token, &screen, &["A1", "A2", "A3"]).await;
    let completed = payments_counted(&app, "completed").await;
    let body = card(&booking, GOOD);
    let key = new_key();

    let started = Instant::now();
    let answers = join_all((0..16).map(|_| async { answer(pay(&app, &ann.token, &key, &body).await).await })).await;
    assert!(started.elapsed() >= StdDuration::from_millis(200), "the gateway was not called");

    let (status, first) = &answers[0];
    assert_eq!(*status, 201, "{first}");
    assert_charge(first, &booking, GOOD, "completed", None);
    for (i, answer) in answers.iter().enumerate() {
        assert_eq!(answer, &answers[0], "answer {i} differs from the first");
    }
    let payments = payments_of(&app, &ann.token, &booking).await;
    assert_eq!(payments, std::slice::from_ref(first), "one payment with one charge");
    assert_eq!(payments_counted(&app, "completed").await, completed + 1.0, "counted once");
    wait_for_status(&app, &ann.token, id(&booking), "confirmed", SETTLE).await;
}

async fn a_key_reused_with_another_body_is_422_and_charges_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let screen = screening(&app, ROW_A).await;
    let ann = customer(&app, "ann").await;
    let bob = customer(&app, "bob").await;
    let first = book(&app, &ann.token, &screen, &["A1"]).await;
    let second = book(&app, &ann.token, &screen, &["A2"]).await;
    let key = new_key();

    // The usual mistake: retrying a declined card with another card but the same key.
    let (status, declined) = answer(pay(&app, &ann.token, &key, &card(&first, DECLINED)).await).await;
    assert_eq!(status, 201);
    assert_charge(&declined, &first, DECLINED, "failed", Some("card_declined"));
    let completed = payments_counted(&app, "completed").await;
    let other_bodies = [
        card(&first, GOOD),
        card(&second, DECLINED),
        json!({"booking_id": first["id"], "card_number": DECLINED, "card_expiry": "11/35", "card_cvc": "123"}),
        json!({"booking_id": first["id"], "card_number": DECLINED, "card_expiry": "12/35", "card_cvc": "124"}),
    ];
    for body in &other_bodies {
        let problem = assert_invalid(pay(&app, &ann.token, &key, body).await, &[IDEMPOTENCY_KEY], "key reused").await;
        assert!(!problem.to_string().contains(DECLINED), "{problem}");
    }
    // The first body still gets its answer; nothing else was charged.
    assert_eq!(answer(pay(&app, &ann.token, &key, &card(&first, DECLINED)).await).await, (201, declined.clone()));
    assert_eq!(payments_of(&app, &ann.token, &first).await, [declined]);
    assert!(payments_of(&app, &ann.token, &second).await.is_empty());
    assert_eq!(payments_counted(&app, "completed").await, completed);
    assert_eq!(get_booking(&app, &ann.token, id(&first)).await["status"], "pending");
    assert_eq!(get_booking(&app, &ann.token, id(&second)).await["status"], "pending");

    // Keys are the user's own: another customer may use the same one.
    let bobs = book(&app, &bob.token, &screen, &["A3"]).await;
    let (status, paid) = answer(pay(&app, &bob.token, &key, &card(&bobs, GOOD)).await).await;
    assert_eq!(status, 201, "{paid}");
    assert_charge(&paid, &bobs, GOOD, "completed", None);
}

async fn two_keys_paying_one_booking_at_once_charge_it_once(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.sections.payment.gateway.latency_ms = 200).await;
    let screen = screening(&app, ROW_A).await;
    let ann = customer(&app, "ann").await;
    let booking = book(&app, &ann.token, &screen, &["A1"]).await;
    let (visa, mastercard) = (card(&booking, GOOD), card(&booking, MASTERCARD));
    let (first_key, second_key) = (new_key(), new_key());

    let (a, b) = tokio::join!(async { answer(pay(&app, &ann.token, &first_key, &visa).await).await }, async {
        answer(pay(&app, &ann.token, &second_key, &mastercard).await).await
    },);
    let answers = [a, b];
    let winners: Vec<&Value> = answers.iter().filter(|(status, _)| *status == 201).map(|(_, body)| body).collect();
    assert_eq!(winners.len(), 1, "{answers:?}");
    assert_eq!(winners[0]["status"], "completed", "{answers:?}");
    let (status, loser) = answers.iter().find(|(status, _)| *status != 201).unwrap();
    assert_eq!(*status, 409, "{loser}");
    assert!(
        ["/problems/payment-in-progress", "/problems/booking-not-pending"].contains(&loser["type"].as_str().unwrap()),
        "{loser}"
    );
    assert_eq!(payments_of(&app, &ann.token, &booking).await, [winners[0].clone()]);
    wait_for_status(&app, &ann.token, id(&booking), "confirmed", SETTLE).await;
    // The loser's key was not spent on a charge: sent again, it is told the booking is paid.
    for (key, body) in [(&first_key, &visa), (&second_key, &mastercard)] {
        let (status, again) = answer(pay(&app, &ann.token, key, body).await).await;
        let paid = status == 409 && again["type"] == "/problems/booking-not-pending";
        assert!(paid || (status == 201 && again == *winners[0]), "{again}");
    }
    assert_eq!(payments_of(&app, &ann.token, &booking).await, [winners[0].clone()]);
}

async fn bad_keys_are_400_and_bad_cards_422_naming_the_field_and_nothing_is_stored(backend: Backend) {
    let app = spawn_app(backend).await;
    let screen = screening(&app, ROW_A).await;
    let ann = customer(&app, "ann").await;
    let booking = book(&app, &ann.token, &screen, &["A1"]).await;
    let good = card(&booking, GOOD);

    let res = app.send_as(Method::POST, PAY, &ann.token, &good).await;
    let problem = assert_problem(res, 400).await;
    assert!(problem["detail"].as_str().unwrap().contains(IDEMPOTENCY_KEY), "{problem}");
    for key in [String::new(), "k".repeat(256)] {
        assert_problem(pay(&app, &ann.token, &key, &good).await, 400).await;
    }
    let not_ascii = reqwest::header::HeaderValue::from_bytes("clé".as_bytes()).unwrap();
    let res = app.client.post(app.url(PAY)).bearer_auth(&ann.token).header(IDEMPOTENCY_KEY, not_ascii).json(&good);
    assert_problem(res.send().await.unwrap(), 400).await;

    let with = |number: &str, expiry: &str, cvc: &str| json!({"booking_id": booking["id"], "card_number": number, "card_expiry": expiry, "card_cvc": cvc});
    let key = new_key();
    for (body, fields) in [
        (with("4242424242424241", "12/35", "123"), vec!["card_number"]),
        (with("4242abcd42424242", "12/35", "123"), vec!["card_number"]),
        (with("42424242424", "12/35", "123"), vec!["card_number"]),
        (with("", "12/35", "123"), vec!["card_number"]),
        (with(GOOD, "13/30", "123"), vec!["card_expiry"]),
        (with(GOOD, "01/20", "123"), vec!["card_expiry"]),
        (with(GOOD, "12/2035", "123"), vec!["card_expiry"]),
        (with(GOOD, "12/35", "12"), vec!["card_cvc"]),
        (with(GOOD, "12/35", "12a"), vec!["card_cvc"]),
        (with("4242424242424241", "13/30", "12"), vec!["card_number", "card_expiry", "card_cvc"]),
    ] {
        let problem = assert_invalid(pay(&app, &ann.token, &key, &body).await, &fields, &body.to_string()).await;
        let number = body["card_number"].as_str().unwrap();
        assert!(number.is_empty() || !problem.to_string().contains(number), "the number is not echoed: {problem}");
    }
    let not_a_booking = json!({"booking_id": "nope", "card_number": GOOD, "card_expiry": "12/35", "card_cvc": "123"});
    assert_invalid(pay(&app, &ann.token, &key, &not_a_booking).await, &["booking_id"], "booking_id").await;

    // Nothing was stored, charged or confirmed.
    assert_eq!(list(&app, &ann.token, "").await["total"], 0);
    assert_eq!(get_booking(&app, &ann.token, id(&booking)).await, booking);

    // A refused card does not spend its key (nothing ran); the longest key is fine, and
    // spaces in the number are ignored.
    let spaced = with("4242 4242 4242 4242", "12/35", "123");
    let (status, paid) = answer(pay(&app, &ann.token, &key, &spaced).await).await;
    assert_eq!(status, 201, "{paid}");
    assert_charge(&paid, &booking, GOOD, "completed", None);
    let other = book(&app, &ann.token, &screen, &["A2"]).await;
    let (status, paid) = answer(pay(&app, &ann.token, &"k".repeat(255), &card(&other, GOOD)).await).await;
    assert_eq!(status, 201, "{paid}");
    assert_charge(&paid, &other, GOOD, "completed", None);
}

// ---------------------------------------------------------------------------------------------
// Who sees what

async fn a_payment_is_visible_to_its_owner_and_admins_and_every_route_needs_a_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let screen = screening(&app, ROW_A).await;
    let ann = customer(&app, "ann").await;
    let bob = customer(&app, "bob").await;
    let booking = book(&app, &ann.token, &screen, &["A1"]).await;

    // Bob cannot pay Ann's booking, nor learn that it exists.
    let problem = assert_not_found(pay(&app, &bob.token, &new_key(), &card(&booking, GOOD)).await, "booking").await;
    let unknown = json!({"id": uuid::Uuid::new_v4()});
    let unknown = assert_not_found(pay(&app, &bob.token, &new_key(), &card(&unknown, GOOD)).await, "booking").await;
    assert_eq!(problem, unknown, "another's booking reads as an unknown one");
    assert_eq!(list(&app, &bob.token, "").await["total"], 0);

    let paid = pay_ok(&app, &ann.token, &card(&booking, GOOD)).await;
    let path = format!("{PAYMENTS}/{}", id(&paid));
    assert_eq!(get_payment(&app, &ann.token, id(&paid)).await, paid);
    assert_not_found(app.get_as(&path, &bob.token).await, "payment").await;
    assert_not_found(app.get_as(&format!("{PAYMENTS}/{}", uuid::Uuid::new_v4()), &ann.token).await, "payment").await;
    assert_eq!(list(&app, &bob.token, "").await["total"], 0);
    assert_eq!(get_payment(&app, &screen.admin, id(&paid)).await, paid, "an admin sees any payment");
    assert_eq!(list(&app, &screen.admin, "").await["total"], 0, "the list is the caller's own, admins' too");

    let routes = vec![
        (Method::POST, PAY.to_owned(), Some(card(&booking, GOOD))),
        (Method::GET, PAYMENTS.to_owned(), None),
        (Method::GET, path.clone(), None),
        (Method::POST, format!("{path}/refund"), None),
    ];
    app.assert_routes_need_a_token(routes, |request| request.header(IDEMPOTENCY_KEY, new_key())).await;
    assert_eq!(get_payment(&app, &ann.token, id(&paid)).await["status"], "completed");
    assert_eq!(list(&app, &ann.token, "").await["items"], json!([paid]));
}

// ---------------------------------------------------------------------------------------------
// Bookings that cannot be paid, and the race with the end of the hold

async fn an_expired_or_cancelled_booking_cannot_be_paid(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.sections.booking.hold_ttl_seconds = 1;
        s.sections.booking.sweep_interval_ms = 100;
    })
    .await;
    let screen = screening(&app, ROW_A).await;
    let ann = customer(&app, "ann").await;

    let expired = book(&app, &ann.token, &screen, &["A1"]).await;
    wait_for_status(&app, &ann.token, id(&expired), "expired", SETTLE).await;
    let problem =
        assert_conflict(pay(&app, &ann.token, &new_key(), &card(&expired, GOOD)).await, "booking-not-pending");
    assert!(problem.await["title"].is_string());

    let cancelled = book(&app, &ann.token, &screen, &["A1"]).await;
    cancel_ok(&app, &ann.token, id(&cancelled)).await;
    assert_conflict(pay(&app, &ann.token, &new_key(), &card(&cancelled, GOOD)).await, "booking-not-pending").await;

    assert_eq!(list(&app, &ann.token, "").await["total"], 0, "nothing charged");
    assert_eq!(seat_map(&app, &screen).await["A1"], "available");
}

async fn a_booking_whose_hold_ran_out_cannot_be_paid_before_the_sweeper_expires_it(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.sections.booking.hold_ttl_seconds = 1;
        s.sections.booking.sweep_interval_ms = 60_000;
    })
    .await;
    let screen = screening(&app, ROW_A).await;
    let ann = customer(&app, "ann").await;
    // The sweeper came by at start-up and comes again in a minute: this booking stays pending.
    let late = book(&app, &ann.token, &screen, &["A1"]).await;
    wait_past(time(&late["expires_at"])).await;
    assert_eq!(get_booking(&app, &ann.token, id(&late)).await["status"], "pending");
    assert_conflict(pay(&app, &ann.token, &new_key(), &card(&late, GOOD)).await, "booking-not-pending").await;
    assert_eq!(list(&app, &ann.token, "").await["total"], 0, "nothing charged");
}

/// Polls until the race of `booking`'s payment with the end of its hold has settled: the
/// booking has left `pending`, and no payment of it is still `completed` unless it is
/// confirmed. Never settling is the failure the race must not have: charged and expired
/// with no refund. Answers the booking and its payments.
async fn settle(app: &TestApp, token: &str, booking: &Value) -> (Value, Vec<Value>) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let now = get_booking(app, token, id(booking)).await;
        let payments = payments_of(app, token, booking).await;
        let kept_unconfirmed = now["status"] != "confirmed" && payments.iter().any(|p| p["status"] == "completed");
        if now["status"] != "pending" && !kept_unconfirmed {
            return (now, payments);
        }
        assert!(Instant::now() < deadline, "not settled after {SETTLE:?}: booking {now}, payments {payments:?}");
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
}

/// The invariant of the race: either the booking is confirmed and charged once, or it expired
/// and every charge of it was given back in full.
fn assert_charged_only_if_confirmed(booking: &Value, payments: &[Value]) {
    let charged: Vec<&Value> = payments.iter().filter(|p| p["transactions"][0]["status"] == "succeeded").collect();
    assert!(charged.len() <= 1, "charged twice: {payments:?}");
    match booking["status"].as_str().unwrap() {
        "confirmed" => {
            assert_eq!(charged.len(), 1, "confirmed without a charge: {booking} {payments:?}");
            assert_eq!(charged[0]["status"], "completed", "{payments:?}");
            assert_eq!(charged[0]["transactions"].as_array().unwrap().len(), 1, "{payments:?}");
        }
        "expired" => {
            for payment in charged {
                assert_eq!(payment["status"], "refunded", "charged for an expired booking: {payment}");
                let transactions = payment["transactions"].as_array().unwrap();
                assert_eq!(transactions.len(), 2, "{payment}");
                assert_eq!(transactions[1]["type"], "refund", "{payment}");
                assert_eq!(transactions[1]["status"], "succeeded", "{payment}");
                assert_eq!(transactions[1]["amount_cents"], payment["amount_cents"], "{payment}");
            }
        }
        other => panic!("the booking ended {other}: {booking}"),
    }
}

async fn a_charge_accepted_before_the_hold_ran_out_confirms_however_late_its_outcome(backend: Backend) {
    // The gateway answers long after the hold ran out and the sweeper came by: the charge, and
    // the `payment.completed` written with its outcome, are handled after `expires_at`.
    let app = spawn_app_with(backend, |s| {
        s.sections.booking.hold_ttl_seconds = 2;
        s.sections.booking.sweep_interval_ms = 50;
        s.sections.payment.gateway.latency_ms = 5000;
    })
    .await;
    let screen = screening(&app, ROW_A).await;
    let ann = customer(&app, "ann").await;
    let bob = customer(&app, "bob").await;
    let booking = book(&app, &ann.token, &screen, &["A1"]).await;

    let (key, body) = (new_key(), card(&booking, GOOD));
    let charge = pay(&app, &ann.token, &key, &body);
    let during = async {
        // While the gateway works, past the hold and several sweeps: the booking stays pending,
        // and its seat claimed, whatever the seat locks' TTL says.
        wait_past(time(&booking["expires_at"]) + Duration::milliseconds(500)).await;
        assert_eq!(get_booking(&app, &ann.token, id(&booking)).await["status"], "pending");
        let res = crate::fixtures::post_book(&app, &bob.token, &screen.request(&["A1"])).await;
        assert_conflict(res, "seats-unavailable").await;
    };
    let (res, ()) = tokio::join!(charge, during);
    let (status, paid) = answer(res).await;
    assert_eq!(status, 201, "the charge started within the hold: {paid}");
    assert!(Utc::now() > time(&booking["expires_at"]), "the charge outlasted the hold");
    assert_charge(&paid, &booking, GOOD, "completed", None);

    let ended = wait_for_status(&app, &ann.token, id(&booking), "confirmed", SETTLE).await;
    let payments = payments_of(&app, &ann.token, &booking).await;
    assert_charged_only_if_confirmed(&ended, &payments);
    assert_eq!(payments, std::slice::from_ref(&paid), "kept, not refunded");
    assert_eq!(seat_map(&app, &screen).await["A1"], "booked");
}

async fn a_charge_that_beats_the_hold_confirms_the_booking_for_good(backend: Backend) {
    // A hold long enough for the payment to confirm even on a loaded machine, and a sweeper
    // that would expire the booking at once were it still pending afterwards.
    let app = spawn_app_with(backend, |s| {
        s.sections.booking.hold_ttl_seconds = 4;
        s.sections.booking.sweep_interval_ms = 50;
        s.sections.payment.gateway.latency_ms = 50;
    })
    .await;
    let screen = screening(&app, ROW_A).await;
    let ann = customer(&app, "ann").await;
    let booking = book(&app, &ann.token, &screen, &["A1"]).await;

    let paid = pay_ok(&app, &ann.token, &card(&booking, GOOD)).await;
    assert_charge(&paid, &booking, GOOD, "completed", None);
    let (ended, payments) = settle(&app, &ann.token, &booking).await;
    assert_eq!(ended["status"], "confirmed", "{ended}");
    assert_charged_only_if_confirmed(&ended, &payments);
    assert_eq!(payments, std::slice::from_ref(&paid));

    // Once the hold's time has passed, the sweeper has left it alone.
    wait_past(time(&booking["expires_at"]) + Duration::milliseconds(300)).await;
    assert_eq!(get_booking(&app, &ann.token, id(&booking)).await["status"], "confirmed");
    assert_eq!(get_payment(&app, &ann.token, id(&paid)).await, paid);
    assert_eq!(seat_map(&app, &screen).await["A1"], "booked");
}

async fn charges_racing_the_end_of_their_holds_are_never_kept_for_an_expired_booking(backend: Backend) {
    // Six bookings, each paid a little later into its one-second hold than the one before
    // (100 ms, 150 ms, ... 350 ms) through a gateway that takes 700 ms: the charges complete
    // around the end of their holds, some before, some after, some as the sweeper comes by.
    let app = spawn_app_with(backend, |s| {
        s.sections.booking.hold_ttl_seconds = 1;
        s.sections.booking.sweep_interval_ms = 50;
        s.sections.payment.gateway.latency_ms = 700;
    })
    .await;
    let screen = screening(&app, ROW_A).await;
    let ann = customer(&app, "ann").await;
    let labels = ["A1", "A2", "A3", "A4", "A5", "A6"];
    let mut bookings = Vec::new();
    for label in labels {
        bookings.push(book(&app, &ann.token, &screen, &[label]).await);
    }
    let answers = join_all(bookings.iter().zip(2..).map(|(booking, i)| {
        let (app, token) = (&app, &ann.token);
        async move {
            wait_past(time(&booking["created_at"]) + Duration::milliseconds(50 * i)).await;
            answer(pay(app, token, &new_key(), &card(booking, GOOD)).await).await
        }
    }))
    .await;

    let mut outcomes = BTreeMap::<String, usize>::new();
    for (booking, (status, body)) in bookings.iter().zip(&answers) {
        match status {
            // A charge that landed after the booking was closed is refunded before the answer.
            201 if body["status"] == "refunded" => {
                let mut charged = body.clone();
                charged["status"] = json!("completed");
                charged["transactions"] = json!([body["transactions"][0]]);
                assert_charge(&charged, booking, GOOD, "completed", None);
                assert_refund_of(body, &charged);
            }
            201 => assert_charge(body, booking, GOOD, "completed", None),
            409 => assert_eq!(body["type"], "/problems/booking-not-pending", "{body}"),
            _ => panic!("pay answered {status}: {body}"),
        }
        let (ended, payments) = settle(&app, &ann.token, booking).await;
        assert_charged_only_if_confirmed(&ended, &payments);
        assert_eq!(payments.len(), usize::from(*status == 201), "{payments:?}");
        let paid = payments.first().map_or("unpaid", |p| p["status"].as_str().unwrap());
        *outcomes.entry(format!("{} {paid}", ended["status"].as_str().unwrap())).or_default() += 1;
    }
    eprintln!("outcomes of the race: {outcomes:?}");
    let map = seat_map(&app, &screen).await;
    for (booking, label) in bookings.iter().zip(labels) {
        let status = get_booking(&app, &ann.token, id(booking)).await["status"].clone();
        let seat = if status == "confirmed" { "booked" } else { "available" };
        assert_eq!(map[label], seat, "{label} of a booking {status}");
    }
}

async fn a_booking_cancelled_while_its_charge_is_in_flight_gets_the_charge_back(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.sections.payment.gateway.latency_ms = 1000).await;
    let screen = screening(&app, ROW_A).await;
    let ann = customer(&app, "ann").await;
    let booking = book(&app, &ann.token, &screen, &["A1"]).await;

    let key = new_key();
    let paying = async { answer(pay(&app, &ann.token, &key, &card(&booking, GOOD)).await).await };
    let cancelling = async {
        // Cancelled once the charge has started (the gateway takes a second).
        tokio::time::sleep(StdDuration::from_millis(300)).await;
        cancel_ok(&app, &ann.token, id(&booking)).await
    };
    let ((status, paid), cancelled) = tokio::join!(paying, cancelling);
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(status, 201, "the charge started before the cancel: {paid}");
    assert_eq!(paid["transactions"][0]["status"], "succeeded", "{paid}");
    // Normally refunded before the answer went out, and then the answer (saved with the key)
    // says so; were the cancellation's event slower than the charge, the refund follows it.
    assert!(paid["status"] == "refunded" || paid["status"] == "completed", "{paid}");
    assert_eq!(answer(pay(&app, &ann.token, &key, &card(&booking, GOOD)).await).await, (201, paid.clone()));

    let (ended, payments) = settle(&app, &ann.token, &booking).await;
    assert_eq!(ended["status"], "cancelled", "{ended}");
    assert_eq!(payments.len(), 1, "{payments:?}");
    assert_refund_of(&payments[0], &paid);
    assert_eq!(seat_map(&app, &screen).await["A1"], "available");
}

async fn a_gateway_outage_is_503_charges_nothing_and_leaves_the_booking_payable(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.sections.payment.gateway.failure_rate = 1.0).await;
    let screen = screening(&app, ROW_A).await;
    let ann = customer(&app, "ann").await;
    let booking = book(&app, &ann.token, &screen, &["A1"]).await;
    let key = new_key();
    for key in [key.as_str(), key.as_str(), &new_key()] {
        // The same key again runs again (no answer was saved), and another key is not told
        // that a payment is in progress: the booking was given back.
        let res = pay(&app, &ann.token, key, &card(&booking, GOOD)).await;
        assert!(res.headers().contains_key("retry-after"), "{:?}", res.headers());
        let problem = assert_problem(res, 503).await;
        assert_eq!(problem["type"], "/problems/dependency-unavailable", "{problem}");
    }
    assert_eq!(list(&app, &ann.token, "").await["total"], 0, "nothing charged");
    assert_eq!(get_booking(&app, &ann.token, id(&booking)).await, booking);
}

async fn a_gateway_slower_than_half_the_lease_is_503_and_the_reconciler_records_what_it_did(backend: Backend) {
    // A charge is given up after half the lease (1 s here), so no other request can take the
    // key or the booking over while the gateway still works on it. The gateway took the charge
    // all the same (a timeout is an unknown outcome): with no retry, the reconciler asks the
    // gateway about the key left running and records the charge, which confirms the booking.
    let app = spawn_app_with(backend, |s| {
        s.sections.payment.lease_seconds = 2;
        s.sections.payment.gateway.latency_ms = 1500;
        s.sections.payment.reconcile_interval_ms = 100;
    })
    .await;
    let screen = screening(&app, ROW_A).await;
    let ann = customer(&app, "ann").await;
    let booking = book(&app, &ann.token, &screen, &["A1"]).await;
    let key = new_key();
    let problem = assert_problem(pay(&app, &ann.token, &key, &card(&booking, GOOD)).await, 503).await;
    assert_eq!(problem["type"], "/problems/dependency-unavailable", "{problem}");
    assert_eq!(list(&app, &ann.token, "").await["total"], 0, "nothing recorded yet");
    assert_eq!(get_booking(&app, &ann.token, id(&booking)).await, booking, "still pending");

    wait_for_status(&app, &ann.token, id(&booking), "confirmed", SETTLE).await;
    let payments = payments_of(&app, &ann.token, &booking).await;
    assert_eq!(payments.len(), 1, "{payments:?}");
    assert_charge(&payments[0], &booking, GOOD, "completed", None);
    // The key answers what happened; nothing was charged twice.
    let (status, replayed) = answer(pay(&app, &ann.token, &key, &card(&booking, GOOD)).await).await;
    assert_eq!((status, &replayed), (201, &payments[0]));
}

// ---------------------------------------------------------------------------------------------
// Card testing

async fn declined_attempts_are_limited_per_booking_and_per_customer_even_in_parallel(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.sections.payment.max_failed_attempts_per_booking = 2;
        s.sections.payment.max_failed_attempts_per_user = 3;
        s.sections.payment.gateway.latency_ms = 300;
    })
    .await;
    let screen = screening(&app, ROW_A).await;
    let ann = customer(&app, "ann").await;

    // Per booking: two declines, then even a good card waits for the window to end.
    let first = book(&app, &ann.token, &screen, &["A1"]).await;
    for _ in 0..2 {
        let declined = pay_ok(&app, &ann.token, &card(&first, DECLINED)).await;
        assert_eq!(declined["failure_reason"], "card_declined", "{declined}");
    }
    let limited = |res: reqwest::Response| async move {
        let retry_after: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!(retry_after > 0, "Retry-After: {retry_after}");
        let problem = assert_problem(res, 429).await;
        assert_eq!(problem["type"], "/problems/payment-attempts-exceeded", "{problem}");
    };
    limited(pay(&app, &ann.token, &new_key(), &card(&first, GOOD)).await).await;

    // Per customer: one attempt left; four declines on four bookings at once get one through.
    let mut others = Vec::new();
    for label in ["A2", "A3", "A4", "A5"] {
        others.push(book(&app, &ann.token, &screen, &[label]).await);
    }
    let bodies: Vec<(String, Value)> = others.iter().map(|b| (new_key(), card(b, DECLINED))).collect();
    let answers = join_all(bodies.iter().map(|(key, body)| pay(&app, &ann.token, key, body))).await;
    let mut through = 0;
    for res in answers {
        if res.status() == 201 {
            through += 1;
        } else {
            limited(res).await;
        }
    }
    assert_eq!(through, 1, "one attempt was left");
    assert_eq!(list(&app, &ann.token, "").await["total"], 3, "three declines recorded");

    // Another customer is not limited by ann's declines.
    let bea = customer(&app, "bea").await;
    let theirs = book(&app, &bea.token, &screen, &["A6"]).await;
    assert_charge(&pay_ok(&app, &bea.token, &card(&theirs, GOOD)).await, &theirs, GOOD, "completed", None);
}

// ---------------------------------------------------------------------------------------------
// Admin refunds and the list

async fn only_an_admin_refunds_and_only_a_completed_payment(backend: Backend) {
    let app = spawn_app(backend).await;
    let screen = screening(&app, ROW_A).await;
    let ann = customer(&app, "ann").await;
    let booking = book(&app, &ann.token, &screen, &["A1", "A2"]).await;
    let declined = pay_ok(&app, &ann.token, &card(&booking, DECLINED)).await;
    let paid = pay_ok(&app, &ann.token, &card(&booking, GOOD)).await;
    assert_charge(&paid, &booking, GOOD, "completed", None);
    let refunds = payments_counted(&app, "refunded").await;

    let problem = assert_problem(refund(&app, &ann.token, id(&paid)).await, 403).await;
    assert_eq!(problem["type"], "/problems/forbidden", "{problem}");
    assert_problem(refund(&app, &ann.token, &uuid::Uuid::new_v4().to_string()).await, 403).await;
    assert_eq!(get_payment(&app, &ann.token, id(&paid)).await, paid, "a customer's refund changes nothing");

    let res = refund(&app, &screen.admin, id(&paid)).await;
    assert_eq!(res.status(), 200);
    let refunded: Value = res.json().await.unwrap();
    assert_refund_of(&refunded, &paid);
    assert_eq!(get_payment(&app, &ann.token, id(&paid)).await, refunded);
    assert_eq!(payments_counted(&app, "refunded").await, refunds + 1.0);

    assert_conflict(refund(&app, &screen.admin, id(&paid)).await, "payment-not-refundable").await;
    assert_conflict(refund(&app, &screen.admin, id(&declined)).await, "payment-not-refundable").await;
    assert_not_found(refund(&app, &screen.admin, &uuid::Uuid::new_v4().to_string()).await, "payment").await;
    assert_eq!(get_payment(&app, &ann.token, id(&paid)).await, refunded, "refunded once");
    assert_eq!(get_payment(&app, &ann.token, id(&declined)).await, declined);
    assert_eq!(payments_counted(&app, "refunded").await, refunds + 1.0);
}

async fn concurrent_refunds_of_one_payment_give_the_money_back_once(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.sections.payment.gateway.latency_ms = 200).await;
    let screen = screening(&app, ROW_A).await;
    let ann = customer(&app, "ann").await;
    let booking = book(&app, &ann.token, &screen, &["A1"]).await;
    let paid = pay_ok(&app, &ann.token, &card(&booking, GOOD)).await;
    let refunds = payments_counted(&app, "refunded").await;

    let answers = join_all((0..5).map(|_| async { answer(refund(&app, &screen.admin, id(&paid)).await).await })).await;
    let refunded: Vec<&Value> = answers.iter().filter(|(status, _)| *status == 200).map(|(_, body)| body).collect();
    assert_eq!(refunded.len(), 1, "{answers:?}");
    assert_refund_of(refunded[0], &paid);
    for (status, body) in answers.iter().filter(|(status, _)| *status != 200) {
        assert_eq!(*status, 409, "{body}");
        assert_eq!(body["type"], "/problems/payment-not-refundable", "{body}");
    }
    assert_eq!(&get_payment(&app, &ann.token, id(&paid)).await, refunded[0]);
    assert_eq!(payments_counted(&app, "refunded").await, refunds + 1.0);
}

async fn a_customer_lists_their_own_payments_newest_first_filtered_and_paginated(backend: Backend) {
    let app = spawn_app(backend).await;
    let screen = screening(&app, ROW_A).await;
    let ann = customer(&app, "ann").await;
    let bob = customer(&app, "bob").await;
    let first = book(&app, &ann.token, &screen, &["A1"]).await;
    let second = book(&app, &ann.token, &screen, &["A2", "A3"]).await;
    let bobs = book(&app, &bob.token, &screen, &["A4"]).await;

    let declined = pay_ok(&app, &ann.token, &card(&first, DECLINED)).await;
    let paid_first = pay_ok(&app, &ann.token, &card(&first, GOOD)).await;
    let paid_bob = pay_ok(&app, &bob.token, &card(&bobs, GOOD)).await;
    let paid_second = pay_ok(&app, &ann.token, &card(&second, MASTERCARD)).await;

    let all = list(&app, &ann.token, "").await;
    assert_eq!(all, json!({"items": [paid_second, paid_first, declined], "page": 1, "per_page": 20, "total": 3}));
    assert_eq!(list(&app, &bob.token, "").await["items"], json!([paid_bob]));

    let page = |n: u64| format!("?per_page=1&page={n}");
    for (n, expected) in [(1, &paid_second), (2, &paid_first), (3, &declined)] {
        let one = list(&app, &ann.token, &page(n)).await;
        assert_eq!(one, json!({"items": [expected], "page": n, "per_page": 1, "total": 3}));
    }
    assert_eq!(list(&app, &ann.token, "?per_page=2&page=2").await["items"], json!([declined]));
    assert_eq!(list(&app, &ann.token, "?per_page=2&page=3").await["items"], json!([]));

    assert_eq!(ids(&list(&app, &ann.token, "?status=completed").await), [id(&paid_second), id(&paid_first)]);
    assert_eq!(ids(&list(&app, &ann.token, "?status=failed").await), [id(&declined)]);
    assert_eq!(list(&app, &ann.token, "?status=refunded").await["total"], 0);
    let of_first = list(&app, &ann.token, &format!("?booking_id={}", id(&first))).await;
    assert_eq!(ids(&of_first), [id(&paid_first), id(&declined)]);
    let filtered = list(&app, &ann.token, &format!("?booking_id={}&status=completed&per_page=1", id(&first))).await;
    assert_eq!(filtered, json!({"items": [paid_first], "page": 1, "per_page": 1, "total": 1}));
    assert_eq!(list(&app, &ann.token, &format!("?booking_id={}", id(&bobs))).await["total"], 0, "only mine");

    // A refunded payment is listed as such.
    wait_for_status(&app, &ann.token, id(&second), "confirmed", SETTLE).await;
    cancel_ok(&app, &ann.token, id(&second)).await;
    let refunded = wait_for_payment(&app, SETTLE, &ann.token, id(&paid_second), "refunded").await;
    assert_eq!(list(&app, &ann.token, "?status=refunded").await["items"], json!([refunded]));
    assert_eq!(ids(&list(&app, &ann.token, "?status=completed").await), [id(&paid_first)]);

    for (query, field) in [
        ("?per_page=0", "per_page"),
        ("?per_page=101", "per_page"),
        ("?page=0", "page"),
        ("?status=paid", "status"),
        ("?booking_id=nope", "booking_id"),
    ] {
        assert_invalid(app.get_as(&format!("{PAYMENTS}{query}"), &ann.token).await, &[field], query).await;
    }
}

async fn replays_are_answered_from_redis_where_there_is_one(backend: Backend) {
    // The split deployment copies saved answers to Redis; one process answers from its database.
    let split = matches!(backend, Backend::Postgres { .. });
    let app = spawn_app(backend).await;
    let screen = screening(&app, ROW_A).await;
    let ann = customer(&app, "ann").await;
    let booking = book(&app, &ann.token, &screen, &["A1"]).await;
    let other_booking = book(&app, &ann.token, &screen, &["A2"]).await;
    let replays = |source: &'static str| {
        let app = &app;
        async move { counter(&app.metrics().await, "payment_replays_total", &format!("source=\"{source}\"")) }
    };
    let key = new_key();
    let first = answer(pay(&app, &ann.token, &key, &card(&booking, GOOD)).await).await;
    assert_eq!(first.0, 201, "{}", first.1);
    for _ in 0..3 {
        assert_eq!(answer(pay(&app, &ann.token, &key, &card(&booking, GOOD)).await).await, first);
    }
    // The first replay reads the database and leaves a copy in Redis for the next ones.
    let (cached, from_database) = (replays("cache").await, replays("database").await);
    if split {
        assert_eq!((cached, from_database), (2.0, 1.0));
    } else {
        assert_eq!((cached, from_database), (0.0, 3.0));
    }
    // The copy knows the body too: another body under the key is still refused.
    let problem = assert_invalid(
        pay(&app, &ann.token, &key, &card(&other_booking, GOOD)).await,
        &["Idempotency-Key"],
        "reused key",
    )
    .await;
    assert_eq!(problem["status"], 422);
    assert_eq!(list(&app, &ann.token, "").await["total"], 1, "one charge");
}

/// Before issue 12 a key saved the HTTP status and body it was answered with; migration
/// `m20261207_000001_saved_answers` rewrites them as the service's answers. Its `down` writes
/// the old form back (what the old code saved: the payment, or the problem document of the
/// time, without the `reason` member), so the upgrade is replayed here on real answers.
async fn answers_saved_as_http_before_issue_12_replay_alike_after_the_upgrade(backend: Backend) {
    use payment_migrations::Migrator;
    use sea_orm::{ConnectionTrait, Statement};
    use sea_orm_migration::MigratorTrait;

    let app = spawn_app(backend).await;
    let screen = screening(&app, ROW_A).await;
    let ann = customer(&app, "ann").await;
    let paid = book(&app, &ann.token, &screen, &["A1"]).await;
    let cancelled = book(&app, &ann.token, &screen, &["A2"]).await;
    cancel_ok(&app, &ann.token, id(&cancelled)).await;
    let requests = [
        (new_key(), card(&paid, GOOD), 201_u16),
        (new_key(), card(&cancelled, GOOD), 409),
        (new_key(), card(&json!({"id": uuid::Uuid::new_v4()}), GOOD), 404),
    ];
    let mut first = Vec::new();
    for (key, body, status) in &requests {
        let (answered, json) = answer(pay(&app, &ann.token, key, body).await).await;
        assert_eq!(answered, *status, "{json}");
        first.push(json);
    }

    let migrate: platform::db::Migrate = |db| Box::pin(Migrator::up(db, None));
    let db = platform::db::connect(&app.settings.database, &app.data_dir, "payment", migrate).await.unwrap();
    // Back to before the upgrade: the outbox's trace column (issue 15), then the answers.
    Migrator::down(&db, Some(2)).await.unwrap();
    let sql = "SELECT key, response_status, response_body FROM idempotency_keys";
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
    assert_eq!(rows.len(), requests.len());
    for row in rows {
        let key: String = row.try_get("", "key").unwrap();
        let status: i16 = row.try_get("", "response_status").unwrap();
        let body: Value = serde_json::from_str(&row.try_get::<String>("", "response_body").unwrap()).unwrap();
        let i = requests.iter().position(|(k, _, _)| *k == key).unwrap();
        assert_eq!(u16::try_from(status).unwrap(), requests[i].2);
        if status == 201 {
            assert_eq!(body, first[i]);
        } else {
            for member in ["type", "title", "status", "detail"] {
                assert_eq!(body[member], first[i][member], "{member} of the old {status}");
            }
        }
    }
    Migrator::up(&db, None).await.unwrap();

    for ((key, body, status), first) in requests.iter().zip(&first) {
        assert_eq!(answer(pay(&app, &ann.token, key, body).await).await, (*status, first.clone()));
    }
    assert_eq!(payments_of(&app, &ann.token, &paid).await.len(), 1, "charged once");
}
