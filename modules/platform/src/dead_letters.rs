//! Dead letters: events a queue's handler failed `events.max_attempts` times. They are kept
//! durably in every deployment and replayed on an operator's word:
//!
//! - RabbitMQ keeps them in `<queue>.dlq`; [`crate::amqp::RabbitBus`] lists them and moves
//!   them back to their queue.
//! - The in-process bus keeps them in the `dead_letters` table of the `events` store
//!   ([`DeadLetterStore`]); a replay marks rows, and the bus of the running server delivers
//!   them (so `boxoffice events dead-letters replay`, another process, can ask for it).
//!
//! Operators reach them through `boxoffice events dead-letters …` and the admin routes here
//! (`/api/events/dead-letters`), both calling [`crate::events::EventBus`].

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{
    Alias, ColumnDef, Expr, ExprTrait, Index, OnConflict, Order, Query, Table, TableCreateStatement,
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::events::{BusError, Envelope, EventBus};
use crate::identity::AuthUser;
use crate::problem::Problem;

/// One dead-lettered event of one queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadLetter {
    /// The queue whose handler gave up on it.
    pub queue: String,
    pub event_id: Uuid,
    pub routing_key: String,
    /// Deliveries tried before it was dead-lettered.
    pub attempts: u32,
    /// The handler's last error (the in-process bus records it; RabbitMQ does not carry it).
    pub error: Option<String>,
    pub dead_at: Option<DateTime<Utc>>,
    /// Set while a replay is asked for and not yet done (in-process bus).
    pub replay_requested_at: Option<DateTime<Utc>>,
    /// The event document as published.
    #[schema(value_type = Object)]
    pub event: Value,
}

/// Which dead letters to replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// One event, from every queue where it is dead.
    Event(Uuid),
    All,
}

impl Replay {
    /// Whether the dead letter of `event_id` is one this names.
    pub fn covers(self, event_id: Uuid) -> bool {
        match self {
            Replay::Event(id) => id == event_id,
            Replay::All => true,
        }
    }
}

const TABLE: &str = "dead_letters";

/// The columns [`DeadLetterStore::record`] writes.
const RECORDED: [&str; 7] = ["queue", "event_id", "routing_key", "body", "attempts", "error", "dead_at"];

fn name(s: &str) -> Alias {
    Alias::new(s)
}

/// The in-process bus's dead-letter table: one row per (queue, event).
pub fn dead_letter_table() -> TableCreateStatement {
    Table::create()
        .table(name(TABLE))
        .col(ColumnDef::new(name("queue")).string_len(200).not_null())
        .col(ColumnDef::new(name("event_id")).uuid().not_null())
        .col(ColumnDef::new(name("routing_key")).string_len(100).not_null())
        .col(ColumnDef::new(name("body")).text().not_null())
        .col(ColumnDef::new(name("attempts")).integer().not_null())
        .col(ColumnDef::new(name("error")).text().not_null())
        .col(ColumnDef::new(name("dead_at")).timestamp_with_time_zone().not_null())
        .col(ColumnDef::new(name("replay_requested_at")).timestamp_with_time_zone().null())
        .primary_key(Index::create().col(name("queue")).col(name("event_id")))
        .to_owned()
}

/// Durable dead letters of the in-process bus, in the `events` store (SQLite file
/// `<data_dir>/events.db`, or schema `events` in PostgreSQL).
#[derive(Clone)]
pub struct DeadLetterStore {
    db: DatabaseConnection,
}

impl DeadLetterStore {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    pub fn database(&self) -> DatabaseConnection {
        self.db.clone()
    }

    /// Records `event` as dead in `queue` (again: the attempts and error are refreshed and
    /// a pending replay request is cleared).
    ///
    /// # Errors
    /// Database failures: the caller must then not treat the event as delivered.
    pub async fn record(&self, queue: &str, event: &Envelope, attempts: u32, error: &str) -> Result<(), DbErr> {
        let insert = Query::insert()
            .into_table(name(TABLE))
            .columns(RECORDED.map(name))
            .values_panic([
                queue.into(),
                event.event_id.into(),
                event.routing_key.clone().into(),
                event.body.to_string().into(),
                i64::from(attempts).into(),
                error.into(),
                Utc::now().into(),
            ])
            .on_conflict(
                OnConflict::columns([name("queue"), name("event_id")])
                    .update_columns([name("attempts"), name("error"), name("dead_at")])
                    .value(name("replay_requested_at"), Expr::val(Option::<DateTime<Utc>>::None))
                    .to_owned(),
            )
            .to_owned();
        self.db.execute(&insert).await.map(drop)
    }

    /// Every dead letter, oldest first.
    ///
    /// # Errors
    /// Database failures.
    pub async fn list(&self) -> Result<Vec<DeadLetter>, DbErr> {
        self.select(false).await
    }

    /// Dead letters whose replay was asked for.
    ///
    /// # Errors
    /// Database failures.
    pub async fn requested(&self) -> Result<Vec<DeadLetter>, DbErr> {
        self.select(true).await
    }

    async fn select(&self, requested_only: bool) -> Result<Vec<DeadLetter>, DbErr> {
        let mut select = Query::select();
        select
            .columns(RECORDED.map(name))
            .column(name("replay_requested_at"))
            .from(name(TABLE))
            .order_by(name("dead_at"), Order::Asc)
            .order_by(name("event_id"), Order::Asc);
        if requested_only {
            select.and_where(Expr::col(name("replay_requested_at")).is_not_null());
        }
        let rows = self.db.query_all(&select).await?;
        rows.into_iter()
            .map(|row| {
                let body: String = row.try_get("", "body")?;
                let attempts: i64 = row.try_get("", "attempts")?;
                Ok(DeadLetter {
                    queue: row.try_get("", "queue")?,
                    event_id: row.try_get("", "event_id")?,
                    routing_key: row.try_get("", "routing_key")?,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                    error: Some(row.try_get("", "error")?),
                    dead_at: Some(row.try_get("", "dead_at")?),
                    replay_requested_at: row.try_get("", "replay_requested_at")?,
                    event: serde_json::from_str(&body).map_err(|e| DbErr::Custom(format!("dead letter body: {e}")))?,
                })
            })
            .collect()
    }

    /// Marks the dead letters `which` names for replay; returns how many.
    ///
    /// # Errors
    /// Database failures.
    pub async fn request_replay(&self, which: Replay) -> Result<u64, DbErr> {
        let mut update = Query::update();
        update.table(name(TABLE)).value(name("replay_requested_at"), Utc::now());
        if let Replay::Event(id) = which {
            update.and_where(Expr::col(name("event_id")).eq(id));
        }
        Ok(self.db.execute(&update).await?.rows_affected())
    }

    /// Forgets the dead letter of `event_id` in `queue`: it has now been handled.
    ///
    /// # Errors
    /// Database failures.
    pub async fn forget(&self, queue: &str, event_id: Uuid) -> Result<(), DbErr> {
        let delete = Query::delete()
            .from_table(name(TABLE))
            .and_where(Expr::col(name("queue")).eq(queue))
            .and_where(Expr::col(name("event_id")).eq(event_id))
            .to_owned();
        self.db.execute(&delete).await.map(drop)
    }
}

/// The OpenAPI description of the dead-letter routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, replay_all, replay_one), components(schemas(DeadLetter, ReplayRequested)))]
pub struct DeadLettersDoc;

/// The admin routes over the bus in app data (`web::Data<dyn EventBus>`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    // Resources, not bare routes: another method on these paths is a 405 with `Allow`.
    cfg.service(web::resource("/api/events/dead-letters").route(web::get().to(list)))
        .service(web::resource("/api/events/dead-letters/replay").route(web::post().to(replay_all)))
        .service(web::resource("/api/events/dead-letters/{event_id}/replay").route(web::post().to(replay_one)));
}

/// How many dead letters a replay asked for.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplayRequested {
    pub requested: u64,
}

fn bus_problem(e: &BusError) -> Problem {
    tracing::warn!(error = %e, "dead letters unavailable");
    Problem::unavailable("the event bus is unavailable; try again shortly")
}

/// Every dead letter of this deployment's queues (admin).
#[utoipa::path(get, path = "/api/events/dead-letters", tag = "operations", security(("bearer" = [])), responses(
    (status = 200, description = "Dead letters, oldest first", body = [DeadLetter]),
    (status = 401, description = "No valid token", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
    (status = 403, description = "Not an admin", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
    (status = 503, description = "The bus is unavailable", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
))]
async fn list(user: AuthUser, bus: web::Data<dyn EventBus>) -> Result<HttpResponse, Problem> {
    user.require_admin()?;
    let letters = bus.dead_letters().await.map_err(|e| bus_problem(&e))?;
    Ok(HttpResponse::Ok().json(letters))
}

/// Sends every dead letter back to its queue (admin).
#[utoipa::path(post, path = "/api/events/dead-letters/replay", tag = "operations", security(("bearer" = [])), responses(
    (status = 202, description = "Replay asked for", body = ReplayRequested),
    (status = 401, description = "No valid token", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
    (status = 403, description = "Not an admin", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
    (status = 503, description = "The bus is unavailable", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
))]
async fn replay_all(user: AuthUser, bus: web::Data<dyn EventBus>) -> Result<HttpResponse, Problem> {
    user.require_admin()?;
    let requested = bus.replay(Replay::All).await.map_err(|e| bus_problem(&e))?;
    Ok(HttpResponse::Accepted().json(ReplayRequested { requested }))
}

/// Sends one dead event back to every queue where it is dead (admin).
#[utoipa::path(post, path = "/api/events/dead-letters/{event_id}/replay", tag = "operations", security(("bearer" = [])),
    params(("event_id" = Uuid, Path, description = "The dead event's id")),
    responses(
    (status = 202, description = "Replay asked for", body = ReplayRequested),
    (status = 401, description = "No valid token", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
    (status = 403, description = "Not an admin", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
    (status = 404, description = "No dead letter of that event", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
    (status = 503, description = "The bus is unavailable", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
))]
async fn replay_one(
    user: AuthUser,
    bus: web::Data<dyn EventBus>,
    event_id: web::Path<Uuid>,
) -> Result<HttpResponse, Problem> {
    user.require_admin()?;
    let requested = bus.replay(Replay::Event(event_id.into_inner())).await.map_err(|e| bus_problem(&e))?;
    if requested == 0 {
        return Err(Problem::not_found("no dead letter of that event"));
    }
    Ok(HttpResponse::Accepted().json(ReplayRequested { requested }))
}
