//! Movie consumes booking events from `movie_queue` to keep `seats_available` up to date:
//! exactly once per event (inbox), through the bus as through the handler itself.

use std::sync::Arc;
use std::time::Duration;

use movie::api::{MovieApi, MovieInput, RowLayout, ShowtimeId, ShowtimeInput, TheaterInput};
use platform::events::{Envelope, EventBus, RetryPolicy};
use platform::identity::{AuthUser, Role, UserId};
use platform::money::Money;
use serde_json::json;

use crate::helpers::{Backend, test_settings};

on_both_backends!(booking_events_keep_seats_available_once_each, a_booking_event_on_the_apps_bus_reaches_the_catalog);

fn booking_event(key: &str, showtime: ShowtimeId, seats: &[movie::api::SeatId]) -> Envelope {
    Envelope::new(key, &json!({"booking_id": uuid::Uuid::now_v7(), "showtime_id": showtime, "seat_ids": seats}))
        .unwrap()
}

async fn booking_events_keep_seats_available_once_each(backend: Backend) {
    let data = tempfile::TempDir::new().unwrap();
    let mut settings = test_settings(&backend, data.path());
    settings.sections.movie.cache_ttl_seconds = 0;
    let movies = crate::helpers::in_process(&settings).await.get::<movie::service::MovieService>().unwrap();
    let admin = AuthUser { id: UserId(uuid::Uuid::new_v4()), role: Role::Admin, bearer: String::new() };
    let film = movies
        .create_movie(
            &admin,
            MovieInput {
                title: "Counted".to_owned(),
                description: String::new(),
                duration_minutes: 90,
                genre: "Drama".to_owned(),
                release_date: chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
                rating: None,
                poster_url: None,
            },
        )
        .await
        .unwrap();
    let layout = vec![RowLayout { row: "A".to_owned(), seats: 10, seat_type: "standard".to_owned() }];
    let hall = movies
        .create_theater(&admin, TheaterInput { name: "One".to_owned(), location: "Here".to_owned(), layout })
        .await
        .unwrap();
    let start = chrono::Utc::now() + chrono::Duration::days(2);
    let input = ShowtimeInput {
        movie_id: film.id,
        theater_id: hall.id,
        start_time: start,
        price_cents: Money::from_cents(900),
        currency: None,
    };
    let show = movies.create_showtime(&admin, input).await.unwrap();
    let seats: Vec<_> = hall.seats.iter().map(|s| s.id).collect();
    let available = || async { movies.showtime(show.id).await.unwrap().seats_available };
    let handler = movies.events_handler();

    let created = booking_event("booking.created", show.id, &seats[..3]);
    handler.handle(&created).await.unwrap();
    assert_eq!(available().await, 7);
    handler.handle(&created).await.unwrap();
    assert_eq!(available().await, 7, "a redelivery changes nothing");
    handler.handle(&booking_event("booking.confirmed", show.id, &seats[..3])).await.unwrap();
    assert_eq!(available().await, 7, "a confirmation keeps the seats taken");

    // Through the bus, bound as the composition root binds it.
    let bus = crate::helpers::in_process_bus(
        &settings,
        RetryPolicy { max_attempts: 3, first_backoff: Duration::from_millis(5) },
    )
    .await;
    bus.subscribe(movie::api::QUEUE.name, movie::api::QUEUE.patterns, Arc::clone(&handler)).await.unwrap();
    bus.publish(&booking_event("booking.created", show.id, &seats[3..5])).await.unwrap();
    assert_eq!(available().await, 5);
    let cancelled = booking_event("booking.cancelled", show.id, &seats[..3]);
    bus.publish(&cancelled).await.unwrap();
    bus.publish(&cancelled).await.unwrap();
    assert_eq!(available().await, 8, "the cancelled seats came back once");
    // Events of other showtimes, or unrelated keys, touch nothing.
    bus.publish(&booking_event("booking.created", ShowtimeId(uuid::Uuid::new_v4()), &seats[..1])).await.unwrap();
    assert!(bus.publish(&booking_event("payment.completed", show.id, &seats[..1])).await.is_err(), "bound to no queue");
    assert_eq!(available().await, 8);
    assert!(bus.dead_letters().await.unwrap().is_empty());

    // Different bookings' events arrive in any order (ADR 17): on a full showtime, a booking of
    // two seats that another booking's expiry (`booking.cancelled`) freed may be seen first.
    handler.handle(&booking_event("booking.created", show.id, &seats[5..])).await.unwrap();
    handler.handle(&booking_event("booking.created", show.id, &seats[..3])).await.unwrap();
    assert_eq!(available().await, 0);
    handler.handle(&booking_event("booking.created", show.id, &seats[..2])).await.unwrap();
    assert_eq!(available().await, 0, "shown within 0..=seats_total meanwhile");
    handler.handle(&booking_event("booking.cancelled", show.id, &seats[..3])).await.unwrap();
    assert_eq!(available().await, 1, "every event counted, whatever their order");
}

/// Through the app's own bus: in process on SQLite, RabbitMQ (a durable `movie_queue` on a
/// topic exchange) with the split adapters.
async fn a_booking_event_on_the_apps_bus_reaches_the_catalog(backend: Backend) {
    let app = crate::helpers::spawn_app_with(backend, |s| s.sections.movie.cache_ttl_seconds = 0).await;
    let admin = app.admin_token().await;
    let post = |path: &'static str, body: serde_json::Value| {
        let app = &app;
        let admin = admin.clone();
        async move {
            let res = app.send_as(reqwest::Method::POST, path, &admin, &body).await;
            assert_eq!(res.status(), 201, "{path}");
            res.json::<serde_json::Value>().await.unwrap()
        }
    };
    let film = post(
        "/api/movies/movies",
        json!({"title": "Bus", "duration_minutes": 90, "genre": "Drama", "release_date": "2026-01-01"}),
    )
    .await;
    let hall = post(
        "/api/movies/theaters",
        json!({"name": "Bus Hall", "location": "L", "layout": [{"row": "A", "seats": 6, "type": "standard"}]}),
    )
    .await;
    let start = chrono::Utc::now() + chrono::Duration::days(3);
    let show = post(
        "/api/movies/showtimes",
        json!({"movie_id": film["id"], "theater_id": hall["id"], "start_time": start, "price_cents": 800}),
    )
    .await;
    let seats: Vec<serde_json::Value> =
        hall["seats"].as_array().unwrap()[..2].iter().map(|s| s["id"].clone()).collect();
    let event = Envelope::new(
        "booking.created",
        &json!({"booking_id": uuid::Uuid::now_v7(), "showtime_id": show["id"], "seat_ids": seats}),
    )
    .unwrap();
    app.bus.publish(&event).await.unwrap();

    let url = app.url(&format!("/api/movies/showtimes/{}", show["id"].as_str().unwrap()));
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let current: serde_json::Value = app.client.get(&url).send().await.unwrap().json().await.unwrap();
        if current["seats_available"] == 4 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "seats_available still {}", current["seats_available"]);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
