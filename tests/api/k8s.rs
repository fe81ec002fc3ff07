//! The Kubernetes manifests (`k8s/`): every overlay as `kubectl kustomize` renders it, checked
//! against the rules review asks of every workload (`k8s::rules`), and the `split` overlay run
//! as local processes with the end-to-end suite through it (`k8s_run.rs`).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::deploy::{repo, settings_apart_from, split_script_env, yaml_documents};

pub const OVERLAYS: [&str; 3] = ["split", "dev", "monolith"];
const MODULES: [&str; 5] = ["auth", "movie", "booking", "payment", "notification"];
/// On every object; pods and Services also have `name` and `component` (the application and
/// the part of it).
const RECOMMENDED: [&str; 4] = [
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
];

/// An overlay rendered on a copy of the tree (`k8s/`, `config/`, `deploy/`), its Secrets' files
/// made by `k8s/secrets.sh` with `env` (placeholders when empty): the objects, and the copy.
pub fn render(overlay: &str, env: &[(&str, String)]) -> (tempfile::TempDir, Vec<Value>) {
    render_with(overlay, env, &[])
}

/// [`render`], with the optional `components` (of `k8s/components/`) listed in the overlay
/// before `labels`, as docs/kubernetes.md tells an operator to.
pub fn render_with(overlay: &str, env: &[(&str, String)], components: &[&str]) -> (tempfile::TempDir, Vec<Value>) {
    let copy = tempfile::TempDir::new().unwrap();
    for dir in ["k8s", "config", "deploy"] {
        let status = Command::new("cp").arg("-r").arg(repo().join(dir)).arg(copy.path()).status().unwrap();
        assert!(status.success());
    }
    if !components.is_empty() {
        let file = copy.path().join("k8s/overlays").join(overlay).join("kustomization.yaml");
        let labels = "  - ../../components/labels\n";
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains(labels), "{overlay} lists the labels component");
        let listed: String = components.iter().map(|c| format!("  - ../../components/{c}\n")).collect();
        std::fs::write(&file, text.replacen(labels, &format!("{listed}{labels}"), 1)).unwrap();
    }
    for secrets in ["k8s/base/secrets", "k8s/overlays/split/secrets", "k8s/overlays/dev/secrets"] {
        let _ = std::fs::remove_dir_all(copy.path().join(secrets));
    }
    let mut secrets = Command::new("bash");
    secrets.arg(copy.path().join("k8s/secrets.sh")).arg(overlay);
    if env.is_empty() {
        secrets.env("PLACEHOLDERS", "1");
    }
    let out = secrets.envs(env.iter().map(|(k, v)| (*k, v))).output().unwrap();
    assert!(out.status.success(), "k8s/secrets.sh {overlay}: {}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(copy.path().join("k8s/overlays").join(overlay))
        .output()
        .expect("kubectl on PATH (.ci/run says where to get it)");
    assert!(out.status.success(), "kubectl kustomize {overlay}: {}", String::from_utf8_lossy(&out.stderr));
    (copy, yaml_documents(&out.stdout))
}

pub fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

pub fn named<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    of_kind(objects, kind)
        .into_iter()
        .find(|o| o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// Whether a label selector (`matchLabels`, `matchExpressions` with In/NotIn/Exists) selects
/// `labels`; an empty selector selects everything.
fn selects(selector: &Value, labels: &Value) -> bool {
    let label = |key: &str| labels[key].as_str();
    let by_labels = selector["matchLabels"].as_object().is_none_or(|m| m.iter().all(|(k, v)| label(k) == v.as_str()));
    let by_expressions = selector["matchExpressions"].as_array().is_none_or(|exprs| {
        exprs.iter().all(|e| {
            let values: Vec<&str> =
                e["values"].as_array().map(|v| v.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
            let value = label(e["key"].as_str().unwrap());
            match e["operator"].as_str().unwrap() {
                "In" => value.is_some_and(|v| values.contains(&v)),
                "NotIn" => value.is_none_or(|v| !values.contains(&v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                op => panic!("operator {op}"),
            }
        })
    });
    by_labels && by_expressions
}

/// `server.shutdown_timeout_seconds` in `config/default.toml`.
fn shutdown_timeout() -> u64 {
    let text = std::fs::read_to_string(repo().join("config/default.toml")).unwrap();
    let line = text.lines().find(|l| l.starts_with("shutdown_timeout_seconds")).unwrap();
    line.split('=').nth(1).unwrap().trim().parse().unwrap()
}

/// The rules, for every workload of one overlay's objects; a broken rule panics with its name.
pub fn assert_review_rules(overlay: &str, objects: &[Value]) {
    let workloads: Vec<&Value> =
        objects.iter().filter(|o| o["kind"] == "Deployment" || o["kind"] == "StatefulSet").collect();
    assert!(!workloads.is_empty(), "{overlay}: no workloads");
    for object in objects.iter().filter(|o| o["kind"] != "Namespace") {
        let what = format!("{overlay}: {} {}", object["kind"], object["metadata"]["name"]);
        for key in RECOMMENDED {
            assert!(object["metadata"]["labels"][key].is_string(), "{what}: label {key}");
        }
    }
    for service in of_kind(objects, "Service") {
        for key in ["app.kubernetes.io/name", "app.kubernetes.io/component"] {
            assert!(
                service["metadata"]["labels"][key].is_string(),
                "{overlay}: Service {}: {key}",
                service["metadata"]["name"]
            );
        }
    }
    let policies = of_kind(objects, "NetworkPolicy");
    assert!(
        policies.iter().any(|p| p["spec"]["podSelector"] == serde_json::json!({})
            && p["spec"]["policyTypes"] == serde_json::json!(["Ingress", "Egress"])
            && p["spec"]["ingress"].is_null()
            && p["spec"]["egress"].is_null()),
        "{overlay}: a default-deny NetworkPolicy"
    );
    for workload in workloads {
        let name = workload["metadata"]["name"].as_str().unwrap();
        let what = format!("{overlay}: {} {name}", workload["kind"]);
        let template = &workload["spec"]["template"];
        let labels = &template["metadata"]["labels"];
        let pod = &template["spec"];
        let ours = labels["app.kubernetes.io/name"] == "boxoffice";
        for key in RECOMMENDED.iter().chain(&["app.kubernetes.io/name", "app.kubernetes.io/component"]) {
            assert!(labels[key].is_string(), "{what}: pod label {key}");
        }
        assert!(selects(&workload["spec"]["selector"], labels), "{what}: selects its own pods");

        // No API token in any pod; each module runs as a ServiceAccount of its own.
        assert_eq!(pod["automountServiceAccountToken"], false, "{what}: automountServiceAccountToken");
        if ours {
            let account = pod["serviceAccountName"].as_str().unwrap_or_else(|| panic!("{what}: serviceAccountName"));
            assert_eq!(account, labels["app.kubernetes.io/component"].as_str().unwrap(), "{what}: its own account");
            assert_eq!(named(objects, "ServiceAccount", account)["automountServiceAccountToken"], false, "{what}");
        }

        // Pod security: non-root, RuntimeDefault seccomp.
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{what}: runAsNonRoot");
        assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault", "{what}: seccomp");

        let containers = pod["containers"].as_array().unwrap();
        let init = pod["initContainers"].as_array().cloned().unwrap_or_default();
        for container in containers.iter().chain(&init) {
            let what = format!("{what}, container {}", container["name"]);
            for kind in ["requests", "limits"] {
                for resource in ["cpu", "memory"] {
                    assert!(container["resources"][kind][resource].is_string(), "{what}: resources.{kind}.{resource}");
                }
            }
            let security = &container["securityContext"];
            assert_eq!(security["readOnlyRootFilesystem"], true, "{what}: readOnlyRootFilesystem");
            assert_eq!(security["allowPrivilegeEscalation"], false, "{what}: allowPrivilegeEscalation");
            assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]), "{what}: drop ALL");
        }
        let mut ports = Vec::new();
        for container in containers {
            let what = format!("{what}, container {}", container["name"]);
            for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
                assert!(container[probe].is_object(), "{what}: {probe}");
            }
            let pause = &container["lifecycle"]["preStop"]["exec"]["command"];
            assert_eq!(pause[0], "sleep", "{what}: a preStop pause");
            for port in container["ports"].as_array().unwrap() {
                ports.push(port["name"].clone());
                ports.push(port["containerPort"].clone());
            }
            if ours {
                // Our health routes, on the container's own port.
                let http = container["ports"].as_array().unwrap().iter().find(|p| p["name"] == "http");
                let port = http.unwrap_or_else(|| panic!("{what}: a port named http"))["containerPort"].clone();
                for (probe, path) in [
                    ("startupProbe", "/health/live"),
                    ("livenessProbe", "/health/live"),
                    ("readinessProbe", "/health/ready"),
                ] {
                    assert_eq!(container[probe]["httpGet"]["path"], path, "{what}: {probe}");
                    assert_eq!(container[probe]["httpGet"]["port"], "http", "{what}: {probe} port");
                }
                let annotations = &template["metadata"]["annotations"];
                assert_eq!(annotations["prometheus.io/scrape"], "true", "{what}: scrape annotation");
                assert_eq!(annotations["prometheus.io/path"], "/metrics", "{what}: scrape path");
                assert_eq!(
                    annotations["prometheus.io/port"],
                    port.as_u64().unwrap().to_string(),
                    "{what}: scrape port"
                );
                let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
                let pause: u64 = pause[1].as_str().unwrap().parse().unwrap();
                assert!(grace > shutdown_timeout() + pause, "{what}: grace {grace} s ≤ shutdown + preStop");
            }
        }

        // Some NetworkPolicy other than the default deny lets traffic in to one of its ports.
        assert!(
            policies.iter().any(|p| {
                p["spec"]["podSelector"] != serde_json::json!({})
                    && selects(&p["spec"]["podSelector"], labels)
                    && p["spec"]["ingress"].as_array().is_some_and(|rules| {
                        rules.iter().any(|r| {
                            r["ports"].as_array().is_some_and(|ps| ps.iter().any(|p| ports.contains(&p["port"])))
                        })
                    })
            }),
            "{what}: no NetworkPolicy lets anything in to its ports"
        );

        // More than one replica (or an autoscaler that may make more): a PDB.
        let hpa = of_kind(objects, "HorizontalPodAutoscaler").into_iter().find(|h| {
            h["spec"]["scaleTargetRef"]["name"] == name && h["spec"]["scaleTargetRef"]["kind"] == workload["kind"]
        });
        let replicas = workload["spec"]["replicas"].as_u64().unwrap_or(1);
        if replicas > 1 || hpa.is_some() {
            assert!(
                of_kind(objects, "PodDisruptionBudget").iter().any(|b| selects(&b["spec"]["selector"], labels)),
                "{what}: {replicas} replicas and no PodDisruptionBudget"
            );
        }
        if let Some(hpa) = hpa {
            assert!(hpa["spec"]["minReplicas"].as_u64().unwrap() >= 2, "{what}: HPA minReplicas");
        }
    }
    assert_secret_files(overlay, objects);
    for ingress in of_kind(objects, "Ingress") {
        for rule in ingress["spec"]["rules"].as_array().unwrap() {
            for path in rule["http"]["paths"].as_array().unwrap() {
                let p = path["path"].as_str().unwrap();
                // The API and the web site (src/site.rs); never /internal, /health or /metrics.
                assert!(
                    p.starts_with("/api/") || ["/", "/admin", "/assets/"].contains(&p),
                    "{overlay}: Ingress routes {p}: only /api and the site are public"
                );
                let service = path["backend"]["service"]["name"].as_str().unwrap();
                let port = &path["backend"]["service"]["port"]["number"];
                let service = named(objects, "Service", service);
                assert!(
                    service["spec"]["ports"].as_array().unwrap().iter().any(|p| &p["port"] == port),
                    "{overlay}: {p}"
                );
            }
        }
        assert!(
            ingress["spec"]["tls"][0]["secretName"].is_string(),
            "{overlay}: TLS on {}",
            ingress["metadata"]["name"]
        );
    }
}

/// Every `…_FILE` setting a boxoffice container is given (its env and the ConfigMaps it reads
/// whole) names a file that a mounted Secret has: the right key, in the directory mounted.
fn assert_secret_files(overlay: &str, objects: &[Value]) {
    for workload in of_kind(objects, "Deployment") {
        let pod = &workload["spec"]["template"]["spec"];
        let name = &workload["metadata"]["name"];
        let init = pod["initContainers"].as_array().cloned().unwrap_or_default();
        for container in pod["containers"].as_array().unwrap().iter().chain(&init) {
            for (key, path) in container_env(objects, container).into_iter().filter(|(k, _)| k.ends_with("_FILE")) {
                let (dir, file) = path.rsplit_once('/').unwrap();
                let mount = container["volumeMounts"]
                    .as_array()
                    .and_then(|m| m.iter().find(|m| m["mountPath"] == dir))
                    .unwrap_or_else(|| {
                        panic!("{overlay}: {name} {}: {key}={path}: nothing mounted at {dir}", container["name"])
                    });
                let volume = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == mount["name"]).unwrap();
                let secrets: Vec<&str> = match volume["projected"]["sources"].as_array() {
                    Some(sources) => sources.iter().filter_map(|s| s["secret"]["name"].as_str()).collect(),
                    None => volume["secret"]["secretName"].as_str().into_iter().collect(),
                };
                let found = secrets.iter().any(|s| named(objects, "Secret", s)["data"][file].is_string());
                assert!(found, "{overlay}: {name}: {key}={path}: no key {file} in {secrets:?}");
            }
        }
    }
}

/// A container's environment as the kubelet makes it: its `envFrom` ConfigMaps and Secrets,
/// then its `env` (literal values only), later winning.
pub fn container_env(objects: &[Value], container: &Value) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for from in container["envFrom"].as_array().cloned().unwrap_or_default() {
        let (kind, reference) = if from["configMapRef"].is_object() {
            ("ConfigMap", &from["configMapRef"])
        } else {
            ("Secret", &from["secretRef"])
        };
        let source = named(objects, kind, reference["name"].as_str().unwrap());
        for (key, value) in source["data"].as_object().unwrap() {
            let value = value.as_str().unwrap();
            let value = if kind == "Secret" { decode(value) } else { value.to_owned() };
            env.insert(key.clone(), value);
        }
    }
    for var in container["env"].as_array().cloned().unwrap_or_default() {
        let value = var["value"].as_str().unwrap_or_else(|| panic!("{}: a literal value", var["name"]));
        env.insert(var["name"].as_str().unwrap().to_owned(), value.to_owned());
    }
    env
}

/// A Secret's base64 value.
pub fn decode(value: &str) -> String {
    use base64::Engine;
    let value: String = value.split_whitespace().collect();
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(value).unwrap()).unwrap()
}

/// Writes a Secret's or a ConfigMap's keys as files in `dir` (what a volume of it holds).
pub fn write_keys(object: &Value, dir: &Path, items: Option<&Value>) {
    std::fs::create_dir_all(dir).unwrap();
    let secret = object["kind"] == "Secret";
    for (key, value) in object["data"].as_object().unwrap() {
        let path = match items.and_then(Value::as_array) {
            Some(items) => match items.iter().find(|i| i["key"] == key.as_str()) {
                Some(item) => item["path"].as_str().unwrap().to_owned(),
                None => continue,
            },
            None => key.clone(),
        };
        let value = value.as_str().unwrap();
        let value = if secret { decode(value) } else { value.to_owned() };
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, value).unwrap();
    }
}

mod rules {
    use super::*;

    /// Each module's container has the settings a split process has (`deploy/split.sh env`),
    /// but for what differs by nature: the script's loopback ports and names of its own on
    /// shared servers, and its mail in files; here the mail server's settings.
    #[test]
    fn each_module_gets_the_settings_the_split_script_gives_it() {
        let (_copy, objects) = render("split", &[]);
        let by_nature = [
            "BOXOFFICE__SERVER__BIND",
            "BOXOFFICE__REDIS__KEY_PREFIX",
            "BOXOFFICE__EVENTS__EXCHANGE",
            "BOXOFFICE__EVENTS__QUEUE_PREFIX",
            "BOXOFFICE__NOTIFICATION__EMAIL",
            "BOXOFFICE__NOTIFICATION__SMTP__HOST",
            "BOXOFFICE__NOTIFICATION__SMTP__USERNAME",
            "BOXOFFICE__NOTIFICATION__SMTP__PASSWORD",
        ];
        for module in MODULES {
            let process = if module == "booking" { "booking-1" } else { module };
            let script = split_script_env(process);
            let container = &named(&objects, "Deployment", module)["spec"]["template"]["spec"]["containers"][0];
            let env = container_env(&objects, container);
            assert_eq!(
                settings_apart_from(env.keys(), &by_nature),
                settings_apart_from(script.keys(), &by_nature),
                "{module}: the manifests and split.sh env"
            );
            assert_eq!(env["BOXOFFICE_PROFILE"], script["BOXOFFICE_PROFILE"], "{module}");
            // Where split.sh names the gateway's internal listener, the modules' own Services.
            for other in MODULES {
                let key = format!("BOXOFFICE__SERVICES__{}", other.to_uppercase());
                let port = named(&objects, "Service", other)["spec"]["ports"][0]["port"].as_u64().unwrap();
                assert_eq!(env[&key], format!("http://{other}:{port}"), "{module}: {key}");
            }
        }
    }

    #[test]
    fn every_workload_of_every_overlay_meets_the_review_rules() {
        for overlay in OVERLAYS {
            let (_copy, objects) = render(overlay, &[]);
            assert_review_rules(overlay, &objects);
        }
    }

    #[test]
    fn the_split_overlay_is_the_production_shape() {
        let (_copy, objects) = render("split", &[]);
        for module in MODULES {
            let deployment = named(&objects, "Deployment", module);
            assert!(deployment["spec"]["replicas"].as_u64().unwrap() >= 2, "{module}: replicas");
            let spread = &deployment["spec"]["template"]["spec"]["topologySpreadConstraints"];
            assert_eq!(spread[0]["topologyKey"], "kubernetes.io/hostname", "{module}: spread over nodes");
            let env = &deployment["spec"]["template"]["spec"]["containers"][0]["env"];
            assert!(
                env.as_array().unwrap().iter().any(|e| e["value"] == format!("split/{module}")),
                "{module}: profile"
            );
        }
        for module in ["auth", "movie", "booking"] {
            let hpa = named(&objects, "HorizontalPodAutoscaler", module);
            assert_eq!(hpa["spec"]["metrics"][0]["resource"]["name"], "cpu", "{module}: HPA on CPU");
        }
    }

    /// The optional monitoring component: its ServiceMonitor scrapes every boxoffice Service
    /// on the port and path the pods' annotations name, under a job per module. (A CRD:
    /// kubernetes-validate has no schema for it, so CI validates the overlays without it.)
    #[test]
    fn the_monitoring_component_scrapes_every_service_as_the_annotations_do() {
        for overlay in ["split", "monolith"] {
            let (_copy, objects) = render_with(overlay, &[], &["monitoring"]);
            assert_review_rules(overlay, &objects);
            let monitors = of_kind(&objects, "ServiceMonitor");
            assert_eq!(monitors.len(), 1, "{overlay}");
            let spec = &monitors[0]["spec"];
            let endpoint = &spec["endpoints"][0];
            let relabel = &endpoint["relabelings"][0];
            assert_eq!(relabel["targetLabel"], "job");
            assert_eq!(relabel["sourceLabels"][0], "__meta_kubernetes_service_label_app_kubernetes_io_component");
            for workload in of_kind(&objects, "Deployment") {
                let template = &workload["spec"]["template"];
                let annotations = &template["metadata"]["annotations"];
                let component = template["metadata"]["labels"]["app.kubernetes.io/component"].as_str().unwrap();
                let service = named(&objects, "Service", component);
                assert!(selects(&spec["selector"], &service["metadata"]["labels"]), "{overlay}: selects {component}");
                let port = service["spec"]["ports"].as_array().unwrap().iter().find(|p| p["name"] == endpoint["port"]);
                let port = port.unwrap_or_else(|| panic!("{overlay}: {component} has the endpoint's port"));
                assert_eq!(annotations["prometheus.io/port"], port["port"].to_string(), "{overlay}: {component}");
                assert_eq!(annotations["prometheus.io/path"], endpoint["path"], "{overlay}: {component}");
                let job = relabel["replacement"].as_str().unwrap().replace("$1", component);
                assert_eq!(job, format!("boxoffice-{component}"), "{overlay}: the job of deploy/prometheus/");
            }
        }
    }

    #[test]
    fn the_dev_overlay_runs_the_servers_on_volumes_and_the_monolith_is_one_pod() {
        let (_copy, objects) = render("dev", &[]);
        for server in ["postgres", "redis", "rabbitmq"] {
            let set = named(&objects, "StatefulSet", server);
            assert!(set["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"].is_string());
        }
        let (_copy, objects) = render("monolith", &[]);
        let deployments = of_kind(&objects, "Deployment");
        assert_eq!(deployments.len(), 1);
        assert_eq!(deployments[0]["spec"]["replicas"], 1);
        assert_eq!(deployments[0]["spec"]["strategy"]["type"], "Recreate", "never two pods on one SQLite volume");
        let volumes = &deployments[0]["spec"]["template"]["spec"]["volumes"];
        let data = volumes.as_array().unwrap().iter().find(|v| v["name"] == "data").unwrap();
        assert_eq!(
            named(&objects, "PersistentVolumeClaim", data["persistentVolumeClaim"]["claimName"].as_str().unwrap())["kind"],
            "PersistentVolumeClaim"
        );
    }
}
