//! The boxoffice API as the load generator uses it: set-up calls (users, an admin's movie,
//! theater and showtime), the measured calls' plumbing, and running work on many tasks.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::stats::Recorder;

/// Every bench user's password: long enough for any password rule.
const PASSWORD: &str = "bench password, not a secret";
/// How long set-up may retry a throttled login (429) before giving up.
const LOGIN_PATIENCE: Duration = Duration::from_secs(120);
/// A theater row holds at most 50 seats (the movie module's rule); 26 makes 208 seats 8 rows.
const ROW_WIDTH: usize = 26;

/// Where the server is, and the connection pools to it: one per source address (see
/// [`Api::new`]); `http` is the pool this handle sends from.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
    pools: Arc<Vec<reqwest::Client>>,
}

/// A registered customer.
#[derive(Debug, Clone)]
pub struct User {
    pub username: String,
    pub token: String,
}

/// A showtime in a theater of its own, with its seats' ids in layout order.
#[derive(Debug, Clone)]
pub struct Screening {
    pub showtime_id: String,
    pub seat_ids: Vec<String>,
}

/// An answer: its status, its `ETag`, and its body, parsed only when asked (a load loop
/// reading seat maps should not spend the client's CPU on JSON it does not look at).
pub struct Answer {
    pub status: StatusCode,
    pub etag: Option<String>,
    pub bytes: Vec<u8>,
}

impl Answer {
    /// The body as JSON: `null` when empty, a string when it is not JSON (a gateway's page).
    pub fn json(&self) -> Value {
        if self.bytes.is_empty() {
            return Value::Null;
        }
        serde_json::from_slice(&self.bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&self.bytes).into_owned()))
    }

    /// The status and the problem document's `type` and `detail` (or the start of the body).
    pub fn describe(&self, what: &str) -> String {
        let body = self.json();
        match body.get("type").and_then(Value::as_str) {
            Some(kind) => format!("{what}: {} {kind} {}", self.status.as_u16(), body["detail"]),
            None => format!("{what}: {} {}", self.status.as_u16(), truncate(&body.to_string())),
        }
    }

    pub fn outcome(&self) -> String {
        self.status.as_u16().to_string()
    }
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(200) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

impl Api {
    /// A client for `base` keeping up to `connections` idle connections (one per client task,
    /// so the load reuses them rather than opening new ones).
    ///
    /// With `sources` above 1, the clients send from that many loopback addresses
    /// (127.0.0.2, 127.0.0.3, …; only for a server on loopback): a gateway that limits
    /// requests per client address (deploy/gateway: 10 bookings or logins a second after a
    /// burst of 100) then sees many customers, as in production, rather than one flood.
    pub fn new(base: &str, connections: usize, sources: usize) -> anyhow::Result<Self> {
        let build = |address: Option<IpAddr>| {
            reqwest::Client::builder()
                .pool_max_idle_per_host(connections)
                .timeout(Duration::from_secs(60))
                .tcp_nodelay(true)
                .local_address(address)
                .build()
                .context("building the HTTP client")
        };
        let pools = if sources <= 1 {
            vec![build(None)?]
        } else {
            (0..sources)
                .map(|i| {
                    let offset = u32::try_from(i).context("too many source addresses")?;
                    build(Some(IpAddr::V4(Ipv4Addr::from(0x7f00_0002 + offset))))
                })
                .collect::<anyhow::Result<_>>()?
        };
        let http = pools.first().context("no HTTP client")?.clone();
        Ok(Self { base: base.trim_end_matches('/').to_owned(), http, pools: Arc::new(pools) })
    }

    /// This API as client `n` sends it: from the `n`th source address, round the list.
    pub fn client(&self, n: usize) -> Api {
        let mut api = self.clone();
        if let Some(pool) = self.pools.get(n % self.pools.len()) {
            api.http = pool.clone();
        }
        api
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends `req`, reading the body as JSON when it has one; times it into `rec` (as its
    /// status, or `transport` when no answer came). `None` when no answer came.
    pub async fn timed(&self, rec: &mut Recorder, what: &str, req: RequestBuilder) -> Option<Answer> {
        let start = Instant::now();
        let result = send(req).await;
        match result {
            Ok(answer) => {
                rec.record(start.elapsed(), &answer.outcome());
                Some(answer)
            }
            Err(e) => {
                rec.record(start.elapsed(), "transport");
                rec.sample(format!("{what}: {e:#}"));
                None
            }
        }
    }

    /// An access token for `username`, waiting out the login throttle (429 with
    /// `Retry-After`), which counts logins in flight from one address.
    pub async fn login(&self, username: &str) -> anyhow::Result<String> {
        let deadline = Instant::now() + LOGIN_PATIENCE;
        loop {
            let req =
                self.http.post(self.url("/api/auth/token")).form(&[("username", username), ("password", PASSWORD)]);
            let res = req.send().await.with_context(|| format!("login {username}"))?;
            if res.status() == StatusCode::TOO_MANY_REQUESTS && Instant::now() < deadline {
                let wait = res
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(1);
                tokio::time::sleep(Duration::from_secs(wait)).await;
                continue;
            }
            let answer = answer_of(res).await?;
            if answer.status != StatusCode::OK {
                bail!("{}", answer.describe(&format!("login {username}")));
            }
            return answer.json()["access_token"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("login {username}: no access_token"));
        }
    }

    /// An admin's access token.
    pub async fn admin_login(&self, email: &str, password: &str) -> anyhow::Result<String> {
        let req = self.http.post(self.url("/api/auth/token")).form(&[("username", email), ("password", password)]);
        let answer = send(req).await.context("admin login")?;
        if answer.status != StatusCode::OK {
            bail!("{} (are --admin-email and --admin-password an admin's?)", answer.describe("admin login"));
        }
        answer.json()["access_token"].as_str().map(str::to_owned).ok_or_else(|| anyhow!("admin login: no access_token"))
    }

    /// Registers `count` customers named `<prefix><n>` and logs each in, `concurrency` at a
    /// time (each costs two Argon2 hashes on the server, which dominate set-up).
    pub async fn users(&self, prefix: &str, count: usize, concurrency: usize) -> anyhow::Result<Vec<User>> {
        let api = self.clone();
        let prefix = prefix.to_owned();
        parallel(count, concurrency, move |i| {
            let api = api.client(i);
            let username = format!("{prefix}{i}");
            async move {
                let body =
                    json!({"email": format!("{username}@bench.example"), "username": username, "password": PASSWORD});
                let answer = send(api.http.post(api.url("/api/auth/register")).json(&body)).await?;
                if answer.status != StatusCode::CREATED {
                    bail!("{}", answer.describe(&format!("register {username}")));
                }
                let token = api.login(&username).await?;
                Ok(User { username, token })
            }
        })
        .await
    }

    /// `POST path` as `admin`, which must answer 201; the created resource.
    pub async fn post_admin(&self, admin: &str, path: &str, body: &Value) -> anyhow::Result<Value> {
        let answer = send(self.http.post(self.url(path)).bearer_auth(admin).json(body)).await?;
        if answer.status != StatusCode::CREATED {
            bail!("{}", answer.describe(&format!("POST {path}")));
        }
        Ok(answer.json())
    }

    /// A movie for this run's showtimes.
    pub async fn movie(&self, admin: &str, title: &str) -> anyhow::Result<String> {
        let body = json!({"title": title, "duration_minutes": 100, "genre": "Drama", "release_date": "2024-05-17"});
        id_of(&self.post_admin(admin, "/api/movies/movies", &body).await?)
    }

    /// A theater of `seats` standard seats (rows of 26) and a showtime of `movie` in it two
    /// days ahead: a theater per showtime, so that showtimes never overlap.
    pub async fn screening(&self, admin: &str, movie: &str, name: &str, seats: usize) -> anyhow::Result<Screening> {
        if seats == 0 {
            bail!("a theater needs at least one seat");
        }
        let layout: Vec<Value> = (0..seats.div_ceil(ROW_WIDTH))
            .map(|r| {
                let width = ROW_WIDTH.min(seats - r * ROW_WIDTH);
                json!({"row": format!("R{}", r + 1), "seats": width, "type": "standard"})
            })
            .collect();
        let theater = self
            .post_admin(admin, "/api/movies/theaters", &json!({"name": name, "location": "bench", "layout": layout}))
            .await?;
        let seat_ids = theater["seats"]
            .as_array()
            .context("theater without seats")?
            .iter()
            .map(id_of)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let start = (chrono::Utc::now() + chrono::Duration::days(2))
            .date_naive()
            .and_hms_opt(18, 0, 0)
            .context("18:00")?
            .and_utc()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let body = json!({"movie_id": movie, "theater_id": id_of(&theater)?, "start_time": start, "price_cents": 1200});
        let showtime = self.post_admin(admin, "/api/movies/showtimes", &body).await?;
        Ok(Screening { showtime_id: id_of(&showtime)?, seat_ids })
    }

    /// The seat map: each seat's id and status (`available`, `held`, `booked`).
    pub async fn seat_map(&self, showtime: &str) -> anyhow::Result<Vec<(String, String)>> {
        let answer = send(self.http.get(self.url(&format!("/api/movies/showtimes/{showtime}/seats")))).await?;
        if answer.status != StatusCode::OK {
            bail!("{}", answer.describe("seat map"));
        }
        answer.json()["seats"]
            .as_array()
            .context("seat map without seats")?
            .iter()
            .map(|s| Ok((id_of(s)?, s["status"].as_str().context("seat without status")?.to_owned())))
            .collect()
    }

    /// Every booking of `token`'s customer, whatever its status.
    pub async fn bookings_of(&self, token: &str) -> anyhow::Result<Vec<Value>> {
        let mut all = Vec::new();
        for page in 1.. {
            let url = self.url(&format!("/api/bookings/bookings?per_page=100&page={page}"));
            let answer = send(self.http.get(url).bearer_auth(token)).await?;
            if answer.status != StatusCode::OK {
                bail!("{}", answer.describe("list bookings"));
            }
            let body = answer.json();
            let items = body["items"].as_array().context("bookings without items")?;
            all.extend(items.iter().cloned());
            let total = body["total"].as_u64().context("bookings without total")?;
            if items.is_empty() || all.len() as u64 >= total {
                break;
            }
        }
        Ok(all)
    }
}

/// The `id` of a created resource.
pub fn id_of(v: &Value) -> anyhow::Result<String> {
    v["id"].as_str().map(str::to_owned).ok_or_else(|| anyhow!("no id in {v}"))
}

/// Sends `req` and reads its answer.
pub async fn send(req: RequestBuilder) -> anyhow::Result<Answer> {
    let res = req.send().await?;
    answer_of(res).await
}

async fn answer_of(res: reqwest::Response) -> anyhow::Result<Answer> {
    let status = res.status();
    let etag = res.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let bytes = res.bytes().await?.to_vec();
    Ok(Answer { status, etag, bytes })
}

/// Runs `work(i)` for every `i` in `0..count`, at most `concurrency` at once, and returns the
/// results in order of `i`; the first error ends it.
pub async fn parallel<T, F, Fut>(count: usize, concurrency: usize, work: F) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<T>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let work = Arc::new(work);
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency.clamp(1, count.max(1)) {
        let next = next.clone();
        let work = work.clone();
        tasks.spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok::<_, anyhow::Error>(done);
                }
                done.push((i, work(i).await?));
            }
        });
    }
    let mut all = Vec::with_capacity(count);
    while let Some(joined) = tasks.join_next().await {
        all.extend(joined.context("a task panicked")??);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, t)| t).collect())
}
