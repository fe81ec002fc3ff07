//! The movie routes, black-box: movies, theaters with their seat layouts,
//! showtimes, seat maps; who may write; validation; prices; the catalog cache; the demo catalog.
//!
//! Times are computed from `Utc::now()`: showtimes start whole days ahead, on whole minutes,
//! so no test waits and no test depends on the hour it runs at. Reads are always sent without
//! a token (they are public); writes with the admin's token unless the test is about who may write.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, LazyLock};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use reqwest::Method;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};

use crate::helpers::{
    Backend, TestApp, assert_invalid, assert_not_found, assert_problem, counter, id, ids, spawn_app, spawn_app_with,
    start, test_settings,
};

pub(crate) const MOVIES: &str = "/api/movies/movies";
pub(crate) const THEATERS: &str = "/api/movies/theaters";
pub(crate) const SHOWTIMES: &str = "/api/movies/showtimes";

on_both_backends!(
    creating_a_movie_returns_it_and_get_finds_it,
    movies_are_listed_by_title_filtered_by_genre_and_title_text_and_paginated,
    the_title_search_finds_any_part_of_a_title_and_follows_renames_and_deletions,
    movies_from_before_the_title_index_are_indexed_when_the_module_starts,
    updating_a_movie_replaces_every_field,
    a_movie_with_showtimes_to_come_keeps_its_duration,
    deleting_a_movie_takes_it_out_of_the_catalog,
    deleting_a_movie_with_future_showtimes_is_409,
    past_showtimes_are_not_listed_without_a_date_and_do_not_block_deleting_their_movie,
    unknown_or_malformed_ids_are_404,
    writes_without_a_valid_token_are_401_and_change_nothing,
    writes_by_a_customer_are_403_and_change_nothing,
    invalid_movies_are_422_naming_the_field,
    invalid_theaters_are_422_naming_the_layout_field,
    invalid_showtimes_are_422_naming_the_field,
    bad_pagination_is_422_naming_the_parameter,
    query_values_of_the_wrong_type_are_422,
    wrong_json_types_are_422_and_malformed_json_is_400,
    a_theater_is_created_from_its_row_layout,
    theaters_are_listed_paginated,
    a_showtime_starts_with_every_seat_of_its_theater_available,
    showtimes_are_filtered_by_movie_theater_and_utc_day_and_paginated,
    a_showtime_overlapping_another_in_the_same_theater_is_409,
    the_cleaning_gap_separates_showtimes_to_the_minute,
    a_showtime_in_another_theater_at_the_same_time_is_fine,
    the_cleaning_gap_is_configurable,
    the_seat_map_prices_each_seat_by_its_type_rounding_half_up,
    a_configured_multiplier_changes_seat_prices,
    an_update_is_visible_at_once_despite_the_cache,
    a_delete_is_visible_at_once_despite_the_cache,
    a_create_is_visible_at_once_despite_the_cache,
    a_new_theater_or_showtime_is_visible_at_once_despite_the_cache,
    cache_hits_and_misses_are_counted_in_metrics,
    the_demo_catalog_is_a_week_of_showtimes_in_three_theaters,
    the_demo_catalog_is_seeded_once,
    a_polled_seat_map_is_304_until_a_seat_changes_hands;
    postgres only: a_replica_sees_another_replicas_catalog_write_within_moments,
    a_replica_never_serves_a_seat_map_copy_older_than_another_replicas_booking,
);

// ---------------------------------------------------------------------------------------------
// Helpers

/// The UTC day the tests count from, fixed once per process so that a test running across
/// midnight still means one day by `day(2)`.
fn today() -> NaiveDate {
    static TODAY: LazyLock<NaiveDate> = LazyLock::new(|| Utc::now().date_naive());
    *TODAY
}

/// `days` whole days after today (UTC).
fn day(days: i64) -> NaiveDate {
    today() + Duration::days(days)
}

/// `days` whole days after today (UTC) at `hour:minute:00`.
pub(crate) fn day_at(days: i64, hour: u32, minute: u32) -> DateTime<Utc> {
    day(days).and_hms_opt(hour, minute, 0).unwrap().and_utc()
}

async fn admin_app(backend: Backend) -> (TestApp, String) {
    let app = spawn_app(backend).await;
    let token = app.admin_token().await;
    (app, token)
}

fn movie_body(title: &str, genre: &str, duration_minutes: i64) -> Value {
    json!({
        "title": title,
        "description": format!("All about {title}."),
        "duration_minutes": duration_minutes,
        "genre": genre,
        "release_date": "2024-05-17",
        "rating": "PG-13",
        "poster_url": "https://example.com/poster.jpg",
    })
}

async fn create_movie(app: &TestApp, token: &str, title: &str, genre: &str, duration_minutes: i64) -> Value {
    let res = app.send_as(Method::POST, MOVIES, token, &movie_body(title, genre, duration_minutes)).await;
    assert_eq!(res.status(), 201, "create movie {title}");
    res.json().await.unwrap()
}

fn theater_body(name: &str, rows: &[(&str, i64, &str)]) -> Value {
    let layout: Vec<Value> =
        rows.iter().map(|(row, seats, kind)| json!({"row": row, "seats": seats, "type": kind})).collect();
    json!({"name": name, "location": "Level 1", "layout": layout})
}

async fn create_theater(app: &TestApp, token: &str, name: &str, rows: &[(&str, i64, &str)]) -> Value {
    let res = app.send_as(Method::POST, THEATERS, token, &theater_body(name, rows)).await;
    assert_eq!(res.status(), 201, "create theater {name}");
    res.json().await.unwrap()
}

/// A small theater: A (3 standard), B (2 premium), C (2 accessible).
async fn small_theater(app: &TestApp, token: &str, name: &str) -> Value {
    create_theater(app, token, name, &[("A", 3, "standard"), ("B", 2, "premium"), ("C", 2, "accessible")]).await
}

fn showtime_body(movie: &Value, theater: &Value, start: DateTime<Utc>, price_cents: i64) -> Value {
    json!({"movie_id": movie["id"], "theater_id": theater["id"], "start_time": start, "price_cents": price_cents})
}

async fn post_showtime(
    app: &TestApp,
    token: &str,
    movie: &Value,
    theater: &Value,
    start: DateTime<Utc>,
    price_cents: i64,
) -> reqwest::Response {
    app.send_as(Method::POST, SHOWTIMES, token, &showtime_body(movie, theater, start, price_cents)).await
}

async fn create_showtime(app: &TestApp, token: &str, movie: &Value, theater: &Value, start: DateTime<Utc>) -> Value {
    let res = post_showtime(app, token, movie, theater, start, 1200).await;
    assert_eq!(res.status(), 201, "create showtime at {start}");
    res.json().await.unwrap()
}

/// Asserts a 409 overlap naming `other` as the showtime in the way.
async fn assert_overlap(res: reqwest::Response, other: &Value) {
    let problem = assert_problem(res, 409).await;
    assert_eq!(problem["type"], "/problems/showtime-overlap", "{problem}");
    assert_eq!(problem["conflicting_showtime_id"], other["id"], "{problem}");
}

/// A public read (no token) that must answer 200.
async fn get(app: &TestApp, path: &str) -> Value {
    let res = app.client.get(app.url(path)).send().await.unwrap();
    assert_eq!(res.status(), 200, "GET {path}");
    res.json().await.unwrap()
}

/// Every item of a paginated list, page by page.
async fn get_all(app: &TestApp, path: &str) -> Vec<Value> {
    let separator = if path.contains('?') { '&' } else { '?' };
    let mut items = Vec::new();
    for page in 1.. {
        let body = get(app, &format!("{path}{separator}page={page}&per_page=100")).await;
        let batch = body["items"].as_array().unwrap();
        items.extend(batch.iter().cloned());
        if batch.is_empty() || items.len() as u64 >= body["total"].as_u64().unwrap() {
            assert_eq!(items.len() as u64, body["total"].as_u64().unwrap(), "{path}: items against total");
            break;
        }
    }
    items
}

fn titles(page: &Value) -> Vec<&str> {
    page["items"].as_array().unwrap().iter().map(|m| m["title"].as_str().unwrap()).collect()
}

fn start_of(showtime: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(showtime["start_time"].as_str().unwrap()).unwrap().to_utc()
}

/// Moves a showtime in time behind the service's back (showtimes cannot be created in the
/// past), straight in the movie module's table.
pub(crate) async fn move_showtime(app: &TestApp, showtime: &Value, start: DateTime<Utc>, duration_minutes: i64) {
    let db = boxoffice::modules::migrate(&app.settings, boxoffice::settings::Module::Movie).await.unwrap();
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => "UPDATE showtimes SET start_time = $1, end_time = $2 WHERE id = $3",
        _ => "UPDATE showtimes SET start_time = ?, end_time = ? WHERE id = ?",
    };
    let showtime_id = uuid::Uuid::parse_str(id(showtime)).unwrap();
    let end = start + Duration::minutes(duration_minutes);
    let result = db
        .execute_raw(Statement::from_sql_and_values(backend, sql, [start.into(), end.into(), showtime_id.into()]))
        .await
        .unwrap();
    assert_eq!(result.rows_affected(), 1);
    db.close().await.unwrap();
}

/// Seat price: base × `quarters`/4, rounded half up, computed exactly in integers (the
/// multipliers the tests use are multiples of 0.25).
fn price(base: i64, quarters: i64) -> i64 {
    (base * quarters + 2) / 4
}

// ---------------------------------------------------------------------------------------------
// Movies

async fn creating_a_movie_returns_it_and_get_finds_it(backend: Backend) {
    let (app, admin) = admin_app(backend).await;
    let res = app.send_as(Method::POST, MOVIES, &admin, &movie_body("Arrival", "Sci-Fi", 116)).await;
    assert_eq!(res.status(), 201);
    let movie: Value = res.json().await.unwrap();
    assert!(uuid::Uuid::parse_str(id(&movie)).is_ok(), "{movie}");
    let mut expected = movie_body("Arrival", "Sci-Fi", 116);
    expected["id"] = movie["id"].clone();
    assert_eq!(movie, expected);
    assert_eq!(get(&app, &format!("{MOVIES}/{}", id(&movie))).await, movie);

    // Description, rating and poster are optional.
    let minimal = json!({"title": "Heat", "duration_minutes": 170, "genre": "Crime", "release_date": "1995-12-15"});
    let res = app.send_as(Method::POST, MOVIES, &admin, &minimal).await;
    assert_eq!(res.status(), 201);
    let heat: Value = res.json().await.unwrap();
    assert_eq!(heat["title"], "Heat");
    assert_eq!(heat["description"], "");
    assert_eq!(heat["duration_minutes"], 170);
    assert_eq!(heat["release_date"], "1995-12-15");
    assert!(heat["rating"].is_null() && heat["poster_url"].is_null(), "{heat}");
    assert_ne!(heat["id"], movie["id"]);
    assert_eq!(get(&app, &format!("{MOVIES}/{}", id(&heat))).await, heat);
}

async fn movies_are_listed_by_title_filtered_by_genre_and_title_text_and_paginated(backend: Backend) {
    let (app, admin) = admin_app(backend).await;
    let long_night = create_movie(&app, &admin, "The Long Night", "Drama", 130).await;
    create_movie(&app, &admin, "Night Train", "Thriller", 95).await;
    create_movie(&app, &admin, "Daybreak", "drama", 101).await;
    create_movie(&app, &admin, "Arrival", "Sci-Fi", 116).await;

    let all = get(&app, MOVIES).await;
    assert_eq!(titles(&all), ["Arrival", "Daybreak", "Night Train", "The Long Night"]);
    assert_eq!((all["page"].as_u64(), all["per_page"].as_u64(), all["total"].as_u64()), (Some(1), Some(20), Some(4)));
    assert_eq!(all["items"][3], long_night, "list items are whole movies");

    let drama = get(&app, &format!("{MOVIES}?genre=DRAMA")).await;
    assert_eq!(titles(&drama), ["Daybreak", "The Long Night"]);
    assert_eq!(drama["total"], 2);
    let night = get(&app, &format!("{MOVIES}?q=nIGHt")).await;
    assert_eq!(titles(&night), ["Night Train", "The Long Night"]);
    assert_eq!(night["total"], 2);
    let both = get(&app, &format!("{MOVIES}?genre=drama&q=night")).await;
    assert_eq!(titles(&both), ["The Long Night"]);
    assert_eq!(both["total"], 1);
    let none = get(&app, &format!("{MOVIES}?genre=Comedy")).await;
    assert_eq!(none["items"], json!([]));
    assert_eq!(none["total"], 0);

    let first = get(&app, &format!("{MOVIES}?per_page=3")).await;
    assert_eq!(titles(&first), ["Arrival", "Daybreak", "Night Train"]);
    assert_eq!(
        (first["page"].as_u64(), first["per_page"].as_u64(), first["total"].as_u64()),
        (Some(1), Some(3), Some(4))
    );
    let second = get(&app, &format!("{MOVIES}?page=2&per_page=3")).await;
    assert_eq!(titles(&second), ["The Long Night"]);
    assert_eq!((second["page"].as_u64(), second["total"].as_u64()), (Some(2), Some(4)));
    let beyond = get(&app, &format!("{MOVIES}?page=3&per_page=3")).await;
    assert_eq!(beyond["items"], json!([]));
    assert_eq!(beyond["total"], 4);
    let filtered_page = get(&app, &format!("{MOVIES}?q=night&page=2&per_page=1")).await;
    assert_eq!(titles(&filtered_page), ["The Long Night"]);
    assert_eq!(filtered_page["total"], 2);
}

/// `q` is any part of the title, of any length, in any case; the index it is answered from
/// (`movie_title_grams`) follows every write.
async fn the_title_search_finds_any_part_of_a_title_and_follows_renames_and_deletions(backend: Backend) {
    let (app, admin) = admin_app(backend).await;
    let heat = create_movie(&app, &admin, "Heat", "Crime", 170).await;
    create_movie(&app, &admin, "Up", "Family", 96).await;
    create_movie(&app, &admin, "Abcxbcd", "Drama", 90).await;
    let search = async |q: &str| titles(&get(&app, &format!("{MOVIES}?q={q}")).await).join(", ");

    assert_eq!(search("e").await, "Heat", "one character, inside a word");
    assert_eq!(search("AT").await, "Heat", "two characters, at the end");
    assert_eq!(search("p").await, "Up", "the last character of a two-character title");
    assert_eq!(search("up").await, "Up");
    assert_eq!(search("heat").await, "Heat");
    assert_eq!(search("bcxb").await, "Abcxbcd");
    assert_eq!(search("abcd").await, "", "every three characters of it are in a title, but not it");
    assert_eq!(search("hat").await, "");

    let path = format!("{MOVIES}/{}", id(&heat));
    let res = app.send_as(Method::PUT, &path, &admin, &movie_body("Cold Front", "Crime", 170)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(search("heat").await, "");
    assert_eq!(search("d fr").await, "Cold Front");
    let res = app.send_as(Method::DELETE, &path, &admin, &Value::Null).await;
    assert_eq!(res.status(), 204);
    assert_eq!(search("cold").await, "");
    assert_eq!(search("o").await, "", "Up has no o: nothing left to find");
}

/// A catalog from before the title index: its movies are found once a process of the new
/// version has started on it.
async fn movies_from_before_the_title_index_are_indexed_when_the_module_starts(backend: Backend) {
    let data = Arc::new(tempfile::TempDir::new().unwrap());
    let settings = test_settings(&backend, data.path());
    let old = start(settings.clone(), data.clone(), Arc::new(|_| {})).await;
    let admin = old.admin_token().await;
    create_movie(&old, &admin, "Heat", "Crime", 170).await;
    create_movie(&old, &admin, "Arrival", "Sci-Fi", 116).await;
    let db = boxoffice::modules::migrate(&settings, boxoffice::settings::Module::Movie).await.unwrap();
    db.execute_unprepared("DELETE FROM movie_title_grams").await.unwrap();
    db.close().await.unwrap();
    assert_eq!(get(&old, &format!("{MOVIES}?q=eat")).await["total"], 0, "the search reads the index, not the titles");

    let new = start(settings, data, Arc::new(|_| {})).await;
    assert_eq!(titles(&get(&new, &format!("{MOVIES}?q=hea")).await), ["Heat"]);
    assert_eq!(titles(&get(&new, &format!("{MOVIES}?q=r")).await), ["Arrival"]);
}

async fn updating_a_movie_replaces_every_field(backend: Backend) {
    let (app, admin) = admin_app(backend).await;
    let movie = create_movie(&app, &admin, "Arrival", "Sci-Fi", 116).await;
    let path = format!("{MOVIES}/{}", id(&movie));
    // A full replacement: rating and poster left out are cleared.
    let replacement = json!({
        "title": "Arrival (Director's Cut)",
        "description": "Longer.",
        "duration_minutes": 125,
        "genre": "Drama",
        "release_date": "2025-01-31",
    });
    let res = app.send_as(Method::PUT, &path, &admin, &replacement).await;
    assert_eq!(res.status(), 200);
    let updated: Value = res.json().await.unwrap();
    assert_eq!(updated["id"], movie["id"]);
    assert_eq!(updated["title"], "Arrival (Director's Cut)");
    assert_eq!(updated["description"], "Longer.");
    assert_eq!(updated["duration_minutes"], 125);
    assert_eq!(updated["genre"], "Drama");
    assert_eq!(updated["release_date"], "2025-01-31");
    assert!(updated["rating"].is_null() && updated["poster_url"].is_null(), "{updated}");
    assert_eq!(get(&app, &path).await, updated);
    let list = get(&app, MOVIES).await;
    assert_eq!(list["items"], json!([updated]));

    let unknown = format!("{MOVIES}/{}", uuid::Uuid::new_v4());
    assert_not_found(app.send_as(Method::PUT, &unknown, &admin, &replacement).await, "movie").await;
}

async fn a_movie_with_showtimes_to_come_keeps_its_duration(backend: Backend) {
    let (app, admin) = admin_app(backend).await;
    let movie = create_movie(&app, &admin, "Fixed Length", "Drama", 100).await;
    let theater = small_theater(&app, &admin, "Screen 1").await;
    create_showtime(&app, &admin, &movie, &theater, day_at(3, 12, 0)).await;
    let path = format!("{MOVIES}/{}", id(&movie));
    let mut body =
        json!({"title": "Fixed Length", "duration_minutes": 180, "genre": "Drama", "release_date": "2025-01-31"});
    let problem = assert_problem(app.send_as(Method::PUT, &path, &admin, &body).await, 409).await;
    assert_eq!(problem["type"], "/problems/movie-has-showtimes");
    assert_eq!(problem["future_showtimes"], 1);
    assert_eq!(get(&app, &path).await["duration_minutes"], 100, "nothing changed");
    // Every other field may change.
    body["duration_minutes"] = json!(100);
    body["title"] = json!("Fixed Length (restored)");
    assert_eq!(app.send_as(Method::PUT, &path, &admin, &body).await.status(), 200);
}

async fn deleting_a_movie_takes_it_out_of_the_catalog(backend: Backend) {
    let (app, admin) = admin_app(backend).await;
    let gone = create_movie(&app, &admin, "Gone Girl", "Thriller", 149).await;
    let kept = create_movie(&app, &admin, "Kept", "Drama", 90).await;
    let theater = small_theater(&app, &admin, "Screen 1").await;
    let path = format!("{MOVIES}/{}", id(&gone));

    let res = app.send_as(Method::DELETE, &path, &admin, &Value::Null).await;
    assert_eq!(res.status(), 204);
    assert!(res.bytes().await.unwrap().is_empty());

    assert_not_found(app.client.get(app.url(&path)).send().await.unwrap(), "movie").await;
    let list = get(&app, MOVIES).await;
    assert_eq!(ids(&list), [id(&kept)]);
    assert_eq!(list["total"], 1);
    assert_eq!(get(&app, &format!("{MOVIES}?genre=thriller")).await["total"], 0);
    // Deleted is deleted for writes too.
    assert_not_found(app.send_as(Method::DELETE, &path, &admin, &Value::Null).await, "movie").await;
    assert_not_found(app.send_as(Method::PUT, &path, &admin, &movie_body("Back", "Drama", 90)).await, "movie").await;
    assert_invalid(
        post_showtime(&app, &admin, &gone, &theater, day_at(2, 18, 0), 1000).await,
        &["movie_id"],
        "deleted",
    )
    .await;
}

async fn deleting_a_movie_with_future_showtimes_is_409(backend: Backend) {
    let (app, admin) = admin_app(backend).await;
    let movie = create_movie(&app, &admin, "Busy", "Drama", 100).await;
    let theater = small_theater(&app, &admin, "Screen 1").await;
    let first = create_showtime(&app, &admin, &movie, &theater, day_at(2, 18, 0)).await;
    let second = create_showtime(&app, &admin, &movie, &theater, day_at(3, 18, 0)).await;
    let path = format!("{MOVIES}/{}", id(&movie));

    let problem = assert_problem(app.send_as(Method::DELETE, &path, &admin, &Value::Null).await, 409).await;
    assert_eq!(problem["type"], "/problems/movie-has-showtimes", "{problem}");
    assert_eq!(problem["future_showtimes"], 2, "{problem}");

    // Nothing changed.
    assert_eq!(get(&app, &path).await, movie);
    assert_eq!(ids(&get(&app, MOVIES).await), [id(&movie)]);
    let showtimes = get(&app, &format!("{SHOWTIMES}?movie_id={}", id(&movie))).await;
    assert_eq!(ids(&showtimes), [id(&first), id(&second)]);
}

async fn past_showtimes_are_not_listed_without_a_date_and_do_not_block_deleting_their_movie(backend: Backend) {
    let (app, admin) = admin_app(backend).await;
    let theater = small_theater(&app, &admin, "Screen 1").await;
    let movie = create_movie(&app, &admin, "Half Past", "Drama", 100).await;
    let past = create_showtime(&app, &admin, &movie, &theater, day_at(2, 18, 0)).await;
    let to_come = create_showtime(&app, &admin, &movie, &theater, day_at(3, 18, 0)).await;
    move_showtime(&app, &past, day_at(-2, 18, 0), 100).await;

    // Only the showtime still to come counts against the delete...
    let path = format!("{MOVIES}/{}", id(&movie));
    let problem = assert_problem(app.send_as(Method::DELETE, &path, &admin, &Value::Null).await, 409).await;
    assert_eq!(problem["future_showtimes"], 1, "{problem}");
    // ...and is listed without a date; the past one is still there for its own day.
    let listed = get(&app, &format!("{SHOWTIMES}?movie_id={}", id(&movie))).await;
    assert_eq!(ids(&listed), [id(&to_come)]);
    assert_eq!(listed["total"], 1);
    assert_eq!(ids(&get(&app, SHOWTIMES).await), [id(&to_come)]);
    let that_day = get(&app, &format!("{SHOWTIMES}?date={}", day(-2))).await;
    assert_eq!(ids(&that_day), [id(&past)]);

    // A movie whose showtimes are all over can go; its showtime stays for history.
    let classic = create_movie(&app, &admin, "Classic", "Drama", 90).await;
    let old = create_showtime(&app, &admin, &classic, &theater, day_at(5, 12, 0)).await;
    move_showtime(&app, &old, day_at(-3, 12, 0), 90).await;
    let res = app.send_as(Method::DELETE, &format!("{MOVIES}/{}", id(&classic)), &admin, &Value::Null).await;
    assert_eq!(res.status(), 204);
    let kept = get(&app, &format!("{SHOWTIMES}/{}", id(&old))).await;
    assert_eq!(kept["movie_id"], classic["id"]);
    assert_eq!(start_of(&kept), day_at(-3, 12, 0));
}

async fn unknown_or_malformed_ids_are_404(backend: Backend) {
    let (app, admin) = admin_app(backend).await;
    let unknown = uuid::Uuid::new_v4();
    for (path, resource) in [
        (format!("{MOVIES}/{unknown}"), "movie"),
        (format!("{THEATERS}/{unknown}"), "theater"),
        (format!("{SHOWTIMES}/{unknown}"), "showtime"),
        (format!("{SHOWTIMES}/{unknown}/seats"), "showtime"),
    ] {
        assert_not_found(app.client.get(app.url(&path)).send().await.unwrap(), resource).await;
    }
    assert_not_found(app.send_as(Method::DELETE, &format!("{MOVIES}/{unknown}"), &admin, &Value::Null).await, "movie")
        .await;
    for path in [
        format!("{MOVIES}/not-a-uuid"),
        format!("{THEATERS}/12345"),
        format!("{SHOWTIMES}/{unknown}x"),
        format!("{SHOWTIMES}/not-a-uuid/seats"),
    ] {
        let res = app.client.get(app.url(&path)).send().await.unwrap();
        assert_problem(res, 404).await;
    }
    let malformed = format!("{MOVIES}/not-a-uuid");
    assert_problem(app.send_as(Method::PUT, &malformed, &admin, &movie_body("X", "Drama", 90)).await, 404).await;
    assert_problem(app.send_as(Method::DELETE, &malformed, &admin, &Value::Null).await, 404).await;
}

/// Every write of the API, on the movie and theater given.
fn writes(movie: &Value, theater: &Value) -> Vec<(Method, String, Value)> {
    let movie_path = format!("{MOVIES}/{}", id(movie));
    vec![
        (Method::POST, MOVIES.to_owned(), movie_body("Intruder", "Drama", 90)),
        (Method::PUT, movie_path.clone(), movie_body("Hijacked", "Drama", 90)),
        (Method::DELETE, movie_path, Value::Null),
        (Method::POST, THEATERS.to_owned(), theater_body("Pirate Screen", &[("A", 5, "standard")])),
        (Method::POST, SHOWTIMES.to_owned(), showtime_body(movie, theater, day_at(2, 20, 0), 1000)),
    ]
}

/// The catalog is exactly `movie` and `theater`, untouched, without showtimes.
async fn assert_unchanged(app: &TestApp, movie: &Value, theater: &Value) {
    assert_eq!(get(app, MOVIES).await["items"], json!([movie]));
    assert_eq!(get(app, &format!("{MOVIES}/{}", id(movie))).await, *movie);
    assert_eq!(get(app, THEATERS).await["items"], json!([theater]));
    assert_eq!(get(app, SHOWTIMES).await["total"], 0);
}

async fn writes_without_a_valid_token_are_401_and_change_nothing(backend: Backend) {
    let (app, admin) = admin_app(backend).await;
    let movie = create_movie(&app, &admin, "Guarded", "Drama", 90).await;
    let theater = small_theater(&app, &admin, "Screen 1").await;
    for (method, path, body) in writes(&movie, &theater) {
        let res = app.client.request(method.clone(), app.url(&path)).json(&body).send().await.unwrap();
        assert_eq!(res.status(), 401, "{method} {path} without a token");
        assert_problem(res, 401).await;
        let res = app.send_as(method.clone(), &path, "not.a.token", &body).await;
        assert_eq!(res.status(), 401, "{method} {path} with a bad token");
        assert_problem(res, 401).await;
    }
    assert_unchanged(&app, &movie, &theater).await;
}

async fn writes_by_a_customer_are_403_and_change_nothing(backend: Backend) {
    let (app, admin) = admin_app(backend).await;
    let movie = create_movie(&app, &admin, "Guarded", "Drama", 90).await;
    let theater = small_theater(&app, &admin, "Screen 1").await;
    let pair = app.customer("mallory").await;
    let customer = pair["access_token"].as_str().unwrap();
    for (method, path, body) in writes(&movie, &theater) {
        let res = app.send_as(method.clone(), &path, customer, &body).await;
        assert_eq!(res.status(), 403, "{method} {path} as a customer");
        assert_problem(res, 403).await;
        // The role is checked before the body: an invalid body tells a customer nothing more.
        if method != Method::DELETE {
            let res = app.send_as(method.clone(), &path, customer, &json!({"title": ""})).await;
            assert_eq!(res.status(), 403, "{method} {path} as a customer with an invalid body");
        }
    }
    assert_unchanged(&app, &movie, &theater).await;
}

async fn invalid_movies_are_422_naming_the_field(backend: Backend) {
    let (app, admin) = admin_app(backend).await;
    let movie = create_movie(&app, &admin, "Valid", "Drama", 90).await;
    let path = format!("{MOVIES}/{}", id(&movie));
    let with = |changes: Value| {
        let mut body = movie_body("Fine", "Drama", 90);
        for (k, v) in changes.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let cases = [
        (with(json!({"title": ""})), vec!["title"]),
        (with(json!({"title": "x".repeat(201)})), vec!["title"]),
        (with(json!({"duration_minutes": 0})), vec!["duration_minutes"]),
        (with(json!({"duration_minutes": -90})), vec!["duration_minutes"]),
        (with(json!({"duration_minutes": 1441})), vec!["duration_minutes"]),
        (with(json!({"genre": ""})), vec!["genre"]),
        (with(json!({"poster_url": "not a url"})), vec!["poster_url"]),
        (with(json!({"title": "", "duration_minutes": 0})), vec!["title", "duration_minutes"]),
    ];
    for (body, expected) in &cases {
        assert_invalid(app.send_as(Method::POST, MOVIES, &admin, body).await, expected, &format!("POST {body}")).await;
        assert_invalid(app.send_as(Method::PUT, &path, &admin, body).await, expected, &format!("PUT {body}")).await;
    }
    // The limits themselves are fine.
    let edge = with(json!({"title": "x".repeat(200), "duration_minutes": 1440}));
    assert_eq!(app.send_as(Method::POST, MOVIES, &admin, &edge).await.status(), 201);
    let one_minute = with(json!({"title": "Short", "duration_minutes": 1}));
    assert_eq!(app.send_as(Method::POST, MOVIES, &admin, &one_minute).await.status(), 201);
    // Nothing invalid was stored, and the movie was not touched.
    assert_eq!(get(&app, MOVIES).await["total"], 3);
    assert_eq!(get(&app, &path).await, movie);
}

async fn invalid_theaters_are_422_naming_the_layout_field(backend: Backend) {
    let (app, admin) = admin_app(backend).await;
    let layout = |rows: Value| json!({"name": "Screen", "location": "Level 1", "layout": rows});
    let row = |label: &str, seats: i64, kind: &str| json!({"row": label, "seats": seats, "type": kind});
    let cases = [
        (layout(json!([])), vec!["layout"]),
        (layout(json!([row("A", 51, "standard")])), vec!["layout[0].seats"]),
        (layout(json!([row("A", 10, "standard"), row("B", 0, "standard")])), vec!["layout[1].seats"]),
        (layout(json!([row("A", 10, "standard"), row("B", -3, "premium")])), vec!["layout[1].seats"]),
        (
            layout(json!([row("A", 10, "standard"), row("B", 10, "standard"), row("A", 5, "premium")])),
            vec!["layout[2].row"],
        ),
        (layout(json!([row("A", 10, "standard"), row("B", 10, "vip")])), vec!["layout[1].type"]),
        (layout(json!([row("", 10, "standard")])), vec!["layout[0].row"]),
        (
            layout(json!([row("A", 10, "standard"), row("B", 60, "standard"), row("C", 5, "gold")])),
            vec!["layout[1].seats", "layout[2].type"],
        ),
        (json!({"name": "", "location": "Level 1", "layout": [row("A", 10, "standard")]}), vec!["name"]),
    ];
    for (body, expected) in &cases {
        assert_invalid(app.send_as(Method::POST, THEATERS, &admin, body).await, expected, &body.to_string()).await;
    }
    assert_eq!(get(&app, THEATERS).await["total"], 0, "nothing was created");

    // Fifty seats is the most a row can have.
    let widest = create_theater(&app, &admin, "Wide", &[("A", 50, "standard")]).await;
    let numbers: Vec<u64> = widest["seats"].as_array().unwrap().iter().map(|s| s["number"].as_u64().unwrap()).collect();
    assert_eq!(numbers, (1..=50).collect::<Vec<u64>>());
}

async fn invalid_showtimes_are_422_naming_the_field(backend: Backend) {
    let (app, admin) = admin_app(backend).await;
    let movie = create_movie(&app, &admin, "Showable", "Drama", 90).await;
    let theater = small_theater(&app, &admin, "Screen 1").await;
    let start = day_at(2, 18, 0);
    // An hour ago, on the whole minute.
    let an_hour_ago = Utc::now().timestamp() - 3600;
    let past = DateTime::from_timestamp(an_hour_ago - an_hour_ago % 60, 0).unwrap();
    let with = |changes: Value| {
        let mut body = showtime_body(&movie, &theater, start, 1000);
        for (k, v) in changes.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let cases = [
        (with(json!({"price_cents": 0})), vec!["price_cents"]),
        (with(json!({"price_cents": -500})), vec!["price_cents"]),
        (with(json!({"start_time": past})), vec!["start_time"]),
        (with(json!({"start_time": day_at(-1, 18, 0)})), vec!["start_time"]),
        (with(json!({"movie_id": uuid::Uuid::new_v4()})), vec!["movie_id"]),
        (with(json!({"theater_id": uuid::Uuid::new_v4()})), vec!["theater_id"]),
        (with(json!({"currency": "dollars"})), vec!["currency"]),
        (with(json!({"price_cents": 0, "start_time": past})), vec!["price_cents", "start_time"]),
        // Unknown references are named in the same answer as the body's own faults.
        (
            with(json!({"price_cents": 0, "movie_id": uuid::Uuid::new_v4(), "theater_id": uuid::Uuid::new_v4()})),
            vec!["price_cents", "movie_id", "theater_id"],
        ),
    ];
    for (body, expected) in &cases {
        assert_invalid(app.send_as(Method::POST, SHOWTIMES, &admin, body).await, expected, &body.to_string()).await;
    }
    assert_eq!(get(&app, SHOWTIMES).await["total"], 0, "nothing was created");
    assert_eq!(get(&app, &format!("{SHOWTIMES}?date={}", day(-1))).await["total"], 0, "nothing was created");
    assert_eq!(get(&app, &format!("{SHOWTIMES}?date={}", past.date_naive())).await["total"], 0, "nothing was created");
    // The same showtime with valid values is fine: each case failed for its own field only.
    assert_eq!(app.send_as(Method::POST, SHOWTIMES, &admin, &with(json!({}))).await.status(), 201);
}

async fn bad_pagination_is_422_naming_the_parameter(backend: Backend) {
    let app = spawn_app(backend).await;
    for list in [MOVIES, THEATERS, SHOWTIMES] {
        for (query, field) in [("per_page=0", "per_page"), ("per_page=101", "per_page"), ("page=0", "page")] {
            let res = app.client.get(app.url(&format!("{list}?{query}"))).send().await.unwrap();
            assert_invalid(res, &[field], &format!("{list}?{query}")).await;
        }
        let widest = get(&app, &format!("{list}?page=1&per_page=100")).await;
        assert_eq!((widest["page"].as_u64(), widest["per_page"].as_u64()), (Some(1), Some(100)), "{list}");
        assert_eq!((widest["items"].clone(), widest["total"].as_u64()), (json!([]), Some(0)), "{list}");
    }
}

async fn query_values_of_the_wrong_type_are_422(backend: Backend) {
    let app = spawn_app(backend).await;
    for (path, field) in [
        (format!("{MOVIES}?page=first"), "page"),
        (format!("{MOVIES}?per_page=-1"), "per_page"),
        (format!("{THEATERS}?per_page=many"), "per_page"),
        (format!("{SHOWTIMES}?movie_id=not-a-uuid"), "movie_id"),
        (format!("{SHOWTIMES}?theater_id=42"), "theater_id"),
        (format!("{SHOWTIMES}?date=tomorrow"), "date"),
        (format!("{SHOWTIMES}?date={}-13-01", today().format("%Y")), "date"),
    ] {
        let res = app.client.get(app.url(&path)).send().await.unwrap();
        assert_invalid(res, &[field], &path).await;
    }
}

async fn wrong_json_types_are_422_and_malformed_json_is_400(backend: Backend) {
    let (app, admin) = admin_app(backend).await;
    let movie = create_movie(&app, &admin, "Typed", "Drama", 90).await;
    let theater = small_theater(&app, &admin, "Screen 1").await;
    let movie_path = format!("{MOVIES}/{}", id(&movie));
    let film = |changes: Value| {
        let mut body = json!({"title": "X", "duration_minutes": 90, "genre": "Drama", "release_date": "2024-01-01"});
        for (k, v) in changes.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let screening = |changes: Value| {
        let mut body = showtime_body(&movie, &theater, day_at(2, 18, 0), 1000);
        for (k, v) in changes.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    // Each answer names the field at fault (`body` when the whole document has the wrong shape).
    let wrong_types = [
        (Method::POST, MOVIES, film(json!({"duration_minutes": "long"})), "duration_minutes"),
        (Method::POST, MOVIES, film(json!({"title": 5})), "title"),
        (Method::POST, MOVIES, film(json!({"release_date": "someday"})), "release_date"),
        (Method::POST, MOVIES, json!({"duration_minutes": 90, "genre": "Drama", "release_date": "2024-01-01"}), "body"),
        // serde reads a struct from an array positionally: the first element is the title.
        (Method::POST, MOVIES, json!([1, 2, 3]), "[0]"),
        (Method::PUT, movie_path.as_str(), film(json!({"duration_minutes": 9.5})), "duration_minutes"),
        (Method::POST, THEATERS, json!({"name": "S", "location": "L", "layout": "A"}), "layout"),
        (
            Method::POST,
            THEATERS,
            json!({"name": "S", "location": "L", "layout": [{"row": "A", "seats": "ten"}]}),
            "layout[0].seats",
        ),
        (Method::POST, SHOWTIMES, screening(json!({"movie_id": "nope"})), "movie_id"),
        (Method::POST, SHOWTIMES, screening(json!({"start_time": "tomorrow"})), "start_time"),
        (Method::POST, SHOWTIMES, screening(json!({"price_cents": 10.5})), "price_cents"),
    ];
    for (method, path, body, field) in wrong_types {
        let res = app.send_as(method.clone(), path, &admin, &body).await;
        assert_eq!(res.status(), 422, "{method} {path} {body}");
        let problem = assert_problem(res, 422).await;
        assert_eq!(problem["errors"][0]["field"], field, "{method} {path} {body}: {problem}");
    }
    for (method, path) in [
        (Method::POST, MOVIES),
        (Method::PUT, movie_path.as_str()),
        (Method::POST, THEATERS),
        (Method::POST, SHOWTIMES),
    ] {
        let res = app
            .client
            .request(method.clone(), app.url(path))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body(r#"{"title": "X", "#)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{method} {path} malformed");
        assert_problem(res, 400).await;
    }
    assert_eq!(get(&app, MOVIES).await["items"], json!([movie]));
    assert_eq!(get(&app, THEATERS).await["total"], 1);
    assert_eq!(get(&app, SHOWTIMES).await["total"], 0);
}

// ---------------------------------------------------------------------------------------------
// Theaters

async fn a_theater_is_created_from_its_row_layout(backend: Backend) {
    let (app, admin) = admin_app(backend).await;
    let body = json!({
        "name": "Screen 1",
        "location": "Level 2",
        "layout": [
            {"row": "A", "seats": 12, "type": "standard"},
            {"row": "B", "seats": 10, "type": "premium"},
            {"row": "C", "seats": 4, "type": "accessible"},
            {"row": "D", "seats": 2},
        ],
    });
    let res = app.send_as(Method::POST, THEATERS, &admin, &body).await;
    assert_eq!(res.status(), 201);
    let theater: Value = res.json().await.unwrap();
    assert!(uuid::Uuid::parse_str(id(&theater)).is_ok());
    assert_eq!(theater["name"], "Screen 1");
    assert_eq!(theater["location"], "Level 2");

    // One seat per position, by row as laid out, numbered from 1 in each row.
    let seats = theater["seats"].as_array().unwrap();
    let positions: Vec<(&str, u64, &str)> = seats
        .iter()
        .map(|s| (s["row"].as_str().unwrap(), s["number"].as_u64().unwrap(), s["type"].as_str().unwrap()))
        .collect();
    let mut expected = Vec::new();
    for (row, count, kind) in
        [("A", 12, "standard"), ("B", 10, "premium"), ("C", 4, "accessible"), ("D", 2, "standard")]
    {
        expected.extend((1..=count).map(|n| (row, n, kind)));
    }
    assert_eq!(positions, expected);
    let seat_ids: HashSet<&str> = seats.iter().map(id).collect();
    assert_eq!(seat_ids.len(), 28, "every seat has its own id");
    assert!(seat_ids.iter().all(|s| uuid::Uuid::parse_str(s).is_ok()));
    assert!(seats.iter().all(|s| s.as_object().unwrap().len() == 4), "seats are {{id, row, number, type}}");

    assert_eq!(get(&app, &format!("{THEATERS}/{}", id(&theater))).await, theater);
}

async fn theaters_are_listed_paginated(backend: Backend) {
    let (app, admin) = admin_app(backend).await;
    let mut created = BTreeSet::new();
    for name in ["Alpha", "Beta", "Gamma"] {
        let theater = create_theater(&app, &admin, name, &[("A", 4, "standard"), ("B", 2, "premium")]).await;
        created.insert(id(&theater).to_owned());
    }
    let all = get(&app, THEATERS).await;
    assert_eq!((all["page"].as_u64(), all["per_page"].as_u64(), all["total"].as_u64()), (Some(1), Some(20), Some(3)));
    for theater in all["items"].as_array().unwrap() {
        assert_eq!(theater["seats"].as_array().unwrap().len(), 6, "{theater}");
        assert_eq!(get(&app, &format!("{THEATERS}/{}", id(theater))).await, *theater);
    }
    let first = get(&app, &format!("{THEATERS}?per_page=2")).await;
    let second = get(&app, &format!("{THEATERS}?page=2&per_page=2")).await;
    assert_eq!((first["items"].as_array().unwrap().len(), first["total"].as_u64()), (2, Some(3)));
    assert_eq!((second["items"].as_array().unwrap().len(), second["total"].as_u64()), (1, Some(3)));
    let paged: BTreeSet<String> = ids(&first).into_iter().chain(ids(&second)).map(str::to_owned).collect();
    assert_eq!(paged, created);
}

// ---------------------------------------------------------------------------------------------
// Showtimes

async fn a_showtime_starts_with_every_seat_of_its_theater_available(backend: Backend) {
    let (app, admin) = admin_app(backend).await;
    let movie = create_movie(&app, &admin, "Opening", "Drama", 110).await;
    let theater = create_theater(&app, &admin, "Screen 1", &[("A", 12, "standard"), ("B", 10, "premium")]).await;
    let start = day_at(2, 19, 30);
    let res = post_showtime(&app, &admin, &movie, &theater, start, 1250).await;
    assert_eq!(res.status(), 201);
    let showtime: Value = res.json().await.unwrap();
    assert!(uuid::Uuid::parse_str(id(&showtime)).is_ok());
    assert_eq!(showtime["movie_id"], movie["id"]);
    assert_eq!(showtime["theater_id"], theater["id"]);
    assert_eq!(start_of(&showtime), start);
    assert_eq!(showtime["price_cents"], 1250);
    assert_eq!(showtime["currency"], "USD");
    assert_eq!(showtime["seats_total"], 22);
    assert_eq!(showtime["seats_available"], 22);
    assert_eq!(get(&app, &format!("{SHOWTIMES}/{}", id(&showtime))).await, showtime);
}

async fn showtimes_are_filtered_by_movie_theater_and_utc_day_and_paginated(backend: Backend) {
    let (app, admin) = admin_app(backend).await;
    let m1 = create_movie(&app, &admin, "First", "Drama", 120).await;
    let m2 = create_movie(&app, &admin, "Second", "Drama", 90).await;
    let t1 = small_theater(&app, &admin, "One").await;
    let t2 = small_theater(&app, &admin, "Two").await;
    // Late on day 3, just after midnight of day 4 (UTC), midday of day 5.
    let s1 = create_showtime(&app, &admin, &m1, &t1, day_at(3, 23, 0)).await;
    let s2 = create_showtime(&app, &admin, &m2, &t2, day_at(4, 0, 30)).await;
    let s3 = create_showtime(&app, &admin, &m1, &t2, day_at(5, 12, 0)).await;
    let (m1, m2, t1, t2) = (id(&m1), id(&m2), id(&t1), id(&t2));
    let (s1, s2, s3) = (id(&s1), id(&s2), id(&s3));

    let cases = [
        (String::new(), vec![s1, s2, s3]),
        (format!("movie_id={m1}"), vec![s1, s3]),
        (format!("movie_id={m2}"), vec![s2]),
        (format!("theater_id={t2}"), vec![s2, s3]),
        (format!("theater_id={t1}"), vec![s1]),
        (format!("date={}", day(3)), vec![s1]),
        (format!("date={}", day(4)), vec![s2]),
        (format!("date={}", day(6)), vec![]),
        (format!("movie_id={m1}&theater_id={t2}"), vec![s3]),
        (format!("movie_id={m1}&date={}", day(4)), vec![]),
        (format!("theater_id={t2}&date={}", day(5)), vec![s3]),
        (format!("movie_id={}", uuid::Uuid::new_v4()), vec![]),
    ];
    for (query, expected) in cases {
        let page = get(&app, &format!("{SHOWTIMES}?{query}")).await;
        assert_eq!(ids(&page), expected, "?{query}");
        assert_eq!(page["total"], expected.len(), "?{query}");
    }

    let first = get(&app, &format!("{SHOWTIMES}?per_page=2")).await;
    assert_eq!(ids(&first), [s1, s2]);
    assert_eq!(
        (first["page"].as_u64(), first["per_page"].as_u64(), first["total"].as_u64()),
        (Some(1), Some(2), Some(3))
    );
    let second = get(&app, &format!("{SHOWTIMES}?page=2&per_page=2")).await;
    assert_eq!(ids(&second), [s3]);
    assert_eq!(second["total"], 3);
}

async fn a_showtime_overlapping_another_in_the_same_theater_is_409(backend: Backend) {
    let (app, admin) = admin_app(backend).await;
    let movie = create_movie(&app, &admin, "Two Hours", "Drama", 120).await;
    let theater = small_theater(&app, &admin, "Screen 1").await;
    let first = create_showtime(&app, &admin, &movie, &theater, day_at(2, 18, 0)).await;
    for start in [day_at(2, 18, 0), day_at(2, 19, 0), day_at(2, 16, 30), day_at(2, 17, 0)] {
        assert_overlap(post_showtime(&app, &admin, &movie, &theater, start, 1000).await, &first).await;
    }
    let listed = get(&app, &format!("{SHOWTIMES}?theater_id={}", id(&theater))).await;
    assert_eq!(ids(&listed), [id(&first)], "nothing was created");
}

async fn the_cleaning_gap_separates_showtimes_to_the_minute(backend: Backend) {
    let (app, admin) = admin_app(backend).await;
    let long = create_movie(&app, &admin, "Two Hours", "Drama", 120).await;
    let short = create_movie(&app, &admin, "Ninety Minutes", "Drama", 90).await;
    let theater = small_theater(&app, &admin, "Screen 1").await;
    let noon = create_showtime(&app, &admin, &long, &theater, day_at(2, 12, 0)).await;

    // After it: 120 minutes of film, then 15 of cleaning.
    assert_overlap(post_showtime(&app, &admin, &short, &theater, day_at(2, 14, 14), 1000).await, &noon).await;
    let after = create_showtime(&app, &admin, &short, &theater, day_at(2, 14, 15)).await;
    // Before it: the new showtime's own 90 minutes, then 15 of cleaning.
    assert_overlap(post_showtime(&app, &admin, &short, &theater, day_at(2, 10, 16), 1000).await, &noon).await;
    let before = create_showtime(&app, &admin, &short, &theater, day_at(2, 10, 15)).await;
    // And again after the 90-minute showtime that now closes the day: 14:15 + 90 + 15.
    assert_overlap(post_showtime(&app, &admin, &long, &theater, day_at(2, 15, 59), 1000).await, &after).await;
    let last = create_showtime(&app, &admin, &long, &theater, day_at(2, 16, 0)).await;

    let listed = get(&app, &format!("{SHOWTIMES}?theater_id={}", id(&theater))).await;
    assert_eq!(ids(&listed), [id(&before), id(&noon), id(&after), id(&last)]);
}

async fn a_showtime_in_another_theater_at_the_same_time_is_fine(backend: Backend) {
    let (app, admin) = admin_app(backend).await;
    let movie = create_movie(&app, &admin, "Everywhere", "Drama", 120).await;
    let one = small_theater(&app, &admin, "One").await;
    let two = small_theater(&app, &admin, "Two").await;
    let start = day_at(2, 18, 0);
    let first = create_showtime(&app, &admin, &movie, &one, start).await;
    let second = create_showtime(&app, &admin, &movie, &two, start).await;
    assert_ne!(first["id"], second["id"]);
    assert_eq!(start_of(&second), start);
    let listed = get(&app, &format!("{SHOWTIMES}?movie_id={}", id(&movie))).await;
    assert_eq!(listed["total"], 2);
}

async fn the_cleaning_gap_is_configurable(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.sections.movie.cleaning_gap_minutes = 30).await;
    let admin = app.admin_token().await;
    let movie = create_movie(&app, &admin, "Two Hours", "Drama", 120).await;
    let theater = small_theater(&app, &admin, "Screen 1").await;
    let noon = create_showtime(&app, &admin, &movie, &theater, day_at(2, 12, 0)).await;
    // 14:15 is fine with the default 15 minutes, not with 30.
    assert_overlap(post_showtime(&app, &admin, &movie, &theater, day_at(2, 14, 15), 1000).await, &noon).await;
    assert_overlap(post_showtime(&app, &admin, &movie, &theater, day_at(2, 14, 29), 1000).await, &noon).await;
    create_showtime(&app, &admin, &movie, &theater, day_at(2, 14, 30)).await;
}

// ---------------------------------------------------------------------------------------------
// Seat maps and prices

/// The seat map of `showtime` must list every seat of `theater`, in order, all available,
/// priced by type as `prices` says.
async fn assert_seat_map(app: &TestApp, showtime: &Value, theater: &Value, prices: &HashMap<&str, i64>) {
    let map = get(app, &format!("{SHOWTIMES}/{}/seats", id(showtime))).await;
    assert_eq!(map["showtime_id"], showtime["id"]);
    let entries = map["seats"].as_array().unwrap();
    let seats = theater["seats"].as_array().unwrap();
    assert_eq!(entries.len(), seats.len());
    for (entry, seat) in entries.iter().zip(seats) {
        for key in ["id", "row", "number", "type"] {
            assert_eq!(entry[key], seat[key], "{entry}");
        }
        assert_eq!(entry["price_cents"], prices[seat["type"].as_str().unwrap()], "{entry}");
        assert_eq!(entry["status"], "available", "{entry}");
    }
}

async fn the_seat_map_prices_each_seat_by_its_type_rounding_half_up(backend: Backend) {
    let (app, admin) = admin_app(backend).await;
    let movie = create_movie(&app, &admin, "Priced", "Drama", 100).await;
    let theater = small_theater(&app, &admin, "Screen 1").await;
    for (day, base, premium) in [(2, 1099, 1649), (3, 999, 1499), (4, 1000, 1500), (5, 1, 2)] {
        assert_eq!(price(base, 6), premium, "the expectation itself");
        let res = post_showtime(&app, &admin, &movie, &theater, day_at(day, 18, 0), base).await;
        assert_eq!(res.status(), 201);
        let showtime: Value = res.json().await.unwrap();
        let prices = HashMap::from([("standard", base), ("premium", premium), ("accessible", base)]);
        assert_seat_map(&app, &showtime, &theater, &prices).await;
    }
}

async fn a_configured_multiplier_changes_seat_prices(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.sections.movie.price_multipliers.premium = 1.25).await;
    let admin = app.admin_token().await;
    let movie = create_movie(&app, &admin, "Priced", "Drama", 100).await;
    let theater = small_theater(&app, &admin, "Screen 1").await;
    let res = post_showtime(&app, &admin, &movie, &theater, day_at(2, 18, 0), 1098).await;
    assert_eq!(res.status(), 201);
    let showtime: Value = res.json().await.unwrap();
    // 1098 × 1.25 = 1372.5, rounded half up.
    assert_eq!(price(1098, 5), 1373);
    let prices = HashMap::from([("standard", 1098), ("premium", 1373), ("accessible", 1098)]);
    assert_seat_map(&app, &showtime, &theater, &prices).await;
}

// ---------------------------------------------------------------------------------------------
// The catalog cache: every read below is made first to warm the cache, then the write, then
// the read again.

async fn an_update_is_visible_at_once_despite_the_cache(backend: Backend) {
    let (app, admin) = admin_app(backend).await;
    let movie = create_movie(&app, &admin, "Arrival", "Sci-Fi", 116).await;
    let path = format!("{MOVIES}/{}", id(&movie));
    let reads = [path.clone(), MOVIES.to_owned(), format!("{MOVIES}?genre=sci-fi"), format!("{MOVIES}?q=arrival")];
    for read in &reads {
        get(&app, read).await;
        get(&app, read).await;
    }
    let res = app.send_as(Method::PUT, &path, &admin, &movie_body("Contact", "Drama", 150)).await;
    assert_eq!(res.status(), 200);

    let fresh = get(&app, &path).await;
    assert_eq!(
        (fresh["title"].as_str(), fresh["genre"].as_str(), fresh["duration_minutes"].as_u64()),
        (Some("Contact"), Some("Drama"), Some(150))
    );
    assert_eq!(titles(&get(&app, MOVIES).await), ["Contact"]);
    assert_eq!(get(&app, &format!("{MOVIES}?genre=sci-fi")).await["total"], 0);
    assert_eq!(get(&app, &format!("{MOVIES}?q=arrival")).await["total"], 0);
    assert_eq!(titles(&get(&app, &format!("{MOVIES}?genre=drama")).await), ["Contact"]);
}

/// A client that polls the seat map with `If-None-Match` gets 304 without a body while nothing
/// changed, and the new map (and a new tag) as soon as a seat is held.
async fn a_polled_seat_map_is_304_until_a_seat_changes_hands(backend: Backend) {
    use crate::fixtures::{ROW_A, book, customer, screening};
    let app = spawn_app(backend).await;
    let screen = screening(&app, ROW_A).await;
    let url = app.url(&format!("{}/seats", screen.showtime_path()));
    let first = app.client.get(&url).send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["cache-control"], "no-cache");
    let tag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert!(tag.starts_with("W/\""), "{tag}");

    let again = app.client.get(&url).header("if-none-match", &tag).send().await.unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], tag.as_str());
    assert!(again.bytes().await.unwrap().is_empty());
    let copies = crate::helpers::counter(&app.metrics().await, "seat_map_reads_total", "copy=\"current\"");
    assert!(copies >= 1.0, "the second read is answered from the first one's copy");

    let ann = customer(&app, "ann").await;
    book(&app, &ann.token, &screen, &["A1"]).await;
    let changed = app.client.get(&url).header("if-none-match", &tag).send().await.unwrap();
    assert_eq!(changed.status(), 200, "a seat was held since the tag");
    assert_ne!(changed.headers()["etag"], tag.as_str());
    let map: Value = changed.json().await.unwrap();
    let a1 = map["seats"].as_array().unwrap().iter().find(|s| s["id"] == screen.seat_id("A1").as_str()).unwrap();
    assert_eq!(a1["status"], "held");
}

/// Two replicas of the catalog on one database and one Redis, each with its cache warm: a
/// write through one is seen through the other once that one next reads the shared
/// generation (every few milliseconds), not after the entries' TTL (30 s).
async fn a_replica_sees_another_replicas_catalog_write_within_moments(backend: Backend) {
    let (app, admin) = admin_app(backend).await;
    let replica =
        crate::helpers::start(app.settings.clone(), Arc::new(tempfile::TempDir::new().unwrap()), Arc::new(|_| {}))
            .await;
    let movie = create_movie(&app, &admin, "Arrival", "Sci-Fi", 116).await;
    let path = format!("{MOVIES}/{}", id(&movie));
    for _ in 0..2 {
        assert_eq!(get(&replica, &path).await["title"], "Arrival");
        assert_eq!(titles(&get(&replica, MOVIES).await), ["Arrival"]);
    }
    let res = app.send_as(Method::PUT, &path, &admin, &movie_body("Contact", "Drama", 150)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(get(&app, &path).await["title"], "Contact", "the writing replica sees its write at once");

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while get(&replica, &path).await["title"] != "Contact" || titles(&get(&replica, MOVIES).await) != ["Contact"] {
        assert!(std::time::Instant::now() < deadline, "the other replica still serves the old catalog");
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// Two replicas on one database and one Redis, the seat map copied in one: a booking through
/// the other is in the copying replica's very next read (the copy's version is checked on
/// every read), never a moment later.
async fn a_replica_never_serves_a_seat_map_copy_older_than_another_replicas_booking(backend: Backend) {
    use crate::fixtures::{ROW_A, book, customer, screening};
    let app = spawn_app(backend).await;
    let replica =
        crate::helpers::start(app.settings.clone(), Arc::new(tempfile::TempDir::new().unwrap()), Arc::new(|_| {}))
            .await;
    let screen = screening(&app, ROW_A).await;
    let path = format!("{}/seats", screen.showtime_path());
    let status = |map: &Value, seat: &str| {
        map["seats"].as_array().unwrap().iter().find(|s| s["id"] == screen.seat_id(seat).as_str()).unwrap()["status"]
            .clone()
    };
    let before = crate::helpers::counter(&replica.metrics().await, "seat_map_reads_total", "copy=\"current\"");
    for _ in 0..3 {
        assert_eq!(status(&get(&replica, &path).await, "A1"), "available");
    }
    let copies = crate::helpers::counter(&replica.metrics().await, "seat_map_reads_total", "copy=\"current\"");
    assert!(copies >= before + 2.0, "the replica answers from its copy: {before} then {copies}");

    let ann = customer(&app, "ann").await;
    book(&app, &ann.token, &screen, &["A1"]).await;
    assert_eq!(status(&get(&replica, &path).await, "A1"), "held");
}

async fn a_delete_is_visible_at_once_despite_the_cache(backend: Backend) {
    let (app, admin) = admin_app(backend).await;
    let gone = create_movie(&app, &admin, "Gone", "Drama", 90).await;
    let kept = create_movie(&app, &admin, "Kept", "Drama", 90).await;
    let path = format!("{MOVIES}/{}", id(&gone));
    let reads = [path.clone(), MOVIES.to_owned(), format!("{MOVIES}?genre=drama"), format!("{MOVIES}?q=gone")];
    for read in &reads {
        get(&app, read).await;
        get(&app, read).await;
    }
    let res = app.send_as(Method::DELETE, &path, &admin, &Value::Null).await;
    assert_eq!(res.status(), 204);

    assert_not_found(app.client.get(app.url(&path)).send().await.unwrap(), "movie").await;
    assert_eq!(ids(&get(&app, MOVIES).await), [id(&kept)]);
    assert_eq!(ids(&get(&app, &format!("{MOVIES}?genre=drama")).await), [id(&kept)]);
    assert_eq!(get(&app, &format!("{MOVIES}?q=gone")).await["total"], 0);
}

async fn a_create_is_visible_at_once_despite_the_cache(backend: Backend) {
    let (app, admin) = admin_app(backend).await;
    let reads = [MOVIES.to_owned(), format!("{MOVIES}?genre=drama"), format!("{MOVIES}?q=new")];
    for read in &reads {
        assert_eq!(get(&app, read).await["total"], 0);
        assert_eq!(get(&app, read).await["total"], 0);
    }
    let movie = create_movie(&app, &admin, "Brand New", "Drama", 90).await;
    for read in &reads {
        let page = get(&app, read).await;
        assert_eq!(page["items"], json!([movie]), "{read}");
        assert_eq!(page["total"], 1, "{read}");
    }
}

async fn a_new_theater_or_showtime_is_visible_at_once_despite_the_cache(backend: Backend) {
    let (app, admin) = admin_app(backend).await;
    let movie = create_movie(&app, &admin, "Scheduled", "Drama", 90).await;
    assert_eq!(get(&app, THEATERS).await["total"], 0);
    let theater = small_theater(&app, &admin, "Screen 1").await;
    assert_eq!(get(&app, THEATERS).await["items"], json!([theater]));

    let reads = [
        SHOWTIMES.to_owned(),
        format!("{SHOWTIMES}?movie_id={}", id(&movie)),
        format!("{SHOWTIMES}?theater_id={}", id(&theater)),
        format!("{SHOWTIMES}?date={}", day(2)),
    ];
    for read in &reads {
        assert_eq!(get(&app, read).await["total"], 0);
        assert_eq!(get(&app, read).await["total"], 0);
    }
    let showtime = create_showtime(&app, &admin, &movie, &theater, day_at(2, 18, 0)).await;
    for read in &reads {
        let page = get(&app, read).await;
        assert_eq!(page["items"], json!([showtime]), "{read}");
    }
    get(&app, &format!("{SHOWTIMES}/{}", id(&showtime))).await;
    let later = create_showtime(&app, &admin, &movie, &theater, day_at(2, 21, 0)).await;
    for read in &reads {
        assert_eq!(ids(&get(&app, read).await), [id(&showtime), id(&later)], "{read}");
    }
    assert_eq!(get(&app, &format!("{SHOWTIMES}/{}", id(&showtime))).await, showtime);
}

/// The sum of `movie_cache_requests_total` samples with `result="<result>"`.
fn cache_requests(metrics: &str, result: &str) -> f64 {
    counter(metrics, "movie_cache_requests_total", &format!("result=\"{result}\""))
}

async fn cache_hits_and_misses_are_counted_in_metrics(backend: Backend) {
    let (app, admin) = admin_app(backend).await;
    let movie = create_movie(&app, &admin, "Counted", "Drama", 90).await;
    let before = app.metrics().await;
    let path = format!("{MOVIES}/{}", id(&movie));
    for _ in 0..3 {
        get(&app, &path).await;
        get(&app, MOVIES).await;
    }
    let after = app.metrics().await;
    assert!(after.contains("movie_cache_requests_total{"), "{after}");
    // First reads miss, repeated reads hit.
    assert!(cache_requests(&after, "miss") >= cache_requests(&before, "miss") + 2.0, "{after}");
    assert!(cache_requests(&after, "hit") >= cache_requests(&before, "hit") + 4.0, "{after}");
}

// ---------------------------------------------------------------------------------------------
// The demo catalog

async fn the_demo_catalog_is_a_week_of_showtimes_in_three_theaters(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.demo.seed = true).await;
    let now = Utc::now();

    let movies = get_all(&app, MOVIES).await;
    assert!(movies.len() >= 6, "{} movies", movies.len());
    let genres: HashSet<String> = movies.iter().map(|m| m["genre"].as_str().unwrap().to_lowercase()).collect();
    assert!(genres.len() >= 3, "{genres:?}");
    let durations: HashMap<&str, i64> =
        movies.iter().map(|m| (id(m), m["duration_minutes"].as_i64().unwrap())).collect();

    let theaters = get_all(&app, THEATERS).await;
    assert_eq!(theaters.len(), 3);
    let sizes: HashMap<&str, usize> = theaters.iter().map(|t| (id(t), t["seats"].as_array().unwrap().len())).collect();
    assert_eq!(sizes.values().collect::<HashSet<_>>().len(), 3, "three different sizes: {sizes:?}");
    assert!(sizes.values().any(|n| *n >= 200), "{sizes:?}");
    for theater in &theaters {
        let seats = theater["seats"].as_array().unwrap();
        let kinds: HashSet<&str> = seats.iter().map(|s| s["type"].as_str().unwrap()).collect();
        assert!(kinds.contains("premium") && kinds.contains("accessible"), "{}: {kinds:?}", theater["name"]);
        let positions: HashSet<(&str, u64)> =
            seats.iter().map(|s| (s["row"].as_str().unwrap(), s["number"].as_u64().unwrap())).collect();
        assert_eq!(positions.len(), seats.len(), "{}: seat positions are unique", theater["name"]);
    }

    // Every showtime of the last week and the next eight days, day by day: all are to come.
    let mut showtimes = Vec::new();
    for offset in -7..=8 {
        showtimes.extend(get_all(&app, &format!("{SHOWTIMES}?date={}", day(offset))).await);
    }
    assert!(!showtimes.is_empty());
    let upcoming: BTreeSet<&str> = showtimes.iter().map(id).collect();
    let listed = get_all(&app, SHOWTIMES).await;
    assert_eq!(listed.iter().map(id).collect::<BTreeSet<_>>(), upcoming, "every showtime is within these days");
    let mut days = HashSet::new();
    for showtime in &showtimes {
        let start = start_of(showtime);
        assert!(start > now && start < now + Duration::days(8), "{showtime}");
        days.insert(start.date_naive());
        assert!(durations.contains_key(showtime["movie_id"].as_str().unwrap()), "{showtime}");
        let seats = sizes[showtime["theater_id"].as_str().unwrap()];
        assert_eq!(showtime["seats_total"], seats, "{showtime}");
        assert_eq!(showtime["seats_available"], seats, "{showtime}");
        assert_eq!(showtime["currency"], "USD");
        assert!(showtime["price_cents"].as_i64().unwrap() > 0);
    }
    assert!(days.len() >= 5, "showtimes on {} days", days.len());

    // No two overlap in a theater, the cleaning gap included.
    let mut by_theater: HashMap<&str, Vec<(DateTime<Utc>, i64)>> = HashMap::new();
    for showtime in &showtimes {
        let duration = durations[showtime["movie_id"].as_str().unwrap()];
        by_theater.entry(showtime["theater_id"].as_str().unwrap()).or_default().push((start_of(showtime), duration));
    }
    for (theater, mut slots) in by_theater {
        slots.sort();
        for pair in slots.windows(2) {
            let ((start, duration), (next, _)) = (pair[0], pair[1]);
            assert!(
                next >= start + Duration::minutes(duration + 15),
                "theater {theater}: {start} ({duration} min), then {next}"
            );
        }
    }

    // Its seat maps price premium seats at one and a half times the base price.
    let showtime = &showtimes[0];
    let map = get(&app, &format!("{SHOWTIMES}/{}/seats", id(showtime))).await;
    let base = showtime["price_cents"].as_i64().unwrap();
    for seat in map["seats"].as_array().unwrap() {
        let expected = if seat["type"] == "premium" { price(base, 6) } else { base };
        assert_eq!(seat["price_cents"], expected, "{seat}");
        assert_eq!(seat["status"], "available");
    }
}

async fn the_demo_catalog_is_seeded_once(backend: Backend) {
    let data = Arc::new(tempfile::TempDir::new().unwrap());
    let mut settings = test_settings(&backend, data.path());
    settings.demo.seed = true;
    let first = start(settings.clone(), data.clone(), Arc::new(|_| {})).await;
    // A second process on the same data, as after a restart or next to a replica.
    let second = start(settings, data, Arc::new(|_| {})).await;

    let theaters = get_all(&second, THEATERS).await;
    assert_eq!(theaters.len(), 3);
    let names: HashSet<&str> = theaters.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    let movies = get_all(&second, MOVIES).await;
    let titles: HashSet<&str> = movies.iter().map(|m| m["title"].as_str().unwrap()).collect();
    assert_eq!(titles.len(), movies.len(), "each demo movie once");
    assert_eq!(get_all(&first, MOVIES).await.len(), movies.len());
    let showtimes = get_all(&second, SHOWTIMES).await;
    let slots: HashSet<(&str, &str)> =
        showtimes.iter().map(|s| (s["theater_id"].as_str().unwrap(), s["start_time"].as_str().unwrap())).collect();
    assert_eq!(slots.len(), showtimes.len(), "each demo showtime once");
    assert_eq!(get_all(&first, SHOWTIMES).await.len(), showtimes.len());
}
