//! The deployment files in `deploy/` checked against the code, without Docker or Kubernetes:
//! every file is parsed, and the ports, paths, metric names, config files and goal files they
//! name are compared with what goalpost serves and accepts (`goalpost::serve`, `RunConfig`,
//! `GoalSet`).
//!
//! Every check reads the files through [`Repo`], which can replace a file's text in memory;
//! `checks_catch_mistakes` breaks a copy of each file that way and expects the check to fail.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use goalpost::goals::GoalSet;
use goalpost::runtime::kafka::RunConfig;
use goalpost::serve::{metrics, paths, DEFAULT_PORT};
use serde::Deserialize;
use serde_yaml::Value;

#[allow(dead_code)]
mod support;

use support::goals::EXAMPLE_GOALS;

type R<T> = Result<T, String>;

const COMPOSE: &str = "deploy/compose.yaml";
const PROMETHEUS: &str = "deploy/prometheus/prometheus.yml";
const DOCKERFILE: &str = "deploy/Dockerfile";
const DASHBOARD: &str = "deploy/grafana/goalpost-dashboard.json";
const K8S: &str = "deploy/k8s";

/// The repository's files, with some replaced in memory.
#[derive(Clone, Default)]
struct Repo {
    overrides: BTreeMap<String, String>,
}

impl Repo {
    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    /// The text of a repository-relative file.
    fn text(&self, rel: &str) -> R<String> {
        if let Some(t) = self.overrides.get(rel) {
            return Ok(t.clone());
        }
        std::fs::read_to_string(Self::root().join(rel))
            .map_err(|e| format!("cannot read {rel}: {e}"))
    }

    fn exists(&self, rel: &str) -> bool {
        self.overrides.contains_key(rel) || Self::root().join(rel).is_file()
    }

    fn yaml(&self, rel: &str) -> R<Value> {
        parse_yaml(&self.text(rel)?).map_err(|e| format!("{rel}: {e}"))
    }

    /// Every YAML document of a file (null documents left out).
    fn yaml_docs(&self, rel: &str) -> R<Vec<Value>> {
        let text = self.text(rel)?;
        let mut docs = Vec::new();
        for de in serde_yaml::Deserializer::from_str(&text) {
            let v = Value::deserialize(de).map_err(|e| format!("{rel}: not YAML: {e}"))?;
            if !v.is_null() {
                docs.push(v);
            }
        }
        Ok(docs)
    }

    /// This repository with `rel`'s text passed through `edit`; panics if nothing changed.
    fn with_edit(&self, rel: &str, edit: impl FnOnce(&str) -> String) -> Repo {
        let before = self.text(rel).unwrap();
        let after = edit(&before);
        assert_ne!(before, after, "the edit of {rel} changed nothing");
        let mut r = self.clone();
        r.overrides.insert(rel.to_string(), after);
        r
    }

    /// Repository-relative names of the files directly in a directory.
    fn list(&self, dir: &str) -> R<Vec<String>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(Self::root().join(dir)).map_err(|e| format!("{dir}: {e}"))? {
            let e = e.map_err(|e| format!("{dir}: {e}"))?;
            if e.path().is_file() {
                out.push(format!("{dir}/{}", e.file_name().to_string_lossy()));
            }
        }
        out.sort();
        Ok(out)
    }
}

fn parse_yaml(text: &str) -> R<Value> {
    serde_yaml::from_str(text).map_err(|e| format!("not YAML: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Small helpers over YAML values and paths.

/// The value at a dotted path (`spec.template.spec`, numbers index sequences).
fn at<'a>(v: &'a Value, path: &str) -> R<&'a Value> {
    let mut cur = v;
    for part in path.split('.') {
        let next = match part.parse::<usize>() {
            Ok(i) => cur.get(i),
            Err(_) => cur.get(part),
        };
        cur = next.ok_or_else(|| format!("missing `{path}` (no `{part}`)"))?;
    }
    Ok(cur)
}

/// A scalar as text: strings, numbers and booleans.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn text_at(v: &Value, path: &str) -> R<String> {
    scalar(at(v, path)?).ok_or_else(|| format!("`{path}` is not a scalar"))
}

fn seq<'a>(v: &'a Value, path: &str) -> R<&'a Vec<Value>> {
    at(v, path)?
        .as_sequence()
        .ok_or_else(|| format!("`{path}` is not a list"))
}

/// A mapping of scalars (labels, selectors).
fn string_map(v: &Value, path: &str) -> R<BTreeMap<String, String>> {
    let m = at(v, path)?
        .as_mapping()
        .ok_or_else(|| format!("`{path}` is not a mapping"))?;
    m.iter()
        .map(|(k, v)| match (scalar(k), scalar(v)) {
            (Some(k), Some(v)) => Ok((k, v)),
            _ => Err(format!("`{path}` holds a non-scalar")),
        })
        .collect()
}

/// `dir` joined with a relative path, `.` and `..` resolved; an error when it leaves the repository.
fn normalize(dir: &str, rel: &str) -> R<String> {
    let mut parts: Vec<&str> = if rel.starts_with('/') {
        Vec::new()
    } else {
        dir.split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect()
    };
    for p in rel.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts
                    .pop()
                    .ok_or_else(|| format!("`{rel}` leaves the repository"))?;
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(d, _)| d)
}

/// The port of `host:port`.
fn port_of(addr: &str) -> R<u16> {
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .ok_or_else(|| format!("`{addr}` has no port"))
}

/// The value of a compose `${VAR:-default}` (or `${VAR-default}`) as it is without `VAR` set.
fn compose_default(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find('}') else {
            out.push_str(&rest[i..]);
            return out;
        };
        let inner = &rest[i + 2..i + j];
        if let Some((_, d)) = inner.split_once(":-").or_else(|| inner.split_once('-')) {
            out.push_str(d);
        }
        rest = &rest[i + j + 1..];
    }
    out.push_str(rest);
    out
}

fn ensure(cond: bool, msg: impl FnOnce() -> String) -> R<()> {
    if cond {
        Ok(())
    } else {
        Err(msg())
    }
}

/// Parses a goalpost config, checks its HTTP side and loads the goal file it names through
/// `goal_text` (given the goal path as goalpost resolves it). Returns the config.
fn check_run_config(
    what: &str,
    text: &str,
    path: &str,
    goal_text: impl FnOnce(&Path) -> R<String>,
) -> R<(RunConfig, GoalSet)> {
    let cfg = RunConfig::from_toml(text, Path::new(path)).map_err(|e| format!("{what}: {e}"))?;
    ensure(cfg.http.enabled, || {
        format!("{what}: http.enabled is false")
    })?;
    let addr: std::net::SocketAddr = cfg
        .http
        .listen
        .parse()
        .map_err(|e| format!("{what}: http.listen: {e}"))?;
    ensure(addr.port() == DEFAULT_PORT, || {
        format!("{what}: http.listen port {} != {DEFAULT_PORT}", addr.port())
    })?;
    ensure(!addr.ip().is_loopback(), || {
        format!("{what}: http.listen {addr} is loopback: not reachable from other containers")
    })?;
    ensure(
        cfg.http.token_env.is_some() || cfg.http.token_file.is_some(),
        || format!("{what}: no bearer token (http.token_env or http.token_file)"),
    )?;
    ensure(!cfg.http.allow_unauthenticated, || {
        format!("{what}: http.allow_unauthenticated is true")
    })?;
    let goals = GoalSet::from_toml(&goal_text(&cfg.goals)?)
        .map_err(|e| format!("{what}: goal file {}: {e}", cfg.goals.display()))?;
    for id in &cfg.metrics.progress_gauges {
        ensure(goals.get(id).is_some(), || {
            format!("{what}: metrics.progress_gauges names `{id}`, not a goal of the goal file")
        })?;
    }
    Ok((cfg, goals))
}

// ---------------------------------------------------------------------------------------------
// Compose.

fn compose_service<'a>(compose: &'a Value, name: &str) -> R<&'a Value> {
    at(compose, &format!("services.{name}")).map_err(|_| format!("{COMPOSE}: no service `{name}`"))
}

/// A service's environment as a map (mapping or `KEY=VALUE` list syntax).
fn compose_env(service: &Value) -> R<BTreeMap<String, String>> {
    let Some(env) = service.get("environment") else {
        return Ok(BTreeMap::new());
    };
    if let Some(list) = env.as_sequence() {
        return Ok(list
            .iter()
            .filter_map(scalar)
            .map(|e| match e.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (e, String::new()),
            })
            .collect());
    }
    string_map(service, "environment")
}

/// A service's mounts: (source, target), short or long syntax.
fn compose_mounts(service: &Value) -> R<Vec<(String, String)>> {
    let Some(vols) = service.get("volumes") else {
        return Ok(Vec::new());
    };
    let vols = vols.as_sequence().ok_or("volumes is not a list")?;
    vols.iter()
        .map(|v| {
            if let Some(s) = v.as_str() {
                let mut it = s.split(':');
                match (it.next(), it.next()) {
                    (Some(src), Some(dst)) => Ok((src.to_string(), dst.to_string())),
                    _ => Err(format!("volume `{s}` has no target")),
                }
            } else {
                Ok((text_at(v, "source")?, text_at(v, "target")?))
            }
        })
        .collect()
}

/// The repository path of the file a service mounts at `target` (bind mounts only).
fn compose_mount_source(service: &Value, target: &str) -> R<String> {
    let (src, _) = compose_mounts(service)?
        .into_iter()
        .find(|(_, t)| t == target)
        .ok_or_else(|| format!("{COMPOSE}: nothing is mounted at {target}"))?;
    ensure(src.starts_with('.'), || {
        format!("{COMPOSE}: {target} is mounted from `{src}`, not a file of the repository")
    })?;
    normalize("deploy", &src)
}

/// The container ports a service publishes.
fn compose_container_ports(service: &Value) -> R<Vec<u16>> {
    let Some(ports) = service.get("ports") else {
        return Ok(Vec::new());
    };
    let ports = ports.as_sequence().ok_or("ports is not a list")?;
    ports
        .iter()
        .map(|p| {
            let s = match p {
                Value::Mapping(_) => text_at(p, "target")?,
                p => scalar(p).ok_or("a port is not a scalar")?,
            };
            let s = s.split('/').next().unwrap_or_default();
            let last = s.rsplit(':').next().unwrap_or_default();
            last.parse::<u16>()
                .map_err(|_| format!("port `{s}` has no single container port"))
        })
        .collect()
}

/// The text of a top-level compose `configs` entry: inline `content` or a `file`.
fn compose_config_text(repo: &Repo, compose: &Value, name: &str) -> R<String> {
    let c = at(compose, &format!("configs.{name}"))
        .map_err(|_| format!("{COMPOSE}: no config `{name}`"))?;
    if let Some(content) = c.get("content") {
        return scalar(content).ok_or_else(|| format!("{COMPOSE}: configs.{name}.content"));
    }
    repo.text(&normalize("deploy", &text_at(c, "file")?)?)
}

/// Which top-level config a service mounts at `target`, if any.
fn compose_config_at(service: &Value, target: &str) -> Option<String> {
    service
        .get("configs")?
        .as_sequence()?
        .iter()
        .find(|c| c.get("target").and_then(Value::as_str) == Some(target))
        .and_then(|c| c.get("source").and_then(scalar))
}

/// The compose file, its goalpost service, and goalpost's config as mounted.
fn check_compose(repo: &Repo) -> R<()> {
    let compose = repo.yaml(COMPOSE)?;
    let kafka = compose_service(&compose, "kafka")?;
    let gp = compose_service(&compose, "goalpost")?;

    // Built from deploy/Dockerfile with the repository as context.
    let context = normalize("deploy", &text_at(gp, "build.context")?)?;
    ensure(context.is_empty(), || {
        format!("{COMPOSE}: goalpost build context is `{context}`, not the repository root")
    })?;
    let dockerfile = normalize(&context, &text_at(gp, "build.dockerfile")?)?;
    ensure(dockerfile == DOCKERFILE && repo.exists(DOCKERFILE), || {
        format!("{COMPOSE}: goalpost is built from `{dockerfile}`, not {DOCKERFILE}")
    })?;

    let ports = compose_container_ports(gp)?;
    ensure(ports.contains(&DEFAULT_PORT), || {
        format!("{COMPOSE}: goalpost publishes container ports {ports:?}, not {DEFAULT_PORT}")
    })?;

    let depends: Vec<String> = match gp.get("depends_on") {
        Some(Value::Sequence(s)) => s.iter().filter_map(scalar).collect(),
        Some(Value::Mapping(m)) => m.keys().filter_map(scalar).collect(),
        _ => Vec::new(),
    };
    ensure(depends.iter().any(|d| d == "kafka"), || {
        format!("{COMPOSE}: goalpost does not depend on kafka")
    })?;

    let env = compose_env(gp)?;
    ensure(
        env.get("GOALPOST_INSTANCE_ID")
            .is_some_and(|v| !v.is_empty()),
        || format!("{COMPOSE}: goalpost has no GOALPOST_INSTANCE_ID"),
    )?;

    // `run --config FILE`, FILE mounted from the repository.
    let command: Vec<String> = seq(gp, "command")?.iter().filter_map(scalar).collect();
    ensure(command.first().map(String::as_str) == Some("run"), || {
        format!("{COMPOSE}: goalpost command {command:?} is not `run ...`")
    })?;
    let config_path = command
        .iter()
        .position(|a| a == "--config")
        .and_then(|i| command.get(i + 1))
        .ok_or_else(|| format!("{COMPOSE}: goalpost command has no --config FILE"))?;
    let config_src = compose_mount_source(gp, config_path)?;
    let (cfg, _) = check_run_config(
        &config_src,
        &repo.text(&config_src)?,
        config_path,
        |goals| {
            let target = goals.to_str().ok_or("goal path is not UTF-8")?;
            repo.text(&compose_mount_source(gp, target)?)
        },
    )?;
    let token_var = cfg
        .http
        .token_env
        .clone()
        .ok_or_else(|| format!("{config_src}: use http.token_env in compose"))?;
    ensure(env.contains_key(&token_var), || {
        format!("{COMPOSE}: goalpost's environment lacks {token_var} (http.token_env)")
    })?;

    // goalpost reaches the broker on the listener the broker advertises.
    let kenv = compose_env(kafka)?;
    let advertised = kenv
        .get("KAFKA_ADVERTISED_LISTENERS")
        .ok_or_else(|| format!("{COMPOSE}: kafka has no KAFKA_ADVERTISED_LISTENERS"))?;
    let bootstrap: toml::Table =
        toml::from_str(&repo.text(&config_src)?).map_err(|e| format!("{config_src}: {e}"))?;
    let bootstrap = bootstrap
        .get("kafka")
        .and_then(|k| k.get("bootstrap_servers"))
        .and_then(|b| b.as_str())
        .unwrap_or_default()
        .to_string();
    ensure(
        advertised
            .split(',')
            .any(|l| l.split_once("://").map(|(_, a)| a) == Some(bootstrap.as_str())),
        || {
            format!("{config_src}: bootstrap `{bootstrap}` is not a listener kafka advertises ({advertised})")
        },
    )?;
    for k in [
        "KAFKA_NODE_ID",
        "KAFKA_PROCESS_ROLES",
        "KAFKA_CONTROLLER_QUORUM_VOTERS",
        "KAFKA_CONTROLLER_LISTENER_NAMES",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS",
    ] {
        ensure(kenv.contains_key(k), || {
            format!("{COMPOSE}: kafka lacks {k}")
        })?;
    }

    // goalpost never creates input topics: something in the file must.
    let all_commands: String = at(&compose, "services")?
        .as_mapping()
        .ok_or("services is not a mapping")?
        .values()
        .filter_map(|s| s.get("command"))
        .map(|c| match c {
            Value::Sequence(s) => s.iter().filter_map(scalar).collect::<Vec<_>>().join(" "),
            c => scalar(c).unwrap_or_default(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    for t in &cfg.input.topics {
        ensure(all_commands.contains(&format!("--topic {t}")), || {
            format!("{COMPOSE}: no service creates the input topic `{t}`")
        })?;
    }
    Ok(())
}

/// Prometheus scrapes goalpost's metrics with its token.
fn check_prometheus(repo: &Repo) -> R<()> {
    let compose = repo.yaml(COMPOSE)?;
    let prom_service = compose_service(&compose, "prometheus")?;
    let prom_file = compose_mount_source(prom_service, "/etc/prometheus/prometheus.yml")?;
    ensure(prom_file == PROMETHEUS, || {
        format!("{COMPOSE}: prometheus mounts {prom_file}, not {PROMETHEUS}")
    })?;
    let prom = repo.yaml(PROMETHEUS)?;
    let jobs = seq(&prom, "scrape_configs")?;
    let mut found = false;
    for job in jobs {
        let targets: Vec<String> = match job.get("static_configs").and_then(Value::as_sequence) {
            Some(s) => s
                .iter()
                .filter_map(|c| c.get("targets").and_then(Value::as_sequence))
                .flatten()
                .filter_map(scalar)
                .collect(),
            None => continue,
        };
        let goalpost: Vec<&String> = targets
            .iter()
            .filter(|t| t.starts_with("goalpost:"))
            .collect();
        if goalpost.is_empty() {
            continue;
        }
        found = true;
        for t in goalpost {
            ensure(port_of(t)? == DEFAULT_PORT, || {
                format!("{PROMETHEUS}: target `{t}` is not port {DEFAULT_PORT}")
            })?;
        }
        let path = text_at(job, "metrics_path")?;
        ensure(path == paths::METRICS, || {
            format!("{PROMETHEUS}: metrics_path `{path}` != {}", paths::METRICS)
        })?;
        let auth = at(job, "authorization")
            .map_err(|_| format!("{PROMETHEUS}: the goalpost job sends no bearer token"))?;
        let kind = auth
            .get("type")
            .and_then(scalar)
            .unwrap_or_else(|| "Bearer".into());
        ensure(kind.eq_ignore_ascii_case("bearer"), || {
            format!("{PROMETHEUS}: authorization type `{kind}` is not Bearer")
        })?;
        // The token Prometheus sends, without GOALPOST_HTTP_TOKEN set.
        let sent = if let Some(c) = auth.get("credentials") {
            scalar(c).unwrap_or_default()
        } else {
            let file = text_at(auth, "credentials_file")?;
            match compose_config_at(prom_service, &file) {
                Some(cfg) => compose_config_text(repo, &compose, &cfg)?,
                None => repo.text(&compose_mount_source(prom_service, &file)?)?,
            }
        };
        let gp_env = compose_env(compose_service(&compose, "goalpost")?)?;
        let expected = gp_env
            .get("GOALPOST_HTTP_TOKEN")
            .ok_or_else(|| format!("{COMPOSE}: goalpost has no GOALPOST_HTTP_TOKEN"))?;
        ensure(
            compose_default(&sent).trim() == compose_default(expected).trim(),
            || format!("{PROMETHEUS}: sends token `{sent}`, goalpost expects `{expected}`"),
        )?;
    }
    ensure(found, || {
        format!("{PROMETHEUS}: no job scrapes goalpost:{DEFAULT_PORT}")
    })
}

/// Grafana in compose (optional): the dashboard file is provisioned from the repository.
fn check_compose_grafana(repo: &Repo) -> R<()> {
    let compose = repo.yaml(COMPOSE)?;
    let Ok(grafana) = compose_service(&compose, "grafana") else {
        return Ok(());
    };
    let mounts = compose_mounts(grafana)?;
    let (_, target) = mounts
        .iter()
        .find(|(s, _)| normalize("deploy", s).ok().as_deref() == Some(DASHBOARD))
        .ok_or_else(|| format!("{COMPOSE}: grafana does not mount {DASHBOARD}"))?;
    let mut provider_paths = Vec::new();
    let mut datasources = Vec::new();
    for c in grafana
        .get("configs")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        let t = text_at(c, "target")?;
        let v = parse_yaml(&compose_config_text(
            repo,
            &compose,
            &text_at(c, "source")?,
        )?)?;
        if t.starts_with("/etc/grafana/provisioning/dashboards/") {
            for p in seq(&v, "providers")? {
                provider_paths.push(text_at(p, "options.path")?);
            }
        } else if t.starts_with("/etc/grafana/provisioning/datasources/") {
            datasources.extend(seq(&v, "datasources")?.iter().cloned());
        }
    }
    ensure(
        provider_paths
            .iter()
            .any(|p| p.trim_end_matches('/') == parent(target)),
        || {
            format!(
                "{COMPOSE}: no dashboard provider reads {} (providers: {provider_paths:?})",
                parent(target)
            )
        },
    )?;
    let prom = datasources
        .iter()
        .find(|d| d.get("type").and_then(Value::as_str) == Some("prometheus"))
        .ok_or_else(|| format!("{COMPOSE}: no Prometheus data source is provisioned"))?;
    let url = text_at(prom, "url")?;
    let host = url
        .trim_start_matches("http://")
        .split(':')
        .next()
        .unwrap_or_default()
        .to_string();
    compose_service(&compose, &host)
        .map(|_| ())
        .map_err(|_| format!("{COMPOSE}: the data source url `{url}` names no service"))
}

// ---------------------------------------------------------------------------------------------
// Kubernetes.

struct K8s {
    /// (file, manifest) for every document of every file but the kustomization.
    objects: Vec<(String, Value)>,
}

impl K8s {
    fn load(repo: &Repo) -> R<K8s> {
        let mut objects = Vec::new();
        for file in repo.list(K8S)? {
            if !(file.ends_with(".yaml") || file.ends_with(".yml")) {
                continue;
            }
            let docs = repo.yaml_docs(&file)?;
            ensure(!docs.is_empty(), || format!("{file}: no manifest"))?;
            for d in docs {
                let kind = text_at(&d, "kind").map_err(|e| format!("{file}: {e}"))?;
                text_at(&d, "apiVersion").map_err(|e| format!("{file}: {e}"))?;
                if kind == "Kustomization" {
                    continue;
                }
                text_at(&d, "metadata.name").map_err(|e| format!("{file}: {e}"))?;
                objects.push((file.clone(), d));
            }
        }
        Ok(K8s { objects })
    }

    fn find(&self, kind: &str, name: &str) -> R<&Value> {
        self.objects
            .iter()
            .map(|(_, o)| o)
            .find(|o| {
                o.get("kind").and_then(Value::as_str) == Some(kind)
                    && at(o, "metadata.name").ok().and_then(Value::as_str) == Some(name)
            })
            .ok_or_else(|| format!("{K8S}: no {kind} `{name}`"))
    }

    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.objects
            .iter()
            .map(|(_, o)| o)
            .filter(|o| o.get("kind").and_then(Value::as_str) == Some(kind))
            .collect()
    }
}

/// A selector matches the pods: every key=value of it is among the pod labels.
fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn env_entry<'a>(container: &'a Value, name: &str) -> R<(usize, &'a Value)> {
    seq(container, "env")?
        .iter()
        .enumerate()
        .find(|(_, e)| e.get("name").and_then(Value::as_str) == Some(name))
        .ok_or_else(|| format!("the goalpost container has no env {name}"))
}

/// A probe's path and port; a named port is resolved through the container's ports.
fn probe(container: &Value, which: &str) -> R<(String, u16)> {
    let path = text_at(container, &format!("{which}.httpGet.path"))?;
    let port = at(container, &format!("{which}.httpGet.port"))?;
    let port = match port.as_u64() {
        Some(p) => p as u16,
        None => {
            let name = scalar(port).unwrap_or_default();
            let p = seq(container, "ports")?
                .iter()
                .find(|p| p.get("name").and_then(Value::as_str) == Some(name.as_str()))
                .ok_or_else(|| format!("{which} port `{name}` names no container port"))?;
            text_at(p, "containerPort")?
                .parse()
                .map_err(|_| "bad containerPort")?
        }
    };
    Ok((path, port))
}

fn check_k8s(repo: &Repo) -> R<()> {
    check_k8s_manifests(repo).map_err(|e| {
        if e.starts_with("deploy/") {
            e
        } else {
            format!("{K8S}: {e}")
        }
    })
}

fn check_k8s_manifests(repo: &Repo) -> R<()> {
    let k = K8s::load(repo)?;

    // The kustomization lists every other manifest file but the examples: an example Secret
    // holds a placeholder token that `kubectl apply -k` must never apply.
    let kust_file = format!("{K8S}/kustomization.yaml");
    let kust = repo.yaml(&kust_file)?;
    let listed: BTreeSet<String> = seq(&kust, "resources")?
        .iter()
        .filter_map(scalar)
        .map(|r| normalize(K8S, &r))
        .collect::<R<_>>()?;
    let files: BTreeSet<String> = repo
        .list(K8S)?
        .into_iter()
        .filter(|f| (f.ends_with(".yaml") || f.ends_with(".yml")) && *f != kust_file)
        .filter(|f| !f.ends_with(".example.yaml"))
        .collect();
    ensure(listed == files, || {
        format!("{kust_file}: resources {listed:?} are not the manifest files {files:?}")
    })?;

    let sts = k.find("StatefulSet", "goalpost")?;
    let replicas = at(sts, "spec.replicas")?
        .as_u64()
        .ok_or("spec.replicas is not a number")?;
    ensure(replicas >= 2, || {
        format!("StatefulSet replicas {replicas} < 2")
    })?;
    let pod_labels = string_map(sts, "spec.template.metadata.labels")?;
    let sts_selector = string_map(sts, "spec.selector.matchLabels")?;
    ensure(selects(&sts_selector, &pod_labels), || {
        format!(
            "StatefulSet selector {sts_selector:?} does not match its pod labels {pod_labels:?}"
        )
    })?;

    // serviceName: a headless Service selecting the pods.
    let service_name = text_at(sts, "spec.serviceName")?;
    let headless = k.find("Service", &service_name)?;
    let cluster_ip = text_at(headless, "spec.clusterIP").unwrap_or_default();
    ensure(cluster_ip == "None", || {
        format!("Service `{service_name}` (the StatefulSet's serviceName) has clusterIP `{cluster_ip}`, not None")
    })?;
    ensure(
        selects(&string_map(headless, "spec.selector")?, &pod_labels),
        || format!("Service `{service_name}` does not select the StatefulSet's pods"),
    )?;

    let pod = at(sts, "spec.template.spec")?;
    let container = seq(pod, "containers")?
        .iter()
        .find(|c| c.get("name").and_then(Value::as_str) == Some("goalpost"))
        .ok_or("the StatefulSet has no container `goalpost`")?;
    let ports: Vec<(String, u16)> = seq(container, "ports")?
        .iter()
        .map(|p| {
            Ok((
                p.get("name").and_then(scalar).unwrap_or_default(),
                text_at(p, "containerPort")?
                    .parse()
                    .map_err(|_| "bad containerPort")?,
            ))
        })
        .collect::<R<_>>()?;
    ensure(ports.iter().any(|(_, p)| *p == DEFAULT_PORT), || {
        format!("container ports {ports:?} do not include {DEFAULT_PORT}")
    })?;
    let (path, port) = probe(container, "readinessProbe")?;
    ensure(path == paths::READYZ && port == DEFAULT_PORT, || {
        format!(
            "readinessProbe {path} port {port}, expected {} port {DEFAULT_PORT}",
            paths::READYZ
        )
    })?;
    let (path, port) = probe(container, "livenessProbe")?;
    ensure(path == paths::HEALTHZ && port == DEFAULT_PORT, || {
        format!(
            "livenessProbe {path} port {port}, expected {} port {DEFAULT_PORT}",
            paths::HEALTHZ
        )
    })?;

    // Identity and the URL peers use.
    let (id_index, id) = env_entry(container, "GOALPOST_INSTANCE_ID")?;
    let field = text_at(id, "valueFrom.fieldRef.fieldPath").unwrap_or_default();
    ensure(field == "metadata.name", || {
        format!("GOALPOST_INSTANCE_ID comes from `{field}`, not the pod name (metadata.name)")
    })?;
    let (url_index, url) = env_entry(container, "GOALPOST_ADVERTISED_URL")?;
    let url = text_at(url, "value")?;
    let want = format!("http://$(GOALPOST_INSTANCE_ID).{service_name}:{DEFAULT_PORT}");
    ensure(url == want && url_index > id_index, || {
        format!("GOALPOST_ADVERTISED_URL `{url}` (env #{url_index}) should be `{want}`, after GOALPOST_INSTANCE_ID")
    })?;

    // The pod runs as non-root with a read-only root file system.
    let csc = container
        .get("securityContext")
        .ok_or("the container has no securityContext")?;
    ensure(
        csc.get("readOnlyRootFilesystem").and_then(Value::as_bool) == Some(true),
        || "the container's root file system is not read-only".into(),
    )?;
    let non_root = [csc, pod.get("securityContext").unwrap_or(&Value::Null)]
        .iter()
        .any(|s| s.get("runAsNonRoot").and_then(Value::as_bool) == Some(true));
    ensure(non_root, || "runAsNonRoot is not set".into())?;

    // The config comes from the ConfigMap, mounted where --config points.
    let args: Vec<String> = seq(container, "args")?.iter().filter_map(scalar).collect();
    ensure(args.first().map(String::as_str) == Some("run"), || {
        format!("container args {args:?} are not `run ...`")
    })?;
    let config_path = args
        .iter()
        .position(|a| a == "--config")
        .and_then(|i| args.get(i + 1))
        .ok_or("container args have no --config FILE")?;
    let mount = seq(container, "volumeMounts")?
        .iter()
        .find(|m| text_at(m, "mountPath").ok().as_deref() == Some(parent(config_path)))
        .ok_or_else(|| format!("nothing is mounted at {}", parent(config_path)))?;
    let volume_name = text_at(mount, "name")?;
    let volume = seq(pod, "volumes")?
        .iter()
        .find(|v| v.get("name").and_then(scalar).as_deref() == Some(volume_name.as_str()))
        .ok_or_else(|| format!("no volume `{volume_name}`"))?;
    let cm_name = text_at(volume, "configMap.name")?;
    let cm = k.find("ConfigMap", &cm_name)?;
    let data = string_map(cm, "data")?;
    let key = config_path.rsplit('/').next().unwrap_or_default();
    let cfg_text = data
        .get(key)
        .ok_or_else(|| format!("ConfigMap `{cm_name}` has no key `{key}`"))?;
    let (cfg, goals) = check_run_config(
        &format!("ConfigMap {cm_name} {key}"),
        cfg_text,
        config_path,
        |goals| {
            let dir = parent(config_path);
            let rel = goals.strip_prefix(dir).map_err(|_| {
                format!(
                    "the goal file {} is outside the ConfigMap mount {dir}",
                    goals.display()
                )
            })?;
            let k = rel.to_str().unwrap_or_default();
            data.get(k)
                .cloned()
                .ok_or_else(|| format!("ConfigMap `{cm_name}` has no key `{k}` (the goal file)"))
        },
    )?;
    let goal_key = cfg
        .goals
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or_default();
    let example = repo.text(EXAMPLE_GOALS)?;
    ensure(data.get(goal_key) == Some(&example), || {
        format!("ConfigMap `{cm_name}` key `{goal_key}` differs from {EXAMPLE_GOALS}")
    })?;
    let example_goals =
        GoalSet::from_toml(&example).map_err(|e| format!("{EXAMPLE_GOALS}: {e}"))?;
    ensure(goals == example_goals, || {
        format!("ConfigMap goals differ from {EXAMPLE_GOALS}")
    })?;

    // The token comes from a Secret that has the key.
    let token_var = cfg
        .http
        .token_env
        .clone()
        .ok_or("use http.token_env in the ConfigMap")?;
    let (_, token) = env_entry(container, &token_var)?;
    let secret_name = text_at(token, "valueFrom.secretKeyRef.name")?;
    let secret_key = text_at(token, "valueFrom.secretKeyRef.key")?;
    let secret = k.find("Secret", &secret_name)?;
    let has_key = ["data", "stringData"].iter().any(|d| {
        at(secret, d)
            .ok()
            .and_then(|m| m.get(secret_key.as_str()))
            .is_some()
    });
    ensure(has_key, || {
        format!("Secret `{secret_name}` has no key `{secret_key}`")
    })?;

    // A ClusterIP Service for clients and Prometheus.
    let svc = k.find("Service", "goalpost")?;
    ensure(
        text_at(svc, "spec.clusterIP").map_or(true, |c| c != "None"),
        || "Service `goalpost` is headless".into(),
    )?;
    ensure(
        selects(&string_map(svc, "spec.selector")?, &pod_labels),
        || "Service `goalpost` does not select the StatefulSet's pods".into(),
    )?;
    for s in [svc, headless] {
        let ports: Vec<u16> = seq(s, "spec.ports")?
            .iter()
            .filter_map(|p| p.get("port").and_then(Value::as_u64))
            .map(|p| p as u16)
            .collect();
        ensure(ports.contains(&DEFAULT_PORT), || {
            format!(
                "Service `{}` ports {ports:?} lack {DEFAULT_PORT}",
                text_at(s, "metadata.name").unwrap_or_default()
            )
        })?;
    }
    let ann = string_map(svc, "metadata.annotations")?;
    ensure(
        ann.get("prometheus.io/port") == Some(&DEFAULT_PORT.to_string()),
        || {
            format!(
                "Service `goalpost` annotation prometheus.io/port is {:?}",
                ann.get("prometheus.io/port")
            )
        },
    )?;
    ensure(
        ann.get("prometheus.io/path").map(String::as_str) == Some(paths::METRICS),
        || {
            format!(
                "Service `goalpost` annotation prometheus.io/path is {:?}",
                ann.get("prometheus.io/path")
            )
        },
    )?;

    // The PDB selects exactly the StatefulSet's pods.
    let pdbs = k.of_kind("PodDisruptionBudget");
    ensure(pdbs.len() == 1, || {
        format!("{} PodDisruptionBudgets, expected 1", pdbs.len())
    })?;
    let pdb_selector = string_map(pdbs[0], "spec.selector.matchLabels")?;
    ensure(
        pdb_selector == sts_selector && selects(&pdb_selector, &pod_labels),
        || format!("PDB selector {pdb_selector:?} != StatefulSet selector {sts_selector:?}"),
    )?;
    ensure(
        pdbs[0]
            .get("spec")
            .is_some_and(|s| s.get("maxUnavailable").is_some() || s.get("minAvailable").is_some()),
        || "the PDB sets neither maxUnavailable nor minAvailable".into(),
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Grafana dashboard.

/// Every `goalpost_[a-z_]+` in a text.
fn metric_names(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("goalpost_") {
        let start = from + i;
        let end = text[start + "goalpost_".len()..]
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .map_or(text.len(), |e| start + "goalpost_".len() + e);
        out.push((start, text[start..end].to_string()));
        from = end;
    }
    out
}

/// A series name mapped to its metric in `NAMES` (a histogram's `_bucket`, `_sum`, `_count`).
fn metric_of(series: &str) -> Option<&'static str> {
    if let Some(n) = metrics::NAMES.iter().find(|n| **n == series) {
        return Some(n);
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let base = series.strip_suffix(suffix)?;
        metrics::NAMES
            .iter()
            .copied()
            .find(|n| *n == base && *n == metrics::TXN_DURATION)
    })
}

/// The labels a metric carries besides the scrape target's (see src/serve/metrics.rs).
fn metric_labels(metric: &str) -> &'static [&'static str] {
    match metric {
        metrics::EVENTS_REJECTED => &["reason"],
        metrics::EVENTS_LATE | metrics::EVENTS_OVERFLOW => &["goal"],
        metrics::CONSUMER_LAG => &["topic", "partition"],
        metrics::ATTAINMENTS => &["kind", "goal"],
        metrics::GOAL_PROGRESS => &["goal", "group"],
        metrics::ASSIGNED_PARTITIONS => &["kind"],
        metrics::TXN_DURATION => &["le"],
        _ => &[],
    }
}

/// Labels of the scrape target, present on every series.
const TARGET_LABELS: &[&str] = &["instance", "job"];

/// The labels of every `by (...)` clause of an expression.
fn by_labels(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("by (") {
        rest = &rest[i + 4..];
        let end = rest.find(')').unwrap_or(rest.len());
        out.extend(
            rest[..end]
                .split(',')
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty()),
        );
        rest = &rest[end..];
    }
    out
}

/// Every panel, rows' nested panels included.
fn all_panels(v: &serde_json::Value) -> Vec<&serde_json::Value> {
    let mut out = Vec::new();
    for p in v
        .get("panels")
        .and_then(|p| p.as_array())
        .into_iter()
        .flatten()
    {
        out.push(p);
        out.extend(all_panels(p));
    }
    out
}

fn check_dashboard(repo: &Repo) -> R<()> {
    let text = repo.text(DASHBOARD)?;
    let dash: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{DASHBOARD}: not JSON: {e}"))?;
    let schema = dash
        .get("schemaVersion")
        .and_then(|s| s.as_u64())
        .unwrap_or(0);
    ensure(schema >= 36, || {
        format!("{DASHBOARD}: schemaVersion {schema} < 36")
    })?;

    // A Prometheus data source variable, used by every panel.
    let vars = dash
        .pointer("/templating/list")
        .and_then(|l| l.as_array())
        .ok_or_else(|| format!("{DASHBOARD}: no templating"))?;
    let ds_var = vars
        .iter()
        .find(|v| v.get("type").and_then(|t| t.as_str()) == Some("datasource"))
        .ok_or_else(|| format!("{DASHBOARD}: no data source variable"))?;
    ensure(
        ds_var.get("query").and_then(|q| q.as_str()) == Some("prometheus"),
        || format!("{DASHBOARD}: the data source variable is not of Prometheus data sources"),
    )?;
    let ds_ref = format!(
        "${{{}}}",
        ds_var
            .get("name")
            .and_then(|n| n.as_str())
            .unwrap_or_default()
    );

    let mut used = BTreeSet::new();
    let mut exprs = 0;
    for panel in all_panels(&dash) {
        let title = panel
            .get("title")
            .and_then(|t| t.as_str())
            .unwrap_or("?")
            .to_string();
        let targets = panel.get("targets").and_then(|t| t.as_array());
        let Some(targets) = targets else {
            continue;
        };
        let uid = panel
            .pointer("/datasource/uid")
            .and_then(|u| u.as_str())
            .unwrap_or_default();
        ensure(uid == ds_ref, || {
            format!("{DASHBOARD}: panel `{title}` uses data source `{uid}`, not {ds_ref}")
        })?;
        for t in targets {
            let Some(expr) = t.get("expr").and_then(|e| e.as_str()) else {
                continue;
            };
            exprs += 1;
            let mut allowed: BTreeSet<&str> = TARGET_LABELS.iter().copied().collect();
            let names = metric_names(expr);
            ensure(!names.is_empty(), || {
                format!("{DASHBOARD}: panel `{title}`: `{expr}` uses no goalpost metric")
            })?;
            for (_, series) in &names {
                let m = metric_of(series).ok_or_else(|| {
                    format!("{DASHBOARD}: panel `{title}` uses `{series}`, not a metric of goalpost::serve::metrics::NAMES")
                })?;
                used.insert(m);
                allowed.extend(metric_labels(m));
            }
            // rate() and increase() only over counters and histogram series.
            for f in ["rate(", "increase("] {
                for (i, _) in expr.match_indices(f) {
                    let next = metric_names(&expr[i..])
                        .into_iter()
                        .next()
                        .map(|(_, n)| n)
                        .unwrap_or_default();
                    let counter = next.ends_with("_total")
                        || ["_bucket", "_sum", "_count"]
                            .iter()
                            .any(|s| next.ends_with(s));
                    ensure(counter, || {
                        format!("{DASHBOARD}: panel `{title}`: {f}) over `{next}`, which is not a counter")
                    })?;
                }
            }
            let by = by_labels(expr);
            for l in &by {
                ensure(allowed.contains(l.as_str()), || {
                    format!("{DASHBOARD}: panel `{title}`: `by ({l})` is not a label of its metrics ({allowed:?})")
                })?;
            }
            let legend = t
                .get("legendFormat")
                .and_then(|l| l.as_str())
                .unwrap_or_default();
            for part in legend.split("{{").skip(1) {
                let l = part.split("}}").next().unwrap_or_default().trim();
                let ok = if by.is_empty() {
                    allowed.contains(l)
                } else {
                    by.iter().any(|b| b == l)
                };
                ensure(ok, || {
                    format!("{DASHBOARD}: panel `{title}`: legend label `{l}` is not in the result")
                })?;
            }
        }
    }
    ensure(exprs > 0, || format!("{DASHBOARD}: no panel queries"))?;
    ensure(
        used.contains(metrics::TXN_DURATION)
            && text.contains("histogram_quantile(")
            && text.contains(&format!("{}_bucket", metrics::TXN_DURATION)),
        || {
            format!(
                "{DASHBOARD}: no histogram_quantile over {}_bucket",
                metrics::TXN_DURATION
            )
        },
    )?;
    let unused: Vec<&str> = metrics::NAMES
        .iter()
        .copied()
        .filter(|n| *n != metrics::GOAL_PROGRESS && !used.contains(n))
        .collect();
    ensure(unused.is_empty(), || {
        format!("{DASHBOARD}: no panel shows {unused:?}")
    })
}

// ---------------------------------------------------------------------------------------------
// Dockerfile.

/// Instructions of a Dockerfile: (KEYWORD, arguments), continuation lines joined.
fn dockerfile_instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && cur.is_empty()) {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            cur.push_str(head);
            cur.push(' ');
            continue;
        }
        cur.push_str(t);
        let (k, rest) = cur
            .trim()
            .split_once(char::is_whitespace)
            .unwrap_or((cur.trim(), ""));
        out.push((
            k.to_ascii_uppercase(),
            rest.split_whitespace().collect::<Vec<_>>().join(" "),
        ));
        cur.clear();
    }
    out
}

/// `include_str!`/`include_bytes!` targets of the sources outside test code, repository-relative.
fn embedded_files(repo: &Repo) -> R<Vec<String>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let root = Repo::root();
    let mut files = Vec::new();
    walk(&root.join("src"), &mut files);
    let mut out = Vec::new();
    for f in files {
        let rel = f
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if rel.ends_with("/tests.rs") {
            continue;
        }
        let text = repo.text(&rel)?;
        // Test modules at the end of a file may embed test data that a release build never reads.
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        for mac in ["include_str!(\"", "include_bytes!(\""] {
            for (i, _) in text.match_indices(mac) {
                let lit = &text[i + mac.len()..];
                let lit = &lit[..lit.find('"').unwrap_or(0)];
                out.push(normalize(parent(&rel), lit)?);
            }
        }
    }
    Ok(out)
}

fn check_dockerfile(repo: &Repo) -> R<()> {
    let text = repo.text(DOCKERFILE)?;
    let ins = dockerfile_instructions(&text);
    // ARG defaults before the first FROM, for the base images.
    let mut args = BTreeMap::new();
    for (k, v) in ins.iter().take_while(|(k, _)| k != "FROM") {
        if k == "ARG" {
            if let Some((n, d)) = v.split_once('=') {
                args.insert(n.to_string(), d.to_string());
            }
        }
    }
    let subst = |s: &str| {
        let mut s = s.to_string();
        for (n, d) in &args {
            s = s
                .replace(&format!("${{{n}}}"), d)
                .replace(&format!("${n}"), d);
        }
        s
    };
    let stages: Vec<usize> = ins
        .iter()
        .enumerate()
        .filter(|(_, (k, _))| k == "FROM")
        .map(|(i, _)| i)
        .collect();
    ensure(stages.len() >= 2, || {
        format!("{DOCKERFILE}: not a multi-stage build")
    })?;
    let build_image = subst(&ins[stages[0]].1);
    let build_image = build_image.split_whitespace().next().unwrap_or_default();
    ensure(build_image.starts_with("rust:"), || {
        format!("{DOCKERFILE}: builds on `{build_image}`, not the Rust image")
    })?;
    let last = *stages.last().unwrap();
    let runtime_image = subst(ins[last].1.split_whitespace().next().unwrap_or_default());
    ensure(runtime_image == "debian:bookworm-slim", || {
        format!("{DOCKERFILE}: runs on `{runtime_image}`, not debian:bookworm-slim")
    })?;
    let build = &ins[stages[0]..last];
    let runtime = &ins[last..];

    ensure(
        build.iter().any(|(k, v)| {
            k == "RUN"
                && v.contains("cargo build")
                && v.contains("--release")
                && v.contains("--locked")
        }),
        || format!("{DOCKERFILE}: no `cargo build --release --locked`"),
    )?;
    let entry = runtime
        .iter()
        .rev()
        .find(|(k, _)| k == "ENTRYPOINT")
        .map(|(_, v)| v.as_str());
    let entry: Option<Vec<String>> = entry.and_then(|e| serde_json::from_str(e).ok());
    ensure(entry == Some(vec!["goalpost".to_string()]), || {
        format!("{DOCKERFILE}: ENTRYPOINT is {entry:?}, not [\"goalpost\"]")
    })?;
    let exposed: Vec<String> = runtime
        .iter()
        .filter(|(k, _)| k == "EXPOSE")
        .flat_map(|(_, v)| {
            v.split_whitespace()
                .map(|p| p.split('/').next().unwrap_or_default().to_string())
        })
        .collect();
    ensure(exposed.contains(&DEFAULT_PORT.to_string()), || {
        format!("{DOCKERFILE}: EXPOSE {exposed:?} lacks {DEFAULT_PORT}")
    })?;
    let user = runtime
        .iter()
        .rev()
        .find(|(k, _)| k == "USER")
        .map(|(_, v)| v.clone());
    let user_name = user
        .as_deref()
        .map(|u| u.split(':').next().unwrap_or_default());
    ensure(user_name.is_some_and(|u| u != "root" && u != "0"), || {
        format!("{DOCKERFILE}: the runtime stage runs as {user:?}, not a non-root user")
    })?;
    ensure(
        runtime.iter().any(|(k, v)| {
            k == "COPY" && v.starts_with("--from=") && v.ends_with("/usr/local/bin/goalpost")
        }),
        || format!("{DOCKERFILE}: the binary is not copied to /usr/local/bin/goalpost"),
    )?;
    ensure(
        runtime
            .iter()
            .any(|(k, v)| k == "RUN" && v.contains("ca-certificates") && v.contains("libssl3")),
        || format!("{DOCKERFILE}: the runtime stage lacks ca-certificates or libssl3"),
    )?;

    // The build stage copies every file the build reads.
    let sources: Vec<String> = build
        .iter()
        .filter(|(k, v)| k == "COPY" && !v.starts_with("--from"))
        .flat_map(|(_, v)| {
            let words: Vec<&str> = v
                .split_whitespace()
                .filter(|w| !w.starts_with("--"))
                .collect();
            words[..words.len().saturating_sub(1)]
                .iter()
                .map(|w| normalize("", w))
                .collect::<Vec<_>>()
        })
        .collect::<R<_>>()?;
    let copied = |path: &str| {
        sources
            .iter()
            .any(|s| s.is_empty() || s == path || path.starts_with(&format!("{s}/")))
    };
    let manifest: toml::Table =
        toml::from_str(&repo.text("Cargo.toml")?).map_err(|e| format!("Cargo.toml: {e}"))?;
    let mut needed = vec!["Cargo.toml".to_string(), "Cargo.lock".to_string()];
    if repo.exists("build.rs") {
        needed.push("build.rs".into());
    }
    if let Some(p) = manifest
        .get("lib")
        .and_then(|l| l.get("path"))
        .and_then(|p| p.as_str())
    {
        needed.push(normalize("", p)?);
    }
    for (section, dir) in [("bin", "src/bin"), ("bench", "benches")] {
        for t in manifest
            .get(section)
            .and_then(|b| b.as_array())
            .into_iter()
            .flatten()
        {
            let name = t.get("name").and_then(|n| n.as_str()).unwrap_or_default();
            let path = match t.get("path").and_then(|p| p.as_str()) {
                Some(p) => normalize("", p)?,
                None => format!("{dir}/{name}.rs"),
            };
            needed.push(path);
        }
    }
    needed.extend(embedded_files(repo)?);
    let build_rs = repo.text("build.rs").unwrap_or_default();
    if build_rs.contains("\"proto\"") {
        needed.push("proto".into());
    }
    let missing: Vec<&String> = needed.iter().filter(|p| !copied(p)).collect();
    ensure(missing.is_empty(), || {
        format!("{DOCKERFILE}: the build stage does not COPY {missing:?} (copies {sources:?})")
    })
}

// ---------------------------------------------------------------------------------------------
// Tests.

fn ok(r: R<()>) {
    if let Err(e) = r {
        panic!("{e}");
    }
}

#[test]
fn compose_runs_goalpost_with_its_config_and_goals() {
    ok(check_compose(&Repo::default()));
}

#[test]
fn prometheus_scrapes_goalpost_metrics_with_the_token() {
    ok(check_prometheus(&Repo::default()));
}

#[test]
fn compose_provisions_grafana() {
    ok(check_compose_grafana(&Repo::default()));
}

#[test]
fn kubernetes_manifests_match_the_code() {
    ok(check_k8s(&Repo::default()));
}

#[test]
fn grafana_dashboard_uses_exactly_the_exported_metrics() {
    ok(check_dashboard(&Repo::default()));
}

#[test]
fn dockerfile_builds_and_runs_goalpost() {
    ok(check_dockerfile(&Repo::default()));
}

/// Each check fails on a copy of its file with one mistake in it (`from` replaced by `to`).
#[test]
fn checks_catch_mistakes() {
    type Check = fn(&Repo) -> R<()>;
    let sts = &format!("{K8S}/statefulset.yaml");
    let pdb = &format!("{K8S}/pdb.yaml");
    let cm = &format!("{K8S}/configmap.yaml");
    let svc = &format!("{K8S}/service.yaml");
    let kust = &format!("{K8S}/kustomization.yaml");
    let gp = "deploy/goalpost/goalpost.toml";
    #[rustfmt::skip]
    let cases: &[(&str, Check, &str, &str, &str)] = &[
        ("compose: published port", check_compose, COMPOSE, ":8080\"", ":8081\""),
        ("compose: token not in env", check_compose, COMPOSE, "GOALPOST_HTTP_TOKEN: ", "GOALPOST_HTTP_TOKN: "),
        ("compose: config breaks a rule", check_compose, gp, "token_env = ", "# token_env = "),
        ("compose: unknown goal", check_compose, gp, "progress_gauges = [\"", "progress_gauges = [\"no-"),
        ("compose: goal file not mounted", check_compose, COMPOSE, "/etc/goalpost/goals.toml:ro", "/etc/goals.toml:ro"),
        ("prometheus: metrics path", check_prometheus, PROMETHEUS, "metrics_path: /metrics", "metrics_path: /m"),
        ("prometheus: port", check_prometheus, PROMETHEUS, "goalpost:8080", "goalpost:9090"),
        ("prometheus: token", check_prometheus, COMPOSE, "content: ${GOALPOST_HTTP_TOKEN:-change-me}", "content: x"),
        ("grafana: provider path", check_compose_grafana, COMPOSE, "path: /etc/grafana/dashboards", "path: /etc"),
        ("k8s: readiness path", check_k8s, sts, "path: /readyz", "path: /ready"),
        ("k8s: liveness path", check_k8s, sts, "path: /healthz", "path: /health"),
        ("k8s: replicas", check_k8s, sts, "replicas: 3", "replicas: 1"),
        ("k8s: container port", check_k8s, sts, "containerPort: 8080", "containerPort: 8081"),
        ("k8s: instance id", check_k8s, sts, "fieldPath: metadata.name", "fieldPath: metadata.uid"),
        ("k8s: serviceName", check_k8s, sts, "serviceName: goalpost-headless", "serviceName: goalpost"),
        ("k8s: secret", check_k8s, sts, "name: goalpost-http", "name: goalpost-token"),
        ("k8s: pdb selector", check_k8s, pdb, "component: stream-processor", "component: other"),
        ("k8s: configmap goals", check_k8s, cm, "target = 250000", "target = 250001"),
        ("k8s: configmap config", check_k8s, cm, "application_id = ", "application_idd = "),
        ("k8s: kustomization", check_k8s, kust, "  - pdb.yaml\n", ""),
        ("k8s: example secret applied", check_k8s, kust, "  - pdb.yaml\n", "  - pdb.yaml\n  - secret.example.yaml\n"),
        ("k8s: scrape annotation", check_k8s, svc, "prometheus.io/path: /metrics", "prometheus.io/path: /m"),
        ("k8s: headless", check_k8s, svc, "clusterIP: None", "clusterIP: 10.0.0.1"),
        ("k8s: not YAML", check_k8s, pdb, "spec:", "spec: ["),
        ("dashboard: unknown metric", check_dashboard, DASHBOARD, "goalpost_ready", "goalpost_readyy"),
        ("dashboard: unused metric", check_dashboard, DASHBOARD, "goalpost_state_bytes", "goalpost_state_windows"),
        ("dashboard: rate of a gauge", check_dashboard, DASHBOARD, "goalpost_restore_records_total", "goalpost_restore_remaining_records"),
        ("dashboard: wrong label", check_dashboard, DASHBOARD, "sum by (reason)", "sum by (reasons)"),
        ("dashboard: wrong legend", check_dashboard, DASHBOARD, "{{topic}}/{{partition}}", "{{topic}}/{{part}}"),
        ("dashboard: data source", check_dashboard, DASHBOARD, "\"uid\": \"${datasource}\"", "\"uid\": \"prom\""),
        ("dashboard: not JSON", check_dashboard, DASHBOARD, "{", "["),
        ("dockerfile: port", check_dockerfile, DOCKERFILE, "EXPOSE 8080", "EXPOSE 8081"),
        ("dockerfile: root", check_dockerfile, DOCKERFILE, "USER 10001:10001", "USER root"),
        ("dockerfile: entrypoint", check_dockerfile, DOCKERFILE, "ENTRYPOINT [\"goalpost\"]", "ENTRYPOINT [\"sh\"]"),
        ("dockerfile: unlocked build", check_dockerfile, DOCKERFILE, " --locked", ""),
        ("dockerfile: embedded file not copied", check_dockerfile, DOCKERFILE, "COPY docs/ docs/\n", ""),
    ];
    let repo = Repo::default();
    for &(what, check, file, from, to) in cases {
        let broken = repo.with_edit(file, |t| t.replace(from, to));
        match check(&broken) {
            Ok(()) => panic!("{what}: the check passed on a broken {file}"),
            Err(e) => eprintln!("{what}: rejected: {e}"),
        }
    }
}
