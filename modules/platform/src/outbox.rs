//! The transactional outbox and inbox every module of the event backbone uses, in its own
//! schema.
//!
//! - A publisher calls [`enqueue`] inside the transaction that makes the change the event
//!   announces: the event is committed with the change or not at all. The [`OutboxRelay`]
//!   publishes committed rows after the fact and marks them sent once the bus has them, so a
//!   broker outage delays events and loses none.
//! - A consumer calls [`first_delivery`] inside the transaction of its effect: it records the
//!   event id, and says whether this is the first time; a redelivery then changes nothing.
//!
//! The table shapes ([`outbox_table`], [`inbox_table`]) are used by each module's migration.
//! [`run_retention`] forgets sent outbox rows and inbox records after `events.retention_hours`,
//! so neither table grows forever.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use sea_orm::sea_query::{
    Alias, ColumnDef, Expr, ExprTrait, Index, IndexCreateStatement, OnConflict, Order, Query, Table,
    TableAlterStatement, TableCreateStatement,
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use tracing::Instrument;

use crate::events::{BusError, Envelope, Event, EventBus};

const OUTBOX: &str = "outbox_events";
const INBOX: &str = "inbox_events";

fn name(s: &str) -> Alias {
    Alias::new(s)
}

/// The outbox table: one row per event, `published_at` set once the bus has it.
pub fn outbox_table() -> TableCreateStatement {
    Table::create()
        .table(name(OUTBOX))
        .col(ColumnDef::new(name("event_id")).uuid().not_null().primary_key())
        .col(ColumnDef::new(name("routing_key")).string_len(100).not_null())
        .col(ColumnDef::new(name("body")).text().not_null())
        .col(ColumnDef::new(name("occurred_at")).timestamp_with_time_zone().not_null())
        .col(ColumnDef::new(name("published_at")).timestamp_with_time_zone().null())
        .col(ColumnDef::new(name("attempts")).integer().not_null().default(0))
        .col(ColumnDef::new(name("last_error")).text().null())
        .to_owned()
}

/// The `traceparent` column (added after the table's first version): the trace context of
/// the transaction that wrote the row, so the relay's publish continues its trace.
pub fn outbox_traceparent() -> TableAlterStatement {
    Table::alter().table(name(OUTBOX)).add_column(ColumnDef::new(name("traceparent")).string_len(64).null()).to_owned()
}

/// The relay's index: unsent rows in order.
pub fn outbox_index() -> IndexCreateStatement {
    Index::create()
        .name("outbox_events_unsent_idx")
        .table(name(OUTBOX))
        .col(name("published_at"))
        .col(name("occurred_at"))
        .to_owned()
}

/// The inbox table: `(event_id, consumer)` of every event a consumer has handled.
pub fn inbox_table() -> TableCreateStatement {
    Table::create()
        .table(name(INBOX))
        .col(ColumnDef::new(name("event_id")).uuid().not_null())
        .col(ColumnDef::new(name("consumer")).string_len(100).not_null())
        .col(ColumnDef::new(name("handled_at")).timestamp_with_time_zone().not_null())
        .primary_key(Index::create().col(name("event_id")).col(name("consumer")))
        .to_owned()
}

/// The index [`purge`] deletes old inbox records by.
pub fn inbox_index() -> IndexCreateStatement {
    Index::create().name("inbox_events_handled_idx").table(name(INBOX)).col(name("handled_at")).to_owned()
}

/// Deletes outbox rows published before `before` (when the module has an outbox) and inbox
/// records of events handled before it; returns how many rows went. Unsent events are never
/// deleted.
///
/// # Errors
/// Database failures.
pub async fn purge(db: &impl ConnectionTrait, before: DateTime<Utc>, outbox: bool) -> Result<u64, DbErr> {
    let mut purged = 0;
    if outbox {
        let sent = Query::delete()
            .from_table(name(OUTBOX))
            .and_where(Expr::col(name("published_at")).is_not_null())
            .and_where(Expr::col(name("published_at")).lt(before))
            .to_owned();
        purged += db.execute(&sent).await?.rows_affected();
    }
    let handled =
        Query::delete().from_table(name(INBOX)).and_where(Expr::col(name("handled_at")).lt(before)).to_owned();
    purged += db.execute(&handled).await?.rows_affected();
    Ok(purged)
}

/// Purges `module`'s outbox (if `outbox`) and inbox of what is older than `keep`, at start and
/// then hourly, until `stop`. The inbox must remember an event longer than any redelivery of
/// it can take: `events.retention_hours` is at least a day.
pub async fn run_retention(
    module: &'static str,
    db: DatabaseConnection,
    keep: chrono::Duration,
    outbox: bool,
    stop: CancellationToken,
) {
    crate::tasks::every(Duration::from_secs(3600), stop, || async {
        match purge(&db, Utc::now() - keep, outbox).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(module, purged = n, "forgot old outbox and inbox rows"),
            Err(e) => tracing::warn!(module, error = %e, "purging old outbox and inbox rows failed"),
        }
    })
    .await;
}

/// Writes `event` to the outbox; call it inside the transaction of the change it announces.
/// The row keeps the trace context of the span it is written in (the request's, say).
///
/// # Errors
/// Database failures (the caller's transaction then fails as a whole).
pub async fn enqueue(db: &impl ConnectionTrait, event: &Envelope) -> Result<(), DbErr> {
    let insert = Query::insert()
        .into_table(name(OUTBOX))
        .columns([
            name("event_id"),
            name("routing_key"),
            name("body"),
            name("occurred_at"),
            name("attempts"),
            name("traceparent"),
        ])
        .values_panic([
            event.event_id.into(),
            event.routing_key.clone().into(),
            event.body.to_string().into(),
            event.occurred_at.into(),
            0.into(),
            crate::trace::current().into(),
        ])
        .to_owned();
    db.execute(&insert).await.map(drop)
}

/// Writes `event` to the outbox under its variant's routing key; call it inside the
/// transaction of the change it announces.
///
/// # Errors
/// Database failures (the caller's transaction then fails as a whole); `DbErr::Json` if the
/// event does not serialize to a JSON object, which the publishers' enums always do.
pub async fn publish<E: Event>(db: &impl ConnectionTrait, event: &E) -> Result<(), DbErr> {
    let envelope =
        Envelope::of(event).map_err(|e| DbErr::Json(format!("event {} unwritable: {e}", event.routing_key())))?;
    enqueue(db, &envelope).await
}

/// Records that `consumer` handles `event_id`; `true` the first time, `false` for a
/// redelivery. Call it inside the transaction of the handler's effect, and skip the effect
/// on `false`.
///
/// # Errors
/// Database failures.
pub async fn first_delivery(db: &impl ConnectionTrait, consumer: &str, event_id: Uuid) -> Result<bool, DbErr> {
    let insert = Query::insert()
        .into_table(name(INBOX))
        .columns([name("event_id"), name("consumer"), name("handled_at")])
        .values_panic([event_id.into(), consumer.into(), Utc::now().into()])
        .on_conflict(OnConflict::columns([name("event_id"), name("consumer")]).do_nothing().to_owned())
        .to_owned();
    Ok(db.execute(&insert).await?.rows_affected() == 1)
}

/// Publishes a module's committed outbox rows and marks each sent once the bus has it. Woken
/// right after commits through [`OutboxRelay::waker`], and polls anyway.
///
/// Events about one subject (the value of the body field named by
/// [`OutboxRelay::ordered_by`], a booking's id say) are published one after the other, oldest
/// first, and an event is never published before an older one of its subject; events about
/// different subjects are published concurrently (up to [`PARALLEL`] at a time), so one slow
/// consumer transaction does not hold up every other booking's events. Without a field, every
/// event is one subject.
///
/// Several replicas may relay one outbox: an event can then be published twice, which the
/// consumers' inboxes absorb (no row lock is held across the network call to the broker).
pub struct OutboxRelay {
    module: &'static str,
    db: DatabaseConnection,
    bus: Arc<dyn EventBus>,
    wake: Arc<Notify>,
    poll: Duration,
    ordered_by: Option<&'static str>,
}

/// Rows read per pass.
const BATCH: u64 = 100;

/// Subjects published at once. On the in-process bus each publish runs its consumers'
/// transactions, so this also bounds the database connections the relay takes from requests.
pub const PARALLEL: usize = 16;

/// An unsent row: its event id, its event and the trace context it was written in.
type Unsent = (Uuid, Envelope, Option<String>);

/// What publishing one subject's events of a pass did: the ids the bus took, in order, and
/// the first one it refused (the subject's later events wait for the next pass).
struct SubjectOutcome {
    published: Vec<Uuid>,
    refused: Option<(Uuid, String)>,
}

impl OutboxRelay {
    pub fn new(module: &'static str, db: DatabaseConnection, bus: Arc<dyn EventBus>, poll: Duration) -> Self {
        Self { module, db, bus, wake: Arc::new(Notify::new()), poll, ordered_by: None }
    }

    /// Orders events by the body field `field`: only events with the same value of it keep
    /// their relative order (an event without the field is ordered with every other such).
    #[must_use]
    pub fn ordered_by(mut self, field: &'static str) -> Self {
        self.ordered_by = Some(field);
        self
    }

    /// Notify it after committing an event, so the relay publishes at once.
    pub fn waker(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    /// Relays until `stop` is cancelled, then makes a last pass so nothing committed before
    /// the stop waits for the next start.
    pub async fn run(self, stop: CancellationToken) {
        loop {
            if let Err(e) = self.drain().await {
                tracing::warn!(module = self.module, error = %e, "outbox relay pass failed");
            }
            if crate::tasks::pause(&stop, &self.wake, self.poll).await == crate::tasks::Resume::Stop {
                break;
            }
        }
        if let Err(e) = self.drain().await {
            tracing::warn!(module = self.module, error = %e, "final outbox relay pass failed");
        }
    }

    /// Publishes `event` in a producer span that continues the trace of the transaction that
    /// wrote it (`traceparent`); the consumers' spans become the publish span's children.
    async fn publish(&self, mut event: Envelope, traceparent: Option<String>) -> Result<(), BusError> {
        let span = tracing::info_span!(
            "publish",
            otel.name = %format_args!("{} publish", event.routing_key),
            otel.kind = "producer",
            trace_id = tracing::field::Empty,
            module = self.module,
            messaging.destination.name = %event.routing_key,
            messaging.message.id = %event.event_id,
        );
        crate::trace::follow(&span, traceparent.as_deref());
        event.traceparent = crate::trace::traceparent_of(&span).or(traceparent);
        self.bus.publish(&event).instrument(span).await
    }

    /// The subject of `event`: the value of the ordering field, `None` when there is no
    /// ordering field or the event lacks it.
    fn subject(&self, event: &Envelope) -> Option<String> {
        self.ordered_by.and_then(|field| event.body.get(field)).map(|value| match value {
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        })
    }

    /// Publishes one subject's `events` in order, stopping at the first the bus refuses.
    async fn publish_in_order(&self, events: Vec<Unsent>) -> SubjectOutcome {
        let mut published = Vec::with_capacity(events.len());
        for (event_id, event, traceparent) in events {
            if let Err(e) = self.publish(event, traceparent).await {
                return SubjectOutcome { published, refused: Some((event_id, e.to_string())) };
            }
            published.push(event_id);
        }
        SubjectOutcome { published, refused: None }
    }

    /// Publishes unsent rows until none is left or the bus refuses one; returns how many
    /// were sent.
    ///
    /// # Errors
    /// Database failures.
    pub async fn drain(&self) -> Result<u64, DbErr> {
        let mut sent = 0;
        loop {
            let select = Query::select()
                .columns([name("event_id"), name("body"), name("occurred_at"), name("traceparent")])
                .from(name(OUTBOX))
                .and_where(Expr::col(name("published_at")).is_null())
                .order_by(name("occurred_at"), Order::Asc)
                .order_by(name("event_id"), Order::Asc)
                .limit(BATCH)
                .to_owned();
            let rows = self.db.query_all(&select).await?;
            if rows.is_empty() {
                metrics::gauge!("outbox_backlog", "module" => self.module).set(0.0);
                metrics::gauge!("outbox_oldest_unsent_age_seconds", "module" => self.module).set(0.0);
                return Ok(sent);
            }
            #[allow(clippy::cast_precision_loss)] // a gauge
            metrics::gauge!("outbox_backlog", "module" => self.module).set(rows.len() as f64);
            // Oldest first: the first row's age is the event lag, read by this pass's query.
            let oldest: DateTime<Utc> = rows[0].try_get("", "occurred_at")?;
            // A clock behind the writer's reads as no lag, not as an error.
            let age = (Utc::now() - oldest).to_std().map_or(0.0, |d| d.as_secs_f64());
            metrics::gauge!("outbox_oldest_unsent_age_seconds", "module" => self.module).set(age);
            // The pass's events by subject, subjects in the order of their oldest event.
            let mut subjects: Vec<(Option<String>, Vec<Unsent>)> = Vec::new();
            for row in rows {
                let event_id: Uuid = row.try_get("", "event_id")?;
                let body: String = row.try_get("", "body")?;
                let event = serde_json::from_str(&body)
                    .map_err(|e| e.to_string())
                    .and_then(|v| Envelope::from_body(v).map_err(|e| e.to_string()));
                let event = match event {
                    Ok(event) => event,
                    Err(e) => {
                        // Cannot happen for rows `enqueue` wrote; never let one block the rest.
                        tracing::error!(module = self.module, %event_id, error = %e, "unreadable outbox row set aside");
                        let set_aside = Query::update()
                            .table(name(OUTBOX))
                            .value(name("published_at"), Utc::now())
                            .value(name("last_error"), format!("unreadable, never published: {e}"))
                            .and_where(Expr::col(name("event_id")).eq(event_id))
                            .to_owned();
                        self.db.execute(&set_aside).await?;
                        continue;
                    }
                };
                let traceparent: Option<String> = row.try_get("", "traceparent")?;
                let subject = self.subject(&event);
                let event = Envelope { ordering_key: subject.clone(), ..event };
                let entry = (event_id, event, traceparent);
                match subjects.iter_mut().find(|(s, _)| *s == subject) {
                    Some((_, events)) => events.push(entry),
                    None => subjects.push((subject, vec![entry])),
                }
            }
            let outcomes: Vec<SubjectOutcome> =
                futures_util::stream::iter(subjects.into_iter().map(|(_, events)| self.publish_in_order(events)))
                    .buffer_unordered(PARALLEL)
                    .collect()
                    .await;
            // Marked sent in one statement per pass: a crash before the mark republishes at
            // most this pass's events, which the consumers' inboxes absorb.
            let published: Vec<Uuid> = outcomes.iter().flat_map(|o| o.published.iter().copied()).collect();
            if !published.is_empty() {
                let mark = Query::update()
                    .table(name(OUTBOX))
                    .value(name("published_at"), Utc::now())
                    .and_where(Expr::col(name("event_id")).is_in(published.iter().copied()))
                    .to_owned();
                self.db.execute(&mark).await?;
                sent += published.len() as u64;
            }
            let refused: Vec<(Uuid, String)> = outcomes.into_iter().filter_map(|o| o.refused).collect();
            for (event_id, reason) in &refused {
                let note = Query::update()
                    .table(name(OUTBOX))
                    .value(name("attempts"), Expr::col(name("attempts")).add(1))
                    .value(name("last_error"), reason.clone())
                    .and_where(Expr::col(name("event_id")).eq(*event_id))
                    .to_owned();
                self.db.execute(&note).await?;
                tracing::warn!(module = self.module, %event_id, error = %reason, "event not published; will retry");
            }
            if !refused.is_empty() {
                return Ok(sent);
            }
        }
    }
}
