//! One contract for `PaymentApi`, run against the in-process service and the REST client, so
//! the two implementations cannot drift apart.
//!
//! The in-process variant runs no outbox relay: payment's events stay in its outbox and the
//! booking stays pending after it is paid. Everything asserted here holds either way (a
//! second payment of a paid booking is refused by payment's own ledger, whatever booking
//! says).

use std::sync::Arc;

use booking::api::{Booking, BookingApi, BookingId};
use booking::client::BookingClient;
use chrono::{Datelike, Utc};
use movie::api::MovieApi;
use movie::client::MovieClient;
use payment::api::{
    PayRequest, Payment, PaymentApi, PaymentError, PaymentId, PaymentQuery, PaymentStatus, TransactionKind,
    TransactionStatus,
};
use payment::client::PaymentClient;
use platform::identity::AuthUser;

use crate::fixtures::typed_screening;
use crate::helpers::{Backend, Callers, spawn_app, test_settings};

on_both_backends!(the_service_keeps_the_contract, the_rest_client_keeps_the_contract);

/// The implementations under test: movie and booking to set the scene, payment to test.
struct Apis {
    movies: Arc<dyn MovieApi>,
    bookings: Arc<dyn BookingApi>,
    payments: Arc<dyn PaymentApi>,
}

async fn the_service_keeps_the_contract(backend: Backend) {
    let data = tempfile::TempDir::new().unwrap();
    let settings = test_settings(&backend, data.path());
    // No relay runs: payment's events stay in its outbox.
    let peers = crate::helpers::in_process(&settings).await;
    let apis = Apis {
        movies: peers.get::<dyn MovieApi>().unwrap(),
        bookings: peers.get::<dyn BookingApi>().unwrap(),
        payments: peers.get::<dyn PaymentApi>().unwrap(),
    };
    contract(&apis, &Callers::made_up()).await;
}

async fn the_rest_client_keeps_the_contract(backend: Backend) {
    let app = spawn_app(backend).await;
    let apis = Apis {
        movies: Arc::new(MovieClient::new(&app.address, reqwest::Client::new())),
        bookings: Arc::new(BookingClient::new(
            &app.address,
            reqwest::Client::new(),
            app.settings.services.token.clone(),
        )),
        payments: Arc::new(PaymentClient::new(&app.address, reqwest::Client::new())),
    };
    contract(&apis, &app.callers("pia", "olaf").await).await;
}

/// The fields a `Validation` names, sorted.
fn invalid_fields<T: std::fmt::Debug>(result: Result<T, PaymentError>) -> Vec<String> {
    match result {
        Err(PaymentError::Validation(errors)) => {
            let mut fields: Vec<String> = errors.as_slice().iter().map(|e| e.field.clone()).collect();
            fields.sort();
            fields
        }
        other => panic!("expected Validation, got {other:?}"),
    }
}

fn assert_not_found<T: std::fmt::Debug>(result: Result<T, PaymentError>, resource: &str) {
    match result {
        Err(PaymentError::NotFound(what)) => assert_eq!(what, resource),
        other => panic!("expected NotFound({resource}), got {other:?}"),
    }
}

fn assert_bad_request<T: std::fmt::Debug>(result: Result<T, PaymentError>) {
    match result {
        Err(PaymentError::BadRequest(_)) => {}
        other => panic!("expected BadRequest, got {other:?}"),
    }
}

fn assert_not_pending<T: std::fmt::Debug>(result: Result<T, PaymentError>) {
    match result {
        Err(PaymentError::BookingNotPending(_)) => {}
        other => panic!("expected BookingNotPending, got {other:?}"),
    }
}

fn assert_not_refundable<T: std::fmt::Debug>(result: Result<T, PaymentError>) {
    match result {
        Err(PaymentError::NotRefundable(_)) => {}
        other => panic!("expected NotRefundable, got {other:?}"),
    }
}

/// An expiry two years ahead, `MM/YY`.
fn future_expiry() -> String {
    format!("12/{:02}", (Utc::now().year() + 2) % 100)
}

fn card(booking: &Booking, number: &str, cvc: &str) -> PayRequest {
    PayRequest {
        booking_id: booking.id,
        card_number: number.to_owned(),
        card_expiry: future_expiry(),
        card_cvc: cvc.to_owned(),
    }
}

const GOOD: &str = "4242424242424242";
const DECLINED: &str = "4000000000000002";
const MASTERCARD: &str = "5555555555554444";

fn query(booking_id: Option<BookingId>, status: Option<PaymentStatus>) -> PaymentQuery {
    PaymentQuery { booking_id, status, ..PaymentQuery::default() }
}

fn ids(payments: &[Payment]) -> Vec<PaymentId> {
    payments.iter().map(|p| p.id).collect()
}

/// Asserts the fields every payment of `booking` by `caller` shares.
fn assert_payment_of(payment: &Payment, booking: &Booking, caller: &AuthUser, status: PaymentStatus) {
    assert_eq!(payment.booking_id, booking.id, "{payment:?}");
    assert_eq!(payment.user_id, caller.id, "{payment:?}");
    assert_eq!(payment.amount_cents, booking.amount_cents, "{payment:?}");
    assert_eq!(payment.currency, booking.currency, "{payment:?}");
    assert_eq!(payment.status, status, "{payment:?}");
}

async fn contract(apis: &Apis, callers: &Callers) {
    let Apis { movies, bookings, payments: api } = apis;
    let Callers { admin, customer, other } = callers;

    // A showtime two days ahead at 1200 cents in a theater of rows A (6 standard) and B
    // (6 premium, 1800 cents).
    let screen = typed_screening(movies.as_ref(), admin).await;
    let request = |labels: &[&str]| screen.request(labels);
    let first = bookings.book(customer, request(&["A1", "B1"])).await.unwrap();
    assert_eq!(first.amount_cents.cents(), 3000);
    let second = bookings.book(customer, request(&["A2"])).await.unwrap();
    let theirs = bookings.book(other, request(&["A3"])).await.unwrap();

    // The Idempotency-Key: 1 to 255 characters.
    assert_bad_request(api.pay(customer, "", card(&first, GOOD, "123")).await);
    assert_bad_request(api.pay(customer, &"k".repeat(256), card(&first, GOOD, "123")).await);
    // What HTTP would strip or refuse is refused in process too, so a key means the same in both.
    for key in ["   ", " lead", "trail\t", "ключ", "new\nline"] {
        assert_bad_request(api.pay(customer, key, card(&first, GOOD, "123")).await);
    }

    // Malformed card fields, each named (and nothing charged).
    assert_eq!(
        invalid_fields(api.pay(customer, "bad-luhn", card(&first, "4242424242424241", "123")).await),
        ["card_number"]
    );
    assert_eq!(invalid_fields(api.pay(customer, "bad-short", card(&first, "4242", "123")).await), ["card_number"]);
    assert_eq!(invalid_fields(api.pay(customer, "bad-cvc", card(&first, GOOD, "12")).await), ["card_cvc"]);
    let expired = PayRequest { card_expiry: "01/20".to_owned(), ..card(&first, GOOD, "123") };
    assert_eq!(invalid_fields(api.pay(customer, "bad-expiry", expired).await), ["card_expiry"]);
    let malformed = PayRequest { card_expiry: "13/30".to_owned(), ..card(&first, "42x2", "12345") };
    assert_eq!(
        invalid_fields(api.pay(customer, "bad-all", malformed).await),
        ["card_cvc", "card_expiry", "card_number"]
    );
    assert_eq!(api.list(customer, PaymentQuery::default()).await.unwrap().total, 0, "nothing was charged");

    // Only the caller's own bookings can be paid: another's (even by an admin) and unknown
    // ones are not found, and asking again with the key answers the same.
    assert_not_found(api.pay(customer, "theirs", card(&theirs, GOOD, "123")).await, "booking");
    assert_not_found(api.pay(customer, "theirs", card(&theirs, GOOD, "123")).await, "booking");
    assert_not_found(api.pay(admin, "admin", card(&first, GOOD, "123")).await, "booking");
    let nowhere = PayRequest { booking_id: BookingId(uuid::Uuid::new_v4()), ..card(&first, GOOD, "123") };
    assert_not_found(api.pay(customer, "nowhere", nowhere).await, "booking");

    // A declined card is a failed payment, not an error; the booking may be paid again.
    let declined = api.pay(customer, "declined", card(&first, DECLINED, "123")).await.unwrap();
    assert_payment_of(&declined, &first, customer, PaymentStatus::Failed);
    assert_eq!(declined.failure_reason.as_deref(), Some("card_declined"));
    assert_eq!((declined.card_brand.as_str(), declined.card_last4.as_str()), ("visa", "0002"));
    assert_eq!(declined.transactions.len(), 1, "{declined:?}");
    let charge = &declined.transactions[0];
    assert_eq!(
        (charge.kind, charge.status, charge.amount_cents.cents()),
        (TransactionKind::Charge, TransactionStatus::Failed, 3000)
    );

    // A good card, with a key of the longest length: completed, one successful charge, only
    // the brand and the last four digits kept.
    let key = "p".repeat(255);
    let before = Utc::now();
    let paid = api.pay(customer, &key, card(&first, GOOD, "123")).await.unwrap();
    let after = Utc::now();
    assert_payment_of(&paid, &first, customer, PaymentStatus::Completed);
    assert_eq!(paid.failure_reason, None);
    assert_eq!((paid.card_brand.as_str(), paid.card_last4.as_str()), ("visa", "4242"));
    assert!(paid.created_at >= before - chrono::Duration::seconds(1) && paid.created_at <= after, "{paid:?}");
    assert_ne!(paid.id, declined.id);
    assert_eq!(paid.transactions.len(), 1, "{paid:?}");
    let charge = &paid.transactions[0];
    assert_eq!(
        (charge.kind, charge.status, charge.amount_cents.cents()),
        (TransactionKind::Charge, TransactionStatus::Succeeded, 3000)
    );

    // The same key and body answer the first answer again; another body is refused.
    assert_eq!(api.pay(customer, &key, card(&first, GOOD, "123")).await.unwrap(), paid);
    assert_eq!(api.pay(customer, &key, card(&first, GOOD, "123")).await.unwrap(), paid);
    assert_eq!(invalid_fields(api.pay(customer, &key, card(&first, GOOD, "456")).await), ["Idempotency-Key"]);
    assert_eq!(invalid_fields(api.pay(customer, &key, card(&second, GOOD, "123")).await), ["Idempotency-Key"]);
    // The declined answer is replayed too, not charged again.
    assert_eq!(api.pay(customer, "declined", card(&first, DECLINED, "123")).await.unwrap(), declined);

    // A paid booking cannot be paid again under another key.
    assert_not_pending(api.pay(customer, "again", card(&first, GOOD, "123")).await);
    assert_not_pending(api.pay(customer, "again", card(&first, GOOD, "123")).await);

    // Keys belong to their user: another customer may use the same key for their own booking.
    let their_payment = api.pay(other, &key, card(&theirs, MASTERCARD, "123")).await.unwrap();
    assert_payment_of(&their_payment, &theirs, other, PaymentStatus::Completed);
    assert_eq!((their_payment.card_brand.as_str(), their_payment.card_last4.as_str()), ("mastercard", "4444"));

    // A payment is visible to its owner and admins; anyone else is told it does not exist.
    assert_eq!(api.payment(customer, paid.id).await.unwrap(), paid);
    assert_eq!(api.payment(admin, paid.id).await.unwrap(), paid);
    assert_eq!(api.payment(customer, declined.id).await.unwrap(), declined);
    assert_not_found(api.payment(other, paid.id).await, "payment");
    assert_not_found(api.payment(customer, their_payment.id).await, "payment");
    assert_not_found(api.payment(customer, PaymentId(uuid::Uuid::new_v4())).await, "payment");

    // A second booking paid with another brand.
    let second_paid = api.pay(customer, "second", card(&second, "5555 5555 5555 4444", "1234")).await.unwrap();
    assert_payment_of(&second_paid, &second, customer, PaymentStatus::Completed);
    assert_eq!((second_paid.card_brand.as_str(), second_paid.card_last4.as_str()), ("mastercard", "4444"));

    // List: the caller's own, newest first, filtered and paginated.
    let mine = api.list(customer, PaymentQuery::default()).await.unwrap();
    assert_eq!(
        (mine.items, mine.page, mine.per_page, mine.total),
        (vec![second_paid.clone(), paid.clone(), declined.clone()], 1, 20, 3)
    );
    let of_first = api.list(customer, query(Some(first.id), None)).await.unwrap();
    assert_eq!((ids(&of_first.items), of_first.total), (vec![paid.id, declined.id], 2));
    let failed = api.list(customer, query(None, Some(PaymentStatus::Failed))).await.unwrap();
    assert_eq!((failed.items, failed.total), (vec![declined.clone()], 1));
    let completed = api.list(customer, query(None, Some(PaymentStatus::Completed))).await.unwrap();
    assert_eq!((ids(&completed.items), completed.total), (vec![second_paid.id, paid.id], 2));
    let both = api.list(customer, query(Some(second.id), Some(PaymentStatus::Failed))).await.unwrap();
    assert_eq!((both.items.len(), both.total), (0, 0));
    let page = PaymentQuery { page: Some(2), per_page: Some(1), ..PaymentQuery::default() };
    let page = api.list(customer, page).await.unwrap();
    assert_eq!((ids(&page.items), page.page, page.per_page, page.total), (vec![paid.id], 2, 1, 3));
    let theirs_listed = api.list(other, PaymentQuery::default()).await.unwrap();
    assert_eq!((theirs_listed.items, theirs_listed.total), (vec![their_payment.clone()], 1));
    assert_eq!(api.list(admin, PaymentQuery::default()).await.unwrap().total, 0, "an admin lists their own");
    let zero = PaymentQuery { per_page: Some(0), ..PaymentQuery::default() };
    assert_eq!(invalid_fields(api.list(customer, zero).await), ["per_page"]);
    let zero = PaymentQuery { page: Some(0), ..PaymentQuery::default() };
    assert_eq!(invalid_fields(api.list(customer, zero).await), ["page"]);

    // Refund: admins only, completed payments only, once.
    match api.refund(customer, paid.id).await {
        Err(PaymentError::Forbidden(_)) => {}
        result => panic!("expected Forbidden, got {result:?}"),
    }
    assert_not_found(api.refund(admin, PaymentId(uuid::Uuid::new_v4())).await, "payment");
    assert_not_refundable(api.refund(admin, declined.id).await);
    assert_eq!(api.payment(customer, paid.id).await.unwrap(), paid, "a refused refund changes nothing");
    let refunded = api.refund(admin, paid.id).await.unwrap();
    assert_eq!(refunded.status, PaymentStatus::Refunded);
    assert_eq!(
        Payment { status: PaymentStatus::Completed, transactions: paid.transactions.clone(), ..refunded.clone() },
        paid
    );
    assert_eq!(refunded.transactions.len(), 2, "{refunded:?}");
    assert_eq!(refunded.transactions[0], paid.transactions[0]);
    let back = &refunded.transactions[1];
    assert_eq!(
        (back.kind, back.status, back.amount_cents.cents()),
        (TransactionKind::Refund, TransactionStatus::Succeeded, 3000)
    );
    assert!(back.created_at >= paid.transactions[0].created_at, "{refunded:?}");
    assert_eq!(api.payment(customer, paid.id).await.unwrap(), refunded);
    assert_not_refundable(api.refund(admin, paid.id).await);
    let refunds = api.list(customer, query(None, Some(PaymentStatus::Refunded))).await.unwrap();
    assert_eq!((refunds.items, refunds.total), (vec![refunded.clone()], 1));

    // A refunded booking is still not payable, and the old key still answers its first answer.
    assert_not_pending(api.pay(customer, "after-refund", card(&first, GOOD, "123")).await);
    assert_eq!(api.pay(customer, &key, card(&first, GOOD, "123")).await.unwrap(), paid);
}
