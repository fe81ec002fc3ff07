//! The booking domain's fixtures, shared by the booking and payment tests: a screening to book
//! in (as JSON over HTTP, or typed for the contract tests), customers, and the booking routes.
//!
//! Seats are named by label (`"A1"`: row, then number). A screening's showtime is two days
//! ahead at 18:00 and costs `PRICE`: what a standard seat costs; a premium seat costs half as
//! much again.

use std::collections::BTreeMap;
use std::time::{Duration as StdDuration, Instant};

use booking::api::BookRequest;
use movie::api::{MovieApi, MovieInput, RowLayout, SeatId, Showtime, ShowtimeInput, Theater, TheaterInput};
use platform::identity::{AuthUser, Role};
use platform::money::Money;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Api, id};
use crate::movie::{MOVIES, SHOWTIMES, THEATERS, day_at};

pub const BOOK: &str = "/api/bookings/book";
pub const BOOKINGS: &str = "/api/bookings/bookings";

/// The base price of every screening's showtime, in cents.
pub const PRICE: i64 = 1200;

/// A theater layout: `(row, seats, type)` for each row, front to back.
pub type Layout = [(&'static str, i64, &'static str)];

/// Rows A (6 standard seats) and B (6 premium seats).
pub const ROWS_A_AND_B: &Layout = &[("A", 6, "standard"), ("B", 6, "premium")];

/// One row A of 6 standard seats.
pub const ROW_A: &Layout = &[("A", 6, "standard")];

// ---------------------------------------------------------------------------------------------
// Over HTTP

/// A showtime to book in, with the admin who created it.
pub struct Screening {
    pub admin: String,
    pub theater: Value,
    pub showtime: Value,
}

impl Screening {
    /// The seat labelled `label` (row then number, e.g. `A1`).
    pub fn seat(&self, label: &str) -> &Value {
        self.theater["seats"].as_array().unwrap().iter().find(|s| label_of(s) == label).unwrap()
    }

    pub fn seat_id(&self, label: &str) -> String {
        id(self.seat(label)).to_owned()
    }

    pub fn seat_ids(&self, labels: &[&str]) -> Vec<String> {
        labels.iter().map(|l| self.seat_id(l)).collect()
    }

    /// A booking request for `labels` of this showtime, in that order.
    pub fn request(&self, labels: &[&str]) -> Value {
        json!({"showtime_id": self.showtime["id"], "seat_ids": self.seat_ids(labels)})
    }

    /// The seat as a booking lists it: a standard seat costs `PRICE`, a premium one half as
    /// much again.
    pub fn booked_seat(&self, label: &str) -> Value {
        let seat = self.seat(label);
        let price = match seat["type"].as_str() {
            Some("standard") => PRICE,
            Some("premium") => PRICE * 3 / 2,
            other => panic!("no price for a seat of type {other:?}"),
        };
        json!({"id": seat["id"], "row": seat["row"], "number": seat["number"], "price_cents": price})
    }

    /// What a booking of `labels` costs.
    pub fn amount(&self, labels: &[&str]) -> i64 {
        labels.iter().map(|l| self.booked_seat(l)["price_cents"].as_i64().unwrap()).sum()
    }

    pub fn showtime_path(&self) -> String {
        format!("{SHOWTIMES}/{}", id(&self.showtime))
    }

    /// The statuses a seat map must show: those of `taken`, every other seat `available`.
    pub fn statuses(&self, taken: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut map: BTreeMap<String, String> =
            self.theater["seats"].as_array().unwrap().iter().map(|s| (label_of(s), "available".to_owned())).collect();
        for (label, status) in taken {
            let previous = map.insert((*label).to_owned(), (*status).to_owned());
            assert!(previous.is_some(), "no seat {label}");
        }
        map
    }

    /// The label of the seat with id `seat_id`.
    pub fn label(&self, seat_id: &str) -> String {
        label_of(self.theater["seats"].as_array().unwrap().iter().find(|s| id(s) == seat_id).unwrap())
    }
}

fn label_of(seat: &Value) -> String {
    format!("{}{}", seat["row"].as_str().unwrap(), seat["number"].as_u64().unwrap())
}

/// `POST path` as `admin`, which must answer 201; returns what was created.
pub async fn post_admin(app: &Api, admin: &str, path: &str, body: &Value) -> Value {
    let res = app.send_as(Method::POST, path, admin, body).await;
    assert_eq!(res.status(), 201, "POST {path}");
    res.json().await.unwrap()
}

/// As the app's admin: a movie, a theater of `layout` and a showtime two days ahead at 18:00
/// whose base price is `PRICE`.
pub async fn screening(app: &Api, layout: &Layout) -> Screening {
    let admin = app.admin_token().await;
    let movie = post_admin(
        app,
        &admin,
        MOVIES,
        &json!({"title": "Booked Solid", "duration_minutes": 100, "genre": "Drama", "release_date": "2024-05-17"}),
    )
    .await;
    let layout: Vec<Value> =
        layout.iter().map(|(row, seats, kind)| json!({"row": row, "seats": seats, "type": kind})).collect();
    let theater =
        post_admin(app, &admin, THEATERS, &json!({"name": "Screen 1", "location": "Level 1", "layout": layout})).await;
    let body = json!({
        "movie_id": movie["id"], "theater_id": theater["id"], "start_time": day_at(2, 18, 0), "price_cents": PRICE,
    });
    let showtime = post_admin(app, &admin, SHOWTIMES, &body).await;
    Screening { admin, theater, showtime }
}

/// A registered customer: its access token and its user id.
pub struct Customer {
    pub token: String,
    pub id: String,
}

/// Registers the customer `username`.
pub async fn customer(app: &Api, username: &str) -> Customer {
    let user = app.caller(app.customer_token(username).await, Role::Customer).await;
    Customer { id: user.id.0.to_string(), token: user.bearer }
}

pub async fn post_book(app: &Api, token: &str, body: &Value) -> reqwest::Response {
    app.send_as(Method::POST, BOOK, token, body).await
}

/// Books `labels` of the screening as `token`, which must answer 201: a pending booking that
/// costs what its seats cost.
pub async fn book(app: &Api, token: &str, screen: &Screening, labels: &[&str]) -> Value {
    let res = post_book(app, token, &screen.request(labels)).await;
    assert_eq!(res.status(), 201, "book {labels:?}");
    let booking: Value = res.json().await.unwrap();
    assert_eq!(booking["status"], "pending", "{booking}");
    assert_eq!(booking["amount_cents"], screen.amount(labels), "{booking}");
    booking
}

pub fn booking_path(booking_id: &str) -> String {
    format!("{BOOKINGS}/{booking_id}")
}

pub async fn get_booking(app: &Api, token: &str, booking_id: &str) -> Value {
    let res = app.get_as(&booking_path(booking_id), token).await;
    assert_eq!(res.status(), 200, "GET booking {booking_id}");
    res.json().await.unwrap()
}

pub async fn cancel(app: &Api, token: &str, booking_id: &str) -> reqwest::Response {
    app.client.post(app.url(&format!("{BOOKINGS}/{booking_id}/cancel"))).bearer_auth(token).send().await.unwrap()
}

/// Cancels the booking as `token`, which must answer 200 with the cancelled booking.
pub async fn cancel_ok(app: &Api, token: &str, booking_id: &str) -> Value {
    let res = cancel(app, token, booking_id).await;
    assert_eq!(res.status(), 200, "cancel {booking_id}");
    let cancelled: Value = res.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    cancelled
}

/// Polls the booking until its status is `status`, for at most `within`.
pub async fn wait_for_status(app: &Api, token: &str, booking_id: &str, status: &str, within: StdDuration) -> Value {
    until_status(status, within, || get_booking(app, token, booking_id)).await
}

/// Reads with `read` until what it reads has status `status`, for at most `within`.
async fn until_status<F: Future<Output = Value>>(status: &str, within: StdDuration, read: impl Fn() -> F) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let read = read().await;
        if read["status"] == status {
            return read;
        }
        assert!(Instant::now() < deadline, "still {} after {within:?}, not {status}: {read}", read["status"]);
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
}

/// The seat map of the screening, label → status.
pub async fn seat_map(app: &Api, screen: &Screening) -> BTreeMap<String, String> {
    let res = app.client.get(app.url(&format!("{}/seats", screen.showtime_path()))).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let map: Value = res.json().await.unwrap();
    assert_eq!(map["showtime_id"], screen.showtime["id"]);
    map["seats"].as_array().unwrap().iter().map(|s| (label_of(s), s["status"].as_str().unwrap().to_owned())).collect()
}

// ---------------------------------------------------------------------------------------------
// Typed, for the contract tests

/// One row of a theater layout: `seats` seats of type `kind`.
pub fn row(label: &str, seats: i64, kind: &str) -> RowLayout {
    RowLayout { row: label.to_owned(), seats, seat_type: kind.to_owned() }
}

/// A [`Screening`] made through a `MovieApi`: a showtime in a theater of `ROWS_A_AND_B`.
pub struct TypedScreening {
    pub theater: Theater,
    pub showtime: Showtime,
}

impl TypedScreening {
    /// The seat labelled `label`.
    pub fn seat(&self, label: &str) -> SeatId {
        self.theater.seats.iter().find(|s| format!("{}{}", s.row, s.number) == label).unwrap().id
    }

    /// A booking request for `labels` of this showtime, in that order.
    pub fn request(&self, labels: &[&str]) -> BookRequest {
        BookRequest { showtime_id: self.showtime.id, seat_ids: labels.iter().map(|l| self.seat(l)).collect() }
    }
}

/// As `admin` through `movies`: a movie, a theater of `ROWS_A_AND_B` and a showtime two days
/// ahead at 18:00 whose base price is `PRICE`.
pub async fn typed_screening(movies: &dyn MovieApi, admin: &AuthUser) -> TypedScreening {
    let film = MovieInput {
        title: "Booked Solid".to_owned(),
        description: String::new(),
        duration_minutes: 100,
        genre: "Drama".to_owned(),
        release_date: chrono::NaiveDate::from_ymd_opt(2024, 5, 17).unwrap(),
        rating: None,
        poster_url: None,
    };
    let film = movies.create_movie(admin, film).await.unwrap();
    let layout = ROWS_A_AND_B.iter().map(|(label, seats, kind)| row(label, *seats, kind)).collect();
    let hall = TheaterInput { name: "Screen 1".to_owned(), location: "Level 1".to_owned(), layout };
    let theater = movies.create_theater(admin, hall).await.unwrap();
    let show = ShowtimeInput {
        movie_id: film.id,
        theater_id: theater.id,
        start_time: day_at(2, 18, 0),
        price_cents: Money::from_cents(PRICE),
        currency: None,
    };
    let showtime = movies.create_showtime(admin, show).await.unwrap();
    TypedScreening { theater, showtime }
}

// Payments

pub const PAY: &str = "/api/payments/pay";
pub const PAYMENTS: &str = "/api/payments/payments";
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// Approved by the simulated gateway.
pub const GOOD: &str = "4242424242424242";
/// Declined: `card_declined`.
pub const DECLINED: &str = "4000000000000002";

/// A fresh `Idempotency-Key`.
pub fn new_key() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A payment request for `booking` with card `number` (expiry 12/35, CVC 123).
pub fn card(booking: &Value, number: &str) -> Value {
    json!({"booking_id": booking["id"], "card_number": number, "card_expiry": "12/35", "card_cvc": "123"})
}

pub async fn pay(app: &Api, token: &str, key: &str, body: &Value) -> reqwest::Response {
    app.client.post(app.url(PAY)).bearer_auth(token).header(IDEMPOTENCY_KEY, key).json(body).send().await.unwrap()
}

/// Pays with a fresh key, which must answer 201 (a payment `completed` or `failed`).
pub async fn pay_ok(app: &Api, token: &str, body: &Value) -> Value {
    let res = pay(app, token, &new_key(), body).await;
    assert_eq!(res.status(), 201, "pay {body}");
    let location = res.headers().get("location").unwrap().to_str().unwrap().to_owned();
    let payment: Value = res.json().await.unwrap();
    assert_eq!(location, format!("{PAYMENTS}/{}", id(&payment)));
    payment
}

pub async fn get_payment(app: &Api, token: &str, payment_id: &str) -> Value {
    let res = app.get_as(&format!("{PAYMENTS}/{payment_id}"), token).await;
    assert_eq!(res.status(), 200, "GET payment {payment_id}");
    res.json().await.unwrap()
}

/// Polls the payment until its status is `status`, for at most `within`.
pub async fn wait_for_payment(app: &Api, within: StdDuration, token: &str, payment_id: &str, status: &str) -> Value {
    until_status(status, within, || get_payment(app, token, payment_id)).await
}

/// What [`ada_pays_beside_bob`] leaves: Ada's confirmed booking of A1 and A2, and Bob's
/// pending booking of A3 beside it.
pub struct PaidBesideAnother {
    pub screen: Screening,
    pub ada: Customer,
    pub booking: Value,
    pub bob: Customer,
    pub bobs: Value,
}

/// Ada books A1 and A2 and pays with a good card while Bob books A3 and does not pay; returns
/// once Ada's booking is confirmed (within `settle`). What the mail tests send and check.
pub async fn ada_pays_beside_bob(app: &Api, settle: StdDuration) -> PaidBesideAnother {
    let screen = screening(app, ROW_A).await;
    let ada = customer(app, "ada").await;
    let bob = customer(app, "bob").await;
    let booking = book(app, &ada.token, &screen, &["A1", "A2"]).await;
    let bobs = book(app, &bob.token, &screen, &["A3"]).await;
    let paid = pay_ok(app, &ada.token, &card(&booking, GOOD)).await;
    assert_eq!(paid["status"], "completed", "{paid}");
    wait_for_status(app, &ada.token, booking["id"].as_str().unwrap(), "confirmed", settle).await;
    PaidBesideAnother { screen, ada, booking, bob, bobs }
}
