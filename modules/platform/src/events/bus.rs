//! The bus: the port modules publish to and consume from, the handler a consumer registers,
//! and the in-process implementation (the single binary). RabbitMQ's is `crate::amqp`.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::FutureExt;
use sea_orm::DbErr;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Envelope, topic_matches};
use crate::dead_letters::{DeadLetter, DeadLetterStore, Replay};
use crate::error::chain;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The broker cannot be reached or refused the message; nothing is known to be sent.
    #[error("event bus unavailable: {0}")]
    Unavailable(String),
}

/// Why a handler could not handle an event, with its cause. Whatever the variant, the
/// delivery is retried with backoff, then dead-lettered: a failure that looks permanent (an
/// unreadable payload) may be a consumer older than its publisher, which a deployment fixes,
/// and a dead letter can be replayed then.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("database")]
    Database(#[from] sea_orm::DbErr),
    /// The payload is not what its routing key promises.
    #[error("unreadable event")]
    Unreadable(#[from] serde_json::Error),
    /// Anything else: what failed and why.
    #[error(transparent)]
    Failed(#[from] crate::error::Failure),
}

impl HandlerError {
    /// A failure with no underlying error (an event the handler has no use for, a panic).
    pub fn msg(context: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        Self::Failed(crate::error::Failure::msg(context))
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

/// One delivery of `event` from `queue` to `handler`, in a consumer span that continues the
/// publisher's trace, counted in `events_consumed_total` when handled and timed in
/// `event_delivery_lag_seconds` (from the event's occurrence to this delivery). Both buses
/// deliver through it. A panicking handler is a failing one.
pub(crate) async fn handle_traced(
    queue: &str,
    handler: &dyn EventHandler,
    event: &Envelope,
) -> Result<(), HandlerError> {
    // A clock behind the publisher's reads as no lag, not as an error.
    let lag = (chrono::Utc::now() - event.occurred_at).to_std().map_or(0.0, |d| d.as_secs_f64());
    metrics::histogram!("event_delivery_lag_seconds", "queue" => queue.to_owned()).record(lag);
    let span = tracing::info_span!(
        "consume",
        otel.name = %format_args!("{} process", event.routing_key),
        otel.kind = "consumer",
        trace_id = tracing::field::Empty,
        messaging.destination.name = %event.routing_key,
        messaging.consumer.group.name = queue,
        messaging.message.id = %event.event_id,
    );
    crate::trace::follow(&span, event.traceparent.as_deref());
    let outcome = AssertUnwindSafe(handler.handle(event).instrument(span))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| Err(HandlerError::msg("the event handler panicked")));
    if outcome.is_ok() {
        metrics::counter!("events_consumed_total", "queue" => queue.to_owned()).increment(1);
    }
    outcome
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
///   handled or durably dead-lettered by every bound queue) — so the outbox marks it sent only
///   then; an event that no declared queue is bound to is refused (`Unavailable`), never dropped;
/// - a failing delivery is retried with backoff, then dead-lettered to `<queue>.dlq`,
///   never retried forever, and later events still flow.
#[async_trait]
pub trait EventBus: Send + Sync {
    /// # Errors
    /// [`BusError::Unavailable`] when the event could not be handed over; publish again later.
    async fn publish(&self, event: &Envelope) -> Result<(), BusError>;

    /// Declares the durable `queue` (and its dead-letter queue) bound to `patterns`, without
    /// consuming it: events published from now on wait in it for its consumer, whichever
    /// process that is and whenever it starts. The composition root declares every queue of
    /// the deployment before any outbox relay publishes.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when the queue cannot be declared.
    async fn declare(&self, queue: &str, patterns: &[&str]) -> Result<(), BusError>;

    /// Declares the durable `queue`, binds it to `patterns`, and delivers its events to
    /// `handler` from now on.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when the queue cannot be declared or consumed.
    async fn subscribe(&self, queue: &str, patterns: &[&str], handler: Arc<dyn EventHandler>) -> Result<(), BusError>;

    /// The dead letters of every queue declared on this bus, oldest first.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when they cannot be read.
    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, BusError>;

    /// Sends the dead letters `which` names back to their queues' consumers; returns how many
    /// were sent back (0: none matched). Delivery then follows the usual retry policy.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when they cannot be reached.
    async fn replay(&self, which: Replay) -> Result<u64, BusError>;
}

struct Queue {
    patterns: Vec<String>,
    /// `None` while the queue is declared and no consumer of this process has subscribed.
    handler: Option<Arc<dyn EventHandler>>,
}

/// How a delivery to one queue ended.
enum Delivered {
    Handled,
    DeadLettered,
}

/// The single binary's bus: `publish` runs every bound queue's handler (queues
/// concurrently), retrying failures with backoff; an event that exhausts its retries is
/// dead-lettered into the durable [`DeadLetterStore`] (and counted), from where an operator
/// replays it. Because `publish` returns `Ok` only once every bound queue has handled the
/// event or durably dead-lettered it, the outbox row stays unsent until then: a crash
/// mid-way means redelivery, never loss. An event no queue is bound to, or one bound to a
/// declared queue whose consumer has not subscribed yet, is refused, never dropped.
pub struct InProcessBus {
    queues: RwLock<HashMap<String, Queue>>,
    retry: RetryPolicy,
    dead_letters: DeadLetterStore,
    replays: Arc<Notify>,
    stop: CancellationToken,
}

impl InProcessBus {
    /// A bus keeping its dead letters in `dead_letters`. Starts the task that delivers the
    /// dead letters an operator asks to replay (looking every `replay_poll`, and at once
    /// after [`EventBus::replay`]); it ends when the bus is dropped. Must be called within a
    /// tokio runtime.
    pub fn new(retry: RetryPolicy, dead_letters: DeadLetterStore, replay_poll: Duration) -> Arc<Self> {
        let bus = Arc::new(Self {
            queues: RwLock::new(HashMap::new()),
            retry,
            dead_letters,
            replays: Arc::new(Notify::new()),
            stop: CancellationToken::new(),
        });
        tokio::spawn(run_replays(Arc::downgrade(&bus), Arc::clone(&bus.replays), bus.stop.clone(), replay_poll));
        bus
    }

    fn handler_of(&self, queue: &str) -> Option<Arc<dyn EventHandler>> {
        self.queues.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(queue)?.handler.clone()
    }

    async fn deliver(&self, name: &str, handler: &dyn EventHandler, event: &Envelope) -> Result<Delivered, BusError> {
        let mut attempt = 1;
        loop {
            match handle_traced(name, handler, event).await {
                Ok(()) => return Ok(Delivered::Handled),
                Err(e) if attempt < self.retry.max_attempts => {
                    tracing::warn!(queue = name, event_id = %event.event_id, attempt, error = %chain(&e), "event handler failed; retrying");
                    tokio::time::sleep(self.retry.backoff(attempt)).await;
                    attempt += 1;
                }
                Err(e) => {
                    let error = chain(&e).to_string();
                    // Not recorded means not delivered: publish fails and the outbox keeps the event.
                    self.dead_letters
                        .record(name, event, attempt, &error)
                        .await
                        .map_err(|db| BusError::Unavailable(format!("dead letter of {name} not recorded: {db}")))?;
                    tracing::error!(queue = name, event_id = %event.event_id, routing_key = %event.routing_key,
                        error, "event dead-lettered after {attempt} attempts");
                    metrics::counter!("events_dead_lettered_total", "queue" => name.to_owned()).increment(1);
                    return Ok(Delivered::DeadLettered);
                }
            }
        }
    }

    /// Delivers the dead letters whose replay was asked for and whose queue consumes here;
    /// a handled one is forgotten, a failing one is dead-lettered again.
    async fn replay_requested(&self) -> Result<(), DbErr> {
        for letter in self.dead_letters.requested().await? {
            let Some(handler) = self.handler_of(&letter.queue) else { continue };
            let event = match Envelope::from_body(letter.event.clone()) {
                Ok(event) => event,
                Err(e) => {
                    tracing::error!(queue = %letter.queue, event_id = %letter.event_id, error = %e, "unreadable dead letter left as is");
                    continue;
                }
            };
            match self.deliver(&letter.queue, handler.as_ref(), &event).await {
                Ok(Delivered::Handled) => {
                    self.dead_letters.forget(&letter.queue, letter.event_id).await?;
                    tracing::info!(queue = %letter.queue, event_id = %letter.event_id, "dead letter replayed");
                }
                Ok(Delivered::DeadLettered) => {}
                Err(e) => tracing::warn!(queue = %letter.queue, error = %e, "dead letter replay failed"),
            }
        }
        Ok(())
    }
}

impl Drop for InProcessBus {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn run_replays(bus: Weak<InProcessBus>, wake: Arc<Notify>, stop: CancellationToken, poll: Duration) {
    loop {
        if crate::tasks::pause(&stop, &wake, poll).await == crate::tasks::Resume::Stop {
            return;
        }
        let Some(bus) = bus.upgrade() else { return };
        if let Err(e) = bus.replay_requested().await {
            tracing::warn!(error = %e, "dead letter replay pass failed");
        }
    }
}

#[async_trait]
impl EventBus for InProcessBus {
    async fn publish(&self, event: &Envelope) -> Result<(), BusError> {
        let bound: Vec<(String, Option<Arc<dyn EventHandler>>)> = self
            .queues
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|(_, q)| q.patterns.iter().any(|p| topic_matches(p, &event.routing_key)))
            .map(|(name, q)| (name.clone(), q.handler.clone()))
            .collect();
        if bound.is_empty() {
            return Err(BusError::Unavailable(format!("no queue is bound to {}", event.routing_key)));
        }
        let mut handlers = Vec::with_capacity(bound.len());
        for (name, handler) in bound {
            let handler = handler.ok_or_else(|| BusError::Unavailable(format!("queue {name} has no consumer yet")))?;
            handlers.push((name, handler));
        }
        let delivered = futures_util::future::join_all(
            handlers.iter().map(|(name, handler)| self.deliver(name, handler.as_ref(), event)),
        )
        .await;
        delivered.into_iter().collect::<Result<Vec<_>, _>>()?;
        metrics::counter!("events_published_total", "routing_key" => event.routing_key.clone()).increment(1);
        Ok(())
    }

    async fn declare(&self, queue: &str, patterns: &[&str]) -> Result<(), BusError> {
        let mut queues = self.queues.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = queues.entry(queue.to_owned()).or_insert_with(|| Queue { patterns: Vec::new(), handler: None });
        entry.patterns = patterns.iter().map(|p| (*p).to_owned()).collect();
        Ok(())
    }

    async fn subscribe(&self, queue: &str, patterns: &[&str], handler: Arc<dyn EventHandler>) -> Result<(), BusError> {
        let entry = Queue { patterns: patterns.iter().map(|p| (*p).to_owned()).collect(), handler: Some(handler) };
        self.queues.write().unwrap_or_else(std::sync::PoisonError::into_inner).insert(queue.to_owned(), entry);
        // Dead letters asked to be replayed while no consumer was here can go now.
        self.replays.notify_one();
        Ok(())
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, BusError> {
        self.dead_letters.list().await.map_err(|e| BusError::Unavailable(format!("dead letters: {e}")))
    }

    async fn replay(&self, which: Replay) -> Result<u64, BusError> {
        let requested = self
            .dead_letters
            .request_replay(which)
            .await
            .map_err(|e| BusError::Unavailable(format!("dead letters: {e}")))?;
        self.replays.notify_one();
        Ok(requested)
    }
}
