//! The event bus of the split deployment: RabbitMQ through lapin.
//!
//! Topology (docs/api.md, "Events"): every event is published, persistent and with a publisher
//! confirm, to the durable topic exchange (`booking_events` in production; tests pass their
//! own name so parallel runs never cross). Each subscription declares its durable queue,
//! binds it to its patterns, and gives it a dead-letter exchange (`<exchange>.dlx`, direct)
//! that routes to the durable `<queue>.dlq`.
//!
//! Delivery: a message is acknowledged only after its handler returned `Ok` (the handler
//! commits its transaction, inbox row included, before returning). A failing delivery is
//! retried with the [`RetryPolicy`] backoff by republishing a copy that carries the attempt
//! number in the `x-attempts` header, and only then acknowledging the original — so a crash
//! in between means a duplicate (harmless: handlers are idempotent), never a loss. The
//! delivery that exhausts the budget is rejected without requeue, and RabbitMQ itself moves
//! it to `<queue>.dlq`. A body that is not an event cannot get better by retrying: it goes
//! straight to the dead-letter queue.
//!
//! Dead letters stay in `<queue>.dlq` until an operator replays them
//! ([`EventBus::replay`]): a fresh copy goes back to the queue, and the dead letter is
//! acknowledged once the broker confirmed the copy.
//!
//! Reconnection: a supervisor task watches the connection; when it drops (broker restart,
//! network cut, an operator closing it) `publish` fails fast with
//! [`BusError::Unavailable`] — the outbox relay simply tries again later — while the
//! supervisor reconnects with capped exponential backoff, re-declares the exchanges and
//! every subscription's queues and bindings, and starts consuming again. Unacknowledged
//! deliveries of the lost connection are redelivered by the broker.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer, ExchangeKind};
use tokio::sync::{Mutex, oneshot, watch};

use crate::events::{BusError, DeadLetter, Envelope, EventBus, EventHandler, Replay, RetryPolicy};
use crate::health::HealthCheck;
use crate::trace::TRACEPARENT;

/// Header carrying the number of the delivery attempt a message copy is (absent = 1).
pub const ATTEMPTS_HEADER: &str = "x-attempts";

/// Header carrying the event's ordering key ([`Envelope::ordering_key`]).
pub const ORDERING_KEY_HEADER: &str = "x-ordering-key";

/// Unacknowledged deliveries a consumer may hold, and so handle at once: deliveries with
/// the same ordering key (or none) are handled one after the other in delivery order, others
/// concurrently. Deliveries waiting out their retry backoff count too.
const PREFETCH: u16 = 16;

/// Ordering keys a consumer remembers before it forgets those with nothing in flight.
const KEYS_KEPT: usize = 1024;

/// How long `publish` waits for the broker's confirm before calling the bus unavailable
/// (a blocked connection — broker out of memory or disk — would otherwise hang the relay).
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

/// How long opening a connection (TCP, handshake, declarations), or declaring one queue with
/// its bindings and consumer, may take: a broker that drops packets instead of refusing them
/// would otherwise stall a start or a reconnection for minutes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Dead letters read per queue by one listing or replay.
const DEAD_LETTERS_MAX: usize = 10_000;

/// How often the supervisor looks at the connection state, besides listening to its events.
const WATCH_INTERVAL: Duration = Duration::from_millis(250);

/// Reconnection backoff: first wait, and the cap of the doubling.
const RECONNECT_FIRST: Duration = Duration::from_millis(200);
const RECONNECT_MAX: Duration = Duration::from_secs(10);

fn unavailable(e: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(e.to_string())
}

/// An AMQP short string (exchange, queue, routing key: at most 255 bytes).
fn short(s: &str) -> Result<ShortString, BusError> {
    ShortString::try_new(s).map_err(unavailable)
}

/// The dead-letter exchange that goes with `exchange`.
fn dead_letter_exchange(exchange: &str) -> String {
    format!("{exchange}.dlx")
}

/// The dead-letter queue of `queue`, as the REST contract names it (docs/api.md).
pub fn dead_letter_queue(queue: &str) -> String {
    format!("{queue}.dlq")
}

/// Which attempt a delivery is: the `x-attempts` header of a retried copy, else 1.
/// The trace context a message carries in its `traceparent` header, if any.
fn traceparent_of(properties: &BasicProperties) -> Option<String> {
    match properties.headers().as_ref()?.inner().get(TRACEPARENT)? {
        AMQPValue::LongString(value) => Some(value.to_string()),
        _ => None,
    }
}

fn ordering_key_of(properties: &BasicProperties) -> Option<String> {
    match properties.headers().as_ref()?.inner().get(ORDERING_KEY_HEADER)? {
        AMQPValue::LongString(value) => Some(value.to_string()),
        _ => None,
    }
}

fn attempt_of(properties: &BasicProperties) -> u32 {
    let value = properties.headers().as_ref().and_then(|h| h.inner().get(ATTEMPTS_HEADER).cloned());
    let n: Option<i64> = match value {
        Some(AMQPValue::ShortShortInt(n)) => Some(n.into()),
        Some(AMQPValue::ShortShortUInt(n)) => Some(n.into()),
        Some(AMQPValue::ShortInt(n)) => Some(n.into()),
        Some(AMQPValue::ShortUInt(n)) => Some(n.into()),
        Some(AMQPValue::LongInt(n)) => Some(n.into()),
        Some(AMQPValue::LongUInt(n)) => Some(n.into()),
        Some(AMQPValue::LongLongInt(n)) => Some(n),
        _ => None,
    };
    n.and_then(|n| u32::try_from(n).ok()).unwrap_or(1).max(1)
}

/// One live connection with its publishing channel. Cloned out of the bus's slot so no
/// lock is held while talking to the broker.
#[derive(Clone)]
struct Link {
    connection: Arc<Connection>,
    /// Publisher confirms number messages in the order their frames reach the channel; two
    /// concurrent `basic_publish` calls could interleave sequence registration and frame
    /// sending, so each publish holds this lock until its frames are handed over (never
    /// while waiting for the confirm).
    publisher: Arc<Mutex<Channel>>,
}

impl Link {
    fn is_up(&self) -> bool {
        self.connection.status().connected()
    }

    /// Publishes and waits for the broker's confirm. With `mandatory`, a message no queue
    /// took is an error (the broker returns it) instead of silently dropped.
    async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        mandatory: bool,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), BusError> {
        let exchange = short(exchange)?;
        let routing_key = short(routing_key)?;
        let confirm = {
            let channel = self.publisher.lock().await;
            channel
                .basic_publish(
                    exchange,
                    routing_key,
                    BasicPublishOptions { mandatory, ..Default::default() },
                    body,
                    properties,
                )
                .await
                .map_err(unavailable)?
        };
        match confirm.await.map_err(unavailable)? {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_)) => Err(BusError::Unavailable("no queue took the message".to_owned())),
            Confirmation::Nack(_) => Err(BusError::Unavailable("the broker refused the message (nack)".to_owned())),
            Confirmation::NotRequested => {
                Err(BusError::Unavailable("the publishing channel is not in confirm mode".to_owned()))
            }
        }
    }
}

/// A queue of the deployment, declared with `declare` (no handler: another process consumes
/// it) or `subscribe`; re-established after every reconnection.
struct Subscription {
    queue: String,
    patterns: Vec<String>,
    handler: Option<Arc<dyn EventHandler>>,
}

struct Inner {
    url: String,
    exchange: String,
    retry: RetryPolicy,
    connection_name: String,
    /// The current connection; `None` while reconnecting. A std lock: only ever held to
    /// clone or swap the `Link`, never across an await.
    link: RwLock<Option<Link>>,
    /// Every declared queue and subscription. Held across the broker round trips of
    /// declaring and consuming (declare, subscribe, reconnect) so a subscription is never set
    /// up twice on one connection nor missed by a reconnection; publishing never takes it.
    topology: Mutex<Vec<Arc<Subscription>>>,
}

/// [`EventBus`] on RabbitMQ; see the module documentation for the topology and guarantees.
pub struct RabbitBus {
    inner: Arc<Inner>,
    shutdown: watch::Sender<bool>,
}

impl RabbitBus {
    /// Connects, declares the durable topic `exchange` (normally
    /// `events.exchange`, `booking_events` by default) and its dead-letter exchange, opens the publishing
    /// channel in confirm mode, and starts the supervisor that reconnects after an outage.
    /// Must be called within a tokio runtime.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when the broker cannot be reached or refuses the
    /// declarations (e.g. `exchange` exists with another type).
    pub async fn connect(url: &str, exchange: &str, retry: RetryPolicy) -> Result<Self, BusError> {
        short(exchange)?;
        short(&dead_letter_exchange(exchange))?;
        let inner = Arc::new(Inner {
            url: url.to_owned(),
            exchange: exchange.to_owned(),
            retry,
            connection_name: format!("boxoffice:{exchange}:{}", uuid::Uuid::new_v4().simple()),
            link: RwLock::new(None),
            topology: Mutex::new(Vec::new()),
        });
        let link = inner.open_link().await?;
        inner.set_link(Some(link.clone()));
        let (shutdown, stopped) = watch::channel(false);
        tokio::spawn(supervise(Arc::downgrade(&inner), link, stopped));
        Ok(Self { inner, shutdown })
    }

    /// The name this bus gives its connection (client property `connection_name`), which
    /// identifies it in the RabbitMQ management UI and `rabbitmqctl list_connections`.
    pub fn connection_name(&self) -> &str {
        &self.inner.connection_name
    }

    /// The exchange this bus publishes to.
    pub fn exchange(&self) -> &str {
        &self.inner.exchange
    }

    /// Messages ready in `queue` (e.g. a `<queue>.dlq`), for operations and tests.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when the broker is unreachable or the queue does not exist.
    pub async fn message_count(&self, queue: &str) -> Result<u32, BusError> {
        let link = self.inner.current().ok_or_else(not_connected)?;
        // A passive declare of a missing queue closes its channel: use a throwaway one.
        let channel = link.connection.create_channel().await.map_err(unavailable)?;
        let declared = channel
            .queue_declare(
                short(queue)?,
                QueueDeclareOptions { passive: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .map_err(unavailable);
        let _closed = channel.close(200, "OK".into()).await;
        Ok(declared?.message_count())
    }
}

impl Drop for RabbitBus {
    fn drop(&mut self) {
        // The supervisor closes the connection, which ends every consumer.
        let _stopped = self.shutdown.send(true);
    }
}

/// What a message of `queue`'s dead-letter queue says about itself.
fn dead_letter_of(queue: &str, delivery: &Delivery) -> DeadLetter {
    let body: serde_json::Value = serde_json::from_slice(&delivery.data)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&delivery.data).into_owned()));
    let head = Envelope::from_body(body.clone()).ok();
    DeadLetter {
        queue: queue.to_owned(),
        event_id: head.as_ref().map_or(uuid::Uuid::nil(), |e| e.event_id),
        routing_key: head.map(|e| e.routing_key).unwrap_or_default(),
        attempts: attempt_of(&delivery.properties),
        error: None,
        dead_at: None,
        replay_requested_at: None,
        event: body,
    }
}

fn not_connected() -> BusError {
    BusError::Unavailable("not connected to RabbitMQ (reconnecting)".to_owned())
}

impl Inner {
    fn current(&self) -> Option<Link> {
        self.link.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone().filter(Link::is_up)
    }

    fn set_link(&self, link: Option<Link>) {
        // Every connect, loss and reconnect passes here: the gauge is whether a link is held.
        metrics::gauge!("amqp_connected").set(if link.is_some() { 1.0 } else { 0.0 });
        *self.link.write().unwrap_or_else(std::sync::PoisonError::into_inner) = link;
    }

    /// A new connection with the exchanges declared and the publishing channel in confirm
    /// mode; no subscriptions yet.
    async fn open_link(&self) -> Result<Link, BusError> {
        tokio::time::timeout(CONNECT_TIMEOUT, self.open_link_now())
            .await
            .map_err(|_| BusError::Unavailable(format!("no connection within {} s", CONNECT_TIMEOUT.as_secs())))?
    }

    async fn open_link_now(&self) -> Result<Link, BusError> {
        let properties =
            ConnectionProperties::default().with_connection_name(LongString::from(self.connection_name.as_str()));
        let connection = Connection::connect(&self.url, properties).await.map_err(unavailable)?;
        let channel = connection.create_channel().await.map_err(unavailable)?;
        channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(unavailable)?;
        let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
        channel
            .exchange_declare(short(&self.exchange)?, ExchangeKind::Topic, durable, FieldTable::default())
            .await
            .map_err(unavailable)?;
        channel
            .exchange_declare(
                short(&dead_letter_exchange(&self.exchange))?,
                ExchangeKind::Direct,
                durable,
                FieldTable::default(),
            )
            .await
            .map_err(unavailable)?;
        Ok(Link { connection: Arc::new(connection), publisher: Arc::new(Mutex::new(channel)) })
    }

    /// Declares `sub`'s queue, dead-letter queue and bindings on `link` and starts its
    /// consumer task when it has a handler. Idempotent on the broker side (same arguments
    /// every time).
    async fn start(&self, link: &Link, sub: &Arc<Subscription>) -> Result<(), BusError> {
        // Each step is a broker RPC that lapin awaits without a deadline: a broker (or a
        // connection) that stops answering would stall a process's start, or its
        // reconnection, for good instead of failing it.
        tokio::time::timeout(CONNECT_TIMEOUT, self.start_now(link, sub)).await.map_err(|_| {
            BusError::Unavailable(format!("declaring {} took over {} s", sub.queue, CONNECT_TIMEOUT.as_secs()))
        })?
    }

    async fn start_now(&self, link: &Link, sub: &Arc<Subscription>) -> Result<(), BusError> {
        let channel = link.connection.create_channel().await.map_err(unavailable)?;
        let queue = short(&sub.queue)?;
        let dlq = short(&dead_letter_queue(&sub.queue))?;
        let dlx = short(&dead_letter_exchange(&self.exchange))?;

        channel
            .queue_declare(dlq.clone(), QueueDeclareOptions::durable(), FieldTable::default())
            .await
            .map_err(unavailable)?;
        // The dead-letter exchange is direct; a queue's dead letters carry its name as
        // routing key (x-dead-letter-routing-key), whatever key they were published with.
        channel
            .queue_bind(dlq, dlx.clone(), queue.clone(), QueueBindOptions::default(), FieldTable::default())
            .await
            .map_err(unavailable)?;

        let mut arguments = FieldTable::default();
        arguments.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(dlx.as_str().into()));
        arguments.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(queue.as_str().into()));
        channel.queue_declare(queue.clone(), QueueDeclareOptions::durable(), arguments).await.map_err(unavailable)?;
        for pattern in &sub.patterns {
            channel
                .queue_bind(
                    queue.clone(),
                    short(&self.exchange)?,
                    short(pattern)?,
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(unavailable)?;
        }

        let Some(handler) = &sub.handler else {
            let _closed = channel.close(200, "OK".into()).await;
            return Ok(());
        };
        channel.basic_qos(PREFETCH, BasicQosOptions::default()).await.map_err(unavailable)?;
        let consumer = channel
            .basic_consume(queue, "".into(), BasicConsumeOptions::default(), FieldTable::default())
            .await
            .map_err(unavailable)?;
        tokio::spawn(consume(Arc::clone(sub), Arc::clone(handler), link.clone(), self.retry, consumer));
        Ok(())
    }

    /// The queues declared on this bus (with or without a consumer here).
    async fn queue_names(&self) -> Vec<String> {
        self.topology.lock().await.iter().map(|sub| sub.queue.clone()).collect()
    }

    /// Takes every message of `queue`'s dead-letter queue on a throwaway channel, gives each
    /// to `visit` (which acknowledges the ones it consumes, and says so), then closes the
    /// channel, which hands every unacknowledged message back to the dead-letter queue in its
    /// order. Returns how many `visit` consumed.
    async fn each_dead_letter<F, Fut>(&self, queue: &str, mut visit: F) -> Result<u64, BusError>
    where
        F: FnMut(Delivery) -> Fut,
        Fut: std::future::Future<Output = Result<bool, BusError>>,
    {
        let link = self.current().ok_or_else(not_connected)?;
        let channel = link.connection.create_channel().await.map_err(unavailable)?;
        let dlq = short(&dead_letter_queue(queue))?;
        let mut outcome = Ok(0);
        // Only the messages there at the first get: a replayed event that fails again comes
        // back to the tail meanwhile, and must not be taken (and replayed) twice in one go.
        let mut behind: Option<u32> = None;
        for _ in 0..DEAD_LETTERS_MAX {
            if behind == Some(0) {
                break;
            }
            match channel.basic_get(dlq.clone(), BasicGetOptions { no_ack: false }).await {
                Ok(Some(message)) => match visit({
                    behind = Some(behind.map_or(message.message_count, |n| n.saturating_sub(1)));
                    message.delivery
                })
                .await
                {
                    Ok(consumed) => outcome = outcome.map(|n| n + u64::from(consumed)),
                    Err(e) => {
                        outcome = Err(e);
                        break;
                    }
                },
                Ok(None) => break,
                Err(e) => {
                    outcome = Err(unavailable(e));
                    break;
                }
            }
        }
        let _closed = channel.close(200, "OK".into()).await;
        outcome
    }

    /// Adds a queue to the topology and sets it up on the current connection; a queue
    /// declared before is replaced by its subscription.
    async fn add(
        &self,
        queue: &str,
        patterns: &[&str],
        handler: Option<Arc<dyn EventHandler>>,
    ) -> Result<(), BusError> {
        let sub = Arc::new(Subscription {
            queue: queue.to_owned(),
            patterns: patterns.iter().map(|p| (*p).to_owned()).collect(),
            handler,
        });
        let mut topology = self.topology.lock().await;
        if sub.handler.is_none() && topology.iter().any(|known| known.queue == sub.queue) {
            return Ok(());
        }
        let link = self.current().ok_or_else(not_connected)?;
        self.start(&link, &sub).await?;
        topology.retain(|known| known.queue != sub.queue || known.handler.is_some());
        topology.push(sub);
        Ok(())
    }

    /// Opens a new connection and re-establishes every subscription on it.
    async fn reconnect(&self) -> Result<Link, BusError> {
        let link = self.open_link().await?;
        let subscriptions = self.topology.lock().await;
        for sub in subscriptions.iter() {
            if let Err(e) = self.start(&link, sub).await {
                let _closed = link.connection.close(200, "OK".into()).await;
                return Err(e);
            }
        }
        self.set_link(Some(link.clone()));
        Ok(link)
    }
}

/// Watches the connection and replaces it when it drops, until the bus is dropped.
async fn supervise(inner: Weak<Inner>, mut link: Link, mut stopped: watch::Receiver<bool>) {
    loop {
        let mut events = link.connection.events_listener();
        // Wait until the connection is gone (or the bus is dropped).
        loop {
            tokio::select! {
                _ = stopped.changed() => {
                    let _closed = link.connection.close(200, "OK".into()).await;
                    return;
                }
                Some(_) = events.next() => {}
                () = tokio::time::sleep(WATCH_INTERVAL) => {}
            }
            if !link.is_up() {
                break;
            }
        }
        drop(events);
        let Some(bus) = inner.upgrade() else { return };
        bus.set_link(None);
        tracing::warn!(connection = %bus.connection_name, "RabbitMQ connection lost; reconnecting");
        metrics::counter!("amqp_connection_lost_total").increment(1);
        let mut backoff = RECONNECT_FIRST;
        link = loop {
            match bus.reconnect().await {
                Ok(link) => break link,
                Err(e) => {
                    tracing::warn!(connection = %bus.connection_name, error = %e, retry_in_ms = backoff.as_millis(),
                        "RabbitMQ reconnection failed");
                }
            }
            tokio::select! {
                _ = stopped.changed() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(RECONNECT_MAX);
        };
        tracing::info!(connection = %bus.connection_name, "RabbitMQ connection re-established");
        drop(bus);
    }
}

/// Handles `sub`'s deliveries one at a time until the consumer ends (connection lost or
/// consumer cancelled); the supervisor starts a new one after reconnecting.
async fn consume(
    sub: Arc<Subscription>,
    handler: Arc<dyn EventHandler>,
    link: Link,
    retry: RetryPolicy,
    mut consumer: Consumer,
) {
    // Per ordering key, the end of its latest delivery's handling: each delivery's task waits
    // for its predecessor's, so one key's deliveries are handled in delivery order while the
    // loop goes on to other keys' (the prefetch bounds how many are in flight).
    let mut latest: HashMap<Option<String>, oneshot::Receiver<()>> = HashMap::new();
    while let Some(delivery) = consumer.next().await {
        match delivery {
            Ok(delivery) => {
                if latest.len() > KEYS_KEPT {
                    latest.retain(|_, done| matches!(done.try_recv(), Err(oneshot::error::TryRecvError::Empty)));
                }
                let (done, handled) = oneshot::channel();
                let previous = latest.insert(ordering_key_of(&delivery.properties), handled);
                let (sub, handler, link) = (Arc::clone(&sub), Arc::clone(&handler), link.clone());
                tokio::spawn(async move {
                    if let Some(previous) = previous {
                        // An error is a predecessor that ended without saying so: go on too.
                        previous.await.ok();
                    }
                    handle_delivery(&sub, handler.as_ref(), &link, retry, delivery).await;
                    done.send(()).ok();
                });
            }
            Err(e) => {
                tracing::warn!(queue = %sub.queue, error = %e, "RabbitMQ consumer stopped");
                return;
            }
        }
    }
    // Cancelled by the broker (queue deleted); consuming resumes after the next reconnection.
    tracing::warn!(queue = %sub.queue, "RabbitMQ consumer cancelled");
}

async fn handle_delivery(
    sub: &Arc<Subscription>,
    handler: &dyn EventHandler,
    link: &Link,
    retry: RetryPolicy,
    delivery: Delivery,
) {
    let queue = sub.queue.as_str();
    let parsed = serde_json::from_slice(&delivery.data).and_then(Envelope::from_body);
    let event = match parsed {
        Ok(event) => event,
        Err(e) => {
            tracing::error!(queue, bytes = delivery.data.len(), error = %e, "undecodable message dead-lettered");
            dead_letter(queue, &delivery).await;
            return;
        }
    };
    let event = Envelope { traceparent: traceparent_of(&delivery.properties), ..event };
    let attempt = attempt_of(&delivery.properties);
    // A failing (or panicking) handler's delivery is retried, and the consumer lives on.
    match crate::events::handle_traced(queue, handler, &event).await {
        Ok(()) => {
            if let Err(e) = delivery.acker.ack(BasicAckOptions::default()).await {
                // Not acknowledged: the broker redelivers; the handler's inbox makes that harmless.
                tracing::warn!(queue, event_id = %event.event_id, error = %e, "ack failed; the event will be redelivered");
            }
        }
        Err(e) if attempt < retry.max_attempts => {
            tracing::warn!(queue, event_id = %event.event_id, attempt, error = %crate::error::chain(&e), "event handler failed; retrying");
            // The wait happens off the consumer loop so later events keep flowing; the
            // original stays unacknowledged (and safe with the broker) until its copy is.
            tokio::spawn(retry_later(Arc::clone(sub), link.clone(), retry, delivery, attempt));
        }
        Err(e) => {
            tracing::error!(queue, event_id = %event.event_id, routing_key = %event.routing_key,
                error = %crate::error::chain(&e), "event dead-lettered after {attempt} attempts");
            dead_letter(queue, &delivery).await;
        }
    }
}

/// Rejects `delivery` without requeue: RabbitMQ moves it to `<queue>.dlq`.
async fn dead_letter(queue: &str, delivery: &Delivery) {
    metrics::counter!("events_dead_lettered_total", "queue" => queue.to_owned()).increment(1);
    if let Err(e) = delivery.acker.nack(BasicNackOptions { multiple: false, requeue: false }).await {
        tracing::warn!(queue, error = %e, "nack failed; the message will be redelivered");
    }
}

/// After the backoff, republishes a copy of `delivery` (attempt + 1) straight to its queue
/// through the default exchange, and acknowledges the original once the copy is confirmed.
async fn retry_later(sub: Arc<Subscription>, link: Link, retry: RetryPolicy, delivery: Delivery, attempt: u32) {
    tokio::time::sleep(retry.backoff(attempt)).await;
    let queue = sub.queue.as_str();
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    headers.insert(ATTEMPTS_HEADER.into(), AMQPValue::LongLongInt((attempt + 1).into()));
    let properties = delivery.properties.clone().with_headers(headers).with_delivery_mode(2);
    match link.publish("", queue, true, &delivery.data, properties).await {
        Ok(()) => {
            if let Err(e) = delivery.acker.ack(BasicAckOptions::default()).await {
                tracing::warn!(queue, error = %e, "ack of a retried message failed; it may be delivered once more");
            }
        }
        Err(e) => {
            // Hand it back to the broker: redelivered with the same attempt number.
            tracing::warn!(queue, error = %e, "could not requeue a failed delivery for retry");
            if let Err(e) = delivery.acker.nack(BasicNackOptions { multiple: false, requeue: true }).await {
                tracing::warn!(queue, error = %e, "nack failed; the broker redelivers after reconnection");
            }
        }
    }
}

#[async_trait]
impl EventBus for RabbitBus {
    async fn publish(&self, event: &Envelope) -> Result<(), BusError> {
        // Not connected: fail at once; the outbox relay keeps the event and tries again.
        let link = self.inner.current().ok_or_else(not_connected)?;
        let body = serde_json::to_vec(&event.body).map_err(unavailable)?;
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(event.event_id.to_string().into())
            .with_type(short(&event.routing_key)?)
            .with_timestamp(u64::try_from(event.occurred_at.timestamp()).unwrap_or(0));
        let mut headers = FieldTable::default();
        for (name, value) in [(TRACEPARENT, &event.traceparent), (ORDERING_KEY_HEADER, &event.ordering_key)] {
            if let Some(value) = value {
                headers.insert(name.into(), AMQPValue::LongString(value.as_str().into()));
            }
        }
        let properties = properties.with_headers(headers);
        // Mandatory: every queue of the deployment is declared before anything is published,
        // so an event no queue takes is a misconfiguration to surface (the outbox keeps it),
        // never a message to drop.
        tokio::time::timeout(
            PUBLISH_TIMEOUT,
            link.publish(&self.inner.exchange, &event.routing_key, true, &body, properties),
        )
        .await
        .map_err(|_| BusError::Unavailable(format!("no publisher confirm within {} s", PUBLISH_TIMEOUT.as_secs())))??;
        metrics::counter!("events_published_total", "routing_key" => event.routing_key.clone()).increment(1);
        Ok(())
    }

    async fn declare(&self, queue: &str, patterns: &[&str]) -> Result<(), BusError> {
        self.inner.add(queue, patterns, None).await
    }

    async fn subscribe(&self, queue: &str, patterns: &[&str], handler: Arc<dyn EventHandler>) -> Result<(), BusError> {
        self.inner.add(queue, patterns, Some(handler)).await
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, BusError> {
        let mut letters = Vec::new();
        for queue in self.inner.queue_names().await {
            self.inner
                .each_dead_letter(&queue, |delivery| {
                    letters.push(dead_letter_of(&queue, &delivery));
                    std::future::ready(Ok(false))
                })
                .await?;
        }
        Ok(letters)
    }

    async fn replay(&self, which: Replay) -> Result<u64, BusError> {
        let link = self.inner.current().ok_or_else(not_connected)?;
        let mut replayed = 0;
        for queue in self.inner.queue_names().await {
            let link = &link;
            let queue = queue.as_str();
            replayed += self
                .inner
                .each_dead_letter(queue, |delivery| async move {
                    if !which.covers(dead_letter_of(queue, &delivery).event_id) {
                        return Ok(false);
                    }
                    // A fresh copy (attempts from 1) straight to its queue; the dead letter
                    // goes only once the broker has confirmed the copy.
                    let mut headers = FieldTable::default();
                    for (key, value) in delivery.properties.headers().iter().flat_map(|h| h.inner()) {
                        if key.as_str() != ATTEMPTS_HEADER && !key.as_str().starts_with("x-death") {
                            headers.insert(key.clone(), value.clone());
                        }
                    }
                    let properties = delivery.properties.clone().with_headers(headers).with_delivery_mode(2);
                    link.publish("", queue, true, &delivery.data, properties).await?;
                    delivery.acker.ack(BasicAckOptions::default()).await.map_err(unavailable)?;
                    Ok(true)
                })
                .await?;
        }
        Ok(replayed)
    }
}

#[async_trait]
impl HealthCheck for RabbitBus {
    fn name(&self) -> &str {
        "rabbitmq"
    }

    async fn check(&self) -> Result<(), String> {
        match self.inner.current() {
            Some(_) => Ok(()),
            None => Err("not connected (reconnecting)".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_attempt_number_comes_from_the_header() {
        assert_eq!(attempt_of(&BasicProperties::default()), 1);
        for value in [AMQPValue::LongLongInt(3), AMQPValue::LongInt(3), AMQPValue::ShortShortUInt(3)] {
            let mut headers = FieldTable::default();
            headers.insert(ATTEMPTS_HEADER.into(), value);
            assert_eq!(attempt_of(&BasicProperties::default().with_headers(headers)), 3);
        }
        let mut headers = FieldTable::default();
        headers.insert(ATTEMPTS_HEADER.into(), AMQPValue::LongString("x".into()));
        assert_eq!(attempt_of(&BasicProperties::default().with_headers(headers)), 1);
    }

    #[test]
    fn dead_letter_names_follow_api_md() {
        assert_eq!(dead_letter_queue("movie_queue"), "movie_queue.dlq");
        assert_eq!(dead_letter_exchange("booking_events"), "booking_events.dlx");
    }
}
