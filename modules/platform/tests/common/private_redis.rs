//! A redis-server of a test's own on a free loopback port, to hang with `CLIENT PAUSE` without
//! touching the Redis other tests share. Killed when dropped. Shared by the platform tests and
//! the API tests (included there by path), so it needs nothing but std and tokio.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PrivateRedis {
    child: Child,
    port: u16,
}

impl PrivateRedis {
    /// Starts one and waits until it answers. Panics when `redis-server` cannot be run: a test
    /// that needs it fails without it (nextest's default profile skips such tests by their
    /// `redis::` or `postgres::` path).
    pub async fn start() -> Self {
        for _ in 0..5 {
            // A port the kernel just handed out and took back; if another process takes it
            // first, the server exits and the next round picks another.
            let free = std::net::TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr());
            let port = free.expect("a free loopback port").port();
            let spawned = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let child =
                spawned.unwrap_or_else(|e| panic!("this test needs redis-server (and redis-cli) installed: {e}"));
            let mut redis = Self { child, port };
            if redis.ready().await {
                return redis;
            }
        }
        panic!("a private redis-server never answered redis-cli's PING (is redis-cli installed?)");
    }

    async fn ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return false;
            }
            if self.cli(&["PING"]).await.as_deref() == Some("PONG") {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Hangs every client's commands for `hang` (they wait; nothing fails), as a stalled or
    /// overloaded Redis would.
    pub async fn pause(&self, hang: Duration) {
        let answer = self.cli(&["CLIENT", "PAUSE", &hang.as_millis().to_string(), "ALL"]).await;
        assert_eq!(answer.as_deref(), Some("OK"), "CLIENT PAUSE");
    }

    /// `redis-cli` with `args` against this server: its output, trimmed.
    pub async fn cli(&self, args: &[&str]) -> Option<String> {
        let out = tokio::process::Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .ok()?;
        Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        // Only this test's own server, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
