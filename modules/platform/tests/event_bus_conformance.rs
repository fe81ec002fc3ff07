//! One conformance suite for the `EventBus` port, run against every implementation
//! (`InProcessBus` now; the RabbitMQ bus joins it with `BOXOFFICE_TEST_AMQP_URL`).
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use platform::events::{Envelope, EventBus, EventHandler, HandlerError, InProcessBus, RetryPolicy};
use serde_json::json;

/// Records what it handled; fails the first `failures` deliveries of each event.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<Envelope>>,
    failures: usize,
}

impl Recorder {
    fn failing(failures: usize) -> Arc<Self> {
        Arc::new(Self { seen: Mutex::new(Vec::new()), failures })
    }

    fn keys(&self) -> Vec<String> {
        self.seen.lock().unwrap().iter().map(|e| e.routing_key.clone()).collect()
    }

    fn deliveries_of(&self, event: &Envelope) -> usize {
        self.seen.lock().unwrap().iter().filter(|e| e.event_id == event.event_id).count()
    }
}

#[async_trait]
impl EventHandler for Recorder {
    async fn handle(&self, event: &Envelope) -> Result<(), HandlerError> {
        let mut seen = self.seen.lock().unwrap();
        seen.push(event.clone());
        let attempts = seen.iter().filter(|e| e.event_id == event.event_id).count();
        if attempts <= self.failures { Err(HandlerError(format!("failure #{attempts}"))) } else { Ok(()) }
    }
}

fn event(key: &str, n: u32) -> Envelope {
    Envelope::new(key, &json!({"booking_id": uuid::Uuid::new_v4(), "n": n})).unwrap()
}

async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The bus under test must make at most 3 deliveries of a failing event (`max_attempts` = 3).
async fn conformance(bus: Arc<dyn EventBus>, prefix: &str) {
    let movie = Recorder::failing(0);
    let payment = Recorder::failing(0);
    let flaky = Recorder::failing(2);
    let broken = Recorder::failing(usize::MAX);
    let q = |name: &str| format!("{prefix}{name}");
    bus.subscribe(&q("movie_queue"), &["booking.*"], movie.clone()).await.unwrap();
    bus.subscribe(&q("payment_queue"), &["booking.cancelled"], payment.clone()).await.unwrap();
    bus.subscribe(&q("flaky_queue"), &["payment.completed"], flaky.clone()).await.unwrap();
    bus.subscribe(&q("broken_queue"), &["payment.failed"], broken.clone()).await.unwrap();

    // Routing: each queue gets exactly the events its patterns match, in order.
    let created = event("booking.created", 1);
    let cancelled = event("booking.cancelled", 2);
    bus.publish(&created).await.unwrap();
    bus.publish(&cancelled).await.unwrap();
    bus.publish(&event("auth.user_registered", 3)).await.unwrap();
    wait_until("movie_queue has both booking events", || movie.keys().len() == 2).await;
    wait_until("payment_queue has the cancellation", || payment.keys().len() == 1).await;
    assert_eq!(movie.keys(), ["booking.created", "booking.cancelled"]);
    assert_eq!(payment.keys(), ["booking.cancelled"]);
    assert_eq!(movie.deliveries_of(&created), 1);

    // A handler that fails twice gets the event a third time, and then succeeds.
    let completed = event("payment.completed", 4);
    bus.publish(&completed).await.unwrap();
    wait_until("the flaky handler succeeds on the third delivery", || flaky.deliveries_of(&completed) == 3).await;

    // A handler that always fails gets max_attempts deliveries, then the event is dead-lettered
    // and later events still flow.
    let poison = event("payment.failed", 5);
    bus.publish(&poison).await.unwrap();
    wait_until("three deliveries of the poison event", || broken.deliveries_of(&poison) == 3).await;
    bus.publish(&event("booking.confirmed", 6)).await.unwrap();
    wait_until("later events still flow", || movie.keys().len() == 3).await;
    assert_eq!(broken.deliveries_of(&poison), 3, "not retried forever");

    // The payload arrives whole, with its event fields.
    let received = movie.seen.lock().unwrap()[0].clone();
    assert_eq!(received, created);
    assert_eq!(received.body["type"], "booking.created");
    assert_eq!(received.body["event_id"], created.event_id.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_process_bus_keeps_the_contract() {
    let bus = Arc::new(InProcessBus::new(RetryPolicy { max_attempts: 3, first_backoff: Duration::from_millis(5) }));
    conformance(bus.clone(), "").await;
    assert_eq!(bus.dead_letters("broken_queue.dlq").len(), 1);
    assert_eq!(bus.dead_letters("broken_queue.dlq")[0].routing_key, "payment.failed");
}

#[test]
fn an_envelope_carries_the_event_fields_and_round_trips() {
    let e = event("booking.created", 7);
    assert_eq!(e.body["type"], "booking.created");
    assert_eq!(e.body["n"], 7);
    let again = Envelope::from_body(e.body.clone()).unwrap();
    assert_eq!(again, e);
    assert!(Envelope::new("x", &json!([1, 2])).is_err(), "a payload must be an object");
}
