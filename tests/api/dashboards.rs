//! The Grafana dashboards (`deploy/grafana/dashboards/`) against real data: the binary on
//! PostgreSQL, Redis and RabbitMQ (so that every kind of series exists: pools, outboxes, the
//! broker) under the end-to-end suite's load, scraped every second by a real Prometheus (the
//! Debian package's), which then answers every panel's query. With
//! `BOXOFFICE_DASHBOARD_IMAGES=<dir>`, headless Chromium also draws each dashboard's queries on
//! Prometheus's own graph page into `<dir>/dashboard-<name>.png` (docs/operations.md).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::deploy::{repo, yaml_documents};
use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, Api, Backend};
use crate::process::{PATIENCE, Server, backend_env, env_of};

/// The scrape job of the binary in the generated config.
const JOB: &str = "boxoffice";

/// How many times the end-to-end suite runs as the load.
const ROUNDS: usize = 3;

/// What Grafana would put for each template variable: `All` of a multi-value variable is its
/// `allValue` (`.+`), and `$__rate_interval` a window that holds several of the test's 1 s
/// scrapes (Grafana makes it four scrape intervals at least).
const VARIABLES: [(&str, &str); 3] = [("$__rate_interval", "1m"), ("$job", ".+"), ("$module", ".+")];

/// A Prometheus of the test's own: a free port, its own storage, stopped when dropped.
struct Prometheus {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        drop(self.child.kill());
        drop(self.child.wait());
    }
}

impl Prometheus {
    /// Starts `prometheus` scraping `target` (host:port) every second as job [`JOB`].
    fn start(target: &str) -> Self {
        let dir = tempfile::TempDir::new().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             scrape_configs:\n  - job_name: {JOB}\n    static_configs: [{{targets: [\"{target}\"]}}]\n"
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("prometheus (Debian package prometheus) on PATH");
        Self { child, url: format!("http://127.0.0.1:{port}"), dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `/api/v1/query` of `expr`: the answer's `data.result`, or the error Prometheus gave.
    async fn query(&self, client: &reqwest::Client, expr: &str) -> Result<Vec<Value>, String> {
        let res = client.get(format!("{}/api/v1/query", self.url)).query(&[("query", expr)]).send().await;
        let body: Value = res.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())?;
        if body["status"] != "success" {
            return Err(format!("{}: {}", body["errorType"], body["error"]));
        }
        Ok(body["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    /// Polls `expr` until its first sample's value reaches `at_least`.
    async fn wait_for(&mut self, client: &reqwest::Client, expr: &str, at_least: f64) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                panic!("prometheus exited with {exit:?}:\n{}", self.log());
            }
            let value = match self.query(client, expr).await {
                Ok(result) => result.first().and_then(|s| s["value"][1].as_str()?.parse::<f64>().ok()),
                Err(_) => None,
            };
            if value.is_some_and(|v| v >= at_least) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{expr} is {value:?}, not {at_least}, after {PATIENCE:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// A dashboard's panels, those inside rows too.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        all.push(panel);
        all.extend(panel["panels"].as_array().into_iter().flatten());
    }
    all
}

/// Each dashboard file: its name (file stem) and its JSON.
fn dashboards() -> Vec<(String, Value)> {
    let dir = repo().join("deploy/grafana/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let dashboards: Vec<(String, Value)> = files
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "json"))
        .map(|f| {
            let name = f.file_stem().unwrap().to_str().unwrap().to_owned();
            (name, serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap())
        })
        .collect();
    assert!(dashboards.len() >= 4, "the dashboards of {}", dir.display());
    dashboards
}

/// `expr` as Grafana sends it, every variable replaced; a variable it does not know fails.
fn substitute(expr: &str) -> String {
    let mut expr = expr.to_owned();
    for (variable, value) in VARIABLES {
        expr = expr.replace(&format!("${{{}}}", &variable[1..]), value).replace(variable, value);
    }
    assert!(!expr.contains('$'), "a variable this test does not know: {expr}");
    expr
}

mod prometheus {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_panel_of_every_dashboard_returns_data_from_the_binary_under_load() {
        let started = Instant::now();
        let data = tempfile::TempDir::new().unwrap();
        let mut env = backend_env(&Backend::postgres());
        env.extend(
            [
                ("BOXOFFICE__AUTH__ADMIN_EMAIL", ADMIN_EMAIL),
                ("BOXOFFICE__AUTH__ADMIN_PASSWORD", ADMIN_PASSWORD),
                // The load, not the log, is what this test is about.
                ("RUST_LOG", "warn"),
                ("BOXOFFICE__LOG__FORMAT", "pretty"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        let mut server = Server::start_with(&data.path().join("data"), &data.path().join("logs"), &env_of(&env));
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        server.wait_ready(&client).await;
        let mut prometheus = Prometheus::start(server.base.trim_start_matches("http://"));
        let scraping = Instant::now();
        prometheus.wait_for(&client, &format!("up{{job=\"{JOB}\"}}"), 1.0).await;

        // The load: every scenario of the end-to-end suite (book, pay, confirm, cancel, refund,
        // a seat race, a repeated payment, bad requests), each step's events and emails; a few
        // rounds, so that the graphs span some scrapes (a round takes seconds).
        let api = Api::new(server.base.clone());
        for round in 0..ROUNDS {
            crate::e2e::suite(&api, &format!("dash{round}")).await;
        }
        let loaded = started.elapsed();
        // Three scrapes after the load: a series born in its last moments has the two samples
        // `rate()` needs, and Prometheus holds everything the binary counted.
        let scrapes = format!("count_over_time(up{{job=\"{JOB}\"}}[10m])");
        let so_far = prometheus.query(&client, &scrapes).await.unwrap();
        let so_far: f64 = so_far[0]["value"][1].as_str().unwrap().parse().unwrap();
        prometheus.wait_for(&client, &scrapes, so_far + 3.0).await;

        let datasource = provisioned_datasource_uid();
        let limit_known = !prometheus.query(&client, "process_memory_limit_bytes").await.unwrap().is_empty();
        let mut failures = Vec::new();
        let mut queries = 0;
        // Each dashboard's queries as sent, with how many series each answered.
        let mut answered: Vec<(String, Vec<(String, usize)>)> = Vec::new();
        for (name, dashboard) in dashboards() {
            let mut drawn = Vec::new();
            for variable in dashboard["templating"]["list"].as_array().unwrap() {
                assert_eq!(variable["datasource"]["uid"], datasource, "{name}: variable {}", variable["name"]);
                let values = label_values(&client, &prometheus, variable["definition"].as_str().unwrap()).await;
                if values.is_empty() {
                    failures.push(format!("{name}: variable {} has no values", variable["name"]));
                }
            }
            for panel in panels(&dashboard).into_iter().filter(|p| p["type"] != "row") {
                let title = format!("{name}: {}", panel["title"]);
                assert_eq!(panel["datasource"]["uid"], datasource, "{title}");
                let targets = panel["targets"].as_array().unwrap();
                assert!(!targets.is_empty(), "{title}: no query");
                for target in targets {
                    assert_eq!(target["datasource"]["uid"], datasource, "{title}");
                    let expr = substitute(target["expr"].as_str().unwrap());
                    queries += 1;
                    // Where the process has no memory limit, a query of it has no series (as
                    // the metric has none): the honest answer, on this machine only.
                    let no_limit_here = !limit_known && expr.contains("process_memory_limit_bytes");
                    match prometheus.query(&client, &expr).await {
                        Err(e) => failures.push(format!("{title}: {expr}\n  {e}")),
                        Ok(result) if result.is_empty() && !no_limit_here => {
                            failures.push(format!("{title}: {expr}\n  no series"));
                        }
                        Ok(result) => drawn.push((expr, result.len())),
                    }
                }
            }
            answered.push((name, drawn));
        }
        assert!(failures.is_empty(), "{} of {queries} queries failed:\n{}", failures.len(), failures.join("\n"));
        println!(
            "{queries} panel queries answered with data after {ROUNDS} rounds of the suite; the load took {:.1} s, the whole test {:.1} s; \
             memory limit {}",
            loaded.as_secs_f64(),
            started.elapsed().as_secs_f64(),
            if limit_known { "known" } else { "unknown on this machine: its queries have no series" }
        );

        if let Some(dir) = std::env::var_os("BOXOFFICE_DASHBOARD_IMAGES").filter(|d| !d.is_empty()) {
            screenshots(&prometheus, Path::new(&dir), scraping.elapsed(), &answered);
        }
    }
}

/// The uid of the datasource `deploy/grafana/provisioning/datasources/` provisions.
fn provisioned_datasource_uid() -> String {
    let dir = repo().join("deploy/grafana/provisioning/datasources");
    let files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    let [file] = files.as_slice() else { panic!("one datasource file: {files:?}") };
    let config = yaml_documents(&std::fs::read(file).unwrap()).remove(0);
    let datasource = &config["datasources"][0];
    assert_eq!(datasource["type"], "prometheus");
    datasource["uid"].as_str().unwrap().to_owned()
}

/// The values of a variable's `label_values(selector, label)`, as Grafana asks Prometheus.
async fn label_values(client: &reqwest::Client, prometheus: &Prometheus, definition: &str) -> Vec<Value> {
    let args = definition.strip_prefix("label_values(").and_then(|d| d.strip_suffix(')'));
    let (selector, label) = args.and_then(|a| a.rsplit_once(',')).unwrap_or_else(|| panic!("{definition}"));
    let url = format!("{}/api/v1/label/{}/values", prometheus.url, label.trim());
    let res = client.get(url).query(&[("match[]", substitute(selector))]).send().await.unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "success", "{definition}: {body}");
    body["data"].as_array().cloned().unwrap_or_default()
}

/// Each dashboard's queries (with their number of series) on Prometheus's graph page, one graph
/// per query in panel order, over the `scraped` time until now, as `dir/dashboard-<name>.png`.
fn screenshots(prometheus: &Prometheus, dir: &Path, scraped: Duration, dashboards: &[(String, Vec<(String, usize)>)]) {
    std::fs::create_dir_all(dir).unwrap();
    let range = format!("{}s", scraped.as_secs() + 2);
    for (name, queries) in dashboards {
        let mut params = Vec::new();
        for (n, (expr, _)) in queries.iter().enumerate() {
            params.push((format!("g{n}.expr"), expr.clone()));
            params.push((format!("g{n}.tab"), "0".to_owned()));
            params.push((format!("g{n}.range_input"), range.clone()));
        }
        let url = reqwest::Url::parse_with_params(&format!("{}/classic/graph", prometheus.url), &params).unwrap();
        // The page scrolls to its last graph when it is taller than the window: a window taller
        // than the page (a graph is about 660 pixels, plus a legend line per series) keeps it
        // whole.
        let height: usize = 130 + queries.iter().map(|(_, series)| 660 + 24 * series).sum::<usize>();
        let file = dir.join(format!("dashboard-{name}.png"));
        let out = Command::new("chromium")
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"])
            .arg(format!("--window-size=1400,{height}"))
            // Time for the page's scripts to query and draw every graph.
            .arg("--virtual-time-budget=20000")
            .arg(format!("--screenshot={}", file.display()))
            .arg(url.as_str())
            .output()
            .expect("chromium (Debian package chromium) on PATH, for BOXOFFICE_DASHBOARD_IMAGES");
        assert!(out.status.success() && file.exists(), "{}", String::from_utf8_lossy(&out.stderr));
        println!("{}: {} graphs", file.display(), queries.len());
    }
}
