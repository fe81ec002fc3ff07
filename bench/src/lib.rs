//! boxoffice's load generator: scenarios that load a running deployment (any base URL: the
//! single binary, or the split gateway), measure latencies with HdrHistogram, and check what
//! must stay true under load (one winner per seat, every sold seat in exactly one live
//! booking). A scenario fails on a broken check or a 5xx, never on its speed.
//!
//! The binary (`bench`) parses [`Cli`] and calls [`run`]; the API test suite calls the
//! scenarios directly against a server it started.

pub mod client;
pub mod report;
pub mod scenarios;
pub mod stats;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

pub use report::Report;

#[derive(Debug, Clone, Parser)]
#[command(name = "bench", about = "Load scenarios and correctness audits against a boxoffice deployment")]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// What every scenario needs: where the server is, how to act as its admin, where to write.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// The deployment's base URL (the single binary, or the split deployment's gateway).
    #[arg(long, global = true, env = "BENCH_BASE", default_value = "http://127.0.0.1:8080")]
    pub base: String,
    /// An admin's email, to create the movies, theaters and showtimes a scenario loads.
    #[arg(long, global = true, env = "BENCH_ADMIN_EMAIL")]
    pub admin_email: Option<String>,
    /// That admin's password.
    #[arg(long, global = true, env = "BENCH_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// The deployment's name in the report (e.g. `sqlite`, `postgres`, `split`).
    #[arg(long, global = true, default_value = "bench")]
    pub label: String,
    /// Where to write the JSON report (one file per run).
    #[arg(long, global = true, default_value = "bench-results")]
    pub out: PathBuf,
    /// How many users are registered at once during set-up. The server's login throttle lets
    /// 50 logins from one address run at once (`auth.login_max_failures_per_address`).
    #[arg(long, global = true, default_value_t = 32)]
    pub setup_concurrency: usize,
    /// Send from this many loopback addresses (127.0.0.2 on; the server must be on
    /// loopback), each client from its own, so that a gateway's per-address rate limits see
    /// many customers. 1: the system's choice.
    #[arg(long, global = true, default_value_t = 1)]
    pub sources: usize,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Scenario {
    /// `GET /health/live` in a loop: the server's and this tool's ceiling on this machine.
    Ceiling(Load),
    /// Cached catalog reads: the movie list, then title searches (`q`).
    Catalog(CatalogOptions),
    /// A showtime's seat map, polled with `If-None-Match` when the server sends an `ETag`.
    Seatmap(SeatmapOptions),
    /// Many customers book the same seat at once: exactly one must win.
    Race(RaceOptions),
    /// A flash sale: buyers book and pay one seat each until a showtime is sold out, then an
    /// audit of every sold seat.
    Flash(FlashOptions),
    /// Each client loops book → pay → wait until the booking reads `confirmed`.
    Funnel(FunnelOptions),
}

impl Scenario {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ceiling(_) => "ceiling",
            Self::Catalog(_) => "catalog",
            Self::Seatmap(_) => "seatmap",
            Self::Race(_) => "race",
            Self::Flash(_) => "flash",
            Self::Funnel(_) => "funnel",
        }
    }
}

/// A timed load by concurrent clients.
#[derive(Debug, Clone, Args)]
pub struct Load {
    /// How long to load (`500ms`, `10s`, `2m`).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Concurrent clients, each with one request in flight.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
}

#[derive(Debug, Clone, Args)]
pub struct CatalogOptions {
    #[command(flatten)]
    pub load: Load,
    /// Create movies as the admin until the catalog holds at least this many (0: use it as
    /// it is).
    #[arg(long, default_value_t = 0)]
    pub movies: usize,
}

#[derive(Debug, Clone, Args)]
pub struct SeatmapOptions {
    #[command(flatten)]
    pub load: Load,
    /// Seats of the showtime's theater.
    #[arg(long, default_value_t = 208)]
    pub seats: usize,
}

#[derive(Debug, Clone, Args)]
pub struct RaceOptions {
    /// Customers racing for the seat, each with its own account.
    #[arg(long, default_value_t = 40)]
    pub clients: usize,
    /// Races, each for a seat of a new showtime.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
}

#[derive(Debug, Clone, Args)]
pub struct FlashOptions {
    /// Seats on sale.
    #[arg(long, default_value_t = 500)]
    pub seats: usize,
    /// Registered customers; each attempt is made by the next one. Registering costs two
    /// Argon2 hashes each on the server.
    #[arg(long, default_value_t = 10_000)]
    pub users: usize,
    /// Concurrent buyers.
    #[arg(long, default_value_t = 256)]
    pub clients: usize,
    /// Browsers following the showtime's seat-state stream (the site's live seat map) through
    /// the sale: how late each saw each seat taken, and that each saw every one.
    #[arg(long, default_value_t = 0)]
    pub followers: usize,
}

#[derive(Debug, Clone, Args)]
pub struct FunnelOptions {
    #[command(flatten)]
    pub load: Load,
    /// Showtimes the clients' seats are spread over (each a theater of --seats).
    #[arg(long, default_value_t = 40)]
    pub showtimes: usize,
    /// Seats per showtime.
    #[arg(long, default_value_t = 208)]
    pub seats: usize,
    /// How often a client reads its booking while waiting for it to be confirmed.
    #[arg(long, default_value = "10ms", value_parser = parse_duration)]
    pub poll: Duration,
}

/// Runs the scenario and returns its report.
pub async fn run(cli: &Cli) -> anyhow::Result<Report> {
    let c = &cli.common;
    match &cli.scenario {
        Scenario::Ceiling(o) => scenarios::ceiling(c, o).await,
        Scenario::Catalog(o) => scenarios::catalog(c, o).await,
        Scenario::Seatmap(o) => scenarios::seatmap(c, o).await,
        Scenario::Race(o) => scenarios::race(c, o).await,
        Scenario::Flash(o) => scenarios::flash(c, o).await,
        Scenario::Funnel(o) => scenarios::funnel(c, o).await,
    }
}

/// `250ms`, `10s`, `2m`, or a number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len()));
    let n: f64 = number.parse().map_err(|_| format!("not a duration: {s:?} (e.g. 500ms, 10s, 2m)"))?;
    let seconds = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("unknown unit {unit:?} in {s:?} (ms, s, m)")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("10h").is_err());
        assert!(parse_duration("fast").is_err());
    }

    #[test]
    fn the_command_line_takes_options_on_either_side_of_the_scenario() {
        let cli = Cli::try_parse_from(["bench", "--base", "http://x:1", "race", "--clients", "8", "--label", "split"])
            .unwrap();
        assert_eq!(cli.common.base, "http://x:1");
        assert_eq!(cli.common.label, "split");
        let Scenario::Race(race) = cli.scenario else { panic!("not race") };
        assert_eq!((race.clients, race.rounds), (8, 5));
    }
}
