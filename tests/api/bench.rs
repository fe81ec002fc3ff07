//! The load generator (`bench/`) against the real binary: every scenario, briefly and with
//! small counts, must run and report sane results. No timing is asserted: this proves the
//! tool works, the figures come from `bench/run.sh`.

use boxoffice_bench::scenarios;
use boxoffice_bench::{CatalogOptions, Common, FlashOptions, FunnelOptions, Load, RaceOptions, Report, SeatmapOptions};
use std::time::Duration;

use crate::helpers::Backend;
use crate::process::{Server, backend_env, env_of};

const ADMIN_EMAIL: &str = "bench-admin@example.com";
const ADMIN_PASSWORD: &str = "bench admin password";

on_both_backends!(every_bench_scenario_runs_and_its_checks_pass);

/// Fails with the report when one of its checks failed.
fn passed(report: &Report) {
    assert!(report.passed(), "{}", report.markdown());
}

async fn every_bench_scenario_runs_and_its_checks_pass(backend: Backend) {
    let data = tempfile::TempDir::new().unwrap();
    let logs = tempfile::TempDir::new().unwrap();
    let mut env = backend_env(&backend);
    for (key, value) in [
        ("BOXOFFICE__AUTH__ADMIN_EMAIL", ADMIN_EMAIL),
        ("BOXOFFICE__AUTH__ADMIN_PASSWORD", ADMIN_PASSWORD),
        // All the load comes from one address: as behind a gateway, no per-client budget.
        ("BOXOFFICE__SERVER__CLIENT_BUDGET_PER_MINUTE", "0"),
        // The default `trace` logs every statement: too slow for a load.
        ("RUST_LOG", "warn"),
    ] {
        env.push((key.to_owned(), value.to_owned()));
    }
    let mut server = Server::start_with(data.path(), logs.path(), &env_of(&env));
    server.wait_ready(&reqwest::Client::new()).await;
    let common = Common {
        base: server.base.clone(),
        admin_email: Some(ADMIN_EMAIL.to_owned()),
        admin_password: Some(ADMIN_PASSWORD.to_owned()),
        label: "test".to_owned(),
        out: logs.path().join("bench"),
        setup_concurrency: 8,
        sources: 1,
    };
    let load = Load { duration: Duration::from_millis(500), clients: 4 };

    let ceiling = scenarios::ceiling(&common, &load).await.unwrap();
    passed(&ceiling);
    assert!(ceiling.rows[0].requests > 0, "{}", ceiling.markdown());

    let catalog = scenarios::catalog(&common, &CatalogOptions { load: load.clone(), movies: 12 }).await.unwrap();
    passed(&catalog);
    assert!(catalog.facts["catalog_movies"].as_u64().unwrap() >= 12, "{}", catalog.markdown());
    assert_eq!(catalog.rows.len(), 2, "list and search: {}", catalog.markdown());

    let seatmap = scenarios::seatmap(&common, &SeatmapOptions { load: load.clone(), seats: 54 }).await.unwrap();
    passed(&seatmap);
    let answers = &seatmap.rows[0].answers;
    assert!(answers.get("200").copied().unwrap_or(0) >= 1, "{}", seatmap.markdown());

    let race = scenarios::race(&common, &RaceOptions { clients: 6, rounds: 2 }).await.unwrap();
    passed(&race);
    let answers = &race.rows[0].answers;
    assert_eq!((answers["201"], answers["409"]), (2, 10), "{}", race.markdown());

    let flash =
        scenarios::flash(&common, &FlashOptions { seats: 30, users: 40, clients: 8, followers: 3 }).await.unwrap();
    passed(&flash);
    assert_eq!(flash.facts["sales"], 30, "{}", flash.markdown());
    assert!(flash.check_named("taken in the map ⇔ in a live booking").is_some(), "the audit ran");
    // Three seat maps followed the sale: each saw all 30 seats go, each seat once per map.
    assert!(flash.check_named("every follower saw every seat taken").is_some(), "{}", flash.markdown());
    assert_eq!(flash.row("seat seen taken after its 201").unwrap().requests, 90, "{}", flash.markdown());

    let options = FunnelOptions {
        load: Load { duration: Duration::from_secs(1), clients: 4 },
        showtimes: 2,
        seats: 20,
        poll: Duration::from_millis(10),
    };
    let funnel = scenarios::funnel(&common, &options).await.unwrap();
    passed(&funnel);
    assert!(funnel.facts["completed"].as_u64().unwrap() >= 1, "{}", funnel.markdown());
    server.stop();
}
