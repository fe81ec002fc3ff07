//! One contract for `BookingApi`, run against the in-process service and the REST client, so
//! the two implementations cannot drift apart.

use std::sync::Arc;

use booking::api::{
    BookRequest, BookedSeat, Booking, BookingApi, BookingError, BookingId, BookingQuery, BookingStatus,
};
use booking::client::BookingClient;
use chrono::{Duration, Utc};
use movie::api::{MovieApi, SeatId, ShowtimeId, TheaterInput};
use movie::client::MovieClient;
use platform::money::Money;

use crate::fixtures::{row, typed_screening};
use crate::helpers::{Backend, Callers, spawn_app_with, test_settings};

on_both_backends!(the_service_keeps_the_contract, the_rest_client_keeps_the_contract);

async fn the_service_keeps_the_contract(backend: Backend) {
    let data = tempfile::TempDir::new().unwrap();
    let settings = test_settings(&backend, data.path());
    let apis = crate::helpers::in_process(&settings).await;
    contract(apis.get::<dyn MovieApi>().unwrap(), apis.get::<dyn BookingApi>().unwrap(), &Callers::made_up()).await;
}

async fn the_rest_client_keeps_the_contract(backend: Backend) {
    let token = "a service token of at least thirty-two characters";
    let app = spawn_app_with(backend, |s| s.services.token = platform::config::Secret::new(token)).await;
    let movies = Arc::new(MovieClient::new(&app.address, reqwest::Client::new()));
    let bookings =
        Arc::new(BookingClient::new(&app.address, reqwest::Client::new(), app.settings.services.token.clone()));
    contract(movies, bookings, &app.callers("cora", "otto").await).await;
}

/// The fields a `Validation` names, sorted.
fn invalid_fields<T: std::fmt::Debug>(result: Result<T, BookingError>) -> Vec<String> {
    match result {
        Err(BookingError::Validation(errors)) => {
            let mut fields: Vec<String> = errors.as_slice().iter().map(|e| e.field.clone()).collect();
            fields.sort();
            fields
        }
        other => panic!("expected Validation, got {other:?}"),
    }
}

/// The seats a `SeatsUnavailable` names, sorted.
fn unavailable<T: std::fmt::Debug>(result: Result<T, BookingError>) -> Vec<SeatId> {
    match result {
        Err(BookingError::SeatsUnavailable(mut seats)) => {
            seats.sort();
            seats
        }
        other => panic!("expected SeatsUnavailable, got {other:?}"),
    }
}

fn assert_not_found<T: std::fmt::Debug>(result: Result<T, BookingError>, resource: &str) {
    match result {
        Err(BookingError::NotFound(what)) => assert_eq!(what, resource),
        other => panic!("expected NotFound({resource}), got {other:?}"),
    }
}

fn query(status: Option<BookingStatus>, page: Option<u64>, per_page: Option<u64>) -> BookingQuery {
    BookingQuery { status, page, per_page }
}

/// `seats` sorted.
fn sorted(mut seats: Vec<SeatId>) -> Vec<SeatId> {
    seats.sort();
    seats
}

fn ids(bookings: &[Booking]) -> Vec<BookingId> {
    bookings.iter().map(|b| b.id).collect()
}

async fn contract(movies: Arc<dyn MovieApi>, api: Arc<dyn BookingApi>, callers: &Callers) {
    let Callers { admin, customer, other } = callers;

    // A showtime two days ahead at 1200 cents in a theater of rows A (6 standard) and B
    // (6 premium, 1800 cents), and another theater.
    let screen = typed_screening(movies.as_ref(), admin).await;
    let (hall, show) = (&screen.theater, &screen.showtime);
    let small = TheaterInput {
        name: "Screen 2".to_owned(),
        location: "Level 2".to_owned(),
        layout: vec![row("A", 2, "standard")],
    };
    let elsewhere = movies.create_theater(admin, small).await.unwrap();
    let s = |label: &str| screen.seat(label);
    let request = |labels: &[&str]| screen.request(labels);
    let booked = |label: &str, price_cents: i64| {
        let seat = hall.seats.iter().find(|seat| seat.id == s(label)).unwrap();
        BookedSeat {
            id: seat.id,
            row: seat.row.clone(),
            number: seat.number,
            price_cents: Money::from_cents(price_cents),
        }
    };

    // Invalid requests, while every seat is free.
    assert_eq!(invalid_fields(api.book(customer, request(&[])).await), ["seat_ids"]);
    let eleven = ["A1", "A2", "A3", "A4", "A5", "A6", "B1", "B2", "B3", "B4", "B5"];
    assert_eq!(invalid_fields(api.book(customer, request(&eleven)).await), ["seat_ids"]);
    assert_eq!(invalid_fields(api.book(customer, request(&["A1", "B1", "A1"])).await), ["seat_ids"]);
    let foreign = BookRequest { showtime_id: show.id, seat_ids: vec![s("A1"), elsewhere.seats[0].id] };
    assert_eq!(invalid_fields(api.book(customer, foreign).await), ["seat_ids"]);
    let unknown_seat = BookRequest { showtime_id: show.id, seat_ids: vec![SeatId(uuid::Uuid::new_v4())] };
    assert_eq!(invalid_fields(api.book(customer, unknown_seat).await), ["seat_ids"]);
    let nowhere = BookRequest { showtime_id: ShowtimeId(uuid::Uuid::new_v4()), seat_ids: vec![s("A1")] };
    assert_not_found(api.book(customer, nowhere).await, "showtime");
    assert_eq!(api.list(customer, BookingQuery::default()).await.unwrap().total, 0, "nothing was booked");

    // Book: every seat at its price, held for the default 10 minutes.
    let before = Utc::now();
    let first = api.book(customer, request(&["A1", "B1"])).await.unwrap();
    let after = Utc::now();
    assert_eq!(first.user_id, customer.id);
    assert_eq!(first.showtime_id, show.id);
    assert_eq!(first.status, BookingStatus::Pending);
    assert_eq!(first.seats, [booked("A1", 1200), booked("B1", 1800)]);
    assert_eq!(first.amount_cents.cents(), 3000);
    assert_eq!(first.currency, "USD");
    assert!(first.created_at >= before - Duration::seconds(1) && first.created_at <= after, "{first:?}");
    assert_eq!(first.expires_at, first.created_at + Duration::minutes(10));

    // Every held seat of a request is named; nothing of it is taken.
    assert_eq!(unavailable(api.book(other, request(&["A2", "B1", "A1"])).await), sorted(vec![s("A1"), s("B1")]));
    assert_eq!(unavailable(api.book(customer, request(&["A1"])).await), [s("A1")]);
    let theirs = api.book(other, request(&["A2"])).await.unwrap();
    assert_eq!((theirs.user_id, theirs.seats.clone()), (other.id, vec![booked("A2", 1200)]));
    let second = api.book(customer, request(&["B6"])).await.unwrap();

    // Read: the owner and admins; anyone else is told it does not exist.
    assert_eq!(api.booking(customer, first.id).await.unwrap(), first);
    assert_eq!(api.booking(admin, first.id).await.unwrap(), first);
    assert_not_found(api.booking(other, first.id).await, "booking");
    assert_not_found(api.booking(customer, BookingId(uuid::Uuid::new_v4())).await, "booking");

    // List: the caller's own, newest first, filtered and paginated.
    let mine = api.list(customer, BookingQuery::default()).await.unwrap();
    assert_eq!((mine.items, mine.page, mine.per_page, mine.total), (vec![second.clone(), first.clone()], 1, 20, 2));
    let page = api.list(customer, query(None, Some(2), Some(1))).await.unwrap();
    assert_eq!((ids(&page.items), page.page, page.per_page, page.total), (vec![first.id], 2, 1, 2));
    assert_eq!(api.list(other, BookingQuery::default()).await.unwrap().items, std::slice::from_ref(&theirs));
    assert_eq!(api.list(admin, BookingQuery::default()).await.unwrap().total, 0);
    assert_eq!(invalid_fields(api.list(customer, query(None, None, Some(0))).await), ["per_page"]);
    assert_eq!(invalid_fields(api.list(customer, query(None, Some(0), None)).await), ["page"]);

    // Held for a charge: the owner's pending booking only, again for the same charge.
    let charge = uuid::Uuid::new_v4();
    assert_not_found(api.hold_for_payment(other, second.id, charge).await, "booking");
    assert_not_found(api.hold_for_payment(customer, BookingId(uuid::Uuid::new_v4()), charge).await, "booking");
    assert_eq!(api.hold_for_payment(customer, second.id, charge).await.unwrap(), second);
    assert_eq!(api.hold_for_payment(customer, second.id, charge).await.unwrap(), second);

    // Cancel: the owner, once; the seats are free again at once.
    assert_not_found(api.cancel(other, first.id).await, "booking");
    assert_not_found(api.cancel(customer, BookingId(uuid::Uuid::new_v4())).await, "booking");
    let cancelled = api.cancel(customer, first.id).await.unwrap();
    assert_eq!(cancelled.status, BookingStatus::Cancelled);
    assert_eq!(Booking { status: BookingStatus::Pending, ..cancelled.clone() }, first);
    assert_eq!(api.booking(customer, first.id).await.unwrap(), cancelled);
    match api.cancel(customer, first.id).await {
        Err(BookingError::NotCancellable(_)) => {}
        result => panic!("expected NotCancellable, got {result:?}"),
    }
    match api.hold_for_payment(customer, first.id, charge).await {
        Err(BookingError::NotPayable(_)) => {}
        result => panic!("expected NotPayable, got {result:?}"),
    }
    let cancelled_only = api.list(customer, query(Some(BookingStatus::Cancelled), None, None)).await.unwrap();
    assert_eq!((cancelled_only.items, cancelled_only.total), (vec![cancelled.clone()], 1));
    let pending = api.list(customer, query(Some(BookingStatus::Pending), None, None)).await.unwrap();
    assert_eq!((ids(&pending.items), pending.total), (vec![second.id], 1));
    let again = api.book(other, request(&["B1", "A1"])).await.unwrap();
    assert_eq!(sorted(again.seats.iter().map(|seat| seat.id).collect()), sorted(vec![s("A1"), s("B1")]));
    assert_eq!(again.amount_cents.cents(), 3000);
    assert_eq!(api.booking(other, again.id).await.unwrap(), again);
}
