//! The event backbone's port: events as they travel between modules, the `EventBus` that
//! carries them, and the `EventHandler` a consumer registers.
//!
//! Delivery is at least once. A publisher never calls the bus inside its business
//! transaction: it writes the event to its outbox in that transaction
//! ([`crate::outbox::enqueue`]), and the relay publishes it after commit. A consumer records
//! handled event ids in its inbox in the same transaction as its effect
//! ([`crate::outbox::first_delivery`]), so a redelivery has no second effect.
//!
//! Implementations: [`InProcessBus`] here (the single binary); RabbitMQ (topic exchange
//! `booking_events`, durable queues, dead-letter queues) for the split deployment.
//! Both keep the same contract, checked by `tests/event_bus_conformance.rs`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// One event: its routing key and the JSON document api.md specifies, which always carries
/// `event_id`, `occurred_at` and `type` (= the routing key) besides the event's own fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub event_id: Uuid,
    pub routing_key: String,
    pub occurred_at: DateTime<Utc>,
    pub body: Value,
}

impl Envelope {
    /// A new event of type `routing_key` with the fields of `payload` (a struct).
    ///
    /// # Errors
    /// `payload` does not serialize to a JSON object.
    pub fn new<T: Serialize>(routing_key: &str, payload: &T) -> Result<Self, serde_json::Error> {
        let event_id = Uuid::now_v7();
        let occurred_at = Utc::now();
        let mut body = serde_json::to_value(payload)?;
        let Value::Object(fields) = &mut body else {
            return Err(serde::ser::Error::custom("an event payload must be a JSON object"));
        };
        fields.insert("event_id".to_owned(), Value::String(event_id.to_string()));
        fields.insert("occurred_at".to_owned(), serde_json::to_value(occurred_at)?);
        fields.insert("type".to_owned(), Value::String(routing_key.to_owned()));
        Ok(Self { event_id, routing_key: routing_key.to_owned(), occurred_at, body })
    }

    /// Rebuilds an envelope from a received JSON document.
    ///
    /// # Errors
    /// The document lacks a valid `event_id`, `occurred_at` or `type`.
    pub fn from_body(body: Value) -> Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        struct Head {
            event_id: Uuid,
            occurred_at: DateTime<Utc>,
            #[serde(rename = "type")]
            kind: String,
        }
        let head: Head = serde_json::from_value(body.clone())?;
        Ok(Self { event_id: head.event_id, routing_key: head.kind, occurred_at: head.occurred_at, body })
    }

    /// The event's fields as `T`.
    ///
    /// # Errors
    /// The document does not match `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_value(self.body.clone())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The broker cannot be reached or refused the message; nothing is known to be sent.
    #[error("event bus unavailable: {0}")]
    Unavailable(String),
}

/// Why a handler could not handle an event; the delivery is retried, then dead-lettered.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HandlerError(pub String);

impl From<sea_orm::DbErr> for HandlerError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self(format!("database: {e}"))
    }
}

impl From<serde_json::Error> for HandlerError {
    fn from(e: serde_json::Error) -> Self {
        Self(format!("unreadable event: {e}"))
    }
}

/// A consumer's handling of one event.
#[async_trait]
pub trait EventHandler: Send + Sync {
    /// Handles one delivery. MUST be idempotent (check the inbox): the same event may come
    /// again after a crash or a lost acknowledgement.
    ///
    /// # Errors
    /// Any failure: the delivery is retried with backoff, and dead-lettered after the
    /// bus's retry budget.
    async fn handle(&self, event: &Envelope) -> Result<(), HandlerError>;
}

/// How often and how patiently a failing delivery is retried before it is dead-lettered.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Deliveries in all, the first included.
    pub max_attempts: u32,
    /// Wait before the second delivery; doubled for each further one.
    pub first_backoff: Duration,
}

impl RetryPolicy {
    pub fn backoff(&self, failed_attempts: u32) -> Duration {
        self.first_backoff.saturating_mul(1 << failed_attempts.saturating_sub(1).min(16))
    }
}

/// Carries events from publishers to the queues bound to their routing keys.
///
/// Contract (checked for every implementation by the conformance suite):
/// - an event is delivered to every queue with a pattern matching its routing key
///   (`*` one word, `#` zero or more words), once per queue as long as handlers succeed;
/// - `publish` returns only once the event is safe with the bus (broker confirm; in process:
///   handled or dead-lettered by every bound queue) — so the outbox marks it sent only then;
/// - a failing delivery is retried with backoff, then dead-lettered to `<queue>.dlq`,
///   never retried forever, and later events still flow.
#[async_trait]
pub trait EventBus: Send + Sync {
    /// # Errors
    /// [`BusError::Unavailable`] when the event could not be handed over; publish again later.
    async fn publish(&self, event: &Envelope) -> Result<(), BusError>;

    /// Declares the durable `queue`, binds it to `patterns`, and delivers its events to
    /// `handler` from now on.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when the queue cannot be declared or consumed.
    async fn subscribe(&self, queue: &str, patterns: &[&str], handler: Arc<dyn EventHandler>) -> Result<(), BusError>;
}

/// Whether a topic `pattern` (`*` = one word, `#` = zero or more) matches `routing_key`.
pub fn topic_matches(pattern: &str, routing_key: &str) -> bool {
    fn matches(pattern: &[&str], key: &[&str]) -> bool {
        match (pattern.first(), key.first()) {
            (None, None) => true,
            (Some(&"#"), _) => matches(&pattern[1..], key) || (!key.is_empty() && matches(pattern, &key[1..])),
            (Some(&"*"), Some(_)) => matches(&pattern[1..], &key[1..]),
            (Some(p), Some(k)) if p == k => matches(&pattern[1..], &key[1..]),
            _ => false,
        }
    }
    let pattern: Vec<&str> = pattern.split('.').collect();
    let key: Vec<&str> = routing_key.split('.').collect();
    matches(&pattern, &key)
}

struct Queue {
    patterns: Vec<String>,
    handler: Arc<dyn EventHandler>,
}

/// The single binary's bus: `publish` runs every bound queue's handler (queues
/// concurrently), retrying failures with backoff; an event that exhausts its retries is
/// dead-lettered — logged in full at error level, counted, and kept for inspection.
/// Because `publish` returns only when every queue is done, the outbox row of an event
/// stays unsent until then, and a crash mid-way means redelivery, never loss.
pub struct InProcessBus {
    queues: RwLock<HashMap<String, Arc<Queue>>>,
    retry: RetryPolicy,
    dead_letters: std::sync::Mutex<HashMap<String, Vec<Envelope>>>,
}

impl InProcessBus {
    pub fn new(retry: RetryPolicy) -> Self {
        Self { queues: RwLock::new(HashMap::new()), retry, dead_letters: std::sync::Mutex::new(HashMap::new()) }
    }

    /// Events dead-lettered from `queue` (the in-process `<queue>.dlq`).
    pub fn dead_letters(&self, queue: &str) -> Vec<Envelope> {
        self.dead_letters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(queue)
            .cloned()
            .unwrap_or_default()
    }

    async fn deliver(&self, name: &str, queue: &Queue, event: &Envelope) {
        let mut attempt = 1;
        loop {
            match queue.handler.handle(event).await {
                Ok(()) => {
                    metrics::counter!("events_consumed_total", "queue" => name.to_owned()).increment(1);
                    return;
                }
                Err(e) if attempt < self.retry.max_attempts => {
                    tracing::warn!(queue = name, event_id = %event.event_id, attempt, error = %e, "event handler failed; retrying");
                    tokio::time::sleep(self.retry.backoff(attempt)).await;
                    attempt += 1;
                }
                Err(e) => {
                    tracing::error!(queue = name, event_id = %event.event_id, routing_key = %event.routing_key,
                        body = %event.body, error = %e, "event dead-lettered after {attempt} attempts");
                    metrics::counter!("events_dead_lettered_total", "queue" => name.to_owned()).increment(1);
                    self.dead_letters
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .entry(format!("{name}.dlq"))
                        .or_default()
                        .push(event.clone());
                    return;
                }
            }
        }
    }
}

#[async_trait]
impl EventBus for InProcessBus {
    async fn publish(&self, event: &Envelope) -> Result<(), BusError> {
        let bound: Vec<(String, Arc<Queue>)> = self
            .queues
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|(_, q)| q.patterns.iter().any(|p| topic_matches(p, &event.routing_key)))
            .map(|(name, q)| (name.clone(), Arc::clone(q)))
            .collect();
        futures_util::future::join_all(bound.iter().map(|(name, q)| self.deliver(name, q, event))).await;
        metrics::counter!("events_published_total", "routing_key" => event.routing_key.clone()).increment(1);
        Ok(())
    }

    async fn subscribe(&self, queue: &str, patterns: &[&str], handler: Arc<dyn EventHandler>) -> Result<(), BusError> {
        let entry = Queue { patterns: patterns.iter().map(|p| (*p).to_owned()).collect(), handler };
        self.queues
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(queue.to_owned(), Arc::new(entry));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::topic_matches;

    #[test]
    fn topic_patterns_match_like_amqp() {
        assert!(topic_matches("booking.created", "booking.created"));
        assert!(topic_matches("booking.*", "booking.cancelled"));
        assert!(!topic_matches("booking.*", "booking.cancelled.late"));
        assert!(topic_matches("#", "payment.completed"));
        assert!(topic_matches("booking.#", "booking"));
        assert!(topic_matches("*.completed", "payment.completed"));
        assert!(!topic_matches("payment.*", "booking.created"));
        assert!(topic_matches("#.refunded", "payment.refunded"));
    }
}
