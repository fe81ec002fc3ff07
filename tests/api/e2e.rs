//! The end-to-end suite: what a client does, through the public API only, run on every
//! deployment (docs/testing.md): the single binary on SQLite and on PostgreSQL + Redis +
//! RabbitMQ here, the split and the mixed split behind the gateway in `tests/api/split_script.rs`.
//! Every scenario makes its own users and screening, so scenarios can share a deployment.

use std::time::Duration as StdDuration;

use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};

use crate::fixtures::{
    BOOKINGS, GOOD, PAY, PAYMENTS, ROWS_A_AND_B, book, cancel_ok, card, customer, get_payment, new_key, pay, pay_ok,
    post_book, screening, seat_map, wait_for_payment, wait_for_status,
};
use crate::helpers::{Api, Backend, assert_invalid, assert_problem, id, spawn_app};
use crate::movie::MOVIES;
use crate::notification::{kinds, wait_for_notifications};

/// Where things that happen in the background (events, mail, refunds) must have happened by.
/// Generous: the split deployment runs on loaded CI cores.
const SETTLE: StdDuration = StdDuration::from_secs(30);

/// How many buyers race for one seat.
const RACERS: usize = 40;

/// What one run of the suite saw, for the report a test prints.
#[derive(Debug, Default)]
pub struct Tally {
    pub journeys: usize,
    pub race: (usize, usize),
    pub duplicate_payments: usize,
    pub problems: usize,
}

on_both_backends!(the_single_binary_passes_the_suite);

async fn the_single_binary_passes_the_suite(backend: Backend) {
    let app = spawn_app(backend).await;
    let tally = suite(&app, "single").await;
    println!("e2e single binary: {tally:?}");
}

/// Every scenario once; `run` makes the usernames of this run unique on a shared deployment.
pub async fn suite(api: &Api, run: &str) -> Tally {
    let run = format!("{run}{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let mut tally = Tally::default();
    journey(api, &format!("{run}j")).await;
    tally.journeys += 1;
    tally.race = seat_race(api, &format!("{run}r")).await;
    tally.duplicate_payments = idempotent_payment(api, &format!("{run}i")).await;
    tally.problems = errors_are_problems(api, &format!("{run}e")).await;
    tally
}

/// Register → browse → seat map → book → pay → confirmed → notified → cancel → refunded.
pub async fn journey(api: &Api, run: &str) {
    let screen = screening(api, ROWS_A_AND_B).await;
    let movie = api.client.get(api.url(&format!("{MOVIES}/{}", screen.showtime["movie_id"].as_str().unwrap()))).send();
    assert_eq!(movie.await.unwrap().status(), 200, "the screening's movie is in the catalog");
    let ada = customer(api, &format!("ada{run}")).await;
    assert!(seat_map(api, &screen).await.values().all(|s| s == "available"));

    let booking = book(api, &ada.token, &screen, &["A1", "B1"]).await;
    let map = seat_map(api, &screen).await;
    assert_eq!((map["A1"].as_str(), map["B1"].as_str(), map["A2"].as_str()), ("held", "held", "available"));
    let paid = pay_ok(api, &ada.token, &card(&booking, GOOD)).await;
    assert_eq!(paid["status"], "completed", "{paid}");
    assert_eq!(paid["amount_cents"], booking["amount_cents"]);
    wait_for_status(api, &ada.token, id(&booking), "confirmed", SETTLE).await;
    assert_eq!(seat_map(api, &screen).await["B1"], "booked");
    let mail = ["booking_created", "booking_confirmed"];
    wait_for_notifications(api, &ada.token, |items| mail.iter().all(|k| kinds(items).contains(k))).await;

    cancel_ok(api, &ada.token, id(&booking)).await;
    let refunded = wait_for_payment(api, SETTLE, &ada.token, id(&paid), "refunded").await;
    assert_eq!(refunded["transactions"].as_array().map(Vec::len), Some(2), "a charge and its refund: {refunded}");
    assert_eq!(seat_map(api, &screen).await["A1"], "available");
    let mail = ["booking_cancelled", "payment_refunded"];
    wait_for_notifications(api, &ada.token, |items| mail.iter().all(|k| kinds(items).contains(k))).await;
}

/// `RACERS` buyers (four customers, ten requests each) ask for one seat at once: one booking,
/// every other answer a 409 problem. Returns (booked, refused).
pub async fn seat_race(api: &Api, run: &str) -> (usize, usize) {
    let screen = screening(api, ROWS_A_AND_B).await;
    let mut tokens = Vec::new();
    for n in 0..4 {
        tokens.push(customer(api, &format!("racer{n}{run}")).await.token);
    }
    let body = screen.request(&["A3"]);
    let answers =
        join_all((0..RACERS).map(|n| post_book(api, &tokens[n % tokens.len()], &body))).await.into_iter().map(|res| {
            let status = res.status().as_u16();
            (status, res)
        });
    let (mut booked, mut refused) = (0, 0);
    for (status, res) in answers {
        match status {
            201 => booked += 1,
            _ => {
                assert_problem(res, 409).await;
                refused += 1;
            }
        }
    }
    assert_eq!((booked, refused), (1, RACERS - 1), "one seat, one booking");
    assert_eq!(seat_map(api, &screen).await["A3"], "held");
    (booked, refused)
}

/// The same payment sent eight times at once under one key: one charge, and every answer the
/// same payment. Returns how many requests were sent.
pub async fn idempotent_payment(api: &Api, run: &str) -> usize {
    let screen = screening(api, ROWS_A_AND_B).await;
    let bea = customer(api, &format!("bea{run}")).await;
    let booking = book(api, &bea.token, &screen, &["A4"]).await;
    let (key, body) = (new_key(), card(&booking, GOOD));
    let answers = join_all((0..8).map(|_| pay(api, &bea.token, &key, &body))).await;
    let mut ids = Vec::new();
    for res in answers {
        assert_eq!(res.status(), 201, "a repeated request is answered as the first");
        ids.push(res.json::<Value>().await.unwrap()["id"].clone());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one payment: {ids:?}");
    let payment = get_payment(api, &bea.token, ids[0].as_str().unwrap()).await;
    assert_eq!(payment["transactions"].as_array().map(Vec::len), Some(1), "one charge: {payment}");
    wait_for_status(api, &bea.token, id(&booking), "confirmed", SETTLE).await;
    let page: Value =
        api.get_as(&format!("{PAYMENTS}?booking_id={}", id(&booking)), &bea.token).await.json().await.unwrap();
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1), "one payment of the booking: {page}");
    8
}

/// Bad requests are problem documents and change nothing. Returns how many were checked.
pub async fn errors_are_problems(api: &Api, run: &str) -> usize {
    let screen = screening(api, ROWS_A_AND_B).await;
    let cy = customer(api, &format!("cy{run}")).await;
    let mut checked = 0;
    let no_token = api.client.get(api.url(BOOKINGS)).send().await.unwrap();
    assert_problem(no_token, 401).await;
    checked += 1;
    let invalid = post_book(api, &cy.token, &json!({"showtime_id": screen.showtime["id"], "seat_ids": []})).await;
    assert_invalid(invalid, &["seat_ids"], "no seats").await;
    checked += 1;
    let unknown = api.client.get(api.url("/api/movies/no-such-route")).send().await.unwrap();
    assert_problem(unknown, 404).await;
    checked += 1;
    let booking = book(api, &cy.token, &screen, &["A5"]).await;
    let keyless = api.send_as(Method::POST, PAY, &cy.token, &card(&booking, GOOD)).await;
    assert_problem(keyless, 400).await;
    checked += 1;
    let dee = customer(api, &format!("dee{run}")).await;
    assert_problem(api.get_as(&format!("{BOOKINGS}/{}", id(&booking)), &dee.token).await, 404).await;
    checked += 1;
    let taken = post_book(api, &cy.token, &screen.request(&["A5"])).await;
    assert_problem(taken, 409).await;
    checked += 1;
    let page: Value = api.get_as(BOOKINGS, &cy.token).await.json().await.unwrap();
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1), "the refused requests booked nothing: {page}");
    checked
}
