//! Payment as processes: the real `boxoffice` binary paying with real card numbers (none of
//! which may reach its logs or its files), and payment split off into a process of its own
//! that reaches booking over REST and trades events with it over RabbitMQ.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use boxoffice::settings::Module;
use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use crate::fixtures::{ROW_A, book, screening};
use crate::helpers::{Backend, assert_problem, id, start, test_settings};
use crate::process::{
    DECLINED, GOOD, Server, backend_env, env_of, future_expiry, log_in, pay, poll_until, register, try_pay,
};

const LUHN_INVALID: &str = "4242424242424241";

// ---------------------------------------------------------------------------------------------
// The real binary: no card number in its logs or files.

/// As `token` at `server`: books a free seat of a demo showtime at least an hour ahead;
/// returns the booking's id.
async fn book_demo_seat(client: &reqwest::Client, server: &Server, token: &str) -> String {
    let res = client.get(server.url("/api/movies/showtimes?per_page=100")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let showtimes: Value = res.json().await.unwrap();
    let later = Utc::now() + chrono::Duration::hours(1);
    let showtime = showtimes["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["start_time"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap() > later)
        .expect("a demo showtime an hour ahead")
        .clone();
    let res = client.get(server.url(&format!("/api/movies/showtimes/{}/seats", id(&showtime)))).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let seats: Value = res.json().await.unwrap();
    let seat = seats["seats"].as_array().unwrap().iter().find(|s| s["status"] == "available").unwrap().clone();

    let book = json!({"showtime_id": showtime["id"], "seat_ids": [seat["id"]]});
    let res = client.post(server.url("/api/bookings/book")).bearer_auth(token).json(&book).send().await.unwrap();
    assert_eq!(res.status(), 201, "book");
    let booking: Value = res.json().await.unwrap();
    id(&booking).to_owned()
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The ways a card number could be written out: as sent, and in groups of four.
fn spellings(number: &str) -> Vec<String> {
    let grouped: Vec<String> =
        number.as_bytes().chunks(4).map(|group| String::from_utf8(group.to_vec()).unwrap()).collect();
    vec![number.to_owned(), grouped.join(" "), grouped.join("-")]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_leaves_no_card_number_in_logs_or_storage() {
    let data = tempfile::TempDir::new().unwrap();
    let logs = tempfile::TempDir::new().unwrap();
    let client = reqwest::Client::new();
    let mut server = Server::start(data.path(), logs.path());
    server.wait_ready(&client).await;

    // A customer, with a booking.
    register(&client, &server, "carla").await;
    let token = log_in(&client, &server, "carla").await;
    let booking_id = book_demo_seat(&client, &server, &token).await;
    let body = |number: &str| json!({"booking_id": booking_id, "card_number": number, "card_expiry": future_expiry(), "card_cvc": "123"});

    // Declined, Luhn-invalid, and a card number sent as a JSON number: none charges, and no
    // answer repeats the number.
    let res = pay(&client, &server.base, &token, "declined", &body(DECLINED)).await;
    assert_eq!(res.status(), 201, "declined");
    let declined: Value = res.json().await.unwrap();
    assert_eq!((&declined["status"], &declined["failure_reason"]), (&json!("failed"), &json!("card_declined")));
    assert!(!declined.to_string().contains(DECLINED), "{declined}");
    let res = pay(&client, &server.base, &token, "luhn", &body(LUHN_INVALID)).await;
    let problem = assert_problem(res, 422).await;
    assert_eq!(problem["errors"][0]["field"], "card_number", "{problem}");
    assert!(!problem.to_string().contains(LUHN_INVALID), "{problem}");
    let mut numeric = body(GOOD);
    numeric["card_number"] = json!(4_242_424_242_424_242_u64);
    let res = pay(&client, &server.base, &token, "numeric", &numeric).await;
    let problem = assert_problem(res, 422).await;
    assert!(problem.to_string().contains("card_number"), "{problem}");
    assert!(!problem.to_string().contains(GOOD), "{problem}");

    // The good card, in groups of four.
    let res = pay(&client, &server.base, &token, "good", &body(&spellings(GOOD)[1])).await;
    assert_eq!(res.status(), 201, "paid");
    let paid: Value = res.json().await.unwrap();
    assert_eq!((&paid["status"], &paid["card_last4"]), (&json!("completed"), &json!("4242")), "{paid}");
    assert!(!paid.to_string().contains(GOOD), "{paid}");
    // And once more with the number as it is, under another key: the booking is paid.
    let res = pay(&client, &server.base, &token, "good-again", &body(GOOD)).await;
    assert_problem(res, 409).await;
    let payment_id = id(&paid).to_owned();

    // payment.completed confirms the booking; the payment reads back without the number.
    let url = server.url(&format!("/api/bookings/bookings/{booking_id}"));
    poll_until(&client, &url, &token, "booking confirmed", |b| b["status"] == "confirmed").await;
    let url = server.url(&format!("/api/payments/payments/{payment_id}"));
    let read = poll_until(&client, &url, &token, "payment read", |_| true).await;
    assert_eq!(read, paid);

    server.stop();

    // The logs: plenty, with the requests about this booking and payment (their ids are in
    // the request paths, so the capture is known to hold what the requests carried), and no
    // card number in any spelling.
    let output = server.output();
    assert!(output.lines().count() > 100, "trace logging writes a lot: {} lines", output.lines().count());
    assert!(output.contains("/api/payments/pay"), "the log has the payment requests (else this test proves nothing)");
    assert!(output.contains(&booking_id), "the log mentions the booking (else this test proves nothing)");
    assert!(output.contains(&payment_id), "the log mentions the payment (else this test proves nothing)");
    for number in [GOOD, DECLINED, LUHN_INVALID] {
        for spelled in spellings(number) {
            assert!(!output.contains(&spelled), "the log contains the card number {spelled}");
        }
    }

    // The files: nothing holds a card number, while what was stored is there to be read.
    let files = files_under(data.path());
    assert!(files.iter().any(|f| f.file_name().is_some_and(|n| n.to_string_lossy().starts_with("payment"))));
    let mut declined_stored = false;
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        declined_stored |= contains(&bytes, b"card_declined");
        for number in [GOOD, DECLINED, LUHN_INVALID] {
            for spelled in spellings(number) {
                assert!(!contains(&bytes, spelled.as_bytes()), "{} contains the card number {spelled}", file.display());
            }
        }
    }
    assert!(declined_stored, "the declined payment's reason is stored somewhere under {files:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_whose_process_is_killed_mid_charge_is_finished_once_by_the_retry() {
    const KEY: &str = "killed-mid-charge";
    const LEASE_SECONDS: &str = "8";
    let data = tempfile::TempDir::new().unwrap();
    let logs = tempfile::TempDir::new().unwrap();
    let client = reqwest::Client::new();

    // First run: every gateway call takes 3 s, and is given up only after 4 s (half the lease).
    let slow =
        [("BOXOFFICE__PAYMENT__GATEWAY__LATENCY_MS", "3000"), ("BOXOFFICE__PAYMENT__LEASE_SECONDS", LEASE_SECONDS)];
    let mut first = Server::start_with(data.path(), &logs.path().join("first"), &slow);
    first.wait_ready(&client).await;
    register(&client, &first, "kira").await;
    let token = log_in(&client, &first, "kira").await;
    let booking_id = book_demo_seat(&client, &first, &token).await;
    let body =
        json!({"booking_id": booking_id, "card_number": GOOD, "card_expiry": future_expiry(), "card_cvc": "123"});

    // The payment, and its process killed while the gateway charges.
    let paying = tokio::spawn({
        let (client, base, token, body) = (client.clone(), first.base.clone(), token.clone(), body.clone());
        async move { try_pay(&client, &base, &token, KEY, &body).await.map(|res| res.status()) }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!paying.is_finished(), "the payment answered before the gateway's 3 s:\n{}", first.tail());
    first.kill();
    let died = paying.await.unwrap();
    let error = died.expect_err("a request whose process was killed gets no answer");
    // The connection closed under the request (hyper's IncompleteMessage), not a timeout.
    assert!(error.is_request() && !error.is_timeout(), "not a dropped connection: {error:?}");

    // Second run on the same data: the same request waits out the dead one's lease (8 s from
    // its claim), takes its key over, and charges under the same payment id.
    let retry = [
        ("BOXOFFICE__PAYMENT__GATEWAY__LATENCY_MS", "0"),
        ("BOXOFFICE__PAYMENT__LEASE_SECONDS", LEASE_SECONDS),
        ("BOXOFFICE__PAYMENT__DUPLICATE_WAIT_MS", "20000"),
    ];
    let mut second = Server::start_with(data.path(), &logs.path().join("second"), &retry);
    second.wait_ready(&client).await;
    let token = log_in(&client, &second, "kira").await;
    let started = Instant::now();
    let res = pay(&client, &second.base, &token, KEY, &body).await;
    let waited = started.elapsed();
    assert_eq!(res.status(), 201, "the retry:\n{}", second.tail());
    let paid: Value = res.json().await.unwrap();
    assert_eq!(paid["status"], "completed", "{paid}");
    assert_eq!(paid["booking_id"], json!(booking_id), "{paid}");
    assert!(waited >= Duration::from_secs(2), "the retry answered after {waited:?}, without waiting for the lease");
    let payment_id = id(&paid).to_owned();

    // Paid once: one payment with one succeeded charge.
    let res = client.get(second.url("/api/payments/payments")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let payments: Value = res.json().await.unwrap();
    assert_eq!(payments["total"], 1, "{payments}");
    assert_eq!(payments["items"].as_array().unwrap().len(), 1, "{payments}");
    let listed = &payments["items"][0];
    assert_eq!(listed, &paid, "{payments}");
    let transactions = listed["transactions"].as_array().unwrap();
    assert_eq!(transactions.len(), 1, "{listed}");
    assert_eq!((&transactions[0]["type"], &transactions[0]["status"]), (&json!("charge"), &json!("succeeded")));

    // The key replays the answer; another key finds the booking paid.
    let res = pay(&client, &second.base, &token, KEY, &body).await;
    assert_eq!(res.status(), 201, "replay");
    assert_eq!(res.json::<Value>().await.unwrap(), paid);
    let problem = assert_problem(pay(&client, &second.base, &token, "another-key", &body).await, 409).await;
    assert_eq!(problem["type"], "/problems/booking-not-pending", "{problem}");

    // payment.completed confirms the booking.
    let url = second.url(&format!("/api/bookings/bookings/{booking_id}"));
    poll_until(&client, &url, &token, "booking confirmed", |b| b["status"] == "confirmed").await;
    second.stop();

    // The retry took over the key the killed request had claimed, once, and paid under the
    // payment id that request charged under.
    let output = second.output();
    let takeovers: Vec<Value> = output
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["message"] == "taking over a payment whose request died")
        .collect();
    assert_eq!(takeovers.len(), 1, "one takeover:\n{}", second.tail());
    assert_eq!((&takeovers[0]["payment_id"], &takeovers[0]["attempt"]), (&json!(payment_id), &json!(1)));
}

// ---------------------------------------------------------------------------------------------
// Payment as a process of its own.

async fn payment_runs_as_its_own_process_beside_booking(backend: Backend) {
    // Process A: auth, movie and booking.
    let data_a = Arc::new(tempfile::TempDir::new().unwrap());
    let mut settings_a = test_settings(&backend, data_a.path());
    settings_a.modules = Some(vec![Module::Auth, Module::Movie, Module::Booking]);
    // Payment holds bookings for its charges through booking's internal route with it.
    settings_a.services.token = platform::config::Secret::new("a service token of at least thirty-two characters");
    let a = start(settings_a, data_a, Arc::new(|_| {})).await;

    // Process B: payment alone, on A's database, Redis and bus, reaching A over REST.
    let data_b = Arc::new(tempfile::TempDir::new().unwrap());
    let mut settings_b = a.settings.clone();
    settings_b.data_dir = data_b.path().to_path_buf();
    settings_b.modules = Some(vec![Module::Payment]);
    settings_b.server.bind = "127.0.0.1:0".parse().unwrap();
    settings_b.services.set(Module::Auth, a.address.clone());
    settings_b.services.set(Module::Booking, a.address.clone());
    let b = start(settings_b, data_b, Arc::new(|_| {})).await;

    // Each serves only its own routes.
    let res = a.send_as(Method::GET, "/api/payments/payments", "no token", &json!({})).await;
    assert_problem(res, 404).await;
    assert_problem(b.post_json("/api/auth/register", &json!({})).await, 404).await;

    let screen = screening(&a, ROW_A).await;
    let token = a.customer_token("paula").await;
    let other = a.customer_token("oscar").await;
    let booking = book(&a, &token, &screen, &["A1"]).await;
    let theirs = book(&a, &other, &screen, &["A2"]).await;
    let card = |booking: &Value| json!({"booking_id": booking["id"], "card_number": GOOD, "card_expiry": future_expiry(), "card_cvc": "123"});

    // B reads bookings from A with the caller's token: another's booking is not found.
    let problem = assert_problem(pay(&b.client, &b.address, &token, "theirs", &card(&theirs)).await, 404).await;
    assert_eq!(problem["resource"], "booking", "{problem}");
    let unknown = json!({"booking_id": uuid::Uuid::new_v4(), "card_number": GOOD, "card_expiry": future_expiry(), "card_cvc": "123"});
    assert_problem(pay(&b.client, &b.address, &token, "unknown", &unknown).await, 404).await;

    // The hold for a charge is payment's to ask, never a customer's: frozen past its expiry,
    // a customer's own hold would outlast every other customer's.
    let hold = format!("/internal/bookings/bookings/{}/payment-hold", booking["id"].as_str().unwrap());
    let body = json!({"payment_id": uuid::Uuid::new_v4(), "user_id": a.caller(token.clone(), platform::identity::Role::Customer).await.id});
    assert_problem(a.send_as(Method::POST, &hold, &token, &body).await, 401).await;

    // Paid at B.
    let res = pay(&b.client, &b.address, &token, "split", &card(&booking)).await;
    assert_eq!(res.status(), 201, "pay at B");
    let paid: Value = res.json().await.unwrap();
    assert_eq!(paid["status"], "completed", "{paid}");
    assert_eq!(paid["booking_id"], booking["id"]);
    assert_eq!(paid["amount_cents"], 1200);

    // payment.completed crosses RabbitMQ: A confirms the booking.
    let booking_url = a.url(&format!("/api/bookings/bookings/{}", id(&booking)));
    poll_until(&a.client, &booking_url, &token, "booking confirmed at A", |b| b["status"] == "confirmed").await;
    // B now refuses to charge the booking again.
    let problem = assert_problem(pay(&b.client, &b.address, &token, "split-again", &card(&booking)).await, 409).await;
    assert_eq!(problem["type"], "/problems/booking-not-pending", "{problem}");

    // Cancelled at A: booking.cancelled crosses RabbitMQ and B refunds the payment.
    let cancel = format!("/api/bookings/bookings/{}/cancel", id(&booking));
    let res = a.send_as(Method::POST, &cancel, &token, &json!({})).await;
    assert_eq!(res.status(), 200, "cancel at A");
    let payment_url = b.url(&format!("/api/payments/payments/{}", id(&paid)));
    let refunded =
        poll_until(&b.client, &payment_url, &token, "payment refunded at B", |p| p["status"] == "refunded").await;
    let kinds: Vec<&Value> = refunded["transactions"].as_array().unwrap().iter().map(|t| &t["type"]).collect();
    assert_eq!(kinds, [&json!("charge"), &json!("refund")], "{refunded}");
    assert_eq!(refunded["transactions"][1]["amount_cents"], 1200, "{refunded}");
    assert_eq!(refunded["transactions"][1]["status"], "succeeded", "{refunded}");

    // The other customer's booking is untouched, and still payable at B.
    let res = pay(&b.client, &b.address, &other, "theirs", &card(&theirs)).await;
    assert_eq!(res.status(), 201, "their own booking");
}

// ---------------------------------------------------------------------------------------------
// The reconciler: a charge cut off by a kill, never retried.

on_both_backends!(
    a_charge_cut_off_by_a_kill_and_never_retried_is_recorded_by_the_reconciler;
    postgres only: payment_runs_as_its_own_process_beside_booking,
);

async fn a_charge_cut_off_by_a_kill_and_never_retried_is_recorded_by_the_reconciler(backend: Backend) {
    let data = tempfile::TempDir::new().unwrap();
    let logs = tempfile::TempDir::new().unwrap();
    let client = reqwest::Client::new();
    let storage = backend_env(&backend);
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(String, String)> {
        storage.iter().cloned().chain(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))).collect()
    };
    // First run: every gateway call takes 3 s (the simulated gateway records the charge as it
    // begins, as a real one would have taken the money).
    let slow = with(&[("BOXOFFICE__PAYMENT__GATEWAY__LATENCY_MS", "3000"), ("BOXOFFICE__PAYMENT__LEASE_SECONDS", "8")]);
    let mut first = Server::start_with(data.path(), &logs.path().join("first"), &env_of(&slow));
    first.wait_ready(&client).await;
    register(&client, &first, "rita").await;
    let token = log_in(&client, &first, "rita").await;
    let kept = book_demo_seat(&client, &first, &token).await;
    let cancelled = book_demo_seat(&client, &first, &token).await;
    let body = |booking: &str| json!({"booking_id": booking, "card_number": GOOD, "card_expiry": future_expiry(), "card_cvc": "123"});

    // Both charges under way, and the process killed while the gateway works on them.
    let paying: Vec<_> = [("kept", &kept), ("cancelled", &cancelled)]
        .into_iter()
        .map(|(key, booking)| {
            let (client, base, token, body) = (client.clone(), first.base.clone(), token.clone(), body(booking));
            tokio::spawn(async move { try_pay(&client, &base, &token, key, &body).await.map(|res| res.status()) })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(paying.iter().all(|p| !p.is_finished()), "a payment answered before the gateway's 3 s:\n{}", first.tail());
    first.kill();
    for died in paying {
        assert!(died.await.unwrap().is_err(), "a request whose process was killed gets no answer");
    }

    // Second run, and nobody retries. One booking is cancelled at once: it was held for its
    // charge, so it is still pending, and cancellable.
    let quick =
        with(&[("BOXOFFICE__PAYMENT__LEASE_SECONDS", "8"), ("BOXOFFICE__PAYMENT__RECONCILE_INTERVAL_MS", "200")]);
    let mut second = Server::start_with(data.path(), &logs.path().join("second"), &env_of(&quick));
    second.wait_ready(&client).await;
    let token = log_in(&client, &second, "rita").await;
    let url = second.url(&format!("/api/bookings/bookings/{cancelled}/cancel"));
    let res = client.post(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 200, "cancel a booking whose charge was cut off");

    // The reconciler asks the gateway and records both charges: the one of the booking still
    // held for it completes it, the one of the cancelled booking is given back.
    let payments = second.url("/api/payments/payments");
    let resolved = poll_until(&client, &payments, &token, "both charges recorded", |page| {
        let statuses: Vec<&Value> = page["items"].as_array().unwrap().iter().map(|p| &p["status"]).collect();
        statuses.len() == 2
            && statuses.iter().all(|s| *s == "completed" || *s == "refunded")
            && statuses.contains(&&json!("refunded"))
    })
    .await;
    let of = |booking: &str| {
        resolved["items"].as_array().unwrap().iter().find(|p| p["booking_id"] == booking).unwrap().clone()
    };
    let completed = of(&kept);
    assert_eq!(completed["status"], "completed", "{resolved}");
    let kinds: Vec<&Value> = completed["transactions"].as_array().unwrap().iter().map(|t| &t["type"]).collect();
    assert_eq!(kinds, [&json!("charge")], "{completed}");
    let refunded = of(&cancelled);
    assert_eq!(refunded["status"], "refunded", "{resolved}");
    let kinds: Vec<&Value> = refunded["transactions"].as_array().unwrap().iter().map(|t| &t["type"]).collect();
    assert_eq!(kinds, [&json!("charge"), &json!("refund")], "{refunded}");

    let url = second.url(&format!("/api/bookings/bookings/{kept}"));
    poll_until(&client, &url, &token, "booking confirmed", |b| b["status"] == "confirmed").await;
    // The key answers what the reconciler recorded.
    let res = pay(&client, &second.base, &token, "kept", &body(&kept)).await;
    assert_eq!(res.status(), 201, "replay");
    assert_eq!(res.json::<Value>().await.unwrap(), completed);
    second.stop();
}
