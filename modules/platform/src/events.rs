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

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

// The bus itself (port, handler, in-process implementation) needs the server stack; the
// envelope, the event enums' trait and the queue specs do not (a module's api uses them).
#[cfg(feature = "server")]
mod bus;
#[cfg(feature = "server")]
pub use crate::dead_letters::{DeadLetter, DeadLetterStore, Replay};
#[cfg(feature = "server")]
pub use bus::*;

/// One event: its routing key and the JSON document of docs/api.md ("Events"), which always carries
/// `event_id`, `occurred_at` and `type` (= the routing key) besides the event's own fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub event_id: Uuid,
    pub routing_key: String,
    pub occurred_at: DateTime<Utc>,
    pub body: Value,
    /// The W3C trace context of the span that published it, when traces are on. It travels
    /// beside the document (an outbox column, an AMQP header), never in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// What the event is about, as the outbox relay orders by (a booking's id): a bus that
    /// handles a queue's deliveries concurrently keeps the order of those with the same key
    /// (and of those without one). Beside the document too (an AMQP header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering_key: Option<String>,
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
        Ok(Self {
            event_id,
            routing_key: routing_key.to_owned(),
            occurred_at,
            body,
            traceparent: None,
            ordering_key: None,
        })
    }

    /// A new event announcing `event`, under the routing key its variant names.
    ///
    /// # Errors
    /// `event` does not serialize to a JSON object.
    pub fn of<E: Event>(event: &E) -> Result<Self, serde_json::Error> {
        Self::new(event.routing_key(), event)
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
        Ok(Self {
            event_id: head.event_id,
            routing_key: head.kind,
            occurred_at: head.occurred_at,
            body,
            traceparent: None,
            ordering_key: None,
        })
    }

    /// The event's fields as `T`.
    ///
    /// # Errors
    /// The document does not match `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_value(self.body.clone())
    }
}

/// The events one module publishes: an enum with one variant per routing key, internally
/// tagged by `type` (which the wire format already carries, equal to the routing key), so a
/// variant's payload cannot travel under another variant's key.
///
/// Versioning: a variant's fields may grow (consumers ignore fields they do not know, and a
/// field added later is optional or defaulted, so rows already in outboxes and inboxes still
/// decode); removing or renaming a field, or changing its meaning, needs a new variant under
/// a new routing key (e.g. `booking.created.v2`), published alongside the old one until no
/// consumer reads the old one.
pub trait Event: Serialize + DeserializeOwned + Send + Sync {
    /// Every routing key the enum publishes, one per variant.
    const KEYS: &'static [&'static str];

    /// This event's routing key (equal to its serialized `type`).
    fn routing_key(&self) -> &'static str;
}

/// Declares a publisher's [`Event`] enum from one line per variant,
/// `CONST = "routing.key" => Variant(Payload)`: the key is written once, and becomes the
/// variant's serde tag, the associated constant consumers bind with, and its
/// [`Event::routing_key`]. The invoking crate depends on `serde`.
#[macro_export]
macro_rules! events {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $key_const:ident = $key:literal => $variant:ident($payload:ty), )+
        }
    ) => {
        $(#[$meta])*
        #[derive(serde::Serialize, serde::Deserialize)]
        #[serde(tag = "type")]
        $vis enum $name {
            $( $(#[$vmeta])* #[serde(rename = $key)] $variant($payload), )+
        }

        impl $name {
            $( pub const $key_const: &'static str = $key; )+
        }

        impl $crate::events::Event for $name {
            const KEYS: &'static [&'static str] = &[$(Self::$key_const),+];

            fn routing_key(&self) -> &'static str {
                match self {
                    $( Self::$variant(_) => Self::$key_const, )+
                }
            }
        }
    };
}

/// A queue a module consumes: its name (before `events.queue_prefix`) and the routing-key
/// patterns bound to it. Every module crate names its queue in its API, so any process can
/// declare the whole deployment's queues before it publishes.
///
/// One scheme for all: module `m` consumes `m::api::QUEUE`, named `m_queue`, whose patterns
/// are the publishers' key constants (`BookingEvent::CANCELLED`, never a literal); its handler
/// is `<Publisher>Events` in `m/src/service/events.rs`, handed out by the service's
/// `events_handler()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSpec {
    pub name: &'static str,
    pub patterns: &'static [&'static str],
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
