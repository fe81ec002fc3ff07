//! The real `boxoffice` binary as a child process (start, SIGKILL, SIGTERM, restart on the same
//! data), and the HTTP calls the process tests share. Used by the payment process tests and by
//! the crash and fault suite.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{Datelike, Utc};
use serde_json::{Value, json};

use crate::helpers::Backend;

/// How long anything in the background (start-up, events) may take.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub const GOOD: &str = "4242424242424242";
pub const DECLINED: &str = "4000000000000002";

/// An expiry two years ahead, `MM/YY`.
pub fn future_expiry() -> String {
    format!("12/{:02}", (Utc::now().year() + 2) % 100)
}

/// `POST /api/payments/pay` as `token` with `key` and a raw JSON `body`, failing if no answer
/// comes.
pub async fn try_pay(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    key: &str,
    body: &Value,
) -> reqwest::Result<reqwest::Response> {
    client
        .post(format!("{base}/api/payments/pay"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
}

/// `POST /api/payments/pay` as `token` with `key` and a raw JSON `body`.
pub async fn pay(client: &reqwest::Client, base: &str, token: &str, key: &str, body: &Value) -> reqwest::Response {
    try_pay(client, base, token, key, body).await.unwrap()
}

/// Polls `GET path` as `token` until `done` holds for its JSON body, and returns that body.
pub async fn poll_until(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let res = client.get(url).bearer_auth(token).send().await.unwrap();
        assert_eq!(res.status(), 200, "GET {url}");
        let body: Value = res.json().await.unwrap();
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{what} not within {PATIENCE:?}: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A `boxoffice serve` process, killed if the test ends before it was stopped.
pub struct Server {
    child: Child,
    pub base: String,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            drop(self.child.kill());
            drop(self.child.wait());
        }
    }
}

impl Server {
    /// Starts `boxoffice serve` on a free port with the demo catalog, logging everything at
    /// `trace` (SQL statements included) into files under `logs`.
    pub fn start(data_dir: &Path, logs: &Path) -> Self {
        Self::start_with(data_dir, logs, &[])
    }

    /// [`Server::start`], with `env` (`BOXOFFICE__…` overrides) set on top.
    pub fn start_with(data_dir: &Path, logs: &Path, env: &[(&str, &str)]) -> Self {
        std::fs::create_dir_all(logs).unwrap();
        // A free port: bound by the OS, then let go for the server to take.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let stdout = logs.join("stdout.log");
        let stderr = logs.join("stderr.log");
        let child = Command::new(env!("CARGO_BIN_EXE_boxoffice"))
            .arg("serve")
            .env_remove("BOXOFFICE_PROFILE")
            .env("BOXOFFICE__DATA_DIR", data_dir)
            .env("BOXOFFICE__SERVER__BIND", format!("127.0.0.1:{port}"))
            .env("BOXOFFICE__AUTH__ARGON2_MEMORY_KIB", "1024")
            .env("BOXOFFICE__AUTH__ARGON2_ITERATIONS", "1")
            .env("BOXOFFICE__DEMO__SEED", "true")
            // 5 modules × 3 connections, not the default 10: tests run side by side on one PostgreSQL.
            .env("BOXOFFICE__DATABASE__MAX_CONNECTIONS", "3")
            .env("BOXOFFICE__LOG__FORMAT", "json")
            .env("RUST_LOG", "trace")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Self { child, base: format!("http://127.0.0.1:{port}"), stdout, stderr }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Everything the process wrote.
    pub fn output(&self) -> String {
        let out = std::fs::read(&self.stdout).unwrap();
        let err = std::fs::read(&self.stderr).unwrap();
        format!("{}{}", String::from_utf8_lossy(&out), String::from_utf8_lossy(&err))
    }

    /// Waits until `/health/ready` answers 200.
    pub async fn wait_ready(&mut self, client: &reqwest::Client) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                panic!("boxoffice exited with {exit:?} before it was ready:\n{}", self.tail());
            }
            if let Ok(res) = client.get(self.url("/health/ready")).send().await
                && res.status() == 200
            {
                return;
            }
            assert!(Instant::now() < deadline, "not ready within {PATIENCE:?}:\n{}", self.tail());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The end of the output, for failure messages.
    pub fn tail(&self) -> String {
        let output = self.output();
        let lines: Vec<&str> = output.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// SIGKILL, as in a crash: the process dies wherever it is.
    pub fn kill(&mut self) {
        if let Some(exit) = self.child.try_wait().unwrap() {
            panic!("boxoffice exited with {exit:?} before it was killed:\n{}", self.tail());
        }
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for a graceful exit.
    pub fn stop(&mut self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill -TERM");
        let deadline = Instant::now() + PATIENCE;
        let exit = loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                break exit;
            }
            assert!(Instant::now() < deadline, "still running {PATIENCE:?} after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(exit.success(), "{exit:?}:\n{}", self.tail());
    }
}

/// Registers the customer `username` (password `correct horse`) at `server`.
pub async fn register(client: &reqwest::Client, server: &Server, username: &str) {
    let register =
        json!({"email": format!("{username}@example.com"), "username": username, "password": "correct horse"});
    let res = client.post(server.url("/api/auth/register")).json(&register).send().await.unwrap();
    assert_eq!(res.status(), 201, "register {username}");
}

/// Logs `username` in at `server`; returns the access token.
pub async fn log_in(client: &reqwest::Client, server: &Server, username: &str) -> String {
    let form = [("username", username), ("password", "correct horse")];
    let res = client.post(server.url("/api/auth/token")).form(&form).send().await.unwrap();
    assert_eq!(res.status(), 200, "login {username}");
    let pair: Value = res.json().await.unwrap();
    pair["access_token"].as_str().unwrap().to_owned()
}

/// `BOXOFFICE__…` settings that put the binary on `backend`'s storage, broker and Redis, with
/// names of this test's own.
pub fn backend_env(backend: &Backend) -> Vec<(String, String)> {
    let Backend::Postgres { database_url, redis_url, amqp_url } = backend else { return Vec::new() };
    let unique = uuid::Uuid::new_v4().simple().to_string();
    [
        ("DATABASE__URL", database_url.clone()),
        ("DATABASE__SCHEMA_PREFIX", format!("t_{}_", &unique[..12])),
        ("REDIS__URL", redis_url.clone()),
        ("REDIS__KEY_PREFIX", format!("test:{unique}:")),
        ("EVENTS__AMQP_URL", amqp_url.clone()),
        ("EVENTS__EXCHANGE", format!("test.{unique}")),
        ("EVENTS__QUEUE_PREFIX", format!("test.{unique}.")),
    ]
    .into_iter()
    .map(|(key, value)| (format!("BOXOFFICE__{key}"), value))
    .collect()
}

/// Borrowed pairs for [`Server::start_with`].
pub fn env_of(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}
