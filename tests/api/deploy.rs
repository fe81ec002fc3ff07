//! The deployment files agree with each other: `deploy/compose/docker-compose.yml` (as a real
//! compose implementation reads it) declares the processes of `deploy/topology`, and the
//! compose gateway's upstreams balance exactly them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// One process of `deploy/topology`.
#[derive(Debug, PartialEq, Eq)]
pub struct Process {
    pub name: String,
    pub modules: Vec<String>,
    pub port: u16,
    pub profile: String,
}

/// The repository's root, where the deployment files are.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every document of a YAML stream, as JSON (python3's PyYAML reads it: the Debian
/// docker-compose depends on it).
pub fn yaml_documents(yaml: &[u8]) -> Vec<Value> {
    let mut json = Command::new("python3")
        .args(["-c", "import json, sys, yaml; json.dump(list(yaml.safe_load_all(sys.stdin)), sys.stdout)"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut json.stdin.take().unwrap(), yaml).unwrap();
    let out = json.wait_with_output().unwrap();
    assert!(out.status.success());
    let docs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

/// The settings `deploy/split.sh env PROCESS` gives a process, by key.
pub fn split_script_env(process: &str) -> BTreeMap<String, String> {
    let state = tempfile::TempDir::new().unwrap();
    let out = Command::new("bash")
        .arg(repo().join("deploy/split.sh"))
        .args(["env", process])
        .env("STATE_DIR", state.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines().map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).unwrap()).collect()
}

/// The settings named by `keys`, sorted, apart from those in `by_nature` (which differ between
/// deployments by design). A secret may arrive as a file in one deployment and as a value in
/// another (`KEY_FILE` or `KEY`): the setting is the same.
pub fn settings_apart_from<'a>(keys: impl IntoIterator<Item = &'a String>, by_nature: &[&str]) -> Vec<String> {
    let mut settings: Vec<String> = keys
        .into_iter()
        .map(|k| k.strip_suffix("_FILE").unwrap_or(k).to_owned())
        .filter(|k| !by_nature.contains(&k.as_str()))
        .collect();
    settings.sort();
    settings
}

/// The processes of `layout` in `deploy/topology`.
pub fn topology(layout: &str) -> Vec<Process> {
    let text = std::fs::read_to_string(repo().join("deploy/topology")).unwrap();
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(fields.len(), 5, "deploy/topology: {line}");
            (fields[0] == layout).then(|| Process {
                name: fields[1].to_owned(),
                modules: fields[2].split(',').map(str::to_owned).collect(),
                port: fields[3].parse().unwrap(),
                profile: fields[4].to_owned(),
            })
        })
        .collect()
}

/// `docker-compose config`, as JSON, with the services of `profile` only (compose 1.29 prints
/// every service, and YAML only; its own dependency, PyYAML, reads it).
fn compose_config(file: &Path, profile: &str) -> Value {
    let config = Command::new("docker-compose")
        .args(["-f", file.to_str().unwrap(), "--profile", profile, "config"])
        .output()
        .expect("docker-compose (Debian package docker-compose) on PATH");
    assert!(config.status.success(), "{}", String::from_utf8_lossy(&config.stderr));
    let mut config = yaml_documents(&config.stdout).remove(0);
    let services = config["services"].as_object_mut().unwrap();
    services.retain(|_, service| service["profiles"].as_array().is_some_and(|p| p.iter().any(|p| p == profile)));
    config
}

/// The services of a compose config that run boxoffice, by name.
fn boxoffice_services(config: &Value) -> BTreeMap<String, Value> {
    let services = config["services"].as_object().unwrap();
    services.iter().filter(|(_, s)| s["image"] == "boxoffice:latest").map(|(n, s)| (n.clone(), s.clone())).collect()
}

mod compose {
    use super::*;

    #[test]
    fn the_split_profile_runs_the_topologys_processes() {
        let file = repo().join("deploy/compose/docker-compose.yml");
        let config = compose_config(&file, "split");
        let services = boxoffice_services(&config);
        let expected = topology("split");
        let names: Vec<&String> = services.keys().collect();
        let mut wanted: Vec<&String> = expected.iter().map(|p| &p.name).collect();
        wanted.sort();
        assert_eq!(names, wanted);
        for process in &expected {
            let service = &services[&process.name];
            let env = &service["environment"];
            assert_eq!(env["BOXOFFICE_PROFILE"], process.profile.as_str(), "{}", process.name);
            assert_eq!(env["BOXOFFICE__SERVER__BIND"], format!("0.0.0.0:{}", process.port), "{}", process.name);
            assert_eq!(service["expose"], serde_json::json!([process.port.to_string()]), "{}", process.name);
            assert_eq!(service["healthcheck"]["test"], serde_json::json!(["CMD", "boxoffice", "probe"]));
            for infrastructure in ["postgres", "redis", "rabbitmq"] {
                assert_eq!(service["depends_on"][infrastructure]["condition"], "service_healthy", "{}", process.name);
            }
            // Each secret the process is told to read is mounted where it is told to look.
            let mounted: Vec<&str> = service["secrets"].as_array().unwrap().iter().map(secret_name).collect();
            for (key, value) in env.as_object().unwrap().iter().filter(|(k, _)| k.ends_with("_FILE")) {
                let name = value.as_str().unwrap().strip_prefix("/run/secrets/").unwrap();
                assert!(mounted.contains(&name), "{}: {key} reads {name}, not mounted", process.name);
            }
        }
        for process in &expected {
            assert_same_settings(&process.name, &services[&process.name]["environment"]);
        }
        let gateway = &config["services"]["gateway"];
        for process in &expected {
            assert_eq!(gateway["depends_on"][&process.name]["condition"], "service_healthy");
        }
        assert_eq!(upstreams(&repo().join("deploy/compose/upstreams.conf")), upstreams_of(&expected, |p| &p.name));
    }

    /// Prometheus scrapes the split's processes, one job per module (what the alert rules and
    /// the dashboards aggregate by): on loopback at split.sh's ports (`prometheus.yml`), and
    /// by service name in compose (`compose.yml`, which the compose file's Prometheus reads).
    #[test]
    fn the_scrape_configs_scrape_the_topologys_processes() {
        let processes = topology("split");
        // Each file and whether it names a process by its compose service (or on loopback).
        for (file, by_name) in [("prometheus.yml", false), ("compose.yml", true)] {
            let path = repo().join("deploy/prometheus").join(file);
            let config = yaml_documents(&std::fs::read(&path).unwrap()).remove(0);
            let jobs: BTreeMap<String, Vec<String>> = config["scrape_configs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|job| {
                    let targets = job["static_configs"].as_array().unwrap().iter();
                    let targets = targets.flat_map(|c| c["targets"].as_array().unwrap().iter());
                    let name = job["job_name"].as_str().unwrap().strip_prefix("boxoffice-").unwrap().to_owned();
                    (name, targets.map(|t| t.as_str().unwrap().to_owned()).collect())
                })
                .collect();
            let targets = upstreams_of(&processes, |p| if by_name { p.name.as_str() } else { "127.0.0.1" });
            assert_eq!(jobs, targets, "{file}");
        }
        let compose = compose_config(&repo().join("deploy/compose/docker-compose.yml"), "split");
        let command = compose["services"]["prometheus"]["command"].as_array().unwrap();
        assert!(command.iter().any(|a| a == "--config.file=/etc/prometheus/compose.yml"), "{command:?}");
    }

    #[test]
    fn the_monolith_profile_is_one_container_with_its_data_in_a_volume() {
        let config = compose_config(&repo().join("deploy/compose/docker-compose.yml"), "monolith");
        let services = boxoffice_services(&config);
        assert_eq!(services.keys().collect::<Vec<_>>(), ["monolith"]);
        let monolith = &services["monolith"];
        // Compose 1.29 prints a volume in its short form, `source:target:mode`.
        assert_eq!(monolith["volumes"], serde_json::json!(["monolith-data:/var/lib/boxoffice:rw"]));
        assert!(config["volumes"].as_object().unwrap().contains_key("monolith-data"), "a named volume");
        assert_eq!(monolith["healthcheck"]["test"], serde_json::json!(["CMD", "boxoffice", "probe"]));
    }
}

/// What `deploy/split.sh env NAME` gives process NAME: compose gives the same settings, apart
/// from what differs by nature between one machine's shared servers and compose's own.
fn assert_same_settings(name: &str, compose: &Value) {
    let script = split_script_env(name);
    // The script: the image's config dir and data dir, and names of its own on shared local
    // servers, and mail kept in files. Compose: its own mail catcher and trace store (Jaeger).
    let by_nature = [
        "BOXOFFICE_CONFIG_DIR",
        "BOXOFFICE__DATA_DIR",
        "BOXOFFICE__REDIS__KEY_PREFIX",
        "BOXOFFICE__EVENTS__EXCHANGE",
        "BOXOFFICE__EVENTS__QUEUE_PREFIX",
        "BOXOFFICE__NOTIFICATION__EMAIL",
        "BOXOFFICE__NOTIFICATION__SMTP__HOST",
        "BOXOFFICE__NOTIFICATION__SMTP__PORT",
        "BOXOFFICE__NOTIFICATION__SMTP__TLS",
        "BOXOFFICE__TRACES__OTLP_ENDPOINT",
    ];
    let compose = compose.as_object().unwrap();
    assert_eq!(
        settings_apart_from(compose.keys(), &by_nature),
        settings_apart_from(script.keys(), &by_nature),
        "{name}: compose and split.sh"
    );
    assert_eq!(compose["BOXOFFICE_PROFILE"], script["BOXOFFICE_PROFILE"].as_str(), "{name}");
    // Both send the modules' calls to each other through the gateway's internal listener.
    for (key, url) in script.iter().filter(|(k, _)| k.starts_with("BOXOFFICE__SERVICES__") && !k.ends_with("_FILE")) {
        assert!(url.ends_with(":8081"), "{name}: {key}={url}, the internal listener at BASE_PORT+81");
        assert_eq!(compose[key], "http://gateway:8081", "{name}: {key}");
    }
}

/// A secret of a compose service: its short name, or its long form's `source`.
fn secret_name(secret: &Value) -> &str {
    secret.as_str().or_else(|| secret["source"].as_str()).unwrap()
}

/// `upstream <module> { server <host>:<port> ...; }` blocks of an nginx file: module → servers.
pub fn upstreams(file: &Path) -> BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut upstreams = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("upstream ").and_then(|l| l.strip_suffix('{')) {
            current = Some(name.trim().to_owned());
        } else if line.starts_with('}') {
            current = None;
        } else if let (Some(module), Some(server)) = (&current, line.strip_prefix("server ")) {
            let address = server.split([' ', ';']).next().unwrap().to_owned();
            upstreams.entry(module.clone()).or_insert_with(Vec::new).push(address);
        }
    }
    upstreams
}

/// The upstreams a gateway in front of `processes` must have: each module's servers, named by
/// `host`.
pub fn upstreams_of(processes: &[Process], host: impl Fn(&Process) -> &str) -> BTreeMap<String, Vec<String>> {
    let mut upstreams = BTreeMap::new();
    for process in processes {
        for module in &process.modules {
            upstreams.entry(module.clone()).or_insert_with(Vec::new).push(format!(
                "{}:{}",
                host(process),
                process.port
            ));
        }
    }
    upstreams
}
