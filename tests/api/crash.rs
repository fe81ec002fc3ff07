//! The crash and fault suite: the real `boxoffice` binary under a mixed load (several customers
//! booking, paying with good and declined cards, and cancelling, over a few showtimes) is
//! killed with SIGKILL several times and restarted on the same data, or has RabbitMQ cut off
//! and Redis paused under it; then [`crate::audit`] checks what must survive any of that.
//!
//! The services the rest of the suite shares are never stopped: the outages are a private
//! `redis-server` on a port of its own (paused with `CLIENT PAUSE`), and a TCP proxy between the
//! app and RabbitMQ that can cut every connection and refuse new ones.
//!
//! Each test prints what it did (requests, kills, outages, events audited) for the record.

use std::net::SocketAddr;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::task::AbortHandle;

use crate::audit::{Stores, settle};
use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, Backend};
use crate::private_redis::PrivateRedis;
use crate::process::{DECLINED, GOOD, PATIENCE, Server, backend_env, env_of, future_expiry, log_in, register};

/// SIGKILLs per test.
const KILLS: usize = 3;
/// Customers booking at once.
const CUSTOMERS: usize = 6;
/// Requests the load makes between two faults (at least).
const REQUESTS_PER_PHASE: u64 = 60;
/// Events that must pile up in the outboxes while RabbitMQ is cut off.
const HELD_BACK: i64 = 20;
/// How long the background work may take to bring the data to rest after the load stops.
const SETTLE: Duration = Duration::from_secs(40);

/// Settings that make every background period short, so the audit can wait for all of them:
/// holds of 4 s, a charge's lease of 3 s (the reconciler takes over a dead one 3 s after it ran
/// out), sweeper, reconciler, refund worker and relays every 200 ms. Limits a real deployment
/// needs against abuse are lifted: the load is one client address hammering on purpose.
const QUICK: &[(&str, &str)] = &[
    ("RUST_LOG", "warn"),
    ("BOXOFFICE__SERVER__WORKERS", "2"),
    ("BOXOFFICE__SERVER__CLIENT_BUDGET_PER_MINUTE", "0"),
    // The audit compares seats_available with the bookings: read it uncached.
    ("BOXOFFICE__MOVIE__CACHE_TTL_SECONDS", "0"),
    ("BOXOFFICE__AUTH__ADMIN_EMAIL", ADMIN_EMAIL),
    ("BOXOFFICE__AUTH__ADMIN_PASSWORD", ADMIN_PASSWORD),
    ("BOXOFFICE__BOOKING__HOLD_TTL_SECONDS", "4"),
    ("BOXOFFICE__BOOKING__SWEEP_INTERVAL_MS", "200"),
    ("BOXOFFICE__BOOKING__MAX_HELD_SEATS_PER_USER", "60"),
    ("BOXOFFICE__BOOKING__MAX_HELD_SEATS_PER_SHOWTIME", "30"),
    ("BOXOFFICE__BOOKING__CHARGE_GRACE_SECONDS", "60"),
    ("BOXOFFICE__PAYMENT__LEASE_SECONDS", "3"),
    ("BOXOFFICE__PAYMENT__DUPLICATE_WAIT_MS", "1000"),
    ("BOXOFFICE__PAYMENT__RECONCILE_INTERVAL_MS", "200"),
    ("BOXOFFICE__PAYMENT__REFUND_INTERVAL_MS", "200"),
    ("BOXOFFICE__PAYMENT__MAX_FAILED_ATTEMPTS_PER_BOOKING", "1000"),
    ("BOXOFFICE__PAYMENT__MAX_FAILED_ATTEMPTS_PER_USER", "1000"),
    // A charge takes a while, so kills find some under way.
    ("BOXOFFICE__PAYMENT__GATEWAY__LATENCY_MS", "150"),
    ("BOXOFFICE__EVENTS__RELAY_POLL_MS", "200"),
];

// ---------------------------------------------------------------------------------------------
// A deployment: the binary on its data, restartable.

struct Deployment {
    backend: Backend,
    data: tempfile::TempDir,
    logs: tempfile::TempDir,
    env: Vec<(String, String)>,
    server: Server,
    runs: usize,
    client: reqwest::Client,
}

impl Deployment {
    /// Starts the binary on `backend` with [`QUICK`] periods and `extra` settings on top.
    async fn start(backend: &Backend, extra: &[(String, String)]) -> Self {
        let mut env = backend_env(backend);
        env.extend(QUICK.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        env.extend(extra.iter().cloned());
        let mut data = tempfile::TempDir::new().unwrap();
        let mut logs = tempfile::TempDir::new().unwrap();
        // To look at what a failure left: BOXOFFICE_TEST_KEEP=1 keeps the data and the logs.
        if std::env::var_os("BOXOFFICE_TEST_KEEP").is_some() {
            data.disable_cleanup(true);
            logs.disable_cleanup(true);
            eprintln!("keeping data in {} and logs in {}", data.path().display(), logs.path().display());
        }
        let client = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().unwrap();
        let mut server = Server::start_with(data.path(), &logs.path().join("run-1"), &env_of(&env));
        server.wait_ready(&client).await;
        Self { backend: backend.clone(), data, logs, env, server, runs: 1, client }
    }

    /// SIGKILL while `load` has a charge in flight, then a new process on the same data, which
    /// the load goes on against.
    async fn kill_under(&mut self, load: &Load) {
        load.wait_for_a_charge().await;
        self.server.kill();
        self.runs += 1;
        let logs = self.logs.path().join(format!("run-{}", self.runs));
        self.server = Server::start_with(self.data.path(), &logs, &env_of(&self.env));
        self.server.wait_ready(&self.client).await;
        *load.base.write().unwrap() = self.server.base.clone();
    }

    async fn stores(&self) -> Stores {
        let prefix = self.env.iter().find(|(k, _)| k == "BOXOFFICE__DATABASE__SCHEMA_PREFIX").map(|(_, v)| v.as_str());
        Stores::open(&self.backend, self.data.path(), prefix.unwrap_or_default()).await
    }

    /// Customers with tokens, and a few demo showtimes (an hour ahead or more) to book in.
    async fn audience(&self) -> (Vec<String>, Vec<String>) {
        let mut tokens = Vec::new();
        for n in 0..CUSTOMERS {
            let name = format!("crowd{n}");
            register(&self.client, &self.server, &name).await;
            tokens.push(log_in(&self.client, &self.server, &name).await);
        }
        let res = self.client.get(self.server.url("/api/movies/showtimes?per_page=100")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let page: Value = res.json().await.unwrap();
        let later = Utc::now() + chrono::Duration::hours(1);
        let showtimes: Vec<String> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["start_time"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap() > later)
            .take(3)
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(showtimes.len(), 3, "three demo showtimes an hour ahead: {page}");
        (tokens, showtimes)
    }

    async fn admin_token(&self) -> String {
        log_in_as(&self.client, &self.server, ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    /// Waits until `/health/ready` answers `ready` (true: 200; false: anything else).
    async fn wait_readiness(&self, ready: bool, what: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let status = self.client.get(self.server.url("/health/ready")).send().await.map(|r| r.status().as_u16());
            if (status.as_ref().ok() == Some(&200)) == ready {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: /health/ready still {status:?} after {PATIENCE:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn log_in_as(client: &reqwest::Client, server: &Server, username: &str, password: &str) -> String {
    let form = [("username", username), ("password", password)];
    let res = client.post(server.url("/api/auth/token")).form(&form).send().await.unwrap();
    assert_eq!(res.status(), 200, "login {username}");
    res.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned()
}

// ---------------------------------------------------------------------------------------------
// The load: customers booking, paying and cancelling, through kills and outages.

#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    /// Requests that got no answer (the process was killed, or not yet back).
    dropped: AtomicU64,
    /// 500s: always a bug.
    server_errors: AtomicU64,
    /// 503s: a dependency was down.
    unavailable: AtomicU64,
    booked: AtomicU64,
    paid: AtomicU64,
    declined: AtomicU64,
    cancelled: AtomicU64,
    /// Payments sent and not answered yet.
    paying: AtomicI64,
}

struct Load {
    base: RwLock<String>,
    client: reqwest::Client,
    stop: AtomicBool,
    tally: Tally,
    /// The first 500 answers, for the failure message.
    errors: Mutex<Vec<String>>,
}

impl Load {
    /// Starts one task per customer token, booking in `showtimes` at `base`.
    fn start(base: &str, tokens: &[String], showtimes: &[String]) -> (Arc<Load>, Vec<tokio::task::JoinHandle<()>>) {
        let load = Arc::new(Load {
            base: RwLock::new(base.to_owned()),
            client: reqwest::Client::builder().timeout(Duration::from_secs(15)).build().unwrap(),
            stop: AtomicBool::new(false),
            tally: Tally::default(),
            errors: Mutex::new(Vec::new()),
        });
        let showtimes = Arc::new(showtimes.to_vec());
        let tasks = tokens
            .iter()
            .enumerate()
            .map(|(n, token)| tokio::spawn(customer(load.clone(), token.clone(), showtimes.clone(), n as u64)))
            .collect();
        (load, tasks)
    }

    fn requests(&self) -> u64 {
        self.tally.requests.load(Ordering::Relaxed)
    }

    /// Waits until the load has made `more` requests beyond what it had made when called.
    async fn wait_for_requests(&self, more: u64, what: &str) {
        let target = self.requests() + more;
        let deadline = Instant::now() + PATIENCE;
        while self.requests() < target {
            assert!(Instant::now() < deadline, "{what}: the load made {} of {target} requests", self.requests());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits (boundedly) until a payment is under way, so a kill cuts one off mid-charge.
    async fn wait_for_a_charge(&self) {
        let deadline = Instant::now() + PATIENCE;
        while self.tally.paying.load(Ordering::Relaxed) == 0 {
            assert!(Instant::now() < deadline, "no payment under way within {PATIENCE:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// One request; `None` when no answer came (counted as dropped, after a short pause so a
    /// dead server is not hammered).
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> Option<(u16, Value)> {
        let base = self.base.read().unwrap().clone();
        let mut request = self.client.request(method.clone(), format!("{base}{path}")).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        self.tally.requests.fetch_add(1, Ordering::Relaxed);
        match request.send().await {
            Ok(res) => {
                let status = res.status().as_u16();
                let body = res.json::<Value>().await.unwrap_or(Value::Null);
                if status == 500 {
                    self.tally.server_errors.fetch_add(1, Ordering::Relaxed);
                    self.errors.lock().unwrap().push(format!("{method} {path}: {body}"));
                } else if status == 503 {
                    self.tally.unavailable.fetch_add(1, Ordering::Relaxed);
                }
                Some((status, body))
            }
            Err(_) => {
                self.tally.dropped.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
                None
            }
        }
    }

    /// Pays `booking` with `card`, retrying under the same key (as a client must) while no
    /// answer or a 503 comes, a few times; returns the last status.
    async fn pay(&self, token: &str, booking: &str, card: &str) -> Option<u16> {
        let key = uuid::Uuid::new_v4().to_string();
        let body =
            json!({"booking_id": booking, "card_number": card, "card_expiry": future_expiry(), "card_cvc": "123"});
        let mut last = None;
        for _ in 0..3 {
            self.tally.paying.fetch_add(1, Ordering::Relaxed);
            let answer = self.call(Method::POST, "/api/payments/pay", token, Some(&body), Some(&key)).await;
            self.tally.paying.fetch_sub(1, Ordering::Relaxed);
            last = answer.as_ref().map(|(status, _)| *status);
            match answer {
                Some((201, paid)) => {
                    let counter = if paid["status"] == "completed" { &self.tally.paid } else { &self.tally.declined };
                    counter.fetch_add(1, Ordering::Relaxed);
                    return last;
                }
                None | Some((503, _)) => continue,
                Some(_) => return last,
            }
        }
        last
    }

    /// Stops the customers and waits for them.
    async fn stop(&self, tasks: Vec<tokio::task::JoinHandle<()>>) {
        self.stop.store(true, Ordering::Relaxed);
        for task in tasks {
            task.await.unwrap();
        }
    }

    fn report(&self) -> String {
        let t = &self.tally;
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "{} requests ({} unanswered, {} × 503, {} × 500); {} bookings made, {} paid, {} declined, {} cancelled",
            n(&t.requests),
            n(&t.dropped),
            n(&t.unavailable),
            n(&t.server_errors),
            n(&t.booked),
            n(&t.paid),
            n(&t.declined),
            n(&t.cancelled)
        )
    }

    /// Fails on any 500 the load met.
    fn assert_no_server_errors(&self) {
        let errors = self.errors.lock().unwrap();
        assert!(errors.is_empty(), "{} answers were 500:\n{}", errors.len(), errors.join("\n"));
    }
}

/// One customer: looks at a seat map, books one or two free seats, then pays (a good card,
/// a declined one, or a declined one then a good one), cancels (paid or not), or leaves the
/// hold to expire; over and over until the load stops.
async fn customer(load: Arc<Load>, token: String, showtimes: Arc<Vec<String>>, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    while !load.stop.load(Ordering::Relaxed) {
        let showtime = showtimes.choose(&mut rng).unwrap();
        let Some((200, map)) =
            load.call(Method::GET, &format!("/api/movies/showtimes/{showtime}/seats"), &token, None, None).await
        else {
            continue;
        };
        let free: Vec<&Value> =
            map["seats"].as_array().unwrap().iter().filter(|s| s["status"] == "available").map(|s| &s["id"]).collect();
        let wanted = rng.gen_range(1..=2);
        let seats: Vec<&&Value> = free.choose_multiple(&mut rng, wanted).collect();
        if seats.is_empty() {
            continue;
        }
        let book = json!({"showtime_id": showtime, "seat_ids": seats});
        let Some((201, booking)) = load.call(Method::POST, "/api/bookings/book", &token, Some(&book), None).await
        else {
            continue;
        };
        load.tally.booked.fetch_add(1, Ordering::Relaxed);
        let booking = booking["id"].as_str().unwrap().to_owned();
        let cancel = |load: Arc<Load>, token: String, booking: String| async move {
            let path = format!("/api/bookings/bookings/{booking}/cancel");
            if let Some((200, _)) = load.call(Method::POST, &path, &token, None, None).await {
                load.tally.cancelled.fetch_add(1, Ordering::Relaxed);
            }
        };
        match rng.gen_range(0..10) {
            0..=3 => drop(load.pay(&token, &booking, GOOD).await),
            4 | 5 => {
                load.pay(&token, &booking, GOOD).await;
                cancel(load.clone(), token.clone(), booking).await;
            }
            6 | 7 => {
                load.pay(&token, &booking, DECLINED).await;
                if rng.gen_bool(0.5) {
                    load.pay(&token, &booking, GOOD).await;
                }
            }
            8 => cancel(load.clone(), token.clone(), booking).await,
            // Left to expire.
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// kill -9 under load.

on_both_backends!(
    kill_9_under_a_mixed_load_loses_no_booking_payment_or_event;
    postgres only: rabbitmq_cut_off_and_redis_paused_under_load_lose_nothing,
);

async fn kill_9_under_a_mixed_load_loses_no_booking_payment_or_event(backend: Backend) {
    let started = Instant::now();
    let mut deployment = Deployment::start(&backend, &[]).await;
    let (tokens, showtimes) = deployment.audience().await;
    let (load, tasks) = Load::start(&deployment.server.base, &tokens, &showtimes);

    for kill in 1..=KILLS {
        load.wait_for_requests(REQUESTS_PER_PHASE, &format!("before kill {kill}")).await;
        deployment.kill_under(&load).await;
    }
    load.wait_for_requests(REQUESTS_PER_PHASE, "after the last restart").await;
    load.stop(tasks).await;
    load.assert_no_server_errors();

    let stores = deployment.stores().await;
    let admin = deployment.admin_token().await;
    let counts = settle(&stores, &deployment.client, &deployment.server.base, &tokens, &admin, SETTLE).await;
    eprintln!(
        "crash suite ({}): {KILLS} kill -9 survived; {}; {counts}; {:.1} s",
        match backend {
            Backend::Sqlite => "SQLite, single binary",
            Backend::Postgres { .. } => "PostgreSQL + Redis + RabbitMQ, one process",
        },
        load.report(),
        started.elapsed().as_secs_f64()
    );
    assert!(counts.bookings.values().sum::<usize>() > 0 && counts.events > 0, "the load did nothing");
    deployment.server.stop();
}

// ---------------------------------------------------------------------------------------------
// RabbitMQ cut off and Redis paused under load.

/// A TCP proxy in front of `target` that can cut every connection and refuse new ones.
struct TcpProxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

impl TcpProxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(Mutex::new(Vec::<AbortHandle>::new()));
        let accept = tokio::spawn({
            let (up, connections) = (up.clone(), connections.clone());
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    // While cut, a new connection is closed at once.
                    if !up.load(Ordering::SeqCst) {
                        continue;
                    }
                    let relay = tokio::spawn(async move {
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                            drop(tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await);
                        }
                    });
                    connections.lock().unwrap().push(relay.abort_handle());
                }
            }
        })
        .abort_handle();
        Self { addr, up, connections, accept }
    }

    /// Closes every connection and refuses new ones until [`TcpProxy::restore`].
    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// The RabbitMQ address of `amqp_url` (host and port), and the URL with them replaced by `addr`.
fn through(amqp_url: &str, addr: SocketAddr) -> (SocketAddr, String) {
    let mut url = url::Url::parse(amqp_url).unwrap();
    let target = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5672));
    let target = std::net::ToSocketAddrs::to_socket_addrs(&target).unwrap().next().unwrap();
    url.set_port(Some(addr.port())).unwrap();
    url.set_host(Some(&addr.ip().to_string())).unwrap();
    (target, url.to_string())
}

async fn rabbitmq_cut_off_and_redis_paused_under_load_lose_nothing(backend: Backend) {
    let Backend::Postgres { amqp_url, .. } = &backend else { unreachable!() };
    let started = Instant::now();
    let redis = PrivateRedis::start().await;
    let (target, _) = through(amqp_url, "127.0.0.1:1".parse().unwrap());
    let proxy = TcpProxy::start(target).await;
    let (_, proxied) = through(amqp_url, proxy.addr);
    let extra =
        [("BOXOFFICE__REDIS__URL".to_owned(), redis.url()), ("BOXOFFICE__EVENTS__AMQP_URL".to_owned(), proxied)];
    let mut deployment = Deployment::start(&backend, &extra).await;
    let (tokens, showtimes) = deployment.audience().await;
    let (load, tasks) = Load::start(&deployment.server.base, &tokens, &showtimes);
    load.wait_for_requests(REQUESTS_PER_PHASE, "before the broker outage").await;

    // RabbitMQ gone: every connection cut, new ones refused, while the load goes on (events
    // wait in the outboxes) until the app has noticed; then back.
    let outage = Instant::now();
    proxy.cut();
    deployment.wait_readiness(false, "RabbitMQ cut off").await;
    load.wait_for_requests(REQUESTS_PER_PHASE, "during the broker outage").await;
    // Long enough that events piled up unsent in the outboxes.
    let stores = deployment.stores().await;
    let deadline = Instant::now() + PATIENCE;
    let held_back = loop {
        let unsent = stores.unsent_events().await;
        if unsent >= HELD_BACK {
            break unsent;
        }
        assert!(Instant::now() < deadline, "only {unsent} events held back by the broker outage after {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // And until some booking whose charge was accepted in time and approved saw its hold run
    // out with payment.completed held back: it must end confirmed all the same. (A declined
    // charge lets the hold go, and that booking rightly expires.)
    let paid_in_time = loop {
        let mut paid = Vec::new();
        for (booking, payment) in stores.overdue_charged_holds().await {
            if stores.payment_status(payment).await.as_deref() == Some("completed") {
                paid.push(booking);
            }
        }
        if !paid.is_empty() {
            break paid;
        }
        assert!(Instant::now() < deadline, "no paid hold ran out during the broker outage within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    proxy.restore();
    deployment.wait_readiness(true, "RabbitMQ back").await;
    let broker_down = outage.elapsed();

    // Redis paused (every client's commands wait), under load, for 3 s.
    load.wait_for_requests(REQUESTS_PER_PHASE / 2, "before the Redis pause").await;
    let before = load.requests();
    redis.pause(Duration::from_millis(3000)).await;
    load.wait_for_requests(REQUESTS_PER_PHASE / 2, "during the Redis pause").await;
    let during_pause = load.requests() - before;

    // And once more a kill -9 with everything back, for good measure.
    load.wait_for_requests(REQUESTS_PER_PHASE, "after the outages").await;
    deployment.kill_under(&load).await;
    load.wait_for_requests(REQUESTS_PER_PHASE, "after the restart").await;
    load.stop(tasks).await;
    load.assert_no_server_errors();

    let admin = deployment.admin_token().await;
    let counts = settle(&stores, &deployment.client, &deployment.server.base, &tokens, &admin, SETTLE).await;
    for booking in &paid_in_time {
        let status = stores.booking_status(*booking).await;
        assert_eq!(status, "confirmed", "booking {booking}, paid before its hold ran out");
    }
    eprintln!(
        "fault suite (PostgreSQL + private Redis + RabbitMQ through a proxy): RabbitMQ cut off {:.1} s ({held_back} events held back, {} paid holds ran out meanwhile and were confirmed), Redis paused 3 s \
         ({during_pause} requests during the pause), 1 kill -9 survived; {}; {counts}; {:.1} s",
        broker_down.as_secs_f64(),
        paid_in_time.len(),
        load.report(),
        started.elapsed().as_secs_f64()
    );
    deployment.server.stop();
    drop(proxy);
}
