//! The outbox, its relay and the inbox, on SQLite and PostgreSQL (the `postgres::` tests): an
//! event is published if and only if its transaction commits, a broker outage delays it
//! without losing it, and a redelivery is recognised. Also the gauges of the relay's lag and
//! of the connection pool, on the same databases.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use platform::config::{DatabaseSettings, Secret};
use platform::events::Event;
use platform::events::{BusError, DeadLetter, Envelope, EventBus, EventHandler, Replay};
use platform::outbox::{OutboxRelay, enqueue, first_delivery, publish, purge};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A bus that can be switched off, recording what it was given. For events labelled
/// `{k}{n}` by their body, it also refuses those `refused` names, and holds up `a1` until `b2`
/// has been published (recording that it waited in vain if `b2` never comes).
#[derive(Default)]
struct TestBus {
    down: Mutex<bool>,
    published: Mutex<Vec<Envelope>>,
    refused: Mutex<Vec<&'static str>>,
}

fn label(event: &Envelope) -> Option<String> {
    Some(format!("{}{}", event.body.get("k")?.as_str()?, event.body.get("n")?))
}

impl TestBus {
    fn labels(&self) -> Vec<String> {
        self.published
            .lock()
            .unwrap()
            .iter()
            .map(|e| label(e).unwrap_or_else(|| "a1 waited for b2 in vain".to_owned()))
            .collect()
    }
}

#[async_trait]
impl EventBus for TestBus {
    async fn publish(&self, event: &Envelope) -> Result<(), BusError> {
        if *self.down.lock().unwrap() {
            return Err(BusError::Unavailable("broker down".to_owned()));
        }
        let label = label(event);
        if let Some(label) = &label {
            if self.refused.lock().unwrap().contains(&label.as_str()) {
                return Err(BusError::Unavailable(format!("{label} refused")));
            }
            if label == "a1" {
                // A serial relay never gets to b2.
                let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                while !self.labels().contains(&"b2".to_owned()) {
                    if tokio::time::Instant::now() > deadline {
                        let in_vain = Envelope::new("booking.created", &json!({"k": "a1 waited in vain", "n": 0}));
                        let in_vain = in_vain.unwrap();
                        self.published.lock().unwrap().push(in_vain);
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
        self.published.lock().unwrap().push(event.clone());
        Ok(())
    }

    async fn declare(&self, _: &str, _: &[&str]) -> Result<(), BusError> {
        Ok(())
    }

    async fn subscribe(&self, _: &str, _: &[&str], _: Arc<dyn EventHandler>) -> Result<(), BusError> {
        Ok(())
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, BusError> {
        Ok(Vec::new())
    }

    async fn replay(&self, _: Replay) -> Result<u64, BusError> {
        Ok(0)
    }
}

fn create_tables(
    db: &DatabaseConnection,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), DbErr>> + Send + '_>> {
    Box::pin(async move {
        db.execute(&platform::outbox::outbox_table()).await?;
        db.execute(&platform::outbox::outbox_traceparent()).await?;
        db.execute(&platform::outbox::outbox_index()).await?;
        db.execute(&platform::outbox::inbox_table()).await?;
        db.execute(&platform::outbox::inbox_index()).await?;
        Ok(())
    })
}

/// A fresh database with the outbox and inbox tables, on PostgreSQL at `url` (a schema prefix
/// of its own) or, when `url` is empty, in a SQLite file in the returned directory.
async fn database(url: String) -> (DatabaseConnection, tempfile::TempDir) {
    let settings = DatabaseSettings {
        url: Secret::new(url),
        schema_prefix: format!("t_{}_", &uuid::Uuid::new_v4().simple().to_string()[..12]),
        max_connections: 4,
        sqlite_max_connections: 2,
        connect_timeout_seconds: 5,
    };
    let dir = tempfile::TempDir::new().unwrap();
    (platform::db::connect(&settings, dir.path(), "outbox", create_tables).await.unwrap(), dir)
}

/// Generates `sqlite::<name>` and `postgres::<name>` tests from `async fn <name>(DatabaseConnection)`;
/// the latter need `BOXOFFICE_TEST_DATABASE_URL`, and nextest's default profile skips them by
/// their `postgres::` path.
macro_rules! on_both_databases {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (db, _dir) = super::database(String::new()).await;
                    super::$name(db).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let url = super::common::service_url("BOXOFFICE_TEST_DATABASE_URL");
                    let (db, _dir) = super::database(url).await;
                    super::$name(db).await;
                }
            )+
        }
    };
}

on_both_databases!(
    only_committed_events_are_relayed_in_order_and_an_outage_loses_none,
    a_running_relay_publishes_when_woken_and_flushes_on_stop,
    the_inbox_recognises_a_redelivery_per_consumer,
    retention_forgets_sent_events_and_old_inbox_records_but_never_an_unsent_event,
    a_typed_event_is_relayed_under_its_variants_key_and_decodes_back,
    the_relay_reports_the_age_of_the_oldest_unsent_event,
    the_pool_gauges_count_a_connection_held_by_a_transaction,
    one_subjects_events_keep_their_order_while_another_subjects_overtake_them,
);

fn event(n: u32) -> Envelope {
    Envelope::new("booking.created", &json!({"n": n})).unwrap()
}

async fn only_committed_events_are_relayed_in_order_and_an_outage_loses_none(db: DatabaseConnection) {
    let bus = Arc::new(TestBus::default());
    let relay = OutboxRelay::new("test", db.clone(), bus.clone(), Duration::from_secs(60));

    let rolled_back = event(0);
    let txn = db.begin().await.unwrap();
    enqueue(&txn, &rolled_back).await.unwrap();
    txn.rollback().await.unwrap();
    let (first, second) = (event(1), event(2));
    let txn = db.begin().await.unwrap();
    enqueue(&txn, &first).await.unwrap();
    enqueue(&txn, &second).await.unwrap();
    txn.commit().await.unwrap();

    // The broker is down: nothing is lost, nothing marked sent.
    *bus.down.lock().unwrap() = true;
    assert_eq!(relay.drain().await.unwrap(), 0);
    assert!(bus.published.lock().unwrap().is_empty());

    // Back up: both committed events go out, in order; the rolled-back one never does.
    *bus.down.lock().unwrap() = false;
    assert_eq!(relay.drain().await.unwrap(), 2);
    assert_eq!(*bus.published.lock().unwrap(), vec![first.clone(), second.clone()]);
    // Sent rows are not sent again.
    assert_eq!(relay.drain().await.unwrap(), 0);
    assert_eq!(bus.published.lock().unwrap().len(), 2);
}

async fn one_subjects_events_keep_their_order_while_another_subjects_overtake_them(db: DatabaseConnection) {
    let bus = Arc::new(TestBus::default());
    let relay = OutboxRelay::new("test", db.clone(), bus.clone(), Duration::from_secs(60)).ordered_by("k");
    for (k, n) in [("a", 1), ("b", 1), ("c", 1), ("a", 2), ("b", 2), ("c", 2)] {
        enqueue(&db, &Envelope::new("booking.created", &json!({"k": k, "n": n})).unwrap()).await.unwrap();
    }
    bus.refused.lock().unwrap().push("c1");

    // a1 is held up until b2 is out: b's events overtake a's, each subject in its order; c1
    // is refused, so c2 (younger) waits with it.
    assert_eq!(relay.drain().await.unwrap(), 4);
    let published = bus.labels();
    let at =
        |label: &str| published.iter().position(|p| p == label).unwrap_or_else(|| panic!("{label} in {published:?}"));
    assert!(at("b1") < at("b2") && at("b2") < at("a1") && at("a1") < at("a2"), "{published:?}");
    assert_eq!(published.len(), 4, "{published:?}");

    // The next pass, with the broker taking c1, publishes c1 then c2; the events carry their
    // subject as the ordering key.
    bus.refused.lock().unwrap().clear();
    assert_eq!(relay.drain().await.unwrap(), 2);
    assert_eq!(bus.labels()[4..], ["c1".to_owned(), "c2".to_owned()]);
    let keys: Vec<Option<String>> = bus.published.lock().unwrap().iter().map(|e| e.ordering_key.clone()).collect();
    assert_eq!(keys[4..], [Some("c".to_owned()), Some("c".to_owned())]);
    assert_eq!(relay.drain().await.unwrap(), 0);
}

async fn a_running_relay_publishes_when_woken_and_flushes_on_stop(db: DatabaseConnection) {
    let bus = Arc::new(TestBus::default());
    // A poll interval far beyond the test: only the waker can make it publish in time.
    let relay = OutboxRelay::new("test", db.clone(), bus.clone(), Duration::from_secs(3600));
    let waker = relay.waker();
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(relay.run(stop.clone()));

    enqueue(&db, &event(1)).await.unwrap();
    waker.notify_one();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while bus.published.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the relay did not publish when woken");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Committed just before the stop, without a wake-up: the final pass sends it.
    enqueue(&db, &event(2)).await.unwrap();
    stop.cancel();
    running.await.unwrap();
    assert_eq!(bus.published.lock().unwrap().len(), 2);
}

async fn the_inbox_recognises_a_redelivery_per_consumer(db: DatabaseConnection) {
    let id = uuid::Uuid::now_v7();
    assert!(first_delivery(&db, "movie_queue", id).await.unwrap());
    assert!(!first_delivery(&db, "movie_queue", id).await.unwrap());
    assert!(first_delivery(&db, "notification_queue", id).await.unwrap(), "consumers are independent");
    // Recorded in a transaction that rolls back, it was never handled.
    let other = uuid::Uuid::now_v7();
    let txn = db.begin().await.unwrap();
    assert!(first_delivery(&txn, "movie_queue", other).await.unwrap());
    txn.rollback().await.unwrap();
    assert!(first_delivery(&db, "movie_queue", other).await.unwrap());
}

async fn retention_forgets_sent_events_and_old_inbox_records_but_never_an_unsent_event(db: DatabaseConnection) {
    let bus = Arc::new(TestBus::default());
    let relay = OutboxRelay::new("outbox", db.clone(), bus.clone(), Duration::from_secs(60));
    enqueue(&db, &event(1)).await.unwrap();
    relay.drain().await.unwrap();
    *bus.down.lock().unwrap() = true;
    enqueue(&db, &event(2)).await.unwrap();
    relay.drain().await.unwrap();
    let handled = uuid::Uuid::now_v7();
    assert!(first_delivery(&db, "movie_queue", handled).await.unwrap());

    // Nothing is old enough yet.
    assert_eq!(purge(&db, chrono::Utc::now() - chrono::Duration::hours(1), true).await.unwrap(), 0);
    // Later: the sent event and the inbox record go; the unsent event stays and is still sent.
    assert_eq!(purge(&db, chrono::Utc::now() + chrono::Duration::hours(1), true).await.unwrap(), 2);
    assert!(first_delivery(&db, "movie_queue", handled).await.unwrap(), "forgotten");
    *bus.down.lock().unwrap() = false;
    assert_eq!(relay.drain().await.unwrap(), 1);
    let published: Vec<_> = bus.published.lock().unwrap().iter().map(|e| e.body["n"].clone()).collect();
    assert_eq!(published, [json!(1), json!(2)]);
    // Without an outbox (movie's database has only an inbox), only the inbox is purged.
    assert_eq!(purge(&db, chrono::Utc::now() + chrono::Duration::hours(1), false).await.unwrap(), 1);
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Ticket {
    seats: u32,
}

platform::events! {
    #[derive(Debug, Clone, PartialEq)]
    enum TicketEvent {
        SOLD = "ticket.sold" => Sold(Ticket),
        RETURNED = "ticket.returned" => Returned(Ticket),
    }
}

async fn a_typed_event_is_relayed_under_its_variants_key_and_decodes_back(db: DatabaseConnection) {
    assert_eq!(TicketEvent::KEYS, ["ticket.sold", "ticket.returned"]);
    let bus = Arc::new(TestBus::default());
    let relay = OutboxRelay::new("test", db.clone(), bus.clone(), Duration::from_secs(60));
    let events = [TicketEvent::Returned(Ticket { seats: 2 }), TicketEvent::Sold(Ticket { seats: 3 })];
    let txn = db.begin().await.unwrap();
    for event in &events {
        publish(&txn, event).await.unwrap();
    }
    txn.commit().await.unwrap();
    assert_eq!(relay.drain().await.unwrap(), 2);
    let published = bus.published.lock().unwrap().clone();
    let keys: Vec<&str> = published.iter().map(|e| e.routing_key.as_str()).collect();
    assert_eq!(keys, [TicketEvent::RETURNED, TicketEvent::SOLD]);
    let bodies: Vec<TicketEvent> = published.iter().map(|e| e.decode().unwrap()).collect();
    assert_eq!(bodies, events);
    assert_eq!(
        published[1].body,
        json!({
            "type": "ticket.sold", "seats": 3, "event_id": published[1].event_id, "occurred_at": published[1].occurred_at
        })
    );
}

/// A module name per backend for the metrics of a test on `db`: the `sqlite::` and
/// `postgres::` tests may share a process, and so its recorder (installed here: metrics
/// recorded before it are dropped).
fn metrics_module(db: &DatabaseConnection, sqlite: &'static str, postgres: &'static str) -> &'static str {
    platform::telemetry::prometheus();
    match db.get_database_backend() {
        sea_orm::DatabaseBackend::Sqlite => sqlite,
        _ => postgres,
    }
}

async fn the_relay_reports_the_age_of_the_oldest_unsent_event(db: DatabaseConnection) {
    let module = metrics_module(&db, "lag_sqlite", "lag_postgres");
    let bus = Arc::new(TestBus::default());
    let relay = OutboxRelay::new(module, db.clone(), bus.clone(), Duration::from_secs(60));
    let gauge = |name: &str| common::sample(&format!("{name}{{module=\"{module}\"}}"));
    let metric = "outbox_oldest_unsent_age_seconds";
    let mut old = event(1);
    old.occurred_at = chrono::Utc::now() - chrono::Duration::seconds(90);
    enqueue(&db, &old).await.unwrap();
    enqueue(&db, &event(2)).await.unwrap();

    // The broker refuses: the lag is the older row's age, not the newer one's.
    *bus.down.lock().unwrap() = true;
    relay.drain().await.unwrap();
    let lag = gauge(metric).expect("the gauge after a pass");
    assert!((90.0..150.0).contains(&lag), "{lag}");
    assert_eq!(gauge("outbox_backlog"), Some(2.0));

    // Sent: no lag.
    *bus.down.lock().unwrap() = false;
    assert_eq!(relay.drain().await.unwrap(), 2);
    assert_eq!(gauge(metric), Some(0.0));
    assert_eq!(gauge("outbox_backlog"), Some(0.0));
}

async fn the_pool_gauges_count_a_connection_held_by_a_transaction(db: DatabaseConnection) {
    let module = metrics_module(&db, "pool_sqlite", "pool_postgres");
    let busy = || {
        platform::db::sample_pool(module, &db);
        common::sample(&format!("db_pool_connections{{module=\"{module}\",state=\"busy\"}}")).unwrap()
    };
    // Busy counts connections being opened too: the pool opens its minimum in the background.
    let settle = || async {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while busy() != 0.0 {
            assert!(std::time::Instant::now() < deadline, "a connection stays busy");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    settle().await;
    // `database` sizes PostgreSQL pools at 4 and SQLite ones at 2.
    let max = common::sample(&format!("db_pool_max_connections{{module=\"{module}\"}}"));
    assert_eq!(max, Some(if module == "pool_sqlite" { 2.0 } else { 4.0 }));

    let txn = db.begin().await.unwrap();
    assert_eq!(busy(), 1.0);
    txn.commit().await.unwrap();
    settle().await;
}
