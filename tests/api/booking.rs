//! The booking routes, black-box: booking seats all or nothing, reading, listing and
//! cancelling one's bookings, confirmation by `payment.completed`, the expiry of unpaid holds,
//! the seat map and `seats_available` that follow them, and races for the same seats.
//!
//! Every test books in a fresh screening (see `fixtures::screening`) of `ROWS_A_AND_B`: theater
//! rows A (6 standard seats) and B (6 premium seats), a showtime two days ahead at 1200 cents,
//! so B seats cost 1800. Seats are named by label (`"A1"`). Nothing sleeps for a fixed time: what happens in the
//! background (events, the expiry sweeper) is polled for with a deadline.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration as StdDuration, Instant};

use chrono::{Duration, Utc};
use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};

use crate::fixtures::{
    BOOK, BOOKINGS, ROWS_A_AND_B, Screening, book, booking_path, cancel, cancel_ok, customer, get_booking, post_admin,
    post_book, screening, seat_map, wait_for_status,
};
use crate::helpers::{
    Backend, TestApp, assert_invalid, assert_not_found, assert_problem, counter, id, ids, spawn_app, spawn_app_with,
    time, wait_past,
};
use crate::movie::{THEATERS, move_showtime};

/// The hold of an unpaid booking by default: 10 minutes.
const DEFAULT_HOLD_SECONDS: i64 = 600;

on_both_backends!(
    a_booking_holds_every_requested_seat_for_the_caller_at_its_price,
    a_customer_lists_their_own_bookings_newest_first_filtered_and_paginated,
    bad_list_queries_are_422_naming_the_parameter,
    a_booking_is_visible_to_its_owner_and_admins_and_404_to_anyone_else,
    every_booking_route_needs_a_valid_token,
    invalid_booking_requests_are_422_naming_the_field_and_hold_nothing,
    a_showtime_that_has_started_cannot_be_booked,
    an_unknown_showtime_is_404_and_malformed_json_is_400,
    a_held_or_booked_seat_is_409_listing_every_unavailable_seat_and_nothing_is_taken,
    a_payment_completed_event_confirms_the_booking_and_books_its_seats,
    an_unpaid_hold_expires_and_its_seats_can_be_booked_again,
    a_cancelled_booking_frees_its_seats_at_once_and_cannot_be_cancelled_again,
    seats_available_goes_down_with_a_booking_and_back_up_with_its_cancellation,
    fifty_customers_racing_for_one_seat_get_exactly_one_booking,
    without_seat_locks_the_database_alone_lets_exactly_one_of_fifty_win,
    overlapping_requests_never_share_a_seat_nor_book_part_of_a_request,
    overlapping_requests_without_seat_locks_never_share_a_seat_either,
    bookings_and_conflicts_are_counted_in_metrics,
    a_409_names_a_booked_seat_whose_lock_ran_out_too,
    a_payment_after_the_hold_ran_out_confirms_nothing,
    one_customer_cannot_hold_more_seats_than_the_caps_even_in_parallel,
);

// ---------------------------------------------------------------------------------------------
// Helpers

/// The ids of a list of seats (of a booking or of a problem), sorted.
fn sorted(ids: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut ids: Vec<String> = ids.into_iter().collect();
    ids.sort_unstable();
    ids
}

fn seat_ids_of(booking: &Value) -> Vec<String> {
    sorted(booking["seats"].as_array().unwrap().iter().map(|s| id(s).to_owned()))
}

fn unavailable_of(problem: &Value) -> Vec<String> {
    sorted(problem["unavailable_seat_ids"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()))
}

/// Registers `n` customers at once and returns their access tokens.
async fn customer_tokens(app: &TestApp, prefix: &str, n: usize) -> Vec<String> {
    join_all((0..n).map(|i| async move { app.customer_token(&format!("{prefix}{i:02}")).await })).await
}

async fn list(app: &TestApp, token: &str, query: &str) -> Value {
    let res = app.get_as(&format!("{BOOKINGS}{query}"), token).await;
    assert_eq!(res.status(), 200, "GET {BOOKINGS}{query}");
    res.json().await.unwrap()
}

/// Polls the showtime until its `seats_available` is `expected`.
async fn wait_for_seats_available(app: &TestApp, screen: &Screening, expected: u64) {
    let deadline = Instant::now() + StdDuration::from_secs(15);
    loop {
        let res = app.client.get(app.url(&screen.showtime_path())).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let showtime: Value = res.json().await.unwrap();
        if showtime["seats_available"] == expected {
            return;
        }
        assert!(Instant::now() < deadline, "seats_available {} rather than {expected}", showtime["seats_available"]);
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
}

/// Publishes `payment.completed` for `booking` as the payment module would.
async fn pay(app: &TestApp, booking: &Value) {
    let payload = json!({
        "payment_id": uuid::Uuid::new_v4(),
        "booking_id": booking["id"],
        "user_id": booking["user_id"],
        "amount_cents": booking["amount_cents"],
    });
    app.bus.publish(&platform::events::Envelope::new("payment.completed", &payload).unwrap()).await.unwrap();
}

/// Asserts a 409 `seats-unavailable` and returns the unavailable seat ids, sorted.
async fn assert_unavailable(res: reqwest::Response) -> Vec<String> {
    let problem = assert_problem(res, 409).await;
    assert_eq!(problem["type"], "/problems/seats-unavailable", "{problem}");
    unavailable_of(&problem)
}

async fn assert_not_cancellable(res: reqwest::Response) {
    let problem = assert_problem(res, 409).await;
    assert_eq!(problem["type"], "/problems/booking-not-cancellable", "{problem}");
}

// ---------------------------------------------------------------------------------------------
// Booking, reading, listing

async fn a_booking_holds_every_requested_seat_for_the_caller_at_its_price(backend: Backend) {
    let app = spawn_app(backend).await;
    let screen = screening(&app, ROWS_A_AND_B).await;
    let cora = customer(&app, "cora").await;
    assert_eq!(seat_map(&app, &screen).await, screen.statuses(&[]));

    let before = Utc::now();
    let res = post_book(&app, &cora.token, &screen.request(&["A1", "A2", "B4"])).await;
    assert_eq!(res.status(), 201);
    let booking: Value = res.json().await.unwrap();
    let after = Utc::now();
    assert!(uuid::Uuid::parse_str(id(&booking)).is_ok(), "{booking}");
    assert_eq!(booking["user_id"], cora.id.as_str());
    assert_eq!(booking["showtime_id"], screen.showtime["id"]);
    assert_eq!(booking["status"], "pending");
    let seats = json!([screen.booked_seat("A1"), screen.booked_seat("A2"), screen.booked_seat("B4")]);
    assert_eq!(booking["seats"], seats);
    assert_eq!(booking["amount_cents"], 1200 + 1200 + 1800);
    assert_eq!(booking["currency"], "USD");
    let created = time(&booking["created_at"]);
    assert!(created >= before - Duration::seconds(1) && created <= after, "created {created}, {before}..{after}");
    assert_eq!(time(&booking["expires_at"]), created + Duration::seconds(DEFAULT_HOLD_SECONDS), "{booking}");
    let keys: BTreeSet<&str> = booking.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "id",
            "user_id",
            "showtime_id",
            "status",
            "seats",
            "amount_cents",
            "currency",
            "created_at",
            "expires_at"
        ]),
        "{booking}"
    );

    // The booking reads back as it was answered, and its seats are held.
    assert_eq!(get_booking(&app, &cora.token, id(&booking)).await, booking);
    assert_eq!(seat_map(&app, &screen).await, screen.statuses(&[("A1", "held"), ("A2", "held"), ("B4", "held")]));

    // A second booking of the same customer, seats asked for out of order: its own seats only.
    let res = post_book(&app, &cora.token, &screen.request(&["B6", "A6"])).await;
    assert_eq!(res.status(), 201);
    let second: Value = res.json().await.unwrap();
    assert_ne!(second["id"], booking["id"]);
    assert_eq!(seat_ids_of(&second), sorted(screen.seat_ids(&["A6", "B6"])));
    let mut priced: Vec<Value> = second["seats"].as_array().unwrap().clone();
    priced.sort_by_key(|s| s["row"].as_str().unwrap().to_owned());
    assert_eq!(priced, [screen.booked_seat("A6"), screen.booked_seat("B6")]);
    assert_eq!(second["amount_cents"], 1200 + 1800);
    assert_eq!(get_booking(&app, &cora.token, id(&second)).await, second);
}

async fn a_customer_lists_their_own_bookings_newest_first_filtered_and_paginated(backend: Backend) {
    let app = spawn_app(backend).await;
    let screen = screening(&app, ROWS_A_AND_B).await;
    let cora = customer(&app, "cora").await;
    let dan = customer(&app, "dan").await;
    let first = book(&app, &cora.token, &screen, &["A1"]).await;
    let second = book(&app, &cora.token, &screen, &["A2", "A3"]).await;
    let third = book(&app, &cora.token, &screen, &["B1"]).await;
    let dans = book(&app, &dan.token, &screen, &["B2"]).await;
    let res = cancel(&app, &cora.token, id(&second)).await;
    assert_eq!(res.status(), 200);
    let second = get_booking(&app, &cora.token, id(&second)).await;
    assert_eq!(second["status"], "cancelled");

    let all = list(&app, &cora.token, "").await;
    assert_eq!(all["items"], json!([third, second, first]), "whole bookings, newest first");
    assert_eq!((all["page"].as_u64(), all["per_page"].as_u64(), all["total"].as_u64()), (Some(1), Some(20), Some(3)));

    let cancelled = list(&app, &cora.token, "?status=cancelled").await;
    assert_eq!((ids(&cancelled), cancelled["total"].as_u64()), (vec![id(&second)], Some(1)));
    let pending = list(&app, &cora.token, "?status=pending").await;
    assert_eq!((ids(&pending), pending["total"].as_u64()), (vec![id(&third), id(&first)], Some(2)));
    let confirmed = list(&app, &cora.token, "?status=confirmed").await;
    assert_eq!((confirmed["items"].clone(), confirmed["total"].as_u64()), (json!([]), Some(0)));

    let page_one = list(&app, &cora.token, "?per_page=2").await;
    assert_eq!(ids(&page_one), [id(&third), id(&second)]);
    assert_eq!(
        (page_one["page"].as_u64(), page_one["per_page"].as_u64(), page_one["total"].as_u64()),
        (Some(1), Some(2), Some(3))
    );
    let page_two = list(&app, &cora.token, "?page=2&per_page=2").await;
    assert_eq!(ids(&page_two), [id(&first)]);
    assert_eq!((page_two["page"].as_u64(), page_two["total"].as_u64()), (Some(2), Some(3)));
    let beyond = list(&app, &cora.token, "?page=3&per_page=2").await;
    assert_eq!((beyond["items"].clone(), beyond["total"].as_u64()), (json!([]), Some(3)));
    let filtered_page = list(&app, &cora.token, "?status=pending&page=2&per_page=1").await;
    assert_eq!((ids(&filtered_page), filtered_page["total"].as_u64()), (vec![id(&first)], Some(2)));

    // Everyone sees their own bookings only; the admin has none of its own.
    let his = list(&app, &dan.token, "").await;
    assert_eq!((his["items"].clone(), his["total"].as_u64()), (json!([dans]), Some(1)));
    let admins = list(&app, &screen.admin, "").await;
    assert_eq!((admins["items"].clone(), admins["total"].as_u64()), (json!([]), Some(0)));
    let eve = customer(&app, "eve").await;
    let none = list(&app, &eve.token, "").await;
    assert_eq!((none["items"].clone(), none["total"].as_u64()), (json!([]), Some(0)));
}

async fn bad_list_queries_are_422_naming_the_parameter(backend: Backend) {
    let app = spawn_app(backend).await;
    let cora = customer(&app, "cora").await;
    for (query, field) in [
        ("?per_page=0", "per_page"),
        ("?per_page=101", "per_page"),
        ("?page=0", "page"),
        ("?page=first", "page"),
        ("?status=paid", "status"),
    ] {
        let res = app.get_as(&format!("{BOOKINGS}{query}"), &cora.token).await;
        assert_invalid(res, &[field], query).await;
    }
    let widest = list(&app, &cora.token, "?page=1&per_page=100").await;
    assert_eq!(widest, json!({"items": [], "page": 1, "per_page": 100, "total": 0}));
}

async fn a_booking_is_visible_to_its_owner_and_admins_and_404_to_anyone_else(backend: Backend) {
    let app = spawn_app(backend).await;
    let screen = screening(&app, ROWS_A_AND_B).await;
    let cora = customer(&app, "cora").await;
    let mallory = customer(&app, "mallory").await;
    let booking = book(&app, &cora.token, &screen, &["A1", "B1"]).await;
    let path = booking_path(id(&booking));

    assert_eq!(get_booking(&app, &cora.token, id(&booking)).await, booking);
    assert_eq!(get_booking(&app, &screen.admin, id(&booking)).await, booking, "an admin reads anyone's booking");
    assert_not_found(app.get_as(&path, &mallory.token).await, "booking").await;
    assert_not_found(cancel(&app, &mallory.token, id(&booking)).await, "booking").await;
    assert_eq!(get_booking(&app, &cora.token, id(&booking)).await, booking, "still pending");
    assert_eq!(list(&app, &mallory.token, "").await["total"], 0);

    let unknown = uuid::Uuid::new_v4().to_string();
    assert_not_found(app.get_as(&booking_path(&unknown), &cora.token).await, "booking").await;
    assert_not_found(app.get_as(&booking_path(&unknown), &screen.admin).await, "booking").await;
    assert_not_found(cancel(&app, &cora.token, &unknown).await, "booking").await;
    for malformed in ["not-a-uuid", "12345"] {
        assert_problem(app.get_as(&booking_path(malformed), &cora.token).await, 404).await;
        assert_problem(cancel(&app, &cora.token, malformed).await, 404).await;
    }
}

async fn every_booking_route_needs_a_valid_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let screen = screening(&app, ROWS_A_AND_B).await;
    let cora = customer(&app, "cora").await;
    let booking = book(&app, &cora.token, &screen, &["B1"]).await;
    let routes = vec![
        (Method::POST, BOOK.to_owned(), Some(screen.request(&["A1"]))),
        (Method::GET, BOOKINGS.to_owned(), None),
        (Method::GET, booking_path(id(&booking)), None),
        (Method::POST, format!("{}/cancel", booking_path(id(&booking))), None),
    ];
    app.assert_routes_need_a_token(routes, |request| request).await;
    assert_eq!(get_booking(&app, &cora.token, id(&booking)).await, booking);
    assert_eq!(seat_map(&app, &screen).await, screen.statuses(&[("B1", "held")]));
}

// ---------------------------------------------------------------------------------------------
// Invalid requests

async fn invalid_booking_requests_are_422_naming_the_field_and_hold_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let screen = screening(&app, ROWS_A_AND_B).await;
    let elsewhere = post_admin(
        &app,
        &screen.admin,
        THEATERS,
        &json!({"name": "Screen 2", "location": "Level 2", "layout": [{"row": "A", "seats": 3, "type": "standard"}]}),
    )
    .await;
    let cora = customer(&app, "cora").await;
    let showtime_id = screen.showtime["id"].clone();
    let eleven: Vec<&str> = vec!["A1", "A2", "A3", "A4", "A5", "A6", "B1", "B2", "B3", "B4", "B5"];
    let ten = &eleven[..10];
    let cases = [
        (json!({"showtime_id": showtime_id, "seat_ids": []}), "seat_ids", "no seats"),
        (screen.request(&eleven), "seat_ids", "eleven seats"),
        (screen.request(&["A1", "A2", "A1"]), "seat_ids", "a seat twice"),
        (
            json!({"showtime_id": showtime_id, "seat_ids": [screen.seat_id("A1"), elsewhere["seats"][0]["id"]]}),
            "seat_ids",
            "a seat of another theater",
        ),
        (
            json!({"showtime_id": showtime_id, "seat_ids": [uuid::Uuid::new_v4(), screen.seat_id("A2")]}),
            "seat_ids",
            "an unknown seat",
        ),
        (json!({"showtime_id": "nope", "seat_ids": [screen.seat_id("A1")]}), "showtime_id", "not a uuid"),
        (json!({"showtime_id": showtime_id, "seat_ids": screen.seat_id("A1")}), "seat_ids", "not a list"),
    ];
    for (body, field, context) in cases {
        let res = post_book(&app, &cora.token, &body).await;
        assert_invalid(res, &[field], context).await;
    }
    assert_eq!(seat_map(&app, &screen).await, screen.statuses(&[]), "nothing is held");
    assert_eq!(list(&app, &cora.token, "").await["total"], 0);

    // Ten is the most: allowed.
    let booking = book(&app, &cora.token, &screen, ten).await;
    assert_eq!(booking["seats"].as_array().unwrap().len(), 10);
    assert_eq!(booking["amount_cents"], 6 * 1200 + 4 * 1800);
}

async fn a_showtime_that_has_started_cannot_be_booked(backend: Backend) {
    // No catalog cache, so that the move below is seen at once however booking reads the showtime.
    let app = spawn_app_with(backend, |s| s.sections.movie.cache_ttl_seconds = 0).await;
    let screen = screening(&app, ROWS_A_AND_B).await;
    let cora = customer(&app, "cora").await;
    let booking = book(&app, &cora.token, &screen, &["A1"]).await;
    move_showtime(&app, &screen.showtime, Utc::now() - Duration::minutes(10), 100).await;

    let res = post_book(&app, &cora.token, &screen.request(&["A2"])).await;
    assert_invalid(res, &["showtime_id"], "started ten minutes ago").await;
    assert_eq!(seat_map(&app, &screen).await, screen.statuses(&[("A1", "held")]));
    assert_eq!(list(&app, &cora.token, "").await["items"], json!([booking]));
}

async fn an_unknown_showtime_is_404_and_malformed_json_is_400(backend: Backend) {
    let app = spawn_app(backend).await;
    let screen = screening(&app, ROWS_A_AND_B).await;
    let cora = customer(&app, "cora").await;
    let body = json!({"showtime_id": uuid::Uuid::new_v4(), "seat_ids": [screen.seat_id("A1")]});
    assert_not_found(post_book(&app, &cora.token, &body).await, "showtime").await;

    for malformed in [r#"{"showtime_id": "#, "not json", ""] {
        let res = app
            .client
            .post(app.url(BOOK))
            .bearer_auth(&cora.token)
            .header("content-type", "application/json")
            .body(malformed)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{malformed:?}");
        assert_problem(res, 400).await;
    }
    assert_eq!(seat_map(&app, &screen).await, screen.statuses(&[]));
    assert_eq!(list(&app, &cora.token, "").await["total"], 0);
}

// ---------------------------------------------------------------------------------------------
// Conflicts, confirmation, expiry, cancellation

async fn a_held_or_booked_seat_is_409_listing_every_unavailable_seat_and_nothing_is_taken(backend: Backend) {
    let app = spawn_app(backend).await;
    let screen = screening(&app, ROWS_A_AND_B).await;
    let cora = customer(&app, "cora").await;
    let dan = customer(&app, "dan").await;
    let eve = customer(&app, "eve").await;
    let held = book(&app, &cora.token, &screen, &["A1", "A2"]).await;
    let paid = book(&app, &dan.token, &screen, &["B1"]).await;
    pay(&app, &paid).await;
    wait_for_status(&app, &dan.token, id(&paid), "confirmed", StdDuration::from_secs(15)).await;
    let taken = [("A1", "held"), ("A2", "held"), ("B1", "booked")];
    assert_eq!(seat_map(&app, &screen).await, screen.statuses(&taken));

    // Every unavailable seat of the request is named, the free ones are not taken.
    let res = post_book(&app, &eve.token, &screen.request(&["A3", "A2", "B1", "A1", "A4"])).await;
    assert_eq!(assert_unavailable(res).await, sorted(screen.seat_ids(&["A1", "A2", "B1"])));
    assert_eq!(seat_map(&app, &screen).await, screen.statuses(&taken));
    assert_eq!(list(&app, &eve.token, "").await["total"], 0);
    for (labels, unavailable) in [(vec!["B1"], vec!["B1"]), (vec!["A2", "B2"], vec!["A2"])] {
        let res = post_book(&app, &eve.token, &screen.request(&labels)).await;
        assert_eq!(assert_unavailable(res).await, sorted(screen.seat_ids(&unavailable)), "{labels:?}");
    }
    // A seat is in one live booking only, even for the customer who holds it.
    let res = post_book(&app, &cora.token, &screen.request(&["A1", "A5"])).await;
    assert_eq!(assert_unavailable(res).await, [screen.seat_id("A1")]);
    assert_eq!(list(&app, &cora.token, "").await["total"], 1);

    // The free seats of the refused requests are still free.
    let later = book(&app, &eve.token, &screen, &["A3", "A4", "A5", "B2"]).await;
    assert_eq!(later["status"], "pending");
    let taken = [
        ("A1", "held"),
        ("A2", "held"),
        ("B1", "booked"),
        ("A3", "held"),
        ("A4", "held"),
        ("A5", "held"),
        ("B2", "held"),
    ];
    assert_eq!(seat_map(&app, &screen).await, screen.statuses(&taken));
    assert_eq!(get_booking(&app, &cora.token, id(&held)).await, held, "untouched");
}

async fn a_payment_completed_event_confirms_the_booking_and_books_its_seats(backend: Backend) {
    let app = spawn_app(backend).await;
    let screen = screening(&app, ROWS_A_AND_B).await;
    let cora = customer(&app, "cora").await;
    let booking = book(&app, &cora.token, &screen, &["A3", "B3"]).await;
    let other = book(&app, &cora.token, &screen, &["A4"]).await;
    pay(&app, &booking).await;

    let confirmed = wait_for_status(&app, &cora.token, id(&booking), "confirmed", StdDuration::from_secs(15)).await;
    let mut expected = booking.clone();
    expected["status"] = json!("confirmed");
    for key in ["id", "user_id", "showtime_id", "seats", "amount_cents", "currency", "created_at"] {
        assert_eq!(confirmed[key], expected[key], "{key}: {confirmed}");
    }
    assert_eq!(seat_map(&app, &screen).await, screen.statuses(&[("A3", "booked"), ("B3", "booked"), ("A4", "held")]));
    assert_eq!(get_booking(&app, &cora.token, id(&other)).await, other, "another booking is not confirmed");
    let listed = list(&app, &cora.token, "?status=confirmed").await;
    assert_eq!(listed["items"], json!([confirmed]));

    // A booked seat cannot be taken; cancelling the confirmed booking releases it.
    let dan = customer(&app, "dan").await;
    assert_eq!(
        assert_unavailable(post_book(&app, &dan.token, &screen.request(&["B3"])).await).await,
        [screen.seat_id("B3")]
    );
    cancel_ok(&app, &cora.token, id(&booking)).await;
    assert_eq!(seat_map(&app, &screen).await, screen.statuses(&[("A4", "held")]));
    book(&app, &dan.token, &screen, &["B3"]).await;
}

async fn an_unpaid_hold_expires_and_its_seats_can_be_booked_again(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.sections.booking.hold_ttl_seconds = 1;
        s.sections.booking.sweep_interval_ms = 100;
    })
    .await;
    let screen = screening(&app, ROWS_A_AND_B).await;
    let cora = customer(&app, "cora").await;
    let dan = customer(&app, "dan").await;
    let booking = book(&app, &cora.token, &screen, &["A1", "B1"]).await;
    assert_eq!(booking["status"], "pending");
    assert_eq!(time(&booking["expires_at"]), time(&booking["created_at"]) + Duration::seconds(1), "{booking}");

    let expired = wait_for_status(&app, &cora.token, id(&booking), "expired", StdDuration::from_secs(5)).await;
    assert!(Utc::now() >= time(&booking["expires_at"]), "expired before its time: {expired}");
    for key in ["id", "user_id", "showtime_id", "seats", "amount_cents", "currency", "created_at", "expires_at"] {
        assert_eq!(expired[key], booking[key], "{key}: {expired}");
    }
    assert_eq!(seat_map(&app, &screen).await, screen.statuses(&[]));
    assert_not_cancellable(cancel(&app, &cora.token, id(&booking)).await).await;
    assert_eq!(list(&app, &cora.token, "?status=expired").await["items"], json!([expired]));

    // The seats are free for anyone, their former holder included.
    let again = book(&app, &dan.token, &screen, &["A1", "B1"]).await;
    assert_eq!(again["status"], "pending");
    assert_eq!(seat_map(&app, &screen).await, screen.statuses(&[("A1", "held"), ("B1", "held")]));
    // ...and that hold expires in its turn.
    wait_for_status(&app, &dan.token, id(&again), "expired", StdDuration::from_secs(5)).await;
    book(&app, &cora.token, &screen, &["B1"]).await;
}

async fn a_cancelled_booking_frees_its_seats_at_once_and_cannot_be_cancelled_again(backend: Backend) {
    let app = spawn_app(backend).await;
    let screen = screening(&app, ROWS_A_AND_B).await;
    let cora = customer(&app, "cora").await;
    let dan = customer(&app, "dan").await;
    let booking = book(&app, &cora.token, &screen, &["A1", "A2"]).await;
    let kept = book(&app, &cora.token, &screen, &["B1"]).await;

    let cancelled = cancel_ok(&app, &cora.token, id(&booking)).await;
    let mut expected = booking.clone();
    expected["status"] = json!("cancelled");
    for key in ["id", "user_id", "showtime_id", "status", "seats", "amount_cents", "currency", "created_at"] {
        assert_eq!(cancelled[key], expected[key], "{key}: {cancelled}");
    }
    assert_eq!(get_booking(&app, &cora.token, id(&booking)).await, cancelled);
    assert_eq!(seat_map(&app, &screen).await, screen.statuses(&[("B1", "held")]));

    assert_not_cancellable(cancel(&app, &cora.token, id(&booking)).await).await;
    assert_not_cancellable(cancel(&app, &screen.admin, id(&booking)).await).await;
    assert_eq!(get_booking(&app, &cora.token, id(&booking)).await, cancelled);
    assert_eq!(get_booking(&app, &cora.token, id(&kept)).await, kept, "only that booking");

    // The seats are bookable again at once, and the new booking is a new one.
    let again = book(&app, &dan.token, &screen, &["A2", "A1"]).await;
    assert_ne!(again["id"], booking["id"]);
    assert_eq!(seat_ids_of(&again), seat_ids_of(&booking));
    assert_eq!(seat_map(&app, &screen).await, screen.statuses(&[("A1", "held"), ("A2", "held"), ("B1", "held")]));
}

async fn seats_available_goes_down_with_a_booking_and_back_up_with_its_cancellation(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.sections.movie.cache_ttl_seconds = 0).await;
    let screen = screening(&app, ROWS_A_AND_B).await;
    let cora = customer(&app, "cora").await;
    wait_for_seats_available(&app, &screen, 12).await;
    let booking = book(&app, &cora.token, &screen, &["A1", "A2", "B1"]).await;
    wait_for_seats_available(&app, &screen, 9).await;
    let other = book(&app, &cora.token, &screen, &["B2"]).await;
    wait_for_seats_available(&app, &screen, 8).await;
    assert_eq!(cancel(&app, &cora.token, id(&booking)).await.status(), 200);
    wait_for_seats_available(&app, &screen, 11).await;
    // A refused request changes nothing.
    assert_unavailable(post_book(&app, &cora.token, &screen.request(&["B2", "B3"])).await).await;
    assert_eq!(cancel(&app, &cora.token, id(&other)).await.status(), 200);
    wait_for_seats_available(&app, &screen, 12).await;
}

// ---------------------------------------------------------------------------------------------
// Races

/// Sends one booking request per (token, body) all at once; answers each status and body.
async fn race(app: &TestApp, tokens: &[String], bodies: &[Value]) -> Vec<(u16, Value)> {
    assert_eq!(tokens.len(), bodies.len());
    let requests: Vec<reqwest::RequestBuilder> = tokens
        .iter()
        .zip(bodies)
        .map(|(token, body)| app.client.post(app.url(BOOK)).bearer_auth(token).json(body))
        .collect();
    join_all(requests.into_iter().map(|request| async move {
        let res = request.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json::<Value>().await.unwrap())
    }))
    .await
}

/// 50 customers ask for the same seat at once: one gets it, 49 are told it is unavailable.
async fn one_of_fifty_wins(app: &TestApp) {
    let screen = screening(app, ROWS_A_AND_B).await;
    let tokens = customer_tokens(app, "racer", 50).await;
    let bodies = vec![screen.request(&["B3"]); tokens.len()];
    let answers = race(app, &tokens, &bodies).await;

    let mut winners = Vec::new();
    for (index, (status, body)) in answers.iter().enumerate() {
        match status {
            201 => winners.push((index, body)),
            409 => {
                assert_eq!(body["type"], "/problems/seats-unavailable", "{body}");
                assert_eq!(unavailable_of(body), [screen.seat_id("B3")], "{body}");
            }
            _ => panic!("answer {status}: {body}"),
        }
    }
    assert_eq!(winners.len(), 1, "{answers:?}");
    let (index, booking) = winners[0];
    assert_eq!(booking["seats"], json!([screen.booked_seat("B3")]));
    assert_eq!(booking["status"], "pending");
    assert_eq!(seat_map(app, &screen).await, screen.statuses(&[("B3", "held")]));
    // The winner has that booking; a loser has none.
    assert_eq!(list(app, &tokens[index], "").await["items"], json!([booking]));
    assert_eq!(list(app, &tokens[(index + 1) % tokens.len()], "").await["total"], 0);
}

async fn fifty_customers_racing_for_one_seat_get_exactly_one_booking(backend: Backend) {
    let app = spawn_app(backend).await;
    one_of_fifty_wins(&app).await;
}

async fn without_seat_locks_the_database_alone_lets_exactly_one_of_fifty_win(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.sections.booking.seat_locks = false).await;
    one_of_fifty_wins(&app).await;
}

/// 20 customers each ask for a pair out of A1–A4 and for a window of 2 or 3 seats of row B,
/// all at once: the winners never share a seat, every booking has all its requested seats,
/// and only the winners' seats are held.
async fn overlapping_race(app: &TestApp) {
    let screen = screening(app, ROWS_A_AND_B).await;
    let tokens = customer_tokens(app, "overlap", 20).await;
    let pairs = [["A1", "A2"], ["A1", "A3"], ["A1", "A4"], ["A2", "A3"], ["A2", "A4"], ["A3", "A4"]];
    let row_b = ["B1", "B2", "B3", "B4", "B5", "B6"];
    let mut senders = Vec::new();
    let mut requested: Vec<Vec<&str>> = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        senders.push(token.clone());
        requested.push(pairs[i % pairs.len()].to_vec());
        let (start, len) = (i % 4, 2 + (i / 4) % 2);
        senders.push(token.clone());
        requested.push(row_b[start..start + len].to_vec());
    }
    let bodies: Vec<Value> = requested.iter().map(|labels| screen.request(labels)).collect();
    let answers = race(app, &senders, &bodies).await;

    let mut won: Vec<String> = Vec::new();
    let mut winners_by_row = BTreeMap::<&str, usize>::new();
    for ((status, body), labels) in answers.iter().zip(&requested) {
        let asked = sorted(screen.seat_ids(labels));
        match status {
            201 => {
                assert_eq!(seat_ids_of(body), asked, "a booking has every seat it asked for: {body}");
                let price: i64 = labels.iter().map(|l| if l.starts_with('B') { 1800 } else { 1200 }).sum();
                assert_eq!(body["amount_cents"], price, "{body}");
                won.extend(asked);
                *winners_by_row.entry(&labels[0][..1]).or_default() += 1;
            }
            409 => {
                assert_eq!(body["type"], "/problems/seats-unavailable", "{body}");
                let unavailable = unavailable_of(body);
                assert!(!unavailable.is_empty(), "{labels:?}: {body}");
                assert!(unavailable.iter().all(|s| asked.contains(s)), "{labels:?}: {body}");
            }
            _ => panic!("{labels:?} answered {status}: {body}"),
        }
    }
    let distinct: HashSet<&String> = won.iter().collect();
    assert_eq!(distinct.len(), won.len(), "a seat in two bookings: {answers:?}");
    assert!(winners_by_row.get("A").is_some_and(|n| (1..=2).contains(n)), "{winners_by_row:?}");
    assert!(winners_by_row.get("B").is_some_and(|n| (1..=3).contains(n)), "{winners_by_row:?}");
    let held: Vec<String> = won.iter().map(|seat| screen.label(seat)).collect();
    let held: Vec<(&str, &str)> = held.iter().map(|label| (label.as_str(), "held")).collect();
    assert_eq!(seat_map(app, &screen).await, screen.statuses(&held), "only the winners' seats are held");
}

async fn overlapping_requests_never_share_a_seat_nor_book_part_of_a_request(backend: Backend) {
    let app = spawn_app(backend).await;
    overlapping_race(&app).await;
}

async fn overlapping_requests_without_seat_locks_never_share_a_seat_either(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.sections.booking.seat_locks = false).await;
    overlapping_race(&app).await;
}

async fn bookings_and_conflicts_are_counted_in_metrics(backend: Backend) {
    let app = spawn_app(backend).await;
    let screen = screening(&app, ROWS_A_AND_B).await;
    let cora = customer(&app, "cora").await;
    let before = app.metrics().await;
    let created = counter(&before, "bookings_total", r#"outcome="created""#);
    let conflicts = counter(&before, "bookings_total", r#"outcome="conflict""#);

    book(&app, &cora.token, &screen, &["A1"]).await;
    book(&app, &cora.token, &screen, &["A2"]).await;
    assert_unavailable(post_book(&app, &cora.token, &screen.request(&["A1", "A3"])).await).await;
    // And a race, where the seat locks turn the losers away.
    let tokens = customer_tokens(&app, "counted", 10).await;
    let answers = race(&app, &tokens, &vec![screen.request(&["B1", "B2"]); tokens.len()]).await;
    assert_eq!(answers.iter().filter(|(status, _)| *status == 201).count(), 1, "{answers:?}");
    assert_eq!(answers.iter().filter(|(status, _)| *status == 409).count(), 9, "{answers:?}");

    let after = app.metrics().await;
    assert!(after.contains("bookings_total{"), "{after}");
    assert!(counter(&after, "bookings_total", r#"outcome="created""#) >= created + 3.0, "{after}");
    assert!(counter(&after, "bookings_total", r#"outcome="conflict""#) >= conflicts + 10.0, "{after}");
    assert!(
        after
            .lines()
            .any(|l| l.starts_with("seat_lock_conflicts_total{") || l.starts_with("seat_lock_conflicts_total ")),
        "{after}"
    );
}

async fn a_409_names_a_booked_seat_whose_lock_ran_out_too(backend: Backend) {
    // Long enough for the payment to confirm before the hold ends, even on a loaded machine.
    let app = spawn_app_with(backend, |s| s.sections.booking.hold_ttl_seconds = 4).await;
    let screen = screening(&app, ROWS_A_AND_B).await;
    let (cora, dan, erin) = (customer(&app, "cora").await, customer(&app, "dan").await, customer(&app, "erin").await);
    let paid = book(&app, &cora.token, &screen, &["A1"]).await;
    pay(&app, &paid).await;
    wait_for_status(&app, &cora.token, id(&paid), "confirmed", StdDuration::from_secs(15)).await;
    // Confirmed for good, but its seat lock lasted only the hold: now only the database knows.
    wait_past(time(&paid["expires_at"]) + Duration::milliseconds(100)).await;
    book(&app, &dan.token, &screen, &["B1"]).await;
    let taken = assert_unavailable(post_book(&app, &erin.token, &screen.request(&["A1", "B1", "B2"])).await).await;
    assert_eq!(sorted(taken), sorted([screen.seat_id("A1"), screen.seat_id("B1")]));
    assert_eq!(seat_map(&app, &screen).await, screen.statuses(&[("A1", "booked"), ("B1", "held")]));
}

async fn a_payment_after_the_hold_ran_out_confirms_nothing(backend: Backend) {
    // A sweeper that comes by once a minute: the payment arrives after `expires_at` but
    // before the sweeper has expired the booking.
    let app = spawn_app_with(backend, |s| {
        s.sections.booking.hold_ttl_seconds = 1;
        s.sections.booking.sweep_interval_ms = 60_000;
    })
    .await;
    let screen = screening(&app, ROWS_A_AND_B).await;
    let cora = customer(&app, "cora").await;
    let late = book(&app, &cora.token, &screen, &["A2"]).await;
    wait_past(time(&late["expires_at"])).await;
    pay(&app, &late).await;
    // The payment event is handled (the inbox records it) without confirming anything.
    let deadline = std::time::Instant::now() + StdDuration::from_secs(15);
    let consumed = |m: &str| m.lines().any(|l| l.starts_with("events_consumed_total") && l.contains("booking_queue"));
    while !consumed(&app.metrics().await) {
        assert!(std::time::Instant::now() < deadline, "booking_queue never consumed the payment");
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    assert_eq!(get_booking(&app, &cora.token, id(&late)).await["status"], "pending");
    assert_eq!(seat_map(&app, &screen).await, screen.statuses(&[("A2", "held")]));
}

// ---------------------------------------------------------------------------------------------
// Hold caps

async fn one_customer_cannot_hold_more_seats_than_the_caps_even_in_parallel(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.sections.booking.max_seats = 2;
        s.sections.booking.max_held_seats_per_showtime = 3;
        s.sections.booking.max_held_seats_per_user = 4;
    })
    .await;
    let first = screening(&app, ROWS_A_AND_B).await;
    let second = screening(&app, ROWS_A_AND_B).await;
    let ann = customer(&app, "ann").await;

    // Six single seats at once: the database lets exactly three through.
    let labels = ["A1", "A2", "A3", "A4", "A5", "A6"];
    let answers = join_all(labels.iter().map(|label| {
        let (app, token, request) = (&app, &ann.token, first.request(&[label]));
        async move { post_book(app, token, &request).await }
    }))
    .await;
    let mut held = 0;
    for res in answers {
        if res.status() == 201 {
            held += 1;
            continue;
        }
        assert!(res.headers().contains_key("retry-after"), "{:?}", res.headers());
        let problem = assert_problem(res, 409).await;
        assert_eq!(problem["type"], "/problems/seat-hold-limit", "{problem}");
        assert_eq!(
            (&problem["scope"], &problem["limit"], &problem["held"]),
            (&json!("showtime"), &json!(3), &json!(3))
        );
    }
    assert_eq!(held, 3, "three seats held in the showtime");
    let map = seat_map(&app, &first).await;
    assert_eq!(map.values().filter(|s| *s == "held").count(), 3, "{map:?}");

    // Another showtime: one more seat makes four; a fifth passes the per-customer cap, even
    // as part of a booking that fits the showtime's.
    book(&app, &ann.token, &second, &["A1"]).await;
    let problem = assert_problem(post_book(&app, &ann.token, &second.request(&["A2", "A3"])).await, 409).await;
    assert_eq!(problem["type"], "/problems/seat-hold-limit", "{problem}");
    assert_eq!((&problem["scope"], &problem["limit"], &problem["held"]), (&json!("user"), &json!(4), &json!(4)));
    assert_eq!(seat_map(&app, &second).await["A2"], "available", "nothing of a refused booking is held");

    // Others are not limited by ann's holds; ann holds again once she lets one go.
    let bea = customer(&app, "bea").await;
    book(&app, &bea.token, &second, &["A2", "A3"]).await;
    let page = app.get_as(&format!("{BOOKINGS}?status=pending"), &ann.token).await.json::<Value>().await.unwrap();
    let mine = page["items"].as_array().unwrap().iter().find(|b| b["showtime_id"] == second.showtime["id"]).unwrap();
    cancel_ok(&app, &ann.token, id(mine)).await;
    book(&app, &ann.token, &second, &["A4"]).await;
}
