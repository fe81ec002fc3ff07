//! One contract for `MovieApi`, run against the in-process service and the REST client, so
//! the two implementations cannot drift apart.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use movie::api::{
    MovieApi, MovieError, MovieId, MovieInput, MovieQuery, RowLayout, SeatStatus, SeatType, ShowtimeId, ShowtimeInput,
    ShowtimeQuery, TheaterId, TheaterInput,
};
use movie::client::MovieClient;
use platform::identity::{AuthUser, Role};
use platform::money::Money;
use platform::pagination::PageRequest;

use crate::fixtures::row;
use crate::helpers::{Backend, made_up_caller, spawn_app, test_settings};
use crate::movie::day_at;

on_both_backends!(the_service_keeps_the_contract, the_rest_client_keeps_the_contract);

async fn the_service_keeps_the_contract(backend: Backend) {
    let data = tempfile::TempDir::new().unwrap();
    let settings = test_settings(&backend, data.path());
    let service = crate::helpers::in_process(&settings).await.get::<dyn MovieApi>().unwrap();
    contract(service, &made_up_caller(Role::Admin), &made_up_caller(Role::Customer)).await;
}

async fn the_rest_client_keeps_the_contract(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = MovieClient::new(&app.address, reqwest::Client::new());
    let admin = app.caller(app.admin_token().await, Role::Admin).await;
    let customer = app.caller(app.customer_token("cora").await, Role::Customer).await;
    contract(Arc::new(client), &admin, &customer).await;
}

fn movie_input(title: &str, genre: &str, duration_minutes: i64) -> MovieInput {
    MovieInput {
        title: title.to_owned(),
        description: format!("All about {title}."),
        duration_minutes,
        genre: genre.to_owned(),
        release_date: NaiveDate::from_ymd_opt(2024, 5, 17).unwrap(),
        rating: Some("PG-13".to_owned()),
        poster_url: Some("https://example.com/poster.jpg".to_owned()),
    }
}

fn theater_input(name: &str, layout: Vec<RowLayout>) -> TheaterInput {
    TheaterInput { name: name.to_owned(), location: "Level 1".to_owned(), layout }
}

fn showtime_input(movie: MovieId, theater: TheaterId, start_time: DateTime<Utc>, price_cents: i64) -> ShowtimeInput {
    ShowtimeInput {
        movie_id: movie,
        theater_id: theater,
        start_time,
        price_cents: Money::from_cents(price_cents),
        currency: None,
    }
}

fn query(genre: Option<&str>, q: Option<&str>) -> MovieQuery {
    MovieQuery { genre: genre.map(str::to_owned), q: q.map(str::to_owned), page: None, per_page: None }
}

/// The fields a `Validation` names, sorted.
fn invalid_fields<T: std::fmt::Debug>(result: Result<T, MovieError>) -> Vec<String> {
    match result {
        Err(MovieError::Validation(errors)) => {
            let mut fields: Vec<String> = errors.as_slice().iter().map(|e| e.field.clone()).collect();
            fields.sort();
            fields
        }
        other => panic!("expected Validation, got {other:?}"),
    }
}

async fn contract(api: Arc<dyn MovieApi>, admin: &AuthUser, customer: &AuthUser) {
    // Movies: create, read, list, filter.
    assert!(matches!(
        api.create_movie(customer, movie_input("Intruder", "Drama", 90)).await,
        Err(MovieError::Forbidden)
    ));
    let arrival = api.create_movie(admin, movie_input("Arrival", "Sci-Fi", 116)).await.unwrap();
    assert_eq!(arrival.title, "Arrival");
    assert_eq!(arrival.description, "All about Arrival.");
    assert_eq!(arrival.duration_minutes, 116);
    assert_eq!(arrival.genre, "Sci-Fi");
    assert_eq!(arrival.release_date, NaiveDate::from_ymd_opt(2024, 5, 17).unwrap());
    assert_eq!(arrival.rating.as_deref(), Some("PG-13"));
    assert_eq!(arrival.poster_url.as_deref(), Some("https://example.com/poster.jpg"));
    assert_eq!(api.movie(arrival.id).await.unwrap(), arrival);
    let heat = api.create_movie(admin, movie_input("Heat", "Crime", 170)).await.unwrap();
    let all = api.list_movies(MovieQuery::default()).await.unwrap();
    assert_eq!(all.items, [arrival.clone(), heat.clone()]);
    assert_eq!((all.page, all.per_page, all.total), (1, 20, 2));
    assert_eq!(api.list_movies(query(Some("CRIME"), None)).await.unwrap().items, std::slice::from_ref(&heat));
    assert_eq!(api.list_movies(query(None, Some("arr"))).await.unwrap().items, std::slice::from_ref(&arrival));
    assert_eq!(api.list_movies(query(Some("crime"), Some("arr"))).await.unwrap().total, 0);
    let paged =
        api.list_movies(MovieQuery { page: Some(2), per_page: Some(1), ..MovieQuery::default() }).await.unwrap();
    assert_eq!((paged.items, paged.page, paged.per_page, paged.total), (vec![heat.clone()], 2, 1, 2));
    assert_eq!(
        invalid_fields(api.list_movies(MovieQuery { per_page: Some(0), ..MovieQuery::default() }).await),
        ["per_page"]
    );
    assert_eq!(invalid_fields(api.list_movies(MovieQuery { page: Some(0), ..MovieQuery::default() }).await), ["page"]);
    assert!(matches!(api.movie(MovieId(uuid::Uuid::new_v4())).await, Err(MovieError::NotFound("movie"))));
    assert_eq!(
        invalid_fields(api.create_movie(admin, movie_input("", "Drama", 0)).await),
        ["duration_minutes", "title"]
    );

    // Update: a full replacement.
    let mut cut = movie_input("Arrival (Director's Cut)", "Drama", 125);
    cut.rating = None;
    cut.poster_url = None;
    assert!(matches!(api.update_movie(customer, arrival.id, cut.clone()).await, Err(MovieError::Forbidden)));
    assert!(matches!(
        api.update_movie(admin, MovieId(uuid::Uuid::new_v4()), cut.clone()).await,
        Err(MovieError::NotFound("movie"))
    ));
    assert_eq!(invalid_fields(api.update_movie(admin, arrival.id, movie_input("Ok", "", 90)).await), ["genre"]);
    let updated = api.update_movie(admin, arrival.id, cut).await.unwrap();
    assert_eq!(updated.id, arrival.id);
    assert_eq!(
        (updated.title.as_str(), updated.genre.as_str(), updated.duration_minutes),
        ("Arrival (Director's Cut)", "Drama", 125)
    );
    assert_eq!((updated.rating.clone(), updated.poster_url.clone()), (None, None));
    assert_eq!(api.movie(arrival.id).await.unwrap(), updated);
    assert_eq!(api.list_movies(query(Some("drama"), None)).await.unwrap().items, std::slice::from_ref(&updated));

    // Theaters: a layout generates the seats.
    let layout = vec![row("A", 3, "standard"), row("B", 2, "premium"), row("C", 2, "accessible")];
    assert!(matches!(
        api.create_theater(customer, theater_input("Screen 1", layout.clone())).await,
        Err(MovieError::Forbidden)
    ));
    assert_eq!(invalid_fields(api.create_theater(admin, theater_input("Empty", vec![])).await), ["layout"]);
    assert_eq!(
        invalid_fields(api.create_theater(admin, theater_input("Wide", vec![row("A", 51, "standard")])).await),
        ["layout[0].seats"]
    );
    assert_eq!(
        invalid_fields(
            api.create_theater(admin, theater_input("Twice", vec![row("A", 5, "standard"), row("A", 5, "premium")]))
                .await
        ),
        ["layout[1].row"]
    );
    assert_eq!(
        invalid_fields(
            api.create_theater(admin, theater_input("Gold", vec![row("A", 5, "standard"), row("B", 5, "gold")])).await
        ),
        ["layout[1].type"]
    );
    let theater = api.create_theater(admin, theater_input("Screen 1", layout)).await.unwrap();
    assert_eq!(theater.name, "Screen 1");
    assert_eq!(theater.location, "Level 1");
    let positions: Vec<(&str, u32, SeatType)> =
        theater.seats.iter().map(|s| (s.row.as_str(), s.number, s.seat_type)).collect();
    assert_eq!(
        positions,
        [
            ("A", 1, SeatType::Standard),
            ("A", 2, SeatType::Standard),
            ("A", 3, SeatType::Standard),
            ("B", 1, SeatType::Premium),
            ("B", 2, SeatType::Premium),
            ("C", 1, SeatType::Accessible),
            ("C", 2, SeatType::Accessible),
        ]
    );
    assert_eq!(api.theater(theater.id).await.unwrap(), theater);
    let theaters = api.list_theaters(PageRequest::default()).await.unwrap();
    assert_eq!((theaters.items, theaters.total), (vec![theater.clone()], 1));
    assert_eq!(invalid_fields(api.list_theaters(PageRequest { page: None, per_page: Some(101) }).await), ["per_page"]);
    assert!(matches!(api.theater(TheaterId(uuid::Uuid::new_v4())).await, Err(MovieError::NotFound("theater"))));

    // Showtimes.
    let start = day_at(3, 18, 0);
    assert!(matches!(
        api.create_showtime(customer, showtime_input(heat.id, theater.id, start, 1099)).await,
        Err(MovieError::Forbidden)
    ));
    assert_eq!(
        invalid_fields(api.create_showtime(admin, showtime_input(heat.id, theater.id, start, 0)).await),
        ["price_cents"]
    );
    assert_eq!(
        invalid_fields(api.create_showtime(admin, showtime_input(heat.id, theater.id, day_at(-1, 18, 0), 1099)).await),
        ["start_time"]
    );
    assert_eq!(
        invalid_fields(
            api.create_showtime(admin, showtime_input(MovieId(uuid::Uuid::new_v4()), theater.id, start, 1099)).await
        ),
        ["movie_id"]
    );
    assert_eq!(
        invalid_fields(
            api.create_showtime(admin, showtime_input(heat.id, TheaterId(uuid::Uuid::new_v4()), start, 1099)).await
        ),
        ["theater_id"]
    );
    let show = api.create_showtime(admin, showtime_input(heat.id, theater.id, start, 1099)).await.unwrap();
    assert_eq!(
        (show.movie_id, show.theater_id, show.start_time, show.price_cents.cents()),
        (heat.id, theater.id, start, 1099)
    );
    assert_eq!(show.currency, "USD");
    assert_eq!((show.seats_total, show.seats_available), (7, 7));
    assert_eq!(api.showtime(show.id).await.unwrap(), show);
    assert!(matches!(api.showtime(ShowtimeId(uuid::Uuid::new_v4())).await, Err(MovieError::NotFound("showtime"))));

    // Heat runs 170 minutes, then 15 of cleaning: 20:50 is taken, 21:05 is free.
    match api.create_showtime(admin, showtime_input(arrival.id, theater.id, day_at(3, 21, 4), 1099)).await {
        Err(MovieError::Overlap(other)) => assert_eq!(other, show.id),
        other => panic!("expected Overlap, got {other:?}"),
    }
    let next =
        api.create_showtime(admin, showtime_input(arrival.id, theater.id, day_at(3, 21, 5), 1099)).await.unwrap();
    let by_movie =
        api.list_showtimes(ShowtimeQuery { movie_id: Some(heat.id), ..ShowtimeQuery::default() }).await.unwrap();
    assert_eq!((by_movie.items, by_movie.total), (vec![show.clone()], 1));
    let by_theater =
        api.list_showtimes(ShowtimeQuery { theater_id: Some(theater.id), ..ShowtimeQuery::default() }).await.unwrap();
    assert_eq!(by_theater.items, [show.clone(), next.clone()]);
    let by_day =
        api.list_showtimes(ShowtimeQuery { date: Some(start.date_naive()), ..ShowtimeQuery::default() }).await.unwrap();
    assert_eq!(by_day.items, [show.clone(), next.clone()]);
    let other_day = api
        .list_showtimes(ShowtimeQuery { date: Some(day_at(4, 0, 0).date_naive()), ..ShowtimeQuery::default() })
        .await
        .unwrap();
    assert_eq!(other_day.total, 0);
    assert_eq!(
        invalid_fields(api.list_showtimes(ShowtimeQuery { per_page: Some(0), ..ShowtimeQuery::default() }).await),
        ["per_page"]
    );

    // The seat map: every seat, priced by type (1099 × 1.5 = 1648.5, rounded up), all available.
    let map = api.seat_map(show.id).await.unwrap();
    assert_eq!(map.showtime_id, show.id);
    let ids: Vec<_> = map.seats.iter().map(|s| s.id).collect();
    assert_eq!(ids, theater.seats.iter().map(|s| s.id).collect::<Vec<_>>());
    let prices: Vec<i64> = map.seats.iter().map(|s| s.price_cents.cents()).collect();
    assert_eq!(prices, [1099, 1099, 1099, 1649, 1649, 1099, 1099]);
    assert!(map.seats.iter().all(|s| s.status == SeatStatus::Available));
    assert!(matches!(api.seat_map(ShowtimeId(uuid::Uuid::new_v4())).await, Err(MovieError::NotFound("showtime"))));
    // Pricing (what booking charges): the same prices, the showtime read fresh.
    let pricing = api.pricing(show.id).await.unwrap();
    assert_eq!(pricing.showtime, api.showtime(show.id).await.unwrap());
    let priced: Vec<_> = pricing.seats.iter().map(|s| (s.id, s.price_cents)).collect();
    assert_eq!(priced, map.seats.iter().map(|s| (s.id, s.price_cents)).collect::<Vec<_>>());
    assert!(matches!(api.pricing(ShowtimeId(uuid::Uuid::new_v4())).await, Err(MovieError::NotFound("showtime"))));

    // Delete: not while showtimes are to come; then gone.
    assert!(matches!(api.delete_movie(customer, heat.id).await, Err(MovieError::Forbidden)));
    assert!(matches!(api.delete_movie(admin, heat.id).await, Err(MovieError::HasFutureShowtimes(1))));
    assert_eq!(api.movie(heat.id).await.unwrap(), heat);
    let brief = api.create_movie(admin, movie_input("Brief", "Drama", 80)).await.unwrap();
    api.delete_movie(admin, brief.id).await.unwrap();
    assert!(matches!(api.movie(brief.id).await, Err(MovieError::NotFound("movie"))));
    assert!(matches!(api.delete_movie(admin, brief.id).await, Err(MovieError::NotFound("movie"))));
    let remaining: Vec<MovieId> =
        api.list_movies(MovieQuery::default()).await.unwrap().items.iter().map(|m| m.id).collect();
    assert_eq!(remaining, [updated.id, heat.id]);
}
