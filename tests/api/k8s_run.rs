//! The `split` overlay exercised without a cluster: each Deployment's pods run as local
//! processes of the binary, as the rendered manifests say, and the end-to-end suite runs through
//! the gateway standing in for the Ingress.
//!
//! - A **pod** is a process with an address of its own on loopback (127.R.20+d.r), its container's
//!   command and args, and only the environment the kubelet gives it: the image's `ENV`, then
//!   its `envFrom` ConfigMaps and `env` (a misspelt name is simply not read). Its volumes are
//!   directories written from the rendered ConfigMaps and Secrets (the keys and `items` as the
//!   kubelet would), and paths under a mount path in its settings point into them. Its init
//!   containers run to completion first.
//! - A **Service** is a TCP balancer at an address of its own (127.R.10.n) on its port, over the
//!   ready pods its selector picks, at their `targetPort` (kube-proxy's part). The names of
//!   Services in settings resolve to these addresses (a hosts mapping: the test rewrites the
//!   host of `scheme://name:port` URLs, since one network namespace per pod could not reach the
//!   shared servers, which listen on 127.0.0.1 of this one).
//! - The pod binds the port of its profile on its own address (where a pod has its own network
//!   namespace); the probes are polled at the manifests' ports and paths, as the kubelet does:
//!   startup, then readiness (which also adds and removes the pod from its Services).
//! - The **Ingress** is the gateway (deploy/gateway), its upstreams the Services the Ingress
//!   routes each module's prefix to.
//!
//! So a wrong env name, port, probe path or secret key in the manifests fails the run.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};

use crate::deploy::repo;
use crate::e2e::suite;
use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, Api, Backend, free_port_block};
use crate::k8s::{container_env, named, of_kind, render, write_keys};

/// The module each public prefix of the gateway's routes belongs to (deploy/gateway/gateway.conf).
const PREFIXES: [(&str, &str); 5] = [
    ("auth", "/api/auth/"),
    ("movie", "/api/movies/"),
    ("booking", "/api/bookings/"),
    ("payment", "/api/payments/"),
    ("notification", "/api/notifications/"),
];

/// The image's `ENV` (Dockerfile), under the pod's own settings.
const IMAGE_ENV: [(&str, &str); 3] = [
    ("BOXOFFICE_PROFILE", "production"),
    ("BOXOFFICE_CONFIG_DIR", "/app/config"),
    ("BOXOFFICE__DATA_DIR", "/var/lib/boxoffice"),
];

struct Pod {
    name: String,
    labels: Value,
    ip: String,
    /// containerPort by name, and the probes.
    ports: BTreeMap<String, u16>,
    container: Value,
    ready: Arc<AtomicBool>,
    child: Child,
    log: PathBuf,
}

/// Everything the run started and made, undone when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    pods: Vec<Pod>,
    gateway: Option<Child>,
    server: String,
    database: String,
    vhost: String,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for pod in &mut self.pods {
            let _ = pod.child.kill();
            let _ = pod.child.wait();
        }
        if let Some(gateway) = &mut self.gateway {
            // SIGTERM: nginx's master stops its workers (SIGKILL would orphan them).
            let _ = Command::new("kill").arg(gateway.id().to_string()).status();
            let _ = gateway.wait();
        }
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.database);
        let _ = Command::new("psql").arg(format!("{}/postgres", self.server)).args(["-qc", &drop]).output();
        let _ = Command::new("rabbitmqctl").args(["-q", "delete_vhost", &self.vhost]).output();
        let _ = &self.dir;
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A volume of a pod, written into `dir` as the kubelet would.
fn write_volume(objects: &[Value], volume: &Value, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    if let Some(config) = volume["configMap"].as_object() {
        let map = named(objects, "ConfigMap", config["name"].as_str().unwrap());
        write_keys(map, dir, config.get("items"));
    } else if let Some(secret) = volume["secret"].as_object() {
        write_keys(named(objects, "Secret", secret["secretName"].as_str().unwrap()), dir, secret.get("items"));
    } else if let Some(sources) = volume["projected"]["sources"].as_array() {
        for source in sources {
            let secret = &source["secret"];
            write_keys(named(objects, "Secret", secret["name"].as_str().unwrap()), dir, secret.get("items"));
        }
    } else {
        assert!(volume["emptyDir"].is_object(), "volume {volume}: configMap, secret, projected or emptyDir");
    }
}

/// A container's environment in a pod: the image's, the manifests', paths under its mounts
/// moved to the volumes' directories, Service names to their addresses.
fn pod_env(
    objects: &[Value],
    container: &Value,
    volumes: &BTreeMap<String, PathBuf>,
    services: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = IMAGE_ENV.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    env.insert("BOXOFFICE_CONFIG_DIR".into(), repo().join("config").to_str().unwrap().to_owned());
    env.extend(container_env(objects, container));
    let mounts = container["volumeMounts"].as_array().cloned().unwrap_or_default();
    for value in env.values_mut() {
        // The deepest mount the path is under, once (the local directory may itself be in /tmp).
        let mount = mounts
            .iter()
            .map(|m| (m["mountPath"].as_str().unwrap(), m["name"].as_str().unwrap()))
            .filter(|(path, _)| value == path || value.starts_with(&format!("{path}/")))
            .max_by_key(|(path, _)| path.len());
        if let Some((path, name)) = mount {
            *value = format!("{}{}", volumes[name].to_str().unwrap(), &value[path.len()..]);
        }
        for (name, ip) in services {
            *value = value.replace(&format!("://{name}:"), &format!("://{ip}:"));
        }
    }
    env
}

fn spawn(args: &[String], env: &BTreeMap<String, String>, log: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_boxoffice"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .envs(env)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// The port a process of `env` listens on: its bind setting, else its profile's.
fn bound_port(env: &BTreeMap<String, String>) -> u16 {
    let bind = match env.get("BOXOFFICE__SERVER__BIND") {
        Some(bind) => bind.clone(),
        None => {
            let profile = Path::new(&env["BOXOFFICE_CONFIG_DIR"]).join(format!("{}.toml", env["BOXOFFICE_PROFILE"]));
            let text = std::fs::read_to_string(&profile).unwrap_or_else(|e| panic!("{}: {e}", profile.display()));
            let line = text.lines().find(|l| l.starts_with("bind")).expect("the profile binds");
            line.split('"').nth(1).unwrap().to_owned()
        }
    };
    bind.rsplit_once(':').unwrap().1.parse().unwrap()
}

/// A probe's answer: an `httpGet` at the pod's address, 2xx or 3xx within its timeout.
async fn probe(pod_ip: &str, ports: &BTreeMap<String, u16>, probe: &Value) -> bool {
    let get = &probe["httpGet"];
    let port = match &get["port"] {
        Value::String(name) => ports[name],
        number => number.as_u64().unwrap() as u16,
    };
    let timeout = Duration::from_secs(probe["timeoutSeconds"].as_u64().unwrap_or(1));
    let url = format!("http://{pod_ip}:{port}{}", get["path"].as_str().unwrap());
    let answer = reqwest::Client::new().get(url).timeout(timeout).send().await;
    answer.is_ok_and(|a| a.status().is_success() || a.status().is_redirection())
}

fn period(probe: &Value) -> Duration {
    Duration::from_secs(probe["periodSeconds"].as_u64().unwrap_or(10))
}

/// kube-proxy's part for one Service port: connections round robin over the ready endpoints.
async fn balance(listener: TcpListener, endpoints: Vec<(SocketAddr, Arc<AtomicBool>)>) {
    let next = AtomicUsize::new(0);
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else { return };
        let ready: Vec<SocketAddr> =
            endpoints.iter().filter(|(_, ready)| ready.load(Ordering::Relaxed)).map(|(a, _)| *a).collect();
        if ready.is_empty() {
            continue;
        }
        let address = ready[next.fetch_add(1, Ordering::Relaxed) % ready.len()];
        tokio::spawn(async move {
            if let Ok(mut outbound) = TcpStream::connect(address).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

fn selects(selector: &Value, labels: &Value) -> bool {
    selector.as_object().unwrap().iter().all(|(k, v)| &labels[k] == v)
}

/// /proc's peak resident memory (MiB) and CPU seconds of a process.
fn usage(pid: u32) -> (u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm = status.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1));
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| f.iter().map(|t| t.parse::<f64>().unwrap()).sum());
    (hwm.map_or(0, |k| k.parse::<u64>().unwrap() / 1024), ticks / 100.0)
}

async fn up() -> (Cluster, Api) {
    let Backend::Postgres { database_url, redis_url, amqp_url } = Backend::postgres() else {
        panic!("the split overlay runs on PostgreSQL, Redis and RabbitMQ")
    };
    let id = &uuid::Uuid::new_v4().simple().to_string()[..12];
    let server = database_url.rsplit_once('/').unwrap().0.to_owned();
    let (database, vhost) = (format!("k8s_{id}"), format!("k8s_{id}"));
    let mut cluster = Cluster {
        dir: tempfile::TempDir::new().unwrap(),
        pods: Vec::new(),
        gateway: None,
        server: server.clone(),
        database: database.clone(),
        vhost: vhost.clone(),
    };
    let create = format!("CREATE DATABASE {database}");
    let out = Command::new("psql").arg(format!("{server}/postgres")).args(["-qc", &create]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for args in [vec!["add_vhost", &vhost], vec!["set_permissions", "-p", &vhost, "guest", ".*", ".*", ".*"]] {
        let out = Command::new("rabbitmqctl").arg("-q").args(&args).output().expect("rabbitmqctl");
        assert!(out.status.success(), "rabbitmqctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let secrets = [
        ("DATABASE_URL", format!("{server}/{database}")),
        ("REDIS_URL", redis_url),
        ("AMQP_URL", format!("{}/{vhost}", amqp_url.rsplit_once('/').unwrap().0)),
        ("SMTP_PASSWORD", "not a real password".to_owned()),
    ];
    let (_copy, objects) = render("split", &secrets);

    // Addresses: 127.R.10.n for Services, 127.R.(20+d).(r+1) for pods.
    let r = 100 + rand::random::<u8>() % 100;
    let services: BTreeMap<String, String> = of_kind(&objects, "Service")
        .iter()
        .enumerate()
        .map(|(n, s)| (s["metadata"]["name"].as_str().unwrap().to_owned(), format!("127.{r}.10.{}", n + 1)))
        .collect();

    for (d, deployment) in of_kind(&objects, "Deployment").into_iter().enumerate() {
        let template = &deployment["spec"]["template"];
        let spec = &template["spec"];
        let [container] = spec["containers"].as_array().unwrap().as_slice() else { panic!("one container") };
        assert!(container["command"].is_null(), "the image's entrypoint");
        for replica in 0..deployment["spec"]["replicas"].as_u64().unwrap_or(1) {
            let name = format!("{}-{replica}", deployment["metadata"]["name"].as_str().unwrap());
            let ip = format!("127.{r}.{}.{}", 20 + d, replica + 1);
            let root = cluster.dir.path().join(&name);
            let mut volumes = BTreeMap::new();
            for volume in spec["volumes"].as_array().unwrap() {
                let dir = root.join(volume["name"].as_str().unwrap());
                write_volume(&objects, volume, &dir);
                volumes.insert(volume["name"].as_str().unwrap().to_owned(), dir);
            }
            // Not in the manifests, by nature: a key prefix of this run's own on a shared Redis.
            let own = |mut env: BTreeMap<String, String>| {
                env.insert("BOXOFFICE__REDIS__KEY_PREFIX".into(), format!("k8s_{id}:"));
                env
            };
            for init in spec["initContainers"].as_array().cloned().unwrap_or_default() {
                let env = own(pod_env(&objects, &init, &volumes, &services));
                let log = root.join(format!("{}.log", init["name"].as_str().unwrap()));
                let args: Vec<String> = serde_json::from_value(init["args"].clone()).unwrap();
                let status = spawn(&args, &env, &log).wait().unwrap();
                assert!(status.success(), "{name}: init container {}: {}", init["name"], log_tail(&log));
            }
            let mut env = own(pod_env(&objects, container, &volumes, &services));
            // Its own address, where a pod has a network namespace of its own.
            env.insert("BOXOFFICE__SERVER__BIND".into(), format!("{ip}:{}", bound_port(&env)));
            let args: Vec<String> = serde_json::from_value(container["args"].clone()).unwrap();
            let log = root.join("boxoffice.log");
            let ports = container["ports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p["name"].as_str().unwrap().to_owned(), p["containerPort"].as_u64().unwrap() as u16))
                .collect();
            cluster.pods.push(Pod {
                name,
                labels: template["metadata"]["labels"].clone(),
                ip,
                ports,
                container: container.clone(),
                ready: Arc::new(AtomicBool::new(false)),
                child: spawn(&args, &env, &log),
                log,
            });
        }
    }

    // The Services' balancers, over their pods' readiness.
    for service in of_kind(&objects, "Service") {
        let ip = &services[service["metadata"]["name"].as_str().unwrap()];
        for port in service["spec"]["ports"].as_array().unwrap() {
            let endpoints = cluster
                .pods
                .iter()
                .filter(|p| selects(&service["spec"]["selector"], &p.labels))
                .map(|p| {
                    let target = match &port["targetPort"] {
                        Value::String(name) => p.ports[name],
                        number => number.as_u64().unwrap() as u16,
                    };
                    (format!("{}:{target}", p.ip).parse().unwrap(), p.ready.clone())
                })
                .collect();
            let listener = TcpListener::bind((ip.as_str(), port["port"].as_u64().unwrap() as u16)).await.unwrap();
            tokio::spawn(balance(listener, endpoints));
        }
    }

    // The kubelet's probes: startup within its budget, then readiness, kept up to date.
    for pod in &mut cluster.pods {
        let startup = &pod.container["startupProbe"];
        let budget = period(startup) * startup["failureThreshold"].as_u64().unwrap_or(3) as u32;
        let deadline = Instant::now() + budget;
        while !probe(&pod.ip, &pod.ports, startup).await {
            if let Some(status) = pod.child.try_wait().unwrap() {
                panic!("{} exited ({status}): {}", pod.name, log_tail(&pod.log));
            }
            assert!(
                Instant::now() < deadline,
                "{}: startupProbe failed for {budget:?}: {}",
                pod.name,
                log_tail(&pod.log)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(probe(&pod.ip, &pod.ports, &pod.container["livenessProbe"]).await, "{}: livenessProbe", pod.name);
        let (ip, ports, readiness, ready) =
            (pod.ip.clone(), pod.ports.clone(), pod.container["readinessProbe"].clone(), pod.ready.clone());
        tokio::spawn(async move {
            loop {
                ready.store(probe(&ip, &ports, &readiness).await, Ordering::Relaxed);
                tokio::time::sleep(period(&readiness).min(Duration::from_secs(1))).await;
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for pod in &cluster.pods {
        while !pod.ready.load(Ordering::Relaxed) {
            assert!(Instant::now() < deadline, "{}: readinessProbe failed: {}", pod.name, log_tail(&pod.log));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // The admin, as `kubectl exec deploy/auth -- boxoffice admin create` would make it.
    let auth = cluster.pods.iter().find(|p| p.name.starts_with("auth-")).unwrap();
    let root = cluster.dir.path().join(&auth.name);
    let volumes = auth.container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap().to_owned(), root.join(m["name"].as_str().unwrap())))
        .collect();
    let mut env = pod_env(&objects, &auth.container, &volumes, &services);
    env.insert("BOXOFFICE__REDIS__KEY_PREFIX".into(), format!("k8s_{id}:"));
    env.insert("BOXOFFICE__SERVER__BIND".into(), format!("{}:0", auth.ip));
    env.insert("BOXOFFICE_ADMIN_PASSWORD".into(), ADMIN_PASSWORD.into());
    let log = root.join("admin.log");
    let args = ["admin", "create", "--email", ADMIN_EMAIL].map(String::from);
    assert!(spawn(&args, &env, &log).wait().unwrap().success(), "admin create: {}", log_tail(&log));

    // The Ingress: the gateway, each module's upstream the Service its prefix goes to.
    let ingresses = of_kind(&objects, "Ingress");
    let paths: Vec<&Value> = ingresses
        .iter()
        .flat_map(|i| i["spec"]["rules"].as_array().unwrap())
        .flat_map(|rule| rule["http"]["paths"].as_array().unwrap())
        .collect();
    let mut upstreams = String::new();
    for (module, prefix) in PREFIXES {
        let path = paths.iter().find(|p| p["path"] == prefix).unwrap_or_else(|| panic!("the Ingress routes {prefix}"));
        let backend = &path["backend"]["service"];
        let ip = &services[backend["name"].as_str().unwrap()];
        let port = &backend["port"]["number"];
        upstreams
            .push_str(&format!("upstream {module} {{\n    server {ip}:{port} max_fails=2 fail_timeout=10s;\n}}\n"));
    }
    let gateway_port = free_port_block(&[0]);
    let nginx_dir = cluster.dir.path().join("gateway");
    std::fs::create_dir_all(nginx_dir.join("tmp")).unwrap();
    std::fs::write(nginx_dir.join("upstreams.conf"), upstreams).unwrap();
    let (n, g) = (nginx_dir.to_str().unwrap(), repo().join("deploy/gateway"));
    let g = g.to_str().unwrap();
    let conf = format!(
        "daemon off;\nworker_processes 1;\npid {n}/nginx.pid;\nerror_log {n}/error.log warn;\nevents {{ worker_connections 1024; }}\n\
         http {{\n  client_body_temp_path {n}/tmp/client;\n  proxy_temp_path {n}/tmp/proxy;\n  fastcgi_temp_path {n}/tmp/fastcgi;\n  \
         uwsgi_temp_path {n}/tmp/uwsgi;\n  scgi_temp_path {n}/tmp/scgi;\n  include {n}/upstreams.conf;\n  include {g}/gateway.conf;\n  \
         access_log {n}/access.log boxoffice_gateway;\n  server {{\n    listen 127.0.0.1:{gateway_port};\n    include {g}/server.conf;\n    \
         include {g}/routes.conf;\n  }}\n}}\n"
    );
    std::fs::write(nginx_dir.join("nginx.conf"), conf).unwrap();
    let nginx = if Path::new("/usr/sbin/nginx").exists() { "/usr/sbin/nginx" } else { "nginx" };
    cluster.gateway = Some(
        Command::new(nginx)
            .args(["-p", n, "-e", &format!("{n}/error.log"), "-c", &format!("{n}/nginx.conf")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx"),
    );
    let api = Api::new(format!("http://127.0.0.1:{gateway_port}"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !api.client.get(api.url("/api/openapi.json")).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(
            Instant::now() < deadline,
            "the gateway: {}",
            std::fs::read_to_string(nginx_dir.join("error.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (cluster, api)
}

mod k8s {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_split_overlay_runs_as_its_manifests_say_and_passes_the_suite() {
        let (cluster, api) = up().await;
        let pods: Vec<&str> = cluster.pods.iter().map(|p| p.name.as_str()).collect();
        println!("k8s split overlay: pods {pods:?}, all started, live and ready");
        let before: Vec<(u64, f64)> = cluster.pods.iter().map(|p| usage(p.child.id())).collect();
        let started = Instant::now();
        let tally = suite(&api, "k8s").await;
        println!("e2e k8s split overlay through the gateway: {tally:?} in {:?}", started.elapsed());
        for (pod, (rss, cpu)) in cluster.pods.iter().zip(before) {
            let (peak, cpu_after) = usage(pod.child.id());
            println!(
                "  {}: peak RSS {peak} MiB (at start {rss} MiB), CPU {:.2} s during the suite",
                pod.name,
                cpu_after - cpu
            );
        }
        for pod in &cluster.pods {
            assert!(pod.ready.load(Ordering::Relaxed), "{} ready after the suite", pod.name);
        }
    }
}
