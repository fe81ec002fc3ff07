#![allow(clippy::expect_used, clippy::unwrap_used)]

//! Black-box tests of the boxoffice HTTP API, built as one test binary.
//!
//! Every test spawns its own app on port 0 with its own data (a temporary directory for
//! SQLite; a fresh schema prefix and Redis key prefix for PostgreSQL + Redis), so tests run
//! in parallel. Tests listed in `on_both_backends!` run on SQLite with in-memory adapters
//! (the single binary) and on PostgreSQL + Redis + RabbitMQ (the split deployment's adapters):
//! the `postgres::` tests, which need the `BOXOFFICE_TEST_*` variables and which nextest's
//! default profile skips (`.config/nextest.toml`).

#[macro_use]
mod helpers;

mod audit;
mod auth;
mod auth_contract;
mod auth_limits;
mod auth_tokens;
mod bench;
mod booking;
mod booking_contract;
mod cli;
mod crash;
mod dashboards;
mod deploy;
mod e2e;
mod event_contract;
mod events;
mod fixtures;
mod gateway;
mod input;
mod k8s;
mod k8s_run;
mod movie;
mod movie_contract;
mod movie_events;
mod notification;
mod notification_contract;
mod notification_file;
mod notification_process;
mod notification_smtp;
mod operations;
mod payment;
mod payment_contract;
mod payment_process;
#[path = "../../modules/platform/tests/common/private_redis.rs"]
mod private_redis;
mod process;
mod site;
mod smtp;
mod split;
mod split_script;
mod traces;
