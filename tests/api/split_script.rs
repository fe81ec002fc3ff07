//! The split deployments as an operator runs them: `deploy/split.sh up` (real processes of
//! the binary, nginx in front, on the PostgreSQL, Redis and RabbitMQ of the test variables),
//! then the end-to-end suite (`tests/api/e2e.rs`) through the gateway, also while a booking replica is killed and
//! while notification is down.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration as StdDuration, Instant};

use futures_util::future::join_all;
use serde_json::Value;

use crate::e2e::{Tally, suite};
use crate::fixtures::{GOOD, ROWS_A_AND_B, book, card, customer, get_booking, pay_ok, screening, seat_map};
use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, Api, Backend, free_port_block, id};
use crate::notification::{kinds, wait_for_notifications};

/// A split deployment started by `deploy/split.sh` for one test, purged when dropped (stopped, its
/// database dropped).
pub struct Split {
    /// The script's state (secrets, logs, pids); `purge` runs before it goes.
    _state: tempfile::TempDir,
    env: Vec<(String, String)>,
    pub api: Api,
}

impl Split {
    /// `deploy/split.sh up` with `layout`, on a state dir, ports, database, Redis prefix and
    /// vhost of the test's own.
    fn up(layout: &str) -> Split {
        Split::up_with(layout, &[])
    }

    /// [`Split::up`] with `settings` (`BOXOFFICE__…` variables) added to every process's.
    pub fn up_with(layout: &str, settings: &[(&str, &str)]) -> Split {
        let Backend::Postgres { database_url, redis_url, amqp_url } = Backend::postgres() else {
            panic!("the split runs on PostgreSQL, Redis and RabbitMQ")
        };
        let state = tempfile::TempDir::new().unwrap();
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let env = vec![
            ("LAYOUT".to_owned(), layout.to_owned()),
            ("STATE_DIR".to_owned(), state.path().to_str().unwrap().to_owned()),
            ("BASE_PORT".to_owned(), free_port_block(&[1, 2, 3, 4, 5, 13, 80, 81, 443]).to_string()),
            ("SPLIT_NAME".to_owned(), format!("split_{}", &unique[..12])),
            ("BOXOFFICE_BIN".to_owned(), env!("CARGO_BIN_EXE_boxoffice").to_owned()),
            // The server: the script makes a database of its own there.
            ("DATABASE_URL".to_owned(), database_url.rsplit_once('/').unwrap().0.to_owned()),
            ("REDIS_URL".to_owned(), redis_url),
            ("AMQP_URL".to_owned(), amqp_url),
            ("ADMIN_EMAIL".to_owned(), ADMIN_EMAIL.to_owned()),
            ("ADMIN_PASSWORD".to_owned(), ADMIN_PASSWORD.to_owned()),
        ];
        let env = env.into_iter().chain(settings.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))).collect();
        let mut split = Split { _state: state, env, api: Api::new("") };
        let out = split.run(&["up"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last = stdout.lines().last().unwrap_or_default();
        let url = last.strip_prefix("GATEWAY_URL=").unwrap_or_else(|| panic!("last line {last:?}\n{stdout}"));
        split.api = Api::new(url);
        split
    }

    /// `deploy/split.sh ARGS`, which must succeed.
    fn run(&self, args: &[&str]) -> std::process::Output {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/split.sh");
        let out = Command::new("bash").arg(script).args(args).envs(self.env.iter().cloned()).output().unwrap();
        assert!(
            out.status.success(),
            "split.sh {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Drop for Split {
    fn drop(&mut self) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/split.sh");
        let _ = Command::new("bash").arg(script).arg("purge").envs(self.env.iter().cloned()).output();
    }
}

mod gateway {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_split_passes_the_suite_through_a_replica_kill_and_a_notification_outage() {
        let split = Split::up("split");
        let tally = suite(&split.api, "split").await;
        println!("e2e split behind the gateway: {tally:?}");

        let killed = a_booking_replica_dies_mid_run(&split).await;
        println!("e2e split, booking-1 killed mid-run: {killed}");
        let tally: Tally = suite(&split.api, "onereplica").await;
        println!("e2e split, one booking replica left: {tally:?}");

        let outage = notification_is_down_for_a_while(&split).await;
        println!("e2e split, notification stopped: {outage}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_mixed_split_passes_the_suite() {
        let split = Split::up("mixed");
        let tally = suite(&split.api, "mixed").await;
        println!("e2e mixed split behind the gateway: {tally:?}");
    }
}

/// Buyers read seat maps while booking-1 is killed with SIGKILL, then book and pay. Reads
/// (which the gateway retries on the other replica) never fail; a booking in flight on the
/// dead replica may (the gateway never retries a POST it has sent: a 502 problem), but every
/// booking answered 201 is kept, and every one paid is confirmed.
async fn a_booking_replica_dies_mid_run(split: &Split) -> String {
    let api = &split.api;
    let screen = screening(api, ROWS_A_AND_B).await;
    let mut buyers = Vec::new();
    for n in 0..6 {
        buyers.push(customer(api, &format!("kill{n}{}", &uuid::Uuid::new_v4().simple().to_string()[..8])).await);
    }
    let killed_at: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let kill = async {
        tokio::time::sleep(StdDuration::from_millis(500)).await;
        split.run(&["kill", "booking-1"]);
        killed_at.set(Instant::now()).unwrap();
    };
    let labels = ["A1", "A2", "A3", "A4", "A5", "A6"];
    let (screen, killed_at) = (&screen, &killed_at);
    let work = join_all(buyers.iter().zip(labels).map(|(buyer, label)| {
        async move {
            let mut reads = 0;
            // Reading until well after the kill: some reads are in flight when it happens.
            while killed_at.get().is_none_or(|t| t.elapsed() < StdDuration::from_millis(500)) {
                assert_eq!(seat_map(api, screen).await.len(), 12);
                reads += 1;
            }
            let res = crate::fixtures::post_book(api, &buyer.token, &screen.request(&[label])).await;
            let status = res.status().as_u16();
            if status != 201 {
                assert_eq!(status, 502, "only a booking in flight on the killed replica fails");
                crate::helpers::assert_problem(res, 502).await;
                return (reads, 0);
            }
            let booking: Value = res.json().await.unwrap();
            let paid = pay_ok(api, &buyer.token, &card(&booking, GOOD)).await;
            assert_eq!(paid["status"], "completed");
            let within = StdDuration::from_secs(30);
            crate::fixtures::wait_for_status(api, &buyer.token, id(&booking), "confirmed", within).await;
            assert_eq!(get_booking(api, &buyer.token, id(&booking)).await["status"], "confirmed");
            (reads, 1)
        }
    }));
    let ((), results) = tokio::join!(kill, work);
    let reads: usize = results.iter().map(|r| r.0).sum();
    let confirmed: usize = results.iter().map(|r| r.1).sum();
    assert!(confirmed >= 1, "the surviving replica takes bookings");
    format!("{reads} seat-map reads across the kill, none failed; {confirmed} of 6 bookings paid and confirmed")
}

/// Notification is stopped while customers book and pay; its events wait in RabbitMQ, and every
/// one of them is mailed after it starts again.
async fn notification_is_down_for_a_while(split: &Split) -> String {
    let api = &split.api;
    split.run(&["stop", "notification"]);
    let screen = screening(api, ROWS_A_AND_B).await;
    let mut buyers = Vec::new();
    for (n, label) in ["B1", "B2", "B3", "B4"].into_iter().enumerate() {
        let buyer = customer(api, &format!("quiet{n}{}", &uuid::Uuid::new_v4().simple().to_string()[..8])).await;
        let booking = book(api, &buyer.token, &screen, &[label]).await;
        let paid = pay_ok(api, &buyer.token, &card(&booking, GOOD)).await;
        assert_eq!(paid["status"], "completed");
        crate::fixtures::wait_for_status(api, &buyer.token, id(&booking), "confirmed", StdDuration::from_secs(30))
            .await;
        buyers.push(buyer);
    }
    let stopped_for = Instant::now();
    split.run(&["start", "notification"]);
    let mail = ["booking_created", "booking_confirmed"];
    for buyer in &buyers {
        wait_for_notifications(api, &buyer.token, |items| mail.iter().all(|k| kinds(items).contains(k))).await;
    }
    format!(
        "{} buyers booked and paid while it was down; all {} of their notifications arrived {:.1} s after it restarted",
        buyers.len(),
        buyers.len() * mail.len(),
        stopped_for.elapsed().as_secs_f64()
    )
}
