//! The invariant audit of the crash and fault suite: what must hold of a deployment's data
//! after any crash or outage, once its background work (sweeper, relays, reconciler, refund
//! worker) has had its period. Read through the API (each customer's bookings and payments)
//! and straight from the module databases (SQLite files, or PostgreSQL schemas), and compared.
//!
//! [`settle`] re-runs the audit until it finds nothing or its patience runs out, then fails
//! naming every violation left.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, QueryResult, Statement};
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::Backend;

/// One module's tables: its SQLite file, or its schema of a PostgreSQL database.
pub struct Store {
    conn: DatabaseConnection,
    /// The PostgreSQL schema (`<schema_prefix><module>`); `None` for SQLite.
    schema: Option<String>,
}

impl Store {
    /// `table`, qualified by the module's schema where there is one.
    fn table(&self, table: &str) -> String {
        match &self.schema {
            Some(schema) => format!("\"{schema}\".{table}"),
            None => table.to_owned(),
        }
    }

    async fn rows(&self, sql: &str) -> Vec<QueryResult> {
        let statement = Statement::from_string(self.conn.get_database_backend(), sql.to_owned());
        self.conn.query_all_raw(statement).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

/// The stores of the modules the audit reads.
pub struct Stores {
    booking: Store,
    payment: Store,
    movie: Store,
    notification: Store,
}

impl Stores {
    /// The stores of a deployment on `backend`: SQLite files under `data_dir`, or the schemas
    /// named by `schema_prefix` in the backend's PostgreSQL database.
    pub async fn open(backend: &Backend, data_dir: &std::path::Path, schema_prefix: &str) -> Self {
        // Few connections, and one pool for all four PostgreSQL schemas: the test's app and
        // the tests running beside it need the server's connections more.
        let connect = |url: String| async move {
            let mut options = sea_orm::ConnectOptions::new(url.clone());
            options.max_connections(2).min_connections(0).connect_timeout(Duration::from_secs(30)).sqlx_logging(false);
            Database::connect(options).await.unwrap_or_else(|e| panic!("open {url}: {e}"))
        };
        let shared = match backend {
            Backend::Postgres { database_url, .. } => Some(connect(database_url.clone()).await),
            Backend::Sqlite => None,
        };
        let mut stores = Vec::new();
        for module in ["booking", "payment", "movie", "notification"] {
            stores.push(match &shared {
                Some(conn) => Store { conn: conn.clone(), schema: Some(format!("{schema_prefix}{module}")) },
                None => {
                    let file = data_dir.join(format!("{module}.db"));
                    Store { conn: connect(format!("sqlite://{}?mode=rw", file.display())).await, schema: None }
                }
            });
        }
        let [booking, payment, movie, notification] = <[Store; 4]>::try_from(stores).ok().unwrap();
        Stores { booking, payment, movie, notification }
    }
}

impl Stores {
    /// Events booking and payment wrote and have not sent yet (held back by a broker outage).
    pub async fn unsent_events(&self) -> i64 {
        let mut unsent = 0;
        for store in [&self.booking, &self.payment] {
            let sql = format!("SELECT COUNT(*) AS n FROM {} WHERE published_at IS NULL", store.table("outbox_events"));
            unsent += get::<i64>(&store.rows(&sql).await[0], "n");
        }
        unsent
    }

    /// Pending bookings held for a charge whose hold has run out: paid in time, with the
    /// outcome not yet heard.
    pub async fn overdue_charged_holds(&self) -> Vec<(Uuid, Uuid)> {
        let sql = format!(
            "SELECT id, expires_at, charging_payment_id FROM {} WHERE status = 'pending' AND charging_payment_id IS NOT NULL",
            self.booking.table("bookings")
        );
        let now = chrono::Utc::now();
        self.booking
            .rows(&sql)
            .await
            .iter()
            .filter(|r| get::<chrono::DateTime<chrono::Utc>>(r, "expires_at") < now)
            .map(|r| (get(r, "id"), get(r, "charging_payment_id")))
            .collect()
    }

    /// The status of booking `id`.
    pub async fn booking_status(&self, id: Uuid) -> String {
        let sql = format!("SELECT status FROM {} WHERE id = '{id}'", self.booking.table("bookings"));
        get(&self.booking.rows(&sql).await[0], "status")
    }

    /// The status of payment `id`, if it was recorded.
    pub async fn payment_status(&self, id: Uuid) -> Option<String> {
        let sql = format!("SELECT status FROM {} WHERE id = '{id}'", self.payment.table("payments"));
        self.payment.rows(&sql).await.first().map(|r| get(r, "status"))
    }
}

/// A booking as the audit sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Booking {
    pub id: Uuid,
    pub status: String,
}

/// A payment as the audit sees it: its status and its transactions (kind, status, amount).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Payment {
    pub id: Uuid,
    pub booking_id: Uuid,
    pub status: String,
    pub amount_cents: i64,
    pub transactions: Vec<(String, String, i64)>,
}

/// What an audit counted, for the suite's report.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    pub bookings: BTreeMap<String, usize>,
    pub payments: BTreeMap<String, usize>,
    /// Outbox rows of booking and payment.
    pub events: usize,
    /// (event, bound queue) deliveries checked against the consumers' inboxes.
    pub deliveries: usize,
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "audited {} bookings {:?}, {} payments {:?}, {} events ({} deliveries to bound queues)",
            self.bookings.values().sum::<usize>(),
            self.bookings,
            self.payments.values().sum::<usize>(),
            self.payments,
            self.events,
            self.deliveries
        )
    }
}

/// The money invariants over one view (the API's or the databases'), as violations.
fn money(bookings: &[Booking], payments: &[Payment], view: &str, violations: &mut Vec<String>) {
    let mut of_booking: BTreeMap<Uuid, Vec<&Payment>> = BTreeMap::new();
    for payment in payments {
        of_booking.entry(payment.booking_id).or_default().push(payment);
    }
    let booking_ids: BTreeSet<Uuid> = bookings.iter().map(|b| b.id).collect();
    for payment in payments {
        if !booking_ids.contains(&payment.booking_id) {
            violations.push(format!("{view}: payment {} is of an unknown booking {}", payment.id, payment.booking_id));
        }
        let count = |kind: &str| {
            payment
                .transactions
                .iter()
                .filter(|(k, s, _)| k == kind && s == "succeeded")
                .map(|(_, _, a)| *a)
                .collect::<Vec<_>>()
        };
        let (charges, refunds) = (count("charge"), count("refund"));
        if charges.len() > 1 {
            violations.push(format!("{view}: payment {} charged {} times", payment.id, charges.len()));
        }
        if refunds.len() > 1 || (refunds.len() == 1 && charges.is_empty()) {
            violations.push(format!(
                "{view}: payment {} refunded {} times for {} charges",
                payment.id,
                refunds.len(),
                charges.len()
            ));
        }
        if refunds.iter().any(|r| !charges.contains(r)) {
            violations
                .push(format!("{view}: payment {} refunded another amount than it charged: {payment:?}", payment.id));
        }
        let expected = match (charges.len(), refunds.len()) {
            (0, _) => "failed",
            (_, 0) => "completed",
            _ => "refunded",
        };
        if payment.status != expected {
            violations.push(format!(
                "{view}: payment {} is {} with transactions {:?}",
                payment.id, payment.status, payment.transactions
            ));
        }
    }
    for booking in bookings {
        let charged: Vec<&&Payment> = of_booking
            .get(&booking.id)
            .map(|ps| ps.iter().filter(|p| p.status == "completed" || p.status == "refunded").collect())
            .unwrap_or_default();
        match booking.status.as_str() {
            "confirmed" => {
                let completed = charged.iter().filter(|p| p.status == "completed").count();
                if completed != 1 || charged.len() != 1 {
                    violations.push(format!("{view}: confirmed booking {} has charges {charged:?}", booking.id));
                }
            }
            "cancelled" | "expired" => {
                if let Some(kept) = charged.iter().find(|p| p.status != "refunded") {
                    violations
                        .push(format!("{view}: {} booking {} keeps the charge {kept:?}", booking.status, booking.id));
                }
            }
            "pending" => violations.push(format!("{view}: booking {} still pending after its hold", booking.id)),
            other => violations.push(format!("{view}: booking {} has the unknown status {other}", booking.id)),
        }
    }
}

/// Every customer's bookings and payments, read through the API (all pages).
async fn api_view(
    client: &reqwest::Client,
    base: &str,
    tokens: &[String],
) -> Result<(Vec<Booking>, Vec<Payment>), String> {
    let mut bookings = Vec::new();
    let mut payments = Vec::new();
    for token in tokens {
        for item in all_pages(client, base, "/api/bookings/bookings", token).await? {
            bookings.push(Booking { id: uuid(&item["id"]), status: text(&item["status"]) });
        }
        for item in all_pages(client, base, "/api/payments/payments", token).await? {
            let transactions = item["transactions"]
                .as_array()
                .map(|ts| {
                    ts.iter()
                        .map(|t| (text(&t["type"]), text(&t["status"]), t["amount_cents"].as_i64().unwrap_or(-1)))
                        .collect()
                })
                .unwrap_or_default();
            payments.push(Payment {
                id: uuid(&item["id"]),
                booking_id: uuid(&item["booking_id"]),
                status: text(&item["status"]),
                amount_cents: item["amount_cents"].as_i64().unwrap_or(-1),
                transactions,
            });
        }
    }
    Ok((bookings, payments))
}

async fn all_pages(client: &reqwest::Client, base: &str, path: &str, token: &str) -> Result<Vec<Value>, String> {
    let mut items = Vec::new();
    for page in 1.. {
        let url = format!("{base}{path}?per_page=100&page={page}");
        let res = client.get(&url).bearer_auth(token).send().await.map_err(|e| format!("GET {url}: {e}"))?;
        if res.status() != 200 {
            return Err(format!("GET {url}: {}", res.status()));
        }
        let body: Value = res.json().await.map_err(|e| format!("GET {url}: {e}"))?;
        let got = body["items"].as_array().cloned().unwrap_or_default();
        let done = got.len() < 100;
        items.extend(got);
        if done {
            break;
        }
    }
    Ok(items)
}

fn uuid(v: &Value) -> Uuid {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("not a uuid: {v}"))
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}")).to_owned()
}

fn get<T: sea_orm::TryGetable>(row: &QueryResult, column: &str) -> T {
    row.try_get("", column).unwrap_or_else(|e| panic!("column {column}: {e:?}"))
}

/// The bookings and payments as the databases hold them.
async fn db_view(stores: &Stores) -> (Vec<Booking>, Vec<Payment>) {
    let bookings = stores
        .booking
        .rows(&format!("SELECT id, status FROM {}", stores.booking.table("bookings")))
        .await
        .iter()
        .map(|r| Booking { id: get(r, "id"), status: get(r, "status") })
        .collect();
    let mut transactions: BTreeMap<Uuid, Vec<(String, String, i64)>> = BTreeMap::new();
    let sql = format!(
        "SELECT payment_id, kind, status, amount_cents FROM {} ORDER BY created_at",
        stores.payment.table("payment_transactions")
    );
    for r in stores.payment.rows(&sql).await {
        transactions.entry(get(&r, "payment_id")).or_default().push((
            get(&r, "kind"),
            get(&r, "status"),
            get(&r, "amount_cents"),
        ));
    }
    let sql = format!("SELECT id, booking_id, status, amount_cents FROM {}", stores.payment.table("payments"));
    let payments = stores
        .payment
        .rows(&sql)
        .await
        .iter()
        .map(|r| {
            let id: Uuid = get(r, "id");
            Payment {
                id,
                booking_id: get(r, "booking_id"),
                status: get(r, "status"),
                amount_cents: get(r, "amount_cents"),
                transactions: transactions.remove(&id).unwrap_or_default(),
            }
        })
        .collect();
    (bookings, payments)
}

/// Runs every check once; returns the violations found and what was counted.
pub async fn audit(
    stores: &Stores,
    client: &reqwest::Client,
    base: &str,
    tokens: &[String],
    admin: &str,
) -> (Vec<String>, Counts) {
    let mut violations = Vec::new();
    let mut counts = Counts::default();

    // No seat in two live bookings.
    let sql = format!(
        "SELECT b.showtime_id AS showtime_id, s.seat_id AS seat_id, COUNT(*) AS n FROM {} s JOIN {} b ON b.id = s.booking_id \
         WHERE b.status IN ('pending', 'confirmed') GROUP BY b.showtime_id, s.seat_id HAVING COUNT(*) > 1",
        stores.booking.table("booking_seats"),
        stores.booking.table("bookings")
    );
    for r in stores.booking.rows(&sql).await {
        let (showtime, seat, n): (Uuid, Uuid, i64) = (get(&r, "showtime_id"), get(&r, "seat_id"), get(&r, "n"));
        violations.push(format!("seat {seat} of showtime {showtime} is in {n} live bookings"));
    }

    // The money: the same invariants over the databases and over the API, which must agree.
    let (mut db_bookings, mut db_payments) = db_view(stores).await;
    money(&db_bookings, &db_payments, "database", &mut violations);
    match api_view(client, base, tokens).await {
        Ok((mut api_bookings, mut api_payments)) => {
            money(&api_bookings, &api_payments, "API", &mut violations);
            api_bookings.sort();
            db_bookings.sort();
            api_payments.sort();
            db_payments.sort();
            if api_bookings != db_bookings {
                violations.push(format!(
                    "the API's bookings differ from the database's ({} against {})",
                    api_bookings.len(),
                    db_bookings.len()
                ));
            }
            if api_payments != db_payments {
                violations.push(format!(
                    "the API's payments differ from the database's ({} against {})",
                    api_payments.len(),
                    db_payments.len()
                ));
            }
        }
        Err(e) => violations.push(format!("the API cannot be read: {e}")),
    }
    for b in &db_bookings {
        *counts.bookings.entry(b.status.clone()).or_default() += 1;
    }
    for p in &db_payments {
        *counts.payments.entry(p.status.clone()).or_default() += 1;
    }

    // Nothing left running or charging once the reconciler has had its period; no refund owed.
    let stuck = [
        (&stores.payment, "idempotency_keys", "state = 'running'", "idempotency key running"),
        (&stores.payment, "booking_ledger", "state = 'charging'", "ledger row charging"),
        (&stores.payment, "payments", "refund_due", "payment with a refund due"),
        (
            &stores.booking,
            "bookings",
            "status = 'pending' AND charging_payment_id IS NOT NULL",
            "booking held for a charge",
        ),
    ];
    for (store, table, condition, what) in stuck {
        let sql = format!("SELECT COUNT(*) AS n FROM {} WHERE {condition}", store.table(table));
        let n: i64 = get(&store.rows(&sql).await[0], "n");
        if n > 0 {
            violations.push(format!("{n} × {what}"));
        }
    }

    // Every event booking and payment published was sent, and handled by every queue bound
    // to its routing key (each consumer's inbox has it; its key `(event_id, consumer)` makes
    // it at most once).
    let consumers = [
        (&stores.movie, movie::api::QUEUE),
        (&stores.booking, booking::api::QUEUE),
        (&stores.payment, payment::api::QUEUE),
        (&stores.notification, notification::api::QUEUE),
    ];
    let mut handled: BTreeMap<&str, BTreeSet<Uuid>> = BTreeMap::new();
    for (store, queue) in &consumers {
        let sql = format!("SELECT event_id FROM {} WHERE consumer = '{}'", store.table("inbox_events"), queue.name);
        handled.insert(queue.name, store.rows(&sql).await.iter().map(|r| get(r, "event_id")).collect());
    }
    for publisher in [&stores.booking, &stores.payment] {
        let sql = format!(
            "SELECT event_id, routing_key, published_at IS NOT NULL AS sent FROM {}",
            publisher.table("outbox_events")
        );
        for r in publisher.rows(&sql).await {
            let (event_id, routing_key, sent): (Uuid, String, bool) =
                (get(&r, "event_id"), get(&r, "routing_key"), get(&r, "sent"));
            counts.events += 1;
            if !sent {
                violations.push(format!("{routing_key} {event_id} still unsent"));
                continue;
            }
            for (_, queue) in &consumers {
                if queue.patterns.iter().any(|p| platform::events::topic_matches(p, &routing_key)) {
                    counts.deliveries += 1;
                    if !handled[queue.name].contains(&event_id) {
                        violations.push(format!("{routing_key} {event_id} not handled by {}", queue.name));
                    }
                }
            }
        }
    }

    // No dead letters (the in-process bus's table, or RabbitMQ's <queue>.dlq).
    let url = format!("{base}/api/events/dead-letters");
    match client.get(&url).bearer_auth(admin).send().await {
        Ok(res) if res.status() == 200 => {
            let letters: Value = res.json().await.unwrap_or_default();
            if letters.as_array().is_none_or(|l| !l.is_empty()) {
                violations.push(format!("dead letters: {letters}"));
            }
        }
        Ok(res) => violations.push(format!("GET {url}: {}", res.status())),
        Err(e) => violations.push(format!("GET {url}: {e}")),
    }

    // Movie's seats_available (kept from booking events) agrees with the live bookings.
    let sql = format!(
        "SELECT b.showtime_id AS showtime_id, SUM(CASE WHEN b.status IN ('pending', 'confirmed') THEN 1 ELSE 0 END) AS n \
         FROM {} s JOIN {} b ON b.id = s.booking_id GROUP BY b.showtime_id",
        stores.booking.table("booking_seats"),
        stores.booking.table("bookings")
    );
    for r in stores.booking.rows(&sql).await {
        let (showtime, live): (Uuid, i64) = (get(&r, "showtime_id"), get(&r, "n"));
        let url = format!("{base}/api/movies/showtimes/{showtime}");
        match client.get(&url).send().await {
            Ok(res) if res.status() == 200 => {
                let s: Value = res.json().await.unwrap_or_default();
                let (total, available) = (s["seats_total"].as_i64(), s["seats_available"].as_i64());
                if total.zip(available).is_none_or(|(t, a)| t - a != live) {
                    violations.push(format!("showtime {showtime}: {live} live seats, but {s}"));
                }
            }
            Ok(res) => violations.push(format!("GET {url}: {}", res.status())),
            Err(e) => violations.push(format!("GET {url}: {e}")),
        }
    }
    (violations, counts)
}

/// Audits until nothing is found, for at most `patience`; fails naming what is still wrong.
pub async fn settle(
    stores: &Stores,
    client: &reqwest::Client,
    base: &str,
    tokens: &[String],
    admin: &str,
    patience: Duration,
) -> Counts {
    let deadline = Instant::now() + patience;
    loop {
        let (violations, counts) = audit(stores, client, base, tokens, admin).await;
        if violations.is_empty() {
            return counts;
        }
        assert!(
            Instant::now() < deadline,
            "{} invariant violations still there {patience:?} after the load stopped:\n{}",
            violations.len(),
            violations.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
