//! The `boxoffice` command itself: configuration errors, `admin create`, graceful shutdown.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{Backend, spawn_app_with};

fn boxoffice(data_dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_boxoffice"));
    cmd.env("BOXOFFICE__DATA_DIR", data_dir)
        .env("BOXOFFICE__AUTH__ARGON2_MEMORY_KIB", "1024")
        .env("BOXOFFICE__AUTH__ARGON2_ITERATIONS", "1")
        .env("BOXOFFICE__LOG__FORMAT", "json")
        .env_remove("BOXOFFICE_PROFILE")
        .env_remove("RUST_LOG");
    cmd
}

#[test]
fn a_bad_configuration_value_stops_the_process_naming_the_key() {
    let data = tempfile::TempDir::new().unwrap();
    let cases = [
        ("BOXOFFICE__SERVER__BODY_LIMIT_BYTES", "lots", "body_limit_bytes"),
        ("BOXOFFICE__SERVER__BIND", "nowhere", "bind"),
        ("BOXOFFICE__DATABASE__URL", "mysql://localhost/x", "database.url"),
        ("BOXOFFICE__MODULES", "auth,ticketing", "ticketing"),
        ("BOXOFFICE__LOG__FORMAT", "xml", "format"),
        ("BOXOFFICE__AUTH__ADMIN_EMAIL", "root@example.com", "auth.admin_password"),
        ("BOXOFFICE__EVENTS__RETENTION_HOURS", "1", "events.retention_hours"),
        ("BOXOFFICE__PAYMENT__IDEMPOTENCY_TTL_HOURS", "2", "payment.idempotency_ttl_hours"),
        // A module's section is read apart from the shared ones; its keys are named alike.
        ("BOXOFFICE__BOOKING__MAX_SEATS", "lots", "`booking.max_seats`"),
        ("BOXOFFICE__MOVIE__PRICE_MULTIPLIERS__PREMIUM", "high", "`movie.price_multipliers.premium`"),
    ];
    for (key, value, named) in cases {
        let out = boxoffice(data.path()).arg("migrate").env(key, value).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{key}={value}: {stderr}");
        assert!(stderr.contains(named), "{key}={value} should name {named}: {stderr}");
    }
    let elsewhere = boxoffice(data.path())
        .args(["serve", "--modules", "booking"])
        .env("BOXOFFICE__SERVICES__MOVIE", "not a url")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&elsewhere.stderr);
    assert_eq!(elsewhere.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("services.movie"), "{stderr}");
    let missing = boxoffice(data.path()).args(["--config", "/no/such.toml", "migrate"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(2));
}

/// Environment values are parsed (`8` is a number), then coerced to each field's type: a
/// numeric password in a module's section is still a password.
#[test]
fn a_module_key_from_the_environment_takes_its_fields_type() {
    let data = tempfile::TempDir::new().unwrap();
    let out = boxoffice(data.path())
        .arg("migrate")
        .env("BOXOFFICE__AUTH__ADMIN_EMAIL", "digits@example.com")
        .env("BOXOFFICE__AUTH__ADMIN_PASSWORD", "1234567890123")
        .env("BOXOFFICE__AUTH__ADMIN_USERNAME", "12345")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_create_makes_an_admin_who_can_log_in() {
    let data = tempfile::TempDir::new().unwrap();
    let out = boxoffice(data.path())
        .args(["admin", "create", "--email", "boss@example.com", "--username", "boss"])
        .env("BOXOFFICE_ADMIN_PASSWORD", "boss password")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again = boxoffice(data.path())
        .args(["admin", "create", "--email", "boss@example.com", "--password", "boss password"])
        .output()
        .unwrap();
    assert!(!again.status.success(), "a second admin with the same email must be refused");

    let dir = data.path().to_path_buf();
    let app = spawn_app_with(Backend::Sqlite, |s| s.data_dir = dir).await;
    let pair: Value = app.login("boss", "boss password").await.json().await.unwrap();
    let me: Value = app.get_as("/api/auth/me", pair["access_token"].as_str().unwrap()).await.json().await.unwrap();
    assert_eq!(me["role"], "admin");
}

#[test]
fn serve_finishes_gracefully_on_sigterm() {
    let data = tempfile::TempDir::new().unwrap();
    let mut child = boxoffice(data.path())
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("BOXOFFICE__LOG__FILTER", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The JSON log line `listening` carries the port picked by the OS.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let port = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            let v: Value = serde_json::from_str(&line).ok()?;
            (v["message"] == "listening").then(|| v["port"].as_u64()).flatten()
        })
        .expect("a listening line with the port");
    std::thread::spawn(move || lines.for_each(drop));
    let live = get_live(port);
    assert_eq!(live, 200);

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "still running 30 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
}

/// A plain HTTP/1.0 GET of `/health/live`, to stay off any async runtime here.
fn get_live(port: u64) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", u16::try_from(port).unwrap())).unwrap();
    stream.write_all(b"GET /health/live HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn seed_demo_fills_an_empty_catalog_once() {
    let data = tempfile::TempDir::new().unwrap();
    let first = boxoffice(data.path()).args(["seed", "--demo"]).output().unwrap();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(String::from_utf8_lossy(&first.stdout).contains("demo catalog created"));
    let second = boxoffice(data.path()).args(["seed", "--demo"]).output().unwrap();
    assert!(second.status.success());
    assert!(String::from_utf8_lossy(&second.stdout).contains("not empty"));
}

#[test]
fn the_production_profile_turns_the_demo_off_and_logs_json() {
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let production = boxoffice::settings::Settings::load_profile(Some(("production", &config)), None).unwrap();
    assert!(!production.demo.seed);
    assert_eq!(production.log.format, platform::config::LogFormat::Json);
    let default = boxoffice::settings::Settings::load_profile(None, None).unwrap();
    assert!(default.demo.seed);
    let split = boxoffice::settings::Settings::load_profile(Some(("split/movie", &config)), None).unwrap();
    assert_eq!(split.served(), [boxoffice::settings::Module::Movie]);
    assert!(!split.demo.seed);
}

/// deploy/split.sh starts each process of deploy/topology with the profile named there: every
/// one must load and serve the modules the topology says, and each layout must serve every
/// module.
#[test]
fn every_process_of_the_topology_has_a_profile_serving_its_modules() {
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    // What deploy/split.sh gives every process besides its profile.
    let given = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::fs::write(
        given.path(),
        format!("[events]\namqp_url = \"amqp://127.0.0.1:5672/%2f\"\n[services]\ntoken = \"{}\"\n", "t".repeat(32)),
    )
    .unwrap();
    for layout in ["split", "mixed"] {
        let mut served = Vec::new();
        for process in crate::deploy::topology(layout) {
            let settings =
                boxoffice::settings::Settings::load_profile(Some((&process.profile, &config)), Some(given.path()))
                    .unwrap_or_else(|e| panic!("{}: {e}", process.name));
            let names: Vec<String> = settings.served().into_iter().map(|m| m.name().to_owned()).collect();
            assert_eq!(names, process.modules, "{}: profile {}", process.name, process.profile);
            served.extend(names);
        }
        for module in boxoffice::settings::Module::ALL {
            assert!(served.iter().any(|m| m == module.name()), "layout {layout} serves no {}", module.name());
        }
    }
}

on_both_backends!(processes_starting_together_on_fresh_data_take_turns_migrating);

async fn processes_starting_together_on_fresh_data_take_turns_migrating(backend: Backend) {
    let data = tempfile::TempDir::new().unwrap();
    let settings = crate::helpers::test_settings(&backend, data.path());
    let opens = (0..4).map(|_| {
        let settings = settings.clone();
        async move {
            for module in [boxoffice::settings::Module::Auth, boxoffice::settings::Module::Movie] {
                boxoffice::modules::migrate(&settings, module).await?;
            }
            anyhow::Ok(())
        }
    });
    for result in futures_util::future::join_all(opens).await {
        result.unwrap_or_else(|e| panic!("{backend:?}: {e:#}"));
    }
}

/// `KEY_FILE` variables read a secret from a file, as compose and Kubernetes mount them.
#[test]
fn a_secret_can_come_from_a_file() {
    let data = tempfile::TempDir::new().unwrap();
    let file = data.path().join("token");
    std::fs::write(&file, format!("{}\n", "x".repeat(31))).unwrap();
    let short = boxoffice(data.path()).arg("migrate").env("BOXOFFICE__SERVICES__TOKEN_FILE", &file).output().unwrap();
    let stderr = String::from_utf8_lossy(&short.stderr);
    assert_eq!(short.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("services.token must be at least 32 characters"), "{stderr}");
    assert!(!stderr.contains(&"x".repeat(31)), "a secret is never printed: {stderr}");

    std::fs::write(&file, format!("{}\n", "x".repeat(32))).unwrap();
    let ok = boxoffice(data.path()).arg("migrate").env("BOXOFFICE__SERVICES__TOKEN_FILE", &file).output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));

    let both = boxoffice(data.path())
        .arg("migrate")
        .env("BOXOFFICE__SERVICES__TOKEN_FILE", &file)
        .env("BOXOFFICE__SERVICES__TOKEN", "y".repeat(32))
        .output()
        .unwrap();
    assert_eq!(both.status.code(), Some(2));
    let missing =
        boxoffice(data.path()).arg("migrate").env("BOXOFFICE__SERVICES__TOKEN_FILE", "/no/such/file").output().unwrap();
    assert_eq!(missing.status.code(), Some(2));
}

/// `boxoffice probe` is the health check of an image without curl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_exits_0_only_when_the_server_is_ready() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let port = app.address.rsplit(':').next().unwrap().to_owned();
    let data = tempfile::TempDir::new().unwrap();
    let probe = |bind: String| boxoffice(data.path()).args(["probe", "--bind", &bind]).output().unwrap();
    let ready = probe(format!("0.0.0.0:{port}"));
    assert!(ready.status.success(), "{}", String::from_utf8_lossy(&ready.stderr));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    assert_eq!(probe(closed.to_string()).status.code(), Some(1));
}
