//! `goalpost notify` and Alertmanager: the compose services, the Prometheus job, the Kubernetes
//! manifests and the Alertmanager config, against the code and against each other.

use std::net::SocketAddr;
use std::path::Path;

use goalpost::model::Duration;
use goalpost::notify::NotifyConfig;
use goalpost::runtime::kafka::RunConfig;
use goalpost::serve::paths;
use serde_yaml::Value;

use crate::compose::{compose_container_ports, compose_mount_source, compose_service};
use crate::k8s::{check_hardened, check_pdb, in_k8s, probe, selects, K8s};
use crate::repo::*;
use crate::{ALERTMANAGER, COMPOSE, PROMETHEUS};

/// The default of `[notify.alertmanager] resend_interval`: how often notify re-sends the alerts
/// it holds active.
const DEFAULT_RESEND_INTERVAL: &str = "1m";
/// Labels every alert of notify carries, which the route groups by.
const GROUP_BY: [&str; 2] = ["alertname", "goal"];
/// The Alertmanager release deployed (the one the integration tests build).
const ALERTMANAGER_IMAGE: &str = "prom/alertmanager:v0.28.1";
/// Alertmanager's port unless `--web.listen-address` says otherwise.
const ALERTMANAGER_PORT: u16 = 9093;

/// Values of a list of scalars at `key` (a command, args).
fn strings(v: &Value, key: &str) -> R<Vec<String>> {
    Ok(seq(v, key)?.iter().filter_map(scalar).collect())
}

/// The value after `--config` in a goalpost command line.
fn config_arg(args: &[String]) -> R<&String> {
    args.iter()
        .position(|a| a == "--config")
        .and_then(|i| args.get(i + 1))
        .ok_or_else(|| format!("{args:?} has no --config FILE"))
}

/// The value of `--NAME=VALUE` in an Alertmanager command line.
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .find_map(|a| a.strip_prefix(&format!("--{name}=")))
}

/// notify's listen port: not loopback, and notify's default port (the one the image exposes).
fn notify_port(what: &str, cfg: &RunConfig) -> R<u16> {
    let listen = cfg.notify.listen.to_string();
    let addr: SocketAddr = listen
        .parse()
        .map_err(|e| format!("{what}: notify.listen `{listen}`: {e}"))?;
    ensure(!addr.ip().is_loopback(), || {
        format!("{what}: notify.listen {addr} is loopback: not reachable by Prometheus or probes")
    })?;
    let default = port_of(&NotifyConfig::default().listen.to_string())?;
    ensure(addr.port() == default, || {
        format!(
            "{what}: notify.listen port {} is not notify's default {default}",
            addr.port()
        )
    })?;
    Ok(addr.port())
}

/// Host and port of every `[notify.alertmanager] urls` entry.
fn alertmanager_urls(what: &str, cfg: &RunConfig) -> R<Vec<(String, u16)>> {
    let am = cfg
        .notify
        .alertmanager
        .as_ref()
        .ok_or_else(|| format!("{what}: no [notify.alertmanager]"))?;
    ensure(!am.urls.is_empty(), || {
        format!("{what}: notify.alertmanager.urls is empty")
    })?;
    am.urls
        .iter()
        .map(|u| {
            let rest = u
                .strip_prefix("http://")
                .ok_or_else(|| format!("{what}: Alertmanager URL `{u}` is not http://"))?;
            let host_port = rest.split('/').next().unwrap_or_default();
            let (host, _) = host_port
                .split_once(':')
                .ok_or_else(|| format!("{what}: Alertmanager URL `{u}` names no port"))?;
            Ok((host.to_string(), port_of(host_port)?))
        })
        .collect()
}

/// `[notify.alertmanager] resend_interval` as written in a config, else its default.
fn resend_interval(what: &str, config_text: &str) -> R<Duration> {
    let table: toml::Table = toml::from_str(config_text).map_err(|e| format!("{what}: {e}"))?;
    let text = table
        .get("notify")
        .and_then(|n| n.get("alertmanager"))
        .and_then(|a| a.get("resend_interval"))
        .and_then(|r| r.as_str())
        .unwrap_or(DEFAULT_RESEND_INTERVAL);
    text.parse()
        .map_err(|e| format!("{what}: resend_interval `{text}`: {e}"))
}

/// An Alertmanager config for notify's alerts: alerts outlive two missed re-sends, the route
/// groups by alert name and goal, and its receiver exists.
fn check_alertmanager_config(what: &str, text: &str, resend: Duration) -> R<()> {
    let am = parse_yaml(text).map_err(|e| format!("{what}: {e}"))?;
    let timeout = at(&am, "global.resolve_timeout")
        .ok()
        .and_then(scalar)
        .unwrap_or_else(|| "5m".into());
    let timeout: Duration = timeout
        .parse()
        .map_err(|e| format!("{what}: resolve_timeout `{timeout}`: {e}"))?;
    ensure(timeout.as_nanos() >= 2 * resend.as_nanos(), || {
        format!("{what}: resolve_timeout {timeout} is not at least twice notify's resend_interval {resend}: an alert would resolve between re-sends")
    })?;
    let group_by = strings(&am, "route.group_by").map_err(|e| format!("{what}: {e}"))?;
    for l in GROUP_BY {
        ensure(group_by.iter().any(|g| g == l), || {
            format!("{what}: route.group_by {group_by:?} lacks `{l}`")
        })?;
    }
    let receiver = text_at(&am, "route.receiver").map_err(|e| format!("{what}: {e}"))?;
    let names: Vec<String> = seq(&am, "receivers")
        .map_err(|e| format!("{what}: {e}"))?
        .iter()
        .filter_map(|r| r.get("name").and_then(scalar))
        .collect();
    ensure(names.contains(&receiver), || {
        format!("{what}: route.receiver `{receiver}` is not a receiver ({names:?})")
    })
}

/// Alertmanager's port as its command line sets it.
fn alertmanager_port(what: &str, args: &[String]) -> R<u16> {
    match flag(args, "web.listen-address") {
        Some(a) => port_of(a).map_err(|e| format!("{what}: {e}")),
        None => Ok(ALERTMANAGER_PORT),
    }
}

/// The names a compose service depends on (list or mapping syntax).
fn compose_depends(service: &Value) -> Vec<String> {
    match service.get("depends_on") {
        Some(Value::Sequence(s)) => s.iter().filter_map(scalar).collect(),
        Some(Value::Mapping(m)) => m.keys().filter_map(scalar).collect(),
        _ => Vec::new(),
    }
}

/// compose: notify runs the goalpost image with goalpost's config, its metrics port is reachable,
/// and every Alertmanager it posts to is a service of the file with the config of `deploy/`.
pub(crate) fn check_compose_notify(repo: &Repo) -> R<()> {
    let compose = repo.yaml(COMPOSE)?;
    let gp = compose_service(&compose, "goalpost")?;
    let notify = compose_service(&compose, "notify")?;
    ensure(notify.get("image").is_some(), || {
        format!("{COMPOSE}: notify names no image")
    })?;
    for key in ["image", "build"] {
        ensure(notify.get(key) == gp.get(key), || {
            format!("{COMPOSE}: notify's `{key}` is not goalpost's")
        })?;
    }
    let command = strings(notify, "command")?;
    ensure(
        command.first().map(String::as_str) == Some("notify"),
        || format!("{COMPOSE}: notify command {command:?} is not `notify ...`"),
    )?;
    let config_path = config_arg(&command).map_err(|e| format!("{COMPOSE}: notify: {e}"))?;
    let config_src = compose_mount_source(notify, config_path)?;
    let gp_command = strings(gp, "command")?;
    let gp_src = compose_mount_source(gp, config_arg(&gp_command)?)?;
    ensure(config_src == gp_src, || {
        format!("{COMPOSE}: notify reads {config_src}, goalpost {gp_src}: not the same config")
    })?;
    let config_text = repo.text(&config_src)?;
    let (cfg, _) = check_run_config(&config_src, &config_text, config_path, |goals| {
        let target = goals.to_str().ok_or("goal path is not UTF-8")?;
        repo.text(&compose_mount_source(notify, target)?)
    })?;

    let port = notify_port(&config_src, &cfg)?;
    let mut reachable = compose_container_ports(notify)?;
    if let Some(expose) = notify.get("expose").and_then(Value::as_sequence) {
        reachable.extend(
            expose
                .iter()
                .filter_map(scalar)
                .filter_map(|p| p.split('/').next()?.parse::<u16>().ok()),
        );
    }
    ensure(reachable.contains(&port), || {
        format!("{COMPOSE}: notify neither exposes nor publishes {port} ({reachable:?})")
    })?;

    let depends = compose_depends(notify);
    let resend = resend_interval(&config_src, &config_text)?;
    let mut needed = vec!["kafka".to_string()];
    for (host, am_port) in alertmanager_urls(&config_src, &cfg)? {
        check_compose_alertmanager(repo, &compose, &host, am_port, resend)?;
        needed.push(host);
    }
    for n in needed {
        ensure(depends.contains(&n), || {
            format!("{COMPOSE}: notify does not depend on {n}")
        })?;
    }
    check_prometheus_notify(repo, "notify", port)
}

/// The compose service an Alertmanager URL names: the image, the port, the config of `deploy/`.
fn check_compose_alertmanager(
    repo: &Repo,
    compose: &Value,
    host: &str,
    port: u16,
    resend: Duration,
) -> R<()> {
    let am = compose_service(compose, host)?;
    let image = text_at(am, "image").unwrap_or_default();
    ensure(image == ALERTMANAGER_IMAGE, || {
        format!("{COMPOSE}: {host} runs `{image}`, not {ALERTMANAGER_IMAGE}")
    })?;
    let args = strings(am, "command")?;
    let listens = alertmanager_port(COMPOSE, &args)?;
    ensure(listens == port, || {
        format!("{COMPOSE}: notify posts to {host}:{port}, Alertmanager listens on {listens}")
    })?;
    let file = flag(&args, "config.file")
        .ok_or_else(|| format!("{COMPOSE}: {host} has no --config.file"))?;
    let src = compose_mount_source(am, file)?;
    ensure(src == ALERTMANAGER, || {
        format!("{COMPOSE}: {host} reads {src}, not {ALERTMANAGER}")
    })?;
    check_alertmanager_config(ALERTMANAGER, &repo.text(ALERTMANAGER)?, resend)
}

/// Prometheus scrapes notify's metrics on its listen port.
fn check_prometheus_notify(repo: &Repo, host: &str, port: u16) -> R<()> {
    let prom = repo.yaml(PROMETHEUS)?;
    let target = format!("{host}:{port}");
    let job = seq(&prom, "scrape_configs")?
        .iter()
        .find(|job| {
            job.get("static_configs")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
                .filter_map(|c| c.get("targets").and_then(Value::as_sequence))
                .flatten()
                .any(|t| scalar(t).as_deref() == Some(target.as_str()))
        })
        .ok_or_else(|| format!("{PROMETHEUS}: no job scrapes {target}"))?;
    let path = job
        .get("metrics_path")
        .and_then(scalar)
        .unwrap_or_else(|| "/metrics".into());
    ensure(path == paths::METRICS, || {
        format!(
            "{PROMETHEUS}: the {target} job's metrics_path `{path}` != {}",
            paths::METRICS
        )
    })
}

/// A container of a pod spec, by name.
fn container<'a>(pod: &'a Value, name: &str) -> R<&'a Value> {
    seq(pod, "containers")?
        .iter()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
        .ok_or_else(|| format!("no container `{name}`"))
}

/// The text of the ConfigMap key a container sees at `file`, through its volume mounts.
fn mounted_configmap_key<'a>(
    k: &'a K8s,
    pod: &Value,
    ctr: &Value,
    file: &str,
) -> R<(String, &'a str)> {
    let mount = seq(ctr, "volumeMounts")?
        .iter()
        .find(|m| text_at(m, "mountPath").ok().as_deref() == Some(parent(file)))
        .ok_or_else(|| format!("nothing is mounted at {}", parent(file)))?;
    let volume_name = text_at(mount, "name")?;
    let volume = seq(pod, "volumes")?
        .iter()
        .find(|v| v.get("name").and_then(scalar).as_deref() == Some(volume_name.as_str()))
        .ok_or_else(|| format!("no volume `{volume_name}`"))?;
    let cm_name = text_at(volume, "configMap.name")?;
    let key = file.rsplit('/').next().unwrap_or_default();
    let text = k
        .find("ConfigMap", &cm_name)?
        .get("data")
        .and_then(|d| d.get(key))
        .and_then(Value::as_str)
        .ok_or_else(|| format!("ConfigMap `{cm_name}` has no key `{key}`"))?;
    Ok((cm_name, text))
}

/// Kubernetes: the notify Deployment, its PDB and scrape annotations, and the Alertmanager
/// Services, workloads and config it posts to.
pub(crate) fn check_k8s_notify(repo: &Repo) -> R<()> {
    in_k8s(k8s_notify(repo))
}

fn k8s_notify(repo: &Repo) -> R<()> {
    let k = K8s::load(repo)?;
    let dep = k.find("Deployment", "goalpost-notify")?;
    let replicas = at(dep, "spec.replicas")?.as_u64().unwrap_or(0);
    ensure(replicas >= 2, || {
        format!("Deployment goalpost-notify replicas {replicas} < 2")
    })?;
    let pod_labels = string_map(dep, "spec.template.metadata.labels")?;
    let selector = string_map(dep, "spec.selector.matchLabels")?;
    ensure(selects(&selector, &pod_labels), || {
        format!("goalpost-notify selector {selector:?} does not match its pods {pod_labels:?}")
    })?;
    let pod = at(dep, "spec.template.spec")?;
    let ctr = container(pod, "notify").map_err(|e| format!("goalpost-notify: {e}"))?;
    let args = strings(ctr, "args")?;
    ensure(args.first().map(String::as_str) == Some("notify"), || {
        format!("goalpost-notify args {args:?} are not `notify ...`")
    })?;
    let config_path = config_arg(&args)?;
    let (cm_name, text) = mounted_configmap_key(&k, pod, ctr, config_path)?;
    let sts = k.find("StatefulSet", "goalpost")?;
    let shared = seq(sts, "spec.template.spec.volumes")?
        .iter()
        .any(|v| text_at(v, "configMap.name").ok().as_deref() == Some(cm_name.as_str()));
    ensure(shared, || {
        format!("goalpost-notify reads ConfigMap `{cm_name}`, which the StatefulSet does not")
    })?;
    let what = format!("ConfigMap {cm_name}");
    let cfg =
        RunConfig::from_toml(text, Path::new(config_path)).map_err(|e| format!("{what}: {e}"))?;
    let port = notify_port(&what, &cfg)?;

    check_notify_endpoints(dep, ctr, port)?;
    check_hardened(pod, ctr)?;
    check_pdb(&k, "Deployment `goalpost-notify`", &selector, &pod_labels)?;
    for svc in k.of_kind("Service") {
        let sel = string_map(svc, "spec.selector").unwrap_or_default();
        ensure(!selects(&sel, &pod_labels), || {
            format!(
                "Service `{}` selects the notify pods, which serve no API",
                text_at(svc, "metadata.name").unwrap_or_default()
            )
        })?;
    }

    let resend = resend_interval(&what, text)?;
    for (host, am_port) in alertmanager_urls(&what, &cfg)? {
        check_k8s_alertmanager(repo, &k, &host, am_port, resend)?;
    }
    Ok(())
}

/// The notify container serves on the listen port: container port, liveness probe, scrape
/// annotations.
fn check_notify_endpoints(dep: &Value, ctr: &Value, port: u16) -> R<()> {
    let ports: Vec<u64> = seq(ctr, "ports")?
        .iter()
        .filter_map(|p| p.get("containerPort").and_then(Value::as_u64))
        .collect();
    ensure(ports.contains(&u64::from(port)), || {
        format!("goalpost-notify container ports {ports:?} lack {port}")
    })?;
    let (path, probe_port) = probe(ctr, "livenessProbe")?;
    ensure(path == paths::HEALTHZ && probe_port == port, || {
        format!(
            "goalpost-notify livenessProbe {path} port {probe_port}, expected {} port {port}",
            paths::HEALTHZ
        )
    })?;
    let ann = string_map(dep, "spec.template.metadata.annotations")?;
    ensure(
        ann.get("prometheus.io/port") == Some(&port.to_string())
            && ann.get("prometheus.io/path").map(String::as_str) == Some(paths::METRICS),
        || {
            format!(
                "goalpost-notify pod scrape annotations {ann:?} are not port {port}, path {}",
                paths::METRICS
            )
        },
    )
}

/// The Service an Alertmanager URL names, the Alertmanager pods it selects, their port and
/// their config (the text of `deploy/alertmanager/alertmanager.yml`).
fn check_k8s_alertmanager(repo: &Repo, k: &K8s, host: &str, port: u16, resend: Duration) -> R<()> {
    let svc = k.find("Service", host)?;
    let svc_port = seq(svc, "spec.ports")?
        .iter()
        .find(|p| p.get("port").and_then(Value::as_u64) == Some(u64::from(port)))
        .ok_or_else(|| format!("Service `{host}` has no port {port}"))?;
    let sel = string_map(svc, "spec.selector")?;
    let pod = ["StatefulSet", "Deployment"]
        .iter()
        .flat_map(|kind| k.of_kind(kind))
        .find(|w| string_map(w, "spec.template.metadata.labels").is_ok_and(|l| selects(&sel, &l)))
        .ok_or_else(|| format!("Service `{host}` selects no workload's pods"))?;
    let pod = at(pod, "spec.template.spec")?;
    let ctr = seq(pod, "containers")?
        .iter()
        .find(|c| text_at(c, "image").ok().as_deref() == Some(ALERTMANAGER_IMAGE))
        .ok_or_else(|| format!("the pods of Service `{host}` run no {ALERTMANAGER_IMAGE}"))?;
    let args = strings(ctr, "args")?;
    let listens = alertmanager_port(host, &args)?;
    let target = svc_port.get("targetPort").unwrap_or(&Value::Null);
    let target = match target.as_u64() {
        Some(p) => p,
        None => seq(ctr, "ports")?
            .iter()
            .find(|p| p.get("name").and_then(scalar) == scalar(target))
            .and_then(|p| p.get("containerPort").and_then(Value::as_u64))
            .ok_or_else(|| format!("Service `{host}` targetPort names no container port"))?,
    };
    ensure(target == u64::from(listens), || {
        format!("Service `{host}` sends port {port} to {target}, Alertmanager listens on {listens}")
    })?;
    let file = flag(&args, "config.file").ok_or_else(|| format!("{host}: no --config.file"))?;
    let (cm_name, text) = mounted_configmap_key(k, pod, ctr, file)?;
    ensure(text == repo.text(ALERTMANAGER)?, || {
        format!("ConfigMap `{cm_name}` {file} differs from {ALERTMANAGER}")
    })?;
    check_alertmanager_config(&format!("ConfigMap {cm_name}"), text, resend)
}
