//! Bad input never crashes a request: numbers and dates out of range and text with control
//! characters are a 422 naming the field, on every route and both backends; a handler that
//! panics still answers (500 problem with the request id, counted); the OpenAPI document
//! declares what a fuzzer needs to reach every operation.

use std::sync::Arc;

use reqwest::Method;
use serde_json::{Value, json};

use crate::fixtures::{BOOKINGS, ROW_A, post_admin, screening};
use crate::helpers::{Backend, TestApp, assert_invalid, assert_problem, spawn_app, start, test_settings};
use crate::movie::{MOVIES, SHOWTIMES, THEATERS};

on_both_backends!(
    pages_beyond_the_maximum_are_422_on_every_list_route,
    dates_outside_years_1_to_9999_are_422_naming_the_field,
    text_with_control_characters_is_422_naming_the_field,
);

const PAYMENTS: &str = "/api/payments/payments";
const NOTIFICATIONS: &str = "/api/notifications/notifications";

/// Every list route, and whether it needs a token.
const LISTS: [(&str, bool); 6] =
    [(MOVIES, false), (THEATERS, false), (SHOWTIMES, false), (BOOKINGS, true), (PAYMENTS, true), (NOTIFICATIONS, true)];

async fn get(app: &TestApp, path: &str, token: Option<&str>) -> reqwest::Response {
    let request = app.client.get(app.url(path));
    let request = if let Some(token) = token { request.bearer_auth(token) } else { request };
    request.send().await.expect("request")
}

async fn pages_beyond_the_maximum_are_422_on_every_list_route(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.customer_token("pager").await;
    for (list, secured) in LISTS {
        let token = secured.then_some(token.as_str());
        // The offset of this page overflowed a u64 and the connection was dropped.
        let res = get(&app, &format!("{list}?page=18446744073709551615&per_page=100"), token).await;
        assert_invalid(res, &["page"], list).await;
        let res = get(&app, &format!("{list}?page=1000001"), token).await;
        assert_invalid(res, &["page"], list).await;
        let res = get(&app, &format!("{list}?page=99999999999999999999"), token).await;
        assert_invalid(res, &["page"], list).await;
        // The last page allowed is answered, empty.
        let res = get(&app, &format!("{list}?page=1000000&per_page=100"), token).await;
        assert_eq!(res.status(), 200, "{list}");
        let page: Value = res.json().await.unwrap();
        assert_eq!(page["items"], json!([]), "{list}");
        assert_eq!(page["page"], 1_000_000, "{list}");
    }
}

async fn dates_outside_years_1_to_9999_are_422_naming_the_field(backend: Backend) {
    let app = spawn_app(backend).await;
    // The end of the day overflowed chrono and the connection was dropped.
    for date in ["%2B262142-12-31", "%2B10000-01-01", "0000-12-31", "-5000-01-01"] {
        let res = get(&app, &format!("{SHOWTIMES}?date={date}"), None).await;
        assert_invalid(res, &["date"], date).await;
    }
    let res = get(&app, &format!("{SHOWTIMES}?date=9999-12-31"), None).await;
    assert_eq!(res.status(), 200);

    let screen = screening(&app, ROW_A).await;
    let admin = &screen.admin;
    let showtime = |start: &str| {
        json!({"movie_id": screen.showtime["movie_id"], "theater_id": screen.showtime["theater_id"],
               "start_time": start, "price_cents": 900})
    };
    // The first panicked (the end time overflowed); the second was stored and then served as
    // `+200000-01-01T10:00:00Z`, which is not RFC 3339.
    for start in ["+262142-12-31T23:00:00Z", "+200000-01-01T10:00:00Z", "9999-12-31T23:00:00-05:00"] {
        let res = app.send_as(Method::POST, SHOWTIMES, admin, &showtime(start)).await;
        assert_invalid(res, &["start_time"], start).await;
    }
    let last = post_admin(&app, admin, SHOWTIMES, &showtime("9999-12-31T20:00:00Z")).await;
    assert_eq!(last["start_time"], "9999-12-31T20:00:00Z");

    // PostgreSQL refused dates before 4713 BC with a 500.
    for release_date in ["-5000-01-01", "0000-01-01", "+10000-01-01"] {
        let movie = json!({"title": "Old", "duration_minutes": 90, "genre": "Drama", "release_date": release_date});
        let res = app.send_as(Method::POST, MOVIES, admin, &movie).await;
        assert_invalid(res, &["release_date"], release_date).await;
    }
    let movie = json!({"title": "Older", "duration_minutes": 90, "genre": "Drama", "release_date": "0001-01-01"});
    let created = post_admin(&app, admin, MOVIES, &movie).await;
    assert_eq!(created["release_date"], "0001-01-01");
}

async fn text_with_control_characters_is_422_naming_the_field(backend: Backend) {
    let app = spawn_app(backend).await;
    // PostgreSQL refused the NUL of each of these with a 500.
    let res = app.post_json("/api/auth/token", &json!({"username": "ad\u{0}min", "password": "whatever"})).await;
    assert_invalid(res, &["username"], "login as JSON").await;
    let res = app
        .client
        .post(app.url("/api/auth/token"))
        .body("username=ad%00min&password=x")
        .header("content-type", "application/x-www-form-urlencoded");
    assert_invalid(res.send().await.unwrap(), &["username"], "login as a form").await;
    let registration = json!({"email": "x\u{1}@example.com", "username": "bell", "password": "correct horse"});
    let res = app.post_json("/api/auth/register", &registration).await;
    assert_invalid(res, &["email"], "register").await;
    for query in ["q=a%00b", "genre=%00", "q=%7F", "genre=%C2%85"] {
        let res = get(&app, &format!("{MOVIES}?{query}"), None).await;
        assert_invalid(res, &[&query[..query.find('=').unwrap()]], query).await;
    }

    let admin = app.admin_token().await;
    let movie = json!({"title": "Nul\u{0}", "description": "ok", "duration_minutes": 90, "genre": "Dra\u{1b}ma",
                       "release_date": "2024-01-01", "rating": "PG\u{7f}"});
    let res = app.send_as(Method::POST, MOVIES, &admin, &movie).await;
    assert_invalid(res, &["title", "genre", "rating"], "movie").await;
    let theater = json!({"name": "Screen", "location": "\u{0}", "layout": [{"row": "A", "seats": 2}, {"row": "B\u{0}", "seats": 2}]});
    let res = app.send_as(Method::POST, THEATERS, &admin, &theater).await;
    assert_invalid(res, &["location", "layout[1].row"], "theater").await;

    // Tabs and line breaks are text, not control.
    let movie = json!({"title": "Lines", "description": "one\n\ttwo\r\nthree", "duration_minutes": 90,
                       "genre": "Drama", "release_date": "2024-01-01"});
    let created = post_admin(&app, &admin, MOVIES, &movie).await;
    assert_eq!(created["description"], "one\n\ttwo\r\nthree");
}

async fn a_buggy_handler() -> actix_web::HttpResponse {
    panic!("a bug in a handler")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_answers_500_problem_with_the_request_id_and_is_counted() {
    let data = Arc::new(tempfile::TempDir::new().unwrap());
    let settings = test_settings(&Backend::Sqlite, data.path());
    let app = start(
        settings,
        data,
        Arc::new(|cfg: &mut actix_web::web::ServiceConfig| {
            cfg.route("/test/panic", actix_web::web::get().to(a_buggy_handler));
        }),
    )
    .await;
    for _ in 0..2 {
        let res = app.client.get(app.url("/test/panic")).header("x-request-id", "panic-1").send().await.unwrap();
        assert_eq!(res.headers()["x-request-id"], "panic-1");
        let problem = assert_problem(res, 500).await;
        assert_eq!(problem["type"], "/problems/internal");
        assert_eq!(problem["request_id"], "panic-1");
        assert!(!problem.to_string().contains("a bug in a handler"), "the cause stays in the log: {problem}");
    }
    app.wait_for_counter("http_panics_total", "", 2.0, std::time::Duration::from_secs(5)).await;
    app.wait_for_counter("http_requests_total", r#"status="500""#, 2.0, std::time::Duration::from_secs(5)).await;
    // The worker survived.
    assert_eq!(app.client.get(app.url("/health/live")).send().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_declares_path_ids_bounds_and_common_answers() {
    let app = spawn_app(Backend::Sqlite).await;
    let doc: Value = app.client.get(app.url("/api/openapi.json")).send().await.unwrap().json().await.unwrap();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            operations += 1;
            let context = format!("{method} {path}");
            let params = operation["parameters"].as_array().cloned().unwrap_or_default();
            let param = |name: &str| params.iter().find(|p| p["name"] == name).cloned();
            if path.contains("{id}") {
                let id = param("id").unwrap_or_else(|| panic!("{context} does not declare its id"));
                assert_eq!(id["in"], "path", "{context}");
                assert_eq!(id["required"], true, "{context}");
                assert_eq!(id["schema"]["format"], "uuid", "{context}");
            }
            if let Some(page) = param("page") {
                assert_eq!(
                    (page["schema"]["minimum"].as_u64(), page["schema"]["maximum"].as_u64()),
                    (Some(1), Some(1_000_000)),
                    "{context}"
                );
                let per_page = param("per_page").unwrap();
                assert_eq!(
                    (per_page["schema"]["minimum"].as_u64(), per_page["schema"]["maximum"].as_u64()),
                    (Some(1), Some(100)),
                    "{context}"
                );
            }
            let responses = operation["responses"].as_object().unwrap();
            let mut expected = vec!["500"];
            if path.starts_with("/api/") {
                expected.extend(["429", "503"]);
            }
            if operation.get("requestBody").is_some() {
                expected.extend(["400", "413", "415", "422"]);
            }
            if operation.get("security").is_some() {
                expected.push("401");
            }
            for status in expected {
                let response = responses.get(status).unwrap_or_else(|| panic!("{context} does not declare {status}"));
                assert!(response["content"]["application/problem+json"].is_object(), "{context} {status}");
            }
        }
    }
    assert!(operations >= 30, "only {operations} operations");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_method_on_an_operational_route_is_405_naming_the_allowed_one() {
    let app = spawn_app(Backend::Sqlite).await;
    for path in ["/health/live", "/health/ready", "/metrics"] {
        let res = app.client.request(Method::TRACE, app.url(path)).send().await.unwrap();
        assert_eq!(res.headers()["allow"], "GET", "{path}");
        assert_problem(res, 405).await;
    }
}
