//! The web site as the binary serves it (its pages, their policy, their files) and what the
//! site's seat map follows: the seat-state stream of a showtime (Server-Sent Events from the
//! booking module), which sends a snapshot, then every change as it happens, and ends when the
//! server stops. The pages themselves are driven in a real browser by tests/browser/.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::fixtures::{GOOD, PAYMENTS, ROW_A, book, cancel_ok, card, customer, pay_ok, screening, wait_for_status};
use crate::helpers::{Backend, TestApp, assert_not_found, assert_problem, spawn_app, spawn_app_with, start};

on_both_backends!(
    a_seat_stream_sends_a_snapshot_then_each_change_as_it_happens,
    a_seat_stream_of_an_unknown_showtime_is_404,
    an_admin_lists_every_customers_payments_and_a_customer_only_their_own;
    postgres only: a_stream_hears_of_seats_another_booking_process_took,
);

// ---------------------------------------------------------------------------------------------
// The seat-state stream

/// An open event stream: its events as `(name, data)`, read as they arrive.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    async fn open(app: &TestApp, showtime_id: &str) -> Events {
        let response = request_stream(app, showtime_id).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        assert_eq!(response.headers()["cache-control"], "no-cache");
        assert_eq!(response.headers()["x-accel-buffering"], "no");
        Events { response, buffer: String::new() }
    }

    /// The next event (comments skipped), or `None` when the stream ended.
    async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let message: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::new();
                let mut data = String::new();
                for line in message.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        name = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    }
                }
                if !name.is_empty() {
                    return Some((name, serde_json::from_str(&data).unwrap()));
                }
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.response.chunk())
                .await
                .expect("an event within 30 s")
                .unwrap()?;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// The next event, which must be `name`: its `seats`, by seat label.
    async fn expect(&mut self, name: &str, label: impl Fn(&str) -> String) -> BTreeMap<String, String> {
        let (got, data) = self.next().await.expect("the stream is open");
        assert_eq!(got, name, "{data}");
        assert_eq!(data["event"], name);
        data["seats"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(seat, state)| (label(seat), state.as_str().unwrap().to_owned()))
            .collect()
    }
}

/// `GET` the seat-state stream of `showtime_id` (its events are read as they come).
async fn request_stream(app: &TestApp, showtime_id: &str) -> reqwest::Response {
    app.client
        .get(app.url(&format!("/api/bookings/showtimes/{showtime_id}/seat-states/stream")))
        .timeout(Duration::from_secs(600))
        .send()
        .await
        .unwrap()
}

fn states(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(seat, state)| ((*seat).to_owned(), (*state).to_owned())).collect()
}

async fn a_seat_stream_sends_a_snapshot_then_each_change_as_it_happens(backend: Backend) {
    let app = spawn_app(backend).await;
    let screen = screening(&app, ROW_A).await;
    let showtime = screen.showtime["id"].as_str().unwrap().to_owned();
    let label = |seat: &str| screen.label(seat);
    let ada = customer(&app, "ada").await;
    let bob = customer(&app, "bob").await;
    let held_by_bob = book(&app, &bob.token, &screen, &["A6"]).await;

    let mut events = Events::open(&app, &showtime).await;
    let (name, snapshot) = events.next().await.unwrap();
    assert_eq!(name, "snapshot");
    assert_eq!(snapshot["max_seats"], 10, "booking.max_seats");
    assert_eq!(snapshot["seats"], json!({screen.seat_id("A6"): "held"}));

    // Held, then booked when the payment's event confirms it, then free again: each a change
    // of only the seats that changed.
    let booking = book(&app, &ada.token, &screen, &["A1", "A2"]).await;
    assert_eq!(events.expect("change", label).await, states(&[("A1", "held"), ("A2", "held")]));
    pay_ok(&app, &ada.token, &card(&booking, GOOD)).await;
    wait_for_status(&app, &ada.token, booking["id"].as_str().unwrap(), "confirmed", Duration::from_secs(30)).await;
    assert_eq!(events.expect("change", label).await, states(&[("A1", "booked"), ("A2", "booked")]));
    cancel_ok(&app, &bob.token, held_by_bob["id"].as_str().unwrap()).await;
    assert_eq!(events.expect("change", label).await, states(&[("A6", "available")]));

    // A second follower of the same showtime starts from the state as it is now.
    let mut late = Events::open(&app, &showtime).await;
    assert_eq!(late.expect("snapshot", label).await, states(&[("A1", "booked"), ("A2", "booked")]));
    cancel_ok(&app, &ada.token, booking["id"].as_str().unwrap()).await;
    let freed = states(&[("A1", "available"), ("A2", "available")]);
    assert_eq!(events.expect("change", label).await, freed);
    assert_eq!(late.expect("change", label).await, freed);
}

async fn a_stream_hears_of_seats_another_booking_process_took(backend: Backend) {
    let first = spawn_app(backend).await;
    // A second process on the same databases, Redis and RabbitMQ: another booking replica.
    let data = std::sync::Arc::new(tempfile::TempDir::new().unwrap());
    let second = start(first.settings.clone(), data, std::sync::Arc::new(|_| {})).await;
    let screen = screening(&first, ROW_A).await;
    let label = |seat: &str| screen.label(seat);
    let ada = customer(&first, "ada").await;
    let mut events = Events::open(&second, screen.showtime["id"].as_str().unwrap()).await;
    assert_eq!(events.expect("snapshot", label).await, states(&[]));
    // Booked through the first process: the second learns of it from the seat-state version.
    let booking = book(&first, &ada.token, &screen, &["A3"]).await;
    assert_eq!(events.expect("change", label).await, states(&[("A3", "held")]));
    cancel_ok(&first, &ada.token, booking["id"].as_str().unwrap()).await;
    assert_eq!(events.expect("change", label).await, states(&[("A3", "available")]));
}

async fn a_seat_stream_of_an_unknown_showtime_is_404(backend: Backend) {
    let app = spawn_app(backend).await;
    let res = app
        .client
        .get(app.url(&format!("/api/bookings/showtimes/{}/seat-states/stream", uuid::Uuid::now_v7())))
        .send()
        .await
        .unwrap();
    assert_not_found(res, "showtime").await;
    let res = app.client.get(app.url("/api/bookings/showtimes/not-a-uuid/seat-states/stream")).send().await.unwrap();
    assert_problem(res, 404).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_seat_streams_end_when_the_server_stops_gracefully() {
    // A stop would otherwise wait for every listening browser, up to this long.
    let app = spawn_app_with(Backend::Sqlite, |s| s.server.shutdown_timeout_seconds = 3600).await;
    let screen = screening(&app, ROW_A).await;
    let mut events = Events::open(&app, screen.showtime["id"].as_str().unwrap()).await;
    assert_eq!(events.next().await.unwrap().0, "snapshot");
    let stopped = app.stop(true);
    assert_eq!(events.next().await, None, "the stream ends");
    stopped.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_keeps_at_most_seat_feed_max_streams_open() {
    let app = spawn_app_with(Backend::Sqlite, |s| s.sections.booking.seat_feed_max_streams = 1).await;
    let screen = screening(&app, ROW_A).await;
    let showtime = screen.showtime["id"].as_str().unwrap().to_owned();
    let mut first = Events::open(&app, &showtime).await;
    assert_eq!(first.next().await.unwrap().0, "snapshot");
    let res = request_stream(&app, &showtime).await;
    assert!(res.headers().contains_key("retry-after"));
    assert_problem(res, 503).await;
    // The place is given back when the stream is dropped: the server learns of it when a
    // write fails, the second keep-alive comment after the close (the first one only draws
    // the peer's reset), so within 30 s.
    drop(first);
    let mut again = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while std::time::Instant::now() < deadline {
        let res = request_stream(&app, &showtime).await;
        if res.status() == 200 {
            again = Some(res);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(again.is_some(), "a stream opens once the first one closed");
}

// ---------------------------------------------------------------------------------------------
// The admin console's list of payments

async fn an_admin_lists_every_customers_payments_and_a_customer_only_their_own(backend: Backend) {
    let app = spawn_app(backend).await;
    let screen = screening(&app, ROW_A).await;
    let ada = customer(&app, "ada").await;
    let booking = book(&app, &ada.token, &screen, &["A1"]).await;
    let paid = pay_ok(&app, &ada.token, &card(&booking, GOOD)).await;

    let all: Value = app.get_as(&format!("{PAYMENTS}?all=true"), &screen.admin).await.json().await.unwrap();
    assert_eq!(all["total"], 1, "{all}");
    assert_eq!(all["items"][0]["id"], paid["id"]);
    let own: Value = app.get_as(PAYMENTS, &screen.admin).await.json().await.unwrap();
    assert_eq!(own["total"], 0, "without `all`, an admin's own payments: {own}");
    let res = app.get_as(&format!("{PAYMENTS}?all=true"), &ada.token).await;
    assert_problem(res, 403).await;
    let res = app.get_as(&format!("{PAYMENTS}?all=maybe"), &screen.admin).await;
    assert_problem(res, 422).await;
}

// ---------------------------------------------------------------------------------------------
// The pages

/// The files a page or script names: `/assets/x` in HTML, `./x.js` in modules.
fn named_files(text: &str) -> Vec<String> {
    let mut files = Vec::new();
    for (start, _) in text.match_indices("/assets/") {
        let name: String = text[start + 8..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '.').collect();
        files.push(name);
    }
    for (start, _) in text.match_indices("from \"./") {
        let name: String = text[start + 8..].chars().take_while(|c| *c != '"').collect();
        files.push(name);
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_site_and_the_console_are_served_with_their_files_and_policy() {
    let app = spawn_app(Backend::Sqlite).await;
    for (page, script) in [("/", "site.js"), ("/admin", "admin.js")] {
        let res = app.client.get(app.url(page)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{page}");
        assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
        let csp = res.headers()["content-security-policy"].to_str().unwrap().to_owned();
        for directive in ["default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"] {
            assert!(csp.contains(directive), "{page}: {csp}");
        }
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
        let html = res.text().await.unwrap();
        assert!(!html.contains("<script>") && !html.contains("style="), "{page}: inline code breaks the policy");
        let mut files = named_files(&html);
        assert!(files.contains(&script.to_owned()), "{page} loads {script}: {files:?}");
        // Every file a page loads, and every module those import, is served.
        while let Some(file) = files.pop() {
            let res = app.client.get(app.url(&format!("/assets/{file}"))).send().await.unwrap();
            assert_eq!(res.status(), 200, "/assets/{file}");
            let kind = res.headers()["content-type"].to_str().unwrap().to_owned();
            let expected = if file.ends_with(".js") { "text/javascript" } else { "text/css" };
            assert!(kind.starts_with(expected), "{file}: {kind}");
            if file.ends_with(".js") {
                files.extend(named_files(&res.text().await.unwrap()).into_iter().filter(|f| f.ends_with(".js")));
            }
        }
    }
    // Revalidated by tag: a 304 while unchanged.
    let res = app.client.get(app.url("/assets/site.js")).send().await.unwrap();
    let tag = res.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(res.headers()["cache-control"], "no-cache");
    let res = app.client.get(app.url("/assets/site.js")).header("If-None-Match", &tag).send().await.unwrap();
    assert_eq!(res.status(), 304);
    // Nothing else is served from there.
    for path in ["/assets/nope.js", "/assets/..%2FCargo.toml", "/assets/"] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_problem(res, 404).await;
    }
    let res = app.client.request(Method::POST, app.url("/")).send().await.unwrap();
    assert_problem(res, 405).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_cards_are_shown_only_where_the_demo_says_so() {
    let demo = spawn_app(Backend::Sqlite).await;
    let html = demo.client.get(demo.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains(r#"data-test-cards="true""#));
    let production = spawn_app_with(Backend::Sqlite, |s| s.demo.test_cards = false).await;
    let html = production.client.get(production.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains(r#"data-test-cards="false""#));
}
