//! The scenarios. Each creates what it loads under names of its own run (so runs against one
//! deployment never collide), loads it, and checks what must hold whatever the speed.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Barrier;

use crate::client::{Api, Screening, User, id_of, parallel};
use crate::report::Report;
use crate::stats::Recorder;
use crate::{CatalogOptions, Common, FlashOptions, FunnelOptions, Load, RaceOptions, SeatmapOptions};

/// Unexpected answers after which a scenario's clients stop: a broken server is reported
/// after a bounded number of requests, not hammered until the duration ends.
const MAX_ERRORS: usize = 1000;
/// How long a paid booking may take to read `confirmed` before it counts as an error.
const CONFIRM_PATIENCE: Duration = Duration::from_secs(30);
/// Title words of the movies the catalog scenario creates, and the searches it makes.
const WORDS: [&str; 16] = [
    "Amber", "Bridge", "Comet", "Delta", "Ember", "Falcon", "Granite", "Harbor", "Iris", "Juniper", "Kestrel",
    "Lantern", "Meadow", "Nova", "Orchid", "Prism",
];
const CARD: &str = "4242424242424242";

/// A short id for this run's names.
fn run_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

async fn admin(api: &Api, c: &Common) -> anyhow::Result<String> {
    match (&c.admin_email, &c.admin_password) {
        (Some(email), Some(password)) => api.admin_login(email, password).await,
        _ => bail!(
            "this scenario creates showtimes as an admin: give --admin-email and --admin-password \
             (or BENCH_ADMIN_EMAIL and BENCH_ADMIN_PASSWORD)"
        ),
    }
}

fn merged(recorders: impl IntoIterator<Item = Recorder>) -> anyhow::Result<Recorder> {
    let mut all = Recorder::new()?;
    for r in recorders {
        all.merge(&r)?;
    }
    Ok(all)
}

/// The checks every measured request passes: no 5xx, and no answer but `expected` (requests
/// that got no answer count as unexpected).
fn check_answers(report: &mut Report, rec: &Recorder, name: &str, expected: &[&str]) {
    let errors = rec.server_errors();
    report.check(&format!("{name}: no 5xx"), errors == 0, format!("{errors} × 5xx"));
    let unexpected = rec.unexpected(expected);
    report.check(
        &format!("{name}: only {}", expected.join(" or ")),
        unexpected == 0,
        format!("{unexpected} other answers (no answer at all included)"),
    );
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// `clients` tasks GET `path(client, n)` (`n` counting each client's requests) until
/// `duration` has passed; the merged answers and the seconds they took.
async fn get_loop(
    api: &Api,
    load: &Load,
    what: &'static str,
    path: impl Fn(usize, usize) -> String + Send + Sync + 'static,
) -> anyhow::Result<(Recorder, f64)> {
    let start = Instant::now();
    let deadline = start + load.duration;
    let api = api.clone();
    let path = Arc::new(path);
    let recorders = parallel(load.clients, load.clients, move |client| {
        let (api, path) = (api.client(client), path.clone());
        async move {
            let mut rec = Recorder::new()?;
            let mut n = 0;
            while Instant::now() < deadline {
                if let Some(a) = api.timed(&mut rec, what, api.http.get(api.url(&path(client, n)))).await
                    && a.status != StatusCode::OK
                {
                    rec.sample(a.describe(what));
                }
                n += 1;
            }
            Ok(rec)
        }
    })
    .await?;
    Ok((merged(recorders)?, start.elapsed().as_secs_f64()))
}

/// `GET /health/live`: the handler ceiling as this tool measures it on this machine.
pub async fn ceiling(c: &Common, o: &Load) -> anyhow::Result<Report> {
    let api = Api::new(&c.base, o.clients, c.sources)?;
    let params = json!({"duration_s": o.duration.as_secs_f64(), "clients": o.clients});
    let mut report = Report::new("ceiling", &c.label, &c.base, params);
    let name = "GET /health/live";
    let (rec, seconds) = get_loop(&api, o, name, |_, _| "/health/live".to_owned()).await?;
    report.rows.push(rec.row(name, seconds));
    check_answers(&mut report, &rec, name, &["200"]);
    Ok(report)
}

/// The movie list, then searches by title word, by concurrent anonymous clients: reads the
/// catalog cache serves after the first.
pub async fn catalog(c: &Common, o: &CatalogOptions) -> anyhow::Result<Report> {
    let api = Api::new(&c.base, o.load.clients.max(c.setup_concurrency), c.sources)?;
    let params = json!({"duration_s": o.load.duration.as_secs_f64(), "clients": o.load.clients, "movies": o.movies});
    let mut report = Report::new("catalog", &c.label, &c.base, params);
    let total = |api: Api| async move {
        let a = crate::client::send(api.http.get(api.url("/api/movies/movies?per_page=1"))).await?;
        a.json()["total"].as_u64().map(|n| n as usize).ok_or_else(|| anyhow!("{}", a.describe("list movies")))
    };
    let before = total(api.clone()).await?;
    if o.movies > before {
        let token = admin(&api, c).await?;
        let start = Instant::now();
        let (id, missing) = (run_id(), o.movies - before);
        let api2 = api.clone();
        parallel(missing, c.setup_concurrency, move |i| {
            let (api, token) = (api2.clone(), token.clone());
            let title = format!("{} {} {id}-{i}", WORDS[i % WORDS.len()], WORDS[(i / WORDS.len()) % WORDS.len()]);
            async move { api.movie(&token, &title).await }
        })
        .await?;
        report.fact("movies_created", missing);
        report.fact("create_seconds", secs(start.elapsed()));
    }
    report.fact("catalog_movies", total(api.clone()).await?);

    let list = "GET /api/movies/movies";
    let (rec, seconds) = get_loop(&api, &o.load, list, |_, _| "/api/movies/movies".to_owned()).await?;
    report.rows.push(rec.row(list, seconds));
    check_answers(&mut report, &rec, list, &["200"]);

    let search = "GET /api/movies/movies?q=";
    let (rec, seconds) = get_loop(&api, &o.load, search, |client, n| {
        format!("/api/movies/movies?q={}", WORDS[(client + n) % WORDS.len()].to_lowercase())
    })
    .await?;
    report.rows.push(rec.row(search, seconds));
    check_answers(&mut report, &rec, search, &["200"]);
    Ok(report)
}

/// Clients poll one showtime's seat map, sending back the `ETag` they were given; then a
/// booking must change the map at once (a 200 showing the seat held, never a 304).
pub async fn seatmap(c: &Common, o: &SeatmapOptions) -> anyhow::Result<Report> {
    let api = Api::new(&c.base, o.load.clients, c.sources)?;
    let params = json!({"duration_s": o.load.duration.as_secs_f64(), "clients": o.load.clients, "seats": o.seats});
    let mut report = Report::new("seatmap", &c.label, &c.base, params);
    let token = admin(&api, c).await?;
    let id = run_id();
    let movie = api.movie(&token, &format!("Seat map {id}")).await?;
    let screen = api.screening(&token, &movie, &format!("seatmap {id}"), o.seats).await?;
    let path = format!("/api/movies/showtimes/{}/seats", screen.showtime_id);

    let start = Instant::now();
    let deadline = start + o.load.duration;
    let (api2, path2) = (api.clone(), path.clone());
    let name = "GET /showtimes/{id}/seats";
    let recorders = parallel(o.load.clients, o.load.clients, move |client| {
        let (api, path) = (api2.client(client), path2.clone());
        async move {
            let mut rec = Recorder::new()?;
            let mut etag: Option<String> = None;
            while Instant::now() < deadline {
                let mut req = api.http.get(api.url(&path));
                if let Some(tag) = &etag {
                    req = req.header("if-none-match", tag);
                }
                match api.timed(&mut rec, name, req).await {
                    Some(a) if a.status == StatusCode::OK => etag = a.etag,
                    Some(a) if a.status == StatusCode::NOT_MODIFIED => {}
                    Some(a) => rec.sample(a.describe(name)),
                    None => {}
                }
            }
            Ok(rec)
        }
    })
    .await?;
    let rec = merged(recorders)?;
    report.rows.push(rec.row(name, start.elapsed().as_secs_f64()));
    check_answers(&mut report, &rec, name, &["200", "304"]);

    // The map must never show a sold seat free, even to a client holding an ETag.
    let before = crate::client::send(api.http.get(api.url(&path))).await?;
    report.fact("etag", before.etag.is_some());
    let users = api.users(&format!("m{id}u"), 1, 1).await?;
    let user = users.first().context("no user")?;
    let seat = screen.seat_ids.first().context("no seat")?;
    let booked = crate::client::send(
        api.http
            .post(api.url("/api/bookings/book"))
            .bearer_auth(&user.token)
            .json(&json!({"showtime_id": screen.showtime_id, "seat_ids": [seat]})),
    )
    .await?;
    if booked.status != StatusCode::CREATED {
        bail!("{}", booked.describe("booking a seat of the seat map"));
    }
    let mut req = api.http.get(api.url(&path));
    if let Some(tag) = &before.etag {
        req = req.header("if-none-match", tag);
    }
    let after = crate::client::send(req).await?;
    let shown = after.json()["seats"]
        .as_array()
        .and_then(|seats| seats.iter().find(|s| s["id"] == seat.as_str()))
        .and_then(|s| s["status"].as_str())
        .map(str::to_owned);
    report.check(
        "a booked seat shows taken at once",
        after.status == StatusCode::OK && shown.as_deref() == Some("held"),
        format!("after booking: {} with the seat {}", after.status.as_u16(), shown.as_deref().unwrap_or("absent")),
    );
    Ok(report)
}

/// Rounds of `clients` customers booking the same seat of a new showtime at once.
pub async fn race(c: &Common, o: &RaceOptions) -> anyhow::Result<Report> {
    let api = Api::new(&c.base, o.clients, c.sources)?;
    let params = json!({"clients": o.clients, "rounds": o.rounds});
    let mut report = Report::new("race", &c.label, &c.base, params);
    let token = admin(&api, c).await?;
    let id = run_id();
    let movie = api.movie(&token, &format!("Race {id}")).await?;
    let setup = Instant::now();
    let users = Arc::new(api.users(&format!("r{id}u"), o.clients, c.setup_concurrency).await?);
    report.fact("setup_seconds", secs(setup.elapsed()));

    let mut all = Recorder::new()?;
    let mut failed_rounds = Vec::new();
    for round in 0..o.rounds {
        let screen = api.screening(&token, &movie, &format!("race {id} {round}"), 1).await?;
        let seat = screen.seat_ids.first().context("no seat")?.clone();
        let body = Arc::new(json!({"showtime_id": screen.showtime_id, "seat_ids": [seat]}));
        let barrier = Arc::new(Barrier::new(o.clients));
        let (api2, users2) = (api.clone(), users.clone());
        let recorders = parallel(o.clients, o.clients, move |i| {
            let (api, users, body, barrier) = (api2.client(i), users2.clone(), body.clone(), barrier.clone());
            async move {
                // An open connection each, so that the race is for the seat, not for a socket.
                crate::client::send(api.http.get(api.url("/health/live"))).await?;
                let user = users.get(i).context("no user")?;
                let req = api.http.post(api.url("/api/bookings/book")).bearer_auth(&user.token).json(&*body);
                let mut rec = Recorder::new()?;
                barrier.wait().await;
                let answer = api.timed(&mut rec, "book", req).await;
                // A 409 must say the seat is taken, not refuse for another reason.
                let lost = matches!(&answer, Some(a) if a.status == StatusCode::CONFLICT
                    && a.json()["type"] == "/problems/seats-unavailable");
                match answer {
                    Some(a) if a.status != StatusCode::CREATED && !lost => rec.sample(a.describe("book")),
                    _ => {}
                }
                Ok((rec, lost))
            }
        })
        .await?;
        let lost = recorders.iter().filter(|(_, lost)| *lost).count() as u64;
        let rec = merged(recorders.into_iter().map(|(rec, _)| rec))?;
        let won = rec.count("201");
        let taken = api.seat_map(&screen.showtime_id).await?.iter().filter(|(_, s)| s != "available").count();
        if won != 1 || lost != (o.clients - 1) as u64 || taken != 1 {
            failed_rounds
                .push(format!("round {round}: {won}×201, {lost}×409 seats-unavailable, {taken} seat(s) taken"));
        }
        all.merge(&rec)?;
    }
    report.rows.push(all.row("POST /book (same seat)", 0.0));
    report.check(
        "one winner per seat",
        failed_rounds.is_empty(),
        if failed_rounds.is_empty() {
            format!("every round: 1×201, {}×409, the seat taken", o.clients - 1)
        } else {
            failed_rounds.join("; ")
        },
    );
    check_answers(&mut report, &all, "POST /book", &["201", "409"]);
    Ok(report)
}

/// A small xorshift: each buyer picks seats at random without a shared generator.
struct Rng(u64);

impl Rng {
    fn new(seed: usize) -> Self {
        let nanos = u64::from(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos()),
        );
        Self((seed as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ nanos | 1)
    }

    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// What the flash sale's buyers share: the seats not known to be taken, and the sales.
struct Market {
    free: Vec<String>,
    sold_out_at: Option<Duration>,
    /// `(booking id, seat id)` of every 201.
    sales: Vec<(String, String)>,
    /// Seats answered 201 more than once (the audit's first check).
    sold_twice: Vec<String>,
    /// When each sold seat's 201 arrived.
    sold_at: HashMap<String, Instant>,
}

impl Market {
    fn taken(&mut self, seat: &str, start: Instant) {
        self.free.retain(|s| s != seat);
        if self.free.is_empty() && self.sold_out_at.is_none() {
            self.sold_out_at = Some(start.elapsed());
        }
    }
}

/// A flash sale: `clients` buyers each book one random seat not known taken, as the next of
/// `users` customers, and pay it, until every seat is sold; then the audit.
pub async fn flash(c: &Common, o: &FlashOptions) -> anyhow::Result<Report> {
    let api = Api::new(&c.base, o.clients.max(c.setup_concurrency), c.sources)?;
    let params = json!({"seats": o.seats, "users": o.users, "clients": o.clients});
    let mut report = Report::new("flash", &c.label, &c.base, params);
    if o.users == 0 || o.clients == 0 {
        bail!("a flash sale needs users and clients");
    }
    let token = admin(&api, c).await?;
    let id = run_id();
    let movie = api.movie(&token, &format!("Flash {id}")).await?;
    let screen = api.screening(&token, &movie, &format!("flash {id}"), o.seats).await?;
    let setup = Instant::now();
    let users = Arc::new(api.users(&format!("f{id}u"), o.users, c.setup_concurrency).await?);
    let setup = setup.elapsed();
    report.fact("setup_seconds", secs(setup));
    report.fact("users_registered_per_second", (o.users as f64 / setup.as_secs_f64()).round());

    let market = Arc::new(Mutex::new(Market {
        free: screen.seat_ids.clone(),
        sold_out_at: None,
        sales: Vec::new(),
        sold_twice: Vec::new(),
        sold_at: HashMap::new(),
    }));
    let followers = follow_seats(&api, &screen.showtime_id, o.followers).await?;
    let attempted: Arc<Vec<AtomicBool>> = Arc::new((0..o.users).map(|_| AtomicBool::new(false)).collect());
    let (next_user, errors) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (other_conflicts, unpaid) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let showtime = screen.showtime_id.clone();
    let start = Instant::now();
    let shared = (api.clone(), users.clone(), market.clone(), attempted.clone(), next_user, errors.clone());
    let (other, unpaid2) = (other_conflicts.clone(), unpaid.clone());
    let recorders = parallel(o.clients, o.clients, move |buyer| {
        let (api, users, market, attempted, next_user, errors) = shared.clone();
        let api = api.client(buyer);
        let (showtime, other, unpaid) = (showtime.clone(), other.clone(), unpaid2.clone());
        async move {
            let (mut book, mut pay) = (Recorder::new()?, Recorder::new()?);
            let mut rng = Rng::new(buyer);
            while errors.load(Ordering::Relaxed) < MAX_ERRORS {
                let seat = {
                    let m = market.lock().map_err(|_| anyhow!("market lock poisoned"))?;
                    if m.free.is_empty() {
                        break;
                    }
                    m.free[rng.below(m.free.len())].clone()
                };
                let u = next_user.fetch_add(1, Ordering::Relaxed) % users.len();
                let user = users.get(u).context("no user")?;
                if let Some(flag) = attempted.get(u) {
                    flag.store(true, Ordering::Relaxed);
                }
                let req = api
                    .http
                    .post(api.url("/api/bookings/book"))
                    .bearer_auth(&user.token)
                    .json(&json!({"showtime_id": showtime, "seat_ids": [seat]}));
                let Some(a) = api.timed(&mut book, "book", req).await else {
                    errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                match a.status {
                    StatusCode::CREATED => {
                        let booking = id_of(&a.json())?;
                        {
                            let mut m = market.lock().map_err(|_| anyhow!("market lock poisoned"))?;
                            if m.sales.iter().any(|(_, s)| *s == seat) {
                                m.sold_twice.push(seat.clone());
                            }
                            m.sales.push((booking.clone(), seat.clone()));
                            m.sold_at.insert(seat.clone(), Instant::now());
                            m.taken(&seat, start);
                        }
                        if !pay_booking(&api, &mut pay, &user.token, &booking).await {
                            unpaid.fetch_add(1, Ordering::Relaxed);
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    StatusCode::CONFLICT => {
                        let body = a.json();
                        let unavailable = body["unavailable_seat_ids"].as_array().cloned().unwrap_or_default();
                        if unavailable.is_empty() {
                            // A 409 of another kind (a hold limit): allowed, but reported.
                            other.fetch_add(1, Ordering::Relaxed);
                            book.sample(a.describe("book"));
                        }
                        let mut m = market.lock().map_err(|_| anyhow!("market lock poisoned"))?;
                        for s in unavailable.iter().filter_map(Value::as_str) {
                            m.taken(s, start);
                        }
                    }
                    _ => {
                        book.sample(a.describe("book"));
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Ok((book, pay))
        }
    })
    .await?;
    let elapsed = start.elapsed();
    let (books, pays): (Vec<_>, Vec<_>) = recorders.into_iter().unzip();
    let (book, pay) = (merged(books)?, merged(pays)?);
    report.rows.push(book.row("POST /book", elapsed.as_secs_f64()));
    report.rows.push(pay.row("POST /pay", elapsed.as_secs_f64()));

    let (sales, sold_out_at, sold_twice, sold_at) = {
        let m = market.lock().map_err(|_| anyhow!("market lock poisoned"))?;
        (m.sales.clone(), m.sold_out_at, m.sold_twice.clone(), m.sold_at.clone())
    };
    if o.followers > 0 {
        followed(&mut report, followers, &sold_at, screen.seat_ids.len(), elapsed).await?;
    }
    report.fact("sold_out_seconds", sold_out_at.map(secs));
    report.fact("elapsed_seconds", secs(elapsed));
    report.fact("sales", sales.len());
    report.fact("other_409", other_conflicts.load(Ordering::Relaxed));
    check_answers(&mut report, &book, "POST /book", &["201", "409"]);
    check_answers(&mut report, &pay, "POST /pay", &["201"]);
    let unpaid = unpaid.load(Ordering::Relaxed);
    report.check("every sale paid", unpaid == 0, format!("{unpaid} of {} sales not paid (completed)", sales.len()));
    report.check(
        "every seat answered 201 once",
        sold_twice.is_empty(),
        format!("{} seat(s) answered 201 twice {sold_twice:?}", sold_twice.len()),
    );
    let attempted: Vec<User> = attempted
        .iter()
        .enumerate()
        .filter(|(_, f)| f.load(Ordering::Relaxed))
        .filter_map(|(i, _)| users.get(i).cloned())
        .collect();
    audit(&api, c, &mut report, &screen, &sales, attempted).await?;
    Ok(report)
}

/// When a follower first saw each seat held or booked.
type Seen = HashMap<String, Instant>;

/// `count` followers of `showtime`'s seat-state stream, each connected and past its snapshot
/// when this returns; each ends once it has seen `seats` seats taken, or heard nothing for
/// `FEED_PATIENCE`.
async fn follow_seats(
    api: &Api,
    showtime: &str,
    count: usize,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<anyhow::Result<Seen>>>> {
    let (ready, mut readies) = tokio::sync::mpsc::channel::<anyhow::Result<()>>(count.max(1));
    let url = api.url(&format!("/api/bookings/showtimes/{showtime}/seat-states/stream"));
    let followers = (0..count)
        .map(|n| {
            let (http, url, ready) = (api.client(n).http, url.clone(), ready.clone());
            tokio::spawn(async move {
                let res = http.get(&url).timeout(Duration::from_secs(900)).send().await;
                let mut res = match res.map_err(anyhow::Error::from).and_then(|r| Ok(r.error_for_status()?)) {
                    Ok(res) => res,
                    Err(e) => {
                        let _ = ready.send(Err(anyhow!("follower {n}: {e}"))).await;
                        return Err(anyhow!("not connected"));
                    }
                };
                let (mut buffer, mut seen, mut snapshot) = (String::new(), Seen::new(), false);
                let mut heard = Instant::now();
                loop {
                    while let Some(end) = buffer.find("\n\n") {
                        let message: String = buffer.drain(..end + 2).collect();
                        let Some(data) = message.lines().find_map(|l| l.strip_prefix("data: ")) else { continue };
                        let event: Value = serde_json::from_str(data)?;
                        let now = Instant::now();
                        for (seat, state) in event["seats"].as_object().into_iter().flatten() {
                            if state != "available" {
                                seen.entry(seat.clone()).or_insert(now);
                            }
                        }
                        heard = now;
                        if !snapshot {
                            snapshot = true;
                            let _ = ready.send(Ok(())).await;
                        }
                    }
                    let left = FEED_PATIENCE.saturating_sub(heard.elapsed());
                    match tokio::time::timeout(left, res.chunk()).await {
                        Ok(Ok(Some(chunk))) => buffer.push_str(std::str::from_utf8(&chunk)?),
                        Ok(Ok(None)) | Err(_) => return Ok(seen),
                        Ok(Err(e)) => return Err(e.into()),
                    }
                }
            })
        })
        .collect();
    drop(ready);
    for _ in 0..count {
        readies.recv().await.context("a follower ended before its snapshot")??;
    }
    Ok(followers)
}

/// How long a follower waits for an event before it decides none is coming.
const FEED_PATIENCE: Duration = Duration::from_secs(20);

/// The followers' report: how late after its 201 each follower saw each sold seat taken
/// (`0` when it saw it first), and that every follower saw every seat taken.
async fn followed(
    report: &mut Report,
    followers: Vec<tokio::task::JoinHandle<anyhow::Result<Seen>>>,
    sold_at: &HashMap<String, Instant>,
    seats: usize,
    elapsed: Duration,
) -> anyhow::Result<()> {
    let (count, mut lag, mut incomplete) = (followers.len(), Recorder::new()?, 0);
    for follower in followers {
        let seen = follower.await.context("a follower panicked")??;
        if seen.len() < seats {
            incomplete += 1;
        }
        for (seat, sold) in sold_at {
            if let Some(at) = seen.get(seat) {
                lag.record(at.saturating_duration_since(*sold), "seen");
            }
        }
    }
    report.rows.push(lag.row("seat seen taken after its 201", elapsed.as_secs_f64()));
    report.fact("followers", count);
    report.check(
        "every follower saw every seat taken",
        incomplete == 0,
        format!("{incomplete} of {count} followers missed seats"),
    );
    Ok(())
}

/// Pays `booking` with the good test card under a fresh idempotency key; whether it answered
/// 201 with a completed payment (otherwise the answer is kept as a sample).
async fn pay_booking(api: &Api, rec: &mut Recorder, token: &str, booking: &str) -> bool {
    let body = json!({"booking_id": booking, "card_number": CARD, "card_expiry": "12/35", "card_cvc": "123"});
    let req = api
        .http
        .post(api.url("/api/payments/pay"))
        .bearer_auth(token)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&body);
    match api.timed(rec, "pay", req).await {
        Some(a) if a.status == StatusCode::CREATED && a.json()["status"] == "completed" => true,
        Some(a) => {
            rec.sample(a.describe("pay"));
            false
        }
        None => false,
    }
}

/// The flash sale's audit: the seat map, the bookings of every customer who tried, and the
/// 201s must agree: every seat taken in the map is in exactly one live (pending or confirmed)
/// booking, every seat answered 201 is one of them, and the showtime is sold out.
async fn audit(
    api: &Api,
    c: &Common,
    report: &mut Report,
    screen: &Screening,
    sales: &[(String, String)],
    attempted: Vec<User>,
) -> anyhow::Result<()> {
    let map = api.seat_map(&screen.showtime_id).await?;
    let taken: HashSet<String> = map.iter().filter(|(_, s)| s != "available").map(|(id, _)| id.clone()).collect();
    let odd: Vec<&String> =
        map.iter().map(|(_, s)| s).filter(|s| !["available", "held", "booked"].contains(&s.as_str())).collect();
    report.check(
        "sold out",
        taken.len() == screen.seat_ids.len() && odd.is_empty(),
        format!("{} of {} seats taken in the seat map", taken.len(), screen.seat_ids.len()),
    );

    let checked = attempted.len();
    let api2 = api.clone();
    let lists = parallel(attempted.len(), c.setup_concurrency, move |i| {
        let api = api2.client(i);
        let token = attempted.get(i).map(|u| u.token.clone()).unwrap_or_default();
        async move { api.bookings_of(&token).await }
    })
    .await?;
    let mut live: HashMap<String, usize> = HashMap::new();
    let (mut confirmed, mut pending) = (0, 0);
    for b in lists.iter().flatten().filter(|b| b["showtime_id"] == screen.showtime_id.as_str()) {
        match b["status"].as_str() {
            Some("confirmed") => confirmed += 1,
            Some("pending") => pending += 1,
            _ => continue,
        }
        for seat in b["seats"].as_array().into_iter().flatten() {
            *live.entry(seat["id"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
        }
    }
    report.fact("audit_customers", checked);
    report.fact("audit_confirmed", confirmed);
    report.fact("audit_pending", pending);
    let twice: Vec<&String> = live.iter().filter(|(_, n)| **n > 1).map(|(s, _)| s).collect();
    report.check(
        "no seat in two live bookings",
        twice.is_empty(),
        format!("{} seat(s) in more than one live booking", twice.len()),
    );
    let live_seats: HashSet<String> = live.into_keys().collect();
    let free_but_sold: Vec<&String> = live_seats.difference(&taken).collect();
    let taken_unsold: Vec<&String> = taken.difference(&live_seats).collect();
    report.check(
        "taken in the map ⇔ in a live booking",
        free_but_sold.is_empty() && taken_unsold.is_empty(),
        format!(
            "{} seat(s) of live bookings shown available, {} seat(s) shown taken in no live booking",
            free_but_sold.len(),
            taken_unsold.len()
        ),
    );
    let lost: Vec<&String> = sales.iter().map(|(_, s)| s).filter(|s| !live_seats.contains(*s)).collect();
    report.check(
        "every 201 is a live booking",
        lost.is_empty(),
        format!("{} of {} sales not in a live booking", lost.len(), sales.len()),
    );
    Ok(())
}

/// Clients loop book → pay → read the booking until `confirmed`, over seats spread across
/// many showtimes; counts completed funnels per second and times each step.
pub async fn funnel(c: &Common, o: &FunnelOptions) -> anyhow::Result<Report> {
    let clients = o.load.clients;
    let api = Api::new(&c.base, clients.max(c.setup_concurrency), c.sources)?;
    let params = json!({
        "duration_s": o.load.duration.as_secs_f64(), "clients": clients, "showtimes": o.showtimes,
        "seats": o.seats, "poll_ms": o.poll.as_millis(),
    });
    let mut report = Report::new("funnel", &c.label, &c.base, params);
    let token = admin(&api, c).await?;
    let id = run_id();
    let setup = Instant::now();
    let movie = api.movie(&token, &format!("Funnel {id}")).await?;
    let (api2, seats, id2) = (api.clone(), o.seats, id.clone());
    let screens = parallel(o.showtimes, c.setup_concurrency, move |i| {
        let (api, token, movie, name) = (api2.clone(), token.clone(), movie.clone(), format!("funnel {id2} {i}"));
        async move { api.screening(&token, &movie, &name, seats).await }
    })
    .await?;
    let users = Arc::new(api.users(&format!("u{id}u"), clients, c.setup_concurrency).await?);
    report.fact("setup_seconds", secs(setup.elapsed()));
    // Seat by seat across the showtimes, so that concurrent clients book in different ones.
    let mut queue = VecDeque::new();
    for n in 0..o.seats {
        for s in &screens {
            if let Some(seat) = s.seat_ids.get(n) {
                queue.push_back((s.showtime_id.clone(), seat.clone()));
            }
        }
    }
    let queue = Arc::new(Mutex::new(queue));
    let ran_out = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + o.load.duration;
    let poll = o.poll;
    let shared = (api.clone(), users.clone(), queue, ran_out.clone(), errors.clone());
    let recorders = parallel(clients, clients, move |client| {
        let (api, users, queue, ran_out, errors) = shared.clone();
        let api = api.client(client);
        async move {
            let user = users.get(client).context("no user")?;
            let mut recs = [Recorder::new()?, Recorder::new()?, Recorder::new()?, Recorder::new()?];
            let [book, pay, confirm, whole] = &mut recs;
            let mut polls = 0u64;
            while Instant::now() < deadline && errors.load(Ordering::Relaxed) < MAX_ERRORS {
                let Some((showtime, seat)) = queue.lock().map_err(|_| anyhow!("queue lock poisoned"))?.pop_front()
                else {
                    ran_out.store(true, Ordering::Relaxed);
                    break;
                };
                let began = Instant::now();
                let req = api
                    .http
                    .post(api.url("/api/bookings/book"))
                    .bearer_auth(&user.token)
                    .json(&json!({"showtime_id": showtime, "seat_ids": [seat]}));
                let booking = match api.timed(book, "book", req).await {
                    Some(a) if a.status == StatusCode::CREATED => id_of(&a.json())?,
                    other => {
                        if let Some(a) = other {
                            book.sample(a.describe("book"));
                        }
                        errors.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                };
                if !pay_booking(&api, pay, &user.token, &booking).await {
                    errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let paid = Instant::now();
                let outcome = loop {
                    polls += 1;
                    let url = api.url(&format!("/api/bookings/bookings/{booking}"));
                    match crate::client::send(api.http.get(url).bearer_auth(&user.token)).await {
                        Ok(a) if a.status == StatusCode::OK => match a.json()["status"].as_str() {
                            Some("confirmed") => break "confirmed".to_owned(),
                            Some("pending") if paid.elapsed() < CONFIRM_PATIENCE => tokio::time::sleep(poll).await,
                            Some(status) => break status.to_owned(),
                            None => break "no status".to_owned(),
                        },
                        Ok(a) => {
                            confirm.sample(a.describe("read booking"));
                            break a.outcome();
                        }
                        Err(e) => {
                            confirm.sample(format!("read booking: {e:#}"));
                            break "transport".to_owned();
                        }
                    }
                };
                confirm.record(paid.elapsed(), &outcome);
                if outcome == "confirmed" {
                    whole.record(began.elapsed(), "confirmed");
                } else {
                    confirm.sample(format!("booking {booking} ended {outcome}"));
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok((recs, polls))
        }
    })
    .await?;
    let elapsed = start.elapsed().as_secs_f64();
    let mut totals = [Recorder::new()?, Recorder::new()?, Recorder::new()?, Recorder::new()?];
    let mut polls = 0;
    for (recs, p) in &recorders {
        polls += p;
        for (total, rec) in totals.iter_mut().zip(recs) {
            total.merge(rec)?;
        }
    }
    let [book, pay, confirm, whole] = &totals;
    let completed = whole.count("confirmed");
    report.rows.push(book.row("POST /book", elapsed));
    report.rows.push(pay.row("POST /pay", elapsed));
    report.rows.push(confirm.row("pay → confirmed (wait)", elapsed));
    report.rows.push(whole.row("book → confirmed", elapsed));
    report.fact("completed", completed);
    report.fact("completed_per_second", (completed as f64 / elapsed * 10.0).round() / 10.0);
    report.fact("booking_reads", polls);
    report.fact("ran_out_of_seats", ran_out.load(Ordering::Relaxed));
    check_answers(&mut report, book, "POST /book", &["201"]);
    check_answers(&mut report, pay, "POST /pay", &["201"]);
    report.check(
        "every paid booking confirmed",
        confirm.unexpected(&["confirmed"]) == 0,
        format!("{} not confirmed within {CONFIRM_PATIENCE:?}", confirm.unexpected(&["confirmed"])),
    );
    report.check("funnels completed", completed >= 1, format!("{completed} completed"));
    Ok(report)
}
