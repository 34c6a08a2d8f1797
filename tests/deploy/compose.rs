//! Compose: the goalpost service, its config and goals, Prometheus scraping it, Grafana.

use std::collections::BTreeMap;

use goalpost::serve::{paths, DEFAULT_PORT};
use serde_yaml::Value;

use crate::repo::*;
use crate::{COMPOSE, DASHBOARD, DOCKERFILE, PROMETHEUS};

pub(crate) fn compose_service<'a>(compose: &'a Value, name: &str) -> R<&'a Value> {
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
pub(crate) fn compose_mounts(service: &Value) -> R<Vec<(String, String)>> {
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
pub(crate) fn compose_mount_source(service: &Value, target: &str) -> R<String> {
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
pub(crate) fn compose_container_ports(service: &Value) -> R<Vec<u16>> {
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
pub(crate) fn check_compose(repo: &Repo) -> R<()> {
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
pub(crate) fn check_prometheus(repo: &Repo) -> R<()> {
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
pub(crate) fn check_compose_grafana(repo: &Repo) -> R<()> {
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
