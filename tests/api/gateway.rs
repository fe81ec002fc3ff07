//! The gateway's own answers: nginx running the compose configuration (`deploy/compose/nginx.conf`
//! with `deploy/gateway/`, paths and ports moved to a temporary directory and free ports), its
//! upstreams pointed at a port where nothing listens. Needs nginx (the `gateway::` tests, which
//! nextest's default profile skips); the routes to live services are covered by
//! `tests/api/split_script.rs`.

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use serde_json::Value;

use crate::deploy::repo;
use crate::helpers::assert_problem;

/// An nginx of its own, stopped when dropped.
struct Gateway {
    child: Child,
    /// Holds the configuration, certificate and logs.
    _dir: tempfile::TempDir,
    public: String,
    internal: String,
}

impl Drop for Gateway {
    /// SIGTERM, not SIGKILL: nginx's master stops its workers only when it is asked to.
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

fn nginx() -> &'static str {
    if Path::new("/usr/sbin/nginx").exists() { "/usr/sbin/nginx" } else { "nginx" }
}

/// The compose gateway on loopback, every upstream server at `127.0.0.1:<a closed port>`.
async fn start() -> Gateway {
    let dir = tempfile::TempDir::new().unwrap();
    let etc = dir.path().to_owned();
    let etc = etc.as_path();
    let gateway = etc.join("boxoffice/gateway");
    std::fs::create_dir_all(&gateway).unwrap();
    for file in std::fs::read_dir(repo().join("deploy/gateway")).unwrap() {
        let file = file.unwrap().path();
        if file.extension().is_some_and(|e| e == "conf") {
            std::fs::copy(&file, gateway.join(file.file_name().unwrap())).unwrap();
        }
    }
    // Upstreams at a closed port; the gateway's three listeners beside it.
    let base = crate::helpers::free_port_block(&[1, 2, 3, 4]);
    let closed = base + 1;
    let upstreams = std::fs::read_to_string(repo().join("deploy/compose/upstreams.conf")).unwrap();
    let upstreams: String = upstreams
        .lines()
        .map(|line| match line.trim().strip_prefix("server ") {
            Some(server) => {
                let options = server.split_once(' ').map_or(";", |(_, rest)| rest);
                format!("    server 127.0.0.1:{closed} {options}\n")
            }
            None => format!("{line}\n"),
        })
        .collect();
    std::fs::write(etc.join("boxoffice/upstreams.conf"), upstreams).unwrap();
    let made = Command::new("bash")
        .arg(repo().join("deploy/gateway/make-cert.sh"))
        .arg(etc.join("boxoffice/tls"))
        .status()
        .unwrap();
    assert!(made.success());
    let (public, tls, internal) = (base + 2, base + 3, base + 4);
    let main = std::fs::read_to_string(repo().join("deploy/compose/nginx.conf"))
        .unwrap()
        .replace("/etc/nginx/", &format!("{}/", etc.display()))
        .replace("pid /tmp/nginx.pid", &format!("pid {}/nginx.pid", etc.display()))
        .replace("listen 8080;", &format!("listen 127.0.0.1:{public};"))
        .replace("listen 8443 ssl;", &format!("listen 127.0.0.1:{tls} ssl;"))
        .replace("listen 8081;", &format!("listen 127.0.0.1:{internal};"));
    let conf = etc.join("nginx.conf");
    std::fs::write(&conf, main).unwrap();
    let child = Command::new(nginx())
        .args(["-g", "daemon off;", "-p"])
        .arg(etc)
        .arg("-e")
        .arg(etc.join("error.log"))
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nginx (Debian package nginx)");
    let gateway = Gateway {
        child,
        _dir: dir,
        public: format!("http://127.0.0.1:{public}"),
        internal: format!("http://127.0.0.1:{internal}"),
    };
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client.get(format!("{}/gateway/health", gateway.public)).send().await.is_ok_and(|r| r.status() == 200) {
            return gateway;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nginx did not start: {}", std::fs::read_to_string(etc.join("error.log")).unwrap_or_default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_answers_its_own_errors_as_problems_and_routes_internal_calls_only_internally() {
    let gateway = start().await;
    let client = reqwest::Client::new();
    let get = |url: String| client.get(url).header("x-request-id", "gateway-test-1").send();

    // Not routed publicly: unknown paths, the modules' internal routes, a process's metrics.
    for path in ["/no/such/route", "/api/nonsense/x", "/internal/auth/users/1", "/metrics", "/health/ready"] {
        let res = get(format!("{}{path}", gateway.public)).await.unwrap();
        assert_eq!(res.headers()["x-request-id"], "gateway-test-1", "{path}");
        assert_eq!(assert_problem(res, 404).await["type"], "/problems/not-found", "{path}");
    }
    // A module whose every replica is down: 502 with Retry-After; the internal listener routes
    // /internal to the same upstreams.
    for url in [format!("{}/api/movies/movies", gateway.public), format!("{}/internal/auth/users/1", gateway.internal)]
    {
        let res = get(url.clone()).await.unwrap();
        assert_eq!(res.headers()["retry-after"], "5", "{url}");
        let problem: Value = assert_problem(res, 502).await;
        assert_eq!(problem["type"], "/problems/dependency-unavailable", "{url}");
    }
    let huge = client
        .post(format!("{}/api/auth/register", gateway.public))
        .header("content-type", "application/json")
        .body(vec![b' '; 2 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(assert_problem(huge, 413).await["type"], "/problems/body-too-large");
}
