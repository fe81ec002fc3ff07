//! The events' wire contract: every variant round-trips under its own routing key, events
//! written before issue 12 still decode, every consumer's queue binds exactly the keys it
//! handles (and every pattern binds a key some module publishes), and the tolerant readers
//! of movie and booking (which cannot depend on their publishers) read every event they are
//! bound to.

use booking::api::{
    BookedSeat, BookingCancelled, BookingConfirmed, BookingCreated, BookingEvent, BookingId, CancelReason,
    ChargeOutcome, PaymentOutcome, Ticket,
};
use chrono::{TimeZone, Utc};
use movie::api::{BookingSeats, SeatId, SeatsOfBooking, ShowtimeId};
use payment::api::{PaymentCompleted, PaymentEvent, PaymentFailed, PaymentId, PaymentRefunded};
use platform::events::{Envelope, Event, QueueSpec, topic_matches};
use platform::identity::UserId;
use platform::money::Money;
use serde_json::json;
use uuid::Uuid;

fn ids() -> (BookingId, UserId, ShowtimeId, Vec<SeatId>) {
    (BookingId(Uuid::now_v7()), UserId(Uuid::now_v7()), ShowtimeId(Uuid::now_v7()), vec![SeatId(Uuid::now_v7())])
}

fn ticket(seats: &[SeatId]) -> Ticket {
    Ticket {
        currency: Some("EUR".to_owned()),
        starts_at: Some(Utc.with_ymd_and_hms(2027, 1, 2, 20, 0, 0).unwrap()),
        seats: seats
            .iter()
            .map(|&id| BookedSeat { id, row: "B".to_owned(), number: 7, price_cents: Money::from_cents(1250) })
            .collect(),
        movie_title: Some("Booked Solid".to_owned()),
        theater: Some("One".to_owned()),
        location: Some("Here".to_owned()),
    }
}

fn booking_events() -> Vec<BookingEvent> {
    let (booking_id, user_id, showtime_id, seat_ids) = ids();
    let ticket = ticket(&seat_ids);
    vec![
        BookingEvent::Created(BookingCreated {
            booking_id,
            user_id,
            showtime_id,
            seat_ids: seat_ids.clone(),
            amount_cents: 1250,
            expires_at: Utc.with_ymd_and_hms(2027, 1, 1, 12, 0, 0).unwrap(),
            ticket: ticket.clone(),
        }),
        BookingEvent::Confirmed(BookingConfirmed {
            booking_id,
            user_id,
            showtime_id,
            seat_ids: seat_ids.clone(),
            amount_cents: Some(1250),
            ticket: ticket.clone(),
        }),
        BookingEvent::Cancelled(BookingCancelled {
            booking_id,
            user_id,
            showtime_id,
            seat_ids,
            reason: CancelReason::Expired,
            was_paid: false,
            amount_cents: Some(1250),
            ticket,
        }),
    ]
}

fn payment_events() -> Vec<PaymentEvent> {
    let (booking_id, user_id, _, _) = ids();
    let payment_id = PaymentId(Uuid::now_v7());
    let currency = Some("EUR".to_owned());
    vec![
        PaymentEvent::Completed(PaymentCompleted {
            payment_id,
            booking_id,
            user_id,
            amount_cents: 1250,
            accepted_at: Some(Utc.with_ymd_and_hms(2027, 1, 1, 11, 0, 0).unwrap()),
            currency: currency.clone(),
        }),
        PaymentEvent::Failed(PaymentFailed {
            payment_id,
            booking_id,
            user_id,
            failure_reason: "card_declined".to_owned(),
            amount_cents: Some(1250),
            currency: currency.clone(),
        }),
        PaymentEvent::Refunded(PaymentRefunded { payment_id, booking_id, user_id, amount_cents: 1250, currency }),
    ]
}

/// Each variant travels under its own key (`type` in the body too) and comes back equal.
fn assert_round_trips<E: Event + PartialEq + std::fmt::Debug>(events: &[E]) {
    let keys: Vec<&str> = events.iter().map(Event::routing_key).collect();
    assert_eq!(keys, E::KEYS, "one sample per variant, in KEYS order");
    for event in events {
        let envelope = Envelope::of(event).unwrap();
        assert_eq!(envelope.routing_key, event.routing_key());
        assert_eq!(envelope.body["type"], event.routing_key());
        // As a consumer receives it: the JSON document alone.
        let received = Envelope::from_body(serde_json::from_str(&envelope.body.to_string()).unwrap()).unwrap();
        assert_eq!(received, envelope);
        assert_eq!(&received.decode::<E>().unwrap(), event);
    }
}

#[test]
fn every_event_round_trips_under_its_routing_key() {
    assert_round_trips(&booking_events());
    assert_round_trips(&payment_events());
}

/// The fields the contract has always listed are still written under their names.
#[test]
fn events_keep_the_fields_of_the_contract() {
    let contract: [(&str, &[&str]); 6] = [
        ("booking.created", &["booking_id", "user_id", "showtime_id", "seat_ids", "amount_cents", "expires_at"]),
        ("booking.confirmed", &["booking_id", "user_id", "showtime_id", "seat_ids"]),
        ("booking.cancelled", &["booking_id", "user_id", "showtime_id", "seat_ids", "reason", "was_paid"]),
        ("payment.completed", &["payment_id", "booking_id", "user_id", "amount_cents"]),
        ("payment.failed", &["payment_id", "booking_id", "user_id", "failure_reason"]),
        ("payment.refunded", &["payment_id", "booking_id", "user_id", "amount_cents"]),
    ];
    let bodies: Vec<Envelope> = booking_events()
        .iter()
        .map(|e| Envelope::of(e).unwrap())
        .chain(payment_events().iter().map(|e| Envelope::of(e).unwrap()))
        .collect();
    for (envelope, (key, fields)) in bodies.into_iter().zip(contract) {
        assert_eq!(envelope.routing_key, key);
        for field in ["event_id", "occurred_at", "type"].iter().chain(fields) {
            assert!(envelope.body.get(field).is_some(), "{key} lacks {field}: {}", envelope.body);
        }
    }
}

/// Events already in outboxes and inboxes when issue 12 shipped carry none of its fields.
#[test]
fn events_written_before_issue_12_still_decode() {
    let (booking, user, showtime, seats) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(), [Uuid::now_v7()]);
    let head = |key: &str| json!({"event_id": Uuid::now_v7(), "occurred_at": Utc::now(), "type": key});
    let with = |key: &str, fields: serde_json::Value| {
        let mut body = head(key);
        body.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
        Envelope::from_body(body).unwrap()
    };
    let common = json!({"booking_id": booking, "user_id": user, "showtime_id": showtime, "seat_ids": seats});
    let mut created = common.clone();
    created
        .as_object_mut()
        .unwrap()
        .extend([("amount_cents".to_owned(), json!(900)), ("expires_at".to_owned(), json!(Utc::now()))]);
    let BookingEvent::Created(e) = with("booking.created", created).decode().unwrap() else { panic!("not created") };
    assert_eq!((e.amount_cents, e.ticket), (900, Ticket::default()));
    let BookingEvent::Confirmed(e) = with("booking.confirmed", common.clone()).decode().unwrap() else {
        panic!("not confirmed")
    };
    assert_eq!((e.amount_cents, e.ticket), (None, Ticket::default()));
    let mut cancelled = common;
    cancelled
        .as_object_mut()
        .unwrap()
        .extend([("reason".to_owned(), json!("admin")), ("was_paid".to_owned(), json!(true))]);
    let BookingEvent::Cancelled(e) = with("booking.cancelled", cancelled).decode().unwrap() else {
        panic!("not cancelled")
    };
    assert_eq!((e.reason, e.was_paid, e.amount_cents), (CancelReason::Admin, true, None));

    let paid = json!({"payment_id": Uuid::now_v7(), "booking_id": booking, "user_id": user, "amount_cents": 900});
    let PaymentEvent::Completed(e) = with("payment.completed", paid).decode().unwrap() else { panic!("not completed") };
    assert_eq!((e.accepted_at, e.currency), (None, None));
}

/// The keys each module's queue is bound to: the subscriber column of the contract's event
/// table, less two bindings that did nothing since issue 12: movie's `booking.confirmed`
/// (it changes no seat) and notification's `payment.completed` (the confirmation says what
/// was paid).
#[test]
fn every_queue_binds_exactly_the_events_its_module_handles() {
    let published: Vec<&str> = BookingEvent::KEYS.iter().chain(PaymentEvent::KEYS).copied().collect();
    let bound = |queue: QueueSpec| -> Vec<&str> {
        for pattern in queue.patterns {
            assert!(published.iter().any(|key| topic_matches(pattern, key)), "{} binds nothing: {pattern}", queue.name);
        }
        published.iter().copied().filter(|key| queue.patterns.iter().any(|p| topic_matches(p, key))).collect()
    };
    assert_eq!(bound(movie::api::QUEUE), ["booking.created", "booking.cancelled"]);
    assert_eq!(bound(booking::api::QUEUE), ["payment.completed", "payment.failed"]);
    assert_eq!(bound(payment::api::QUEUE), ["booking.cancelled"]);
    assert_eq!(
        bound(notification::api::QUEUE),
        ["booking.created", "booking.confirmed", "booking.cancelled", "payment.failed", "payment.refunded"]
    );
}

/// Movie reads booking's events through its own view, booking payment's: each reads every
/// event of its publisher as the publisher meant it.
#[test]
fn the_tolerant_readers_read_every_event_they_are_bound_to() {
    for event in booking_events() {
        let read: BookingSeats = Envelope::of(&event).unwrap().decode().unwrap();
        let expected = match event {
            BookingEvent::Created(e) => {
                BookingSeats::Taken(SeatsOfBooking { showtime_id: e.showtime_id, seat_ids: e.seat_ids })
            }
            BookingEvent::Cancelled(e) => {
                BookingSeats::Released(SeatsOfBooking { showtime_id: e.showtime_id, seat_ids: e.seat_ids })
            }
            BookingEvent::Confirmed(_) => BookingSeats::Other,
        };
        assert_eq!(read, expected);
    }
    for event in payment_events() {
        let read = Envelope::of(&event).unwrap().decode::<PaymentOutcome>();
        match event {
            PaymentEvent::Completed(e) => assert_eq!(
                read.unwrap(),
                PaymentOutcome::Completed(ChargeOutcome {
                    booking_id: e.booking_id,
                    payment_id: e.payment_id.0,
                    accepted_at: e.accepted_at
                })
            ),
            PaymentEvent::Failed(e) => assert_eq!(
                read.unwrap(),
                PaymentOutcome::Failed(ChargeOutcome {
                    booking_id: e.booking_id,
                    payment_id: e.payment_id.0,
                    accepted_at: None
                })
            ),
            // Not bound to booking_queue: booking never receives it.
            PaymentEvent::Refunded(_) => assert!(read.is_err()),
        }
    }
}
