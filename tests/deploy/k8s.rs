//! Kubernetes: the manifests in `deploy/k8s` against the code and the example goals.

use std::collections::{BTreeMap, BTreeSet};

use goalpost::goals::GoalSet;
use goalpost::serve::{paths, DEFAULT_PORT};
use serde_yaml::Value;

use crate::repo::*;
use crate::support::goals::EXAMPLE_GOALS;
use crate::K8S;

pub(crate) struct K8s {
    /// (file, manifest) for every document of every file but the kustomization.
    objects: Vec<(String, Value)>,
}

impl K8s {
    pub(crate) fn load(repo: &Repo) -> R<K8s> {
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

    pub(crate) fn find(&self, kind: &str, name: &str) -> R<&Value> {
        self.objects
            .iter()
            .map(|(_, o)| o)
            .find(|o| {
                o.get("kind").and_then(Value::as_str) == Some(kind)
                    && at(o, "metadata.name").ok().and_then(Value::as_str) == Some(name)
            })
            .ok_or_else(|| format!("{K8S}: no {kind} `{name}`"))
    }

    pub(crate) fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.objects
            .iter()
            .map(|(_, o)| o)
            .filter(|o| o.get("kind").and_then(Value::as_str) == Some(kind))
            .collect()
    }
}

/// A selector matches the pods: every key=value of it is among the pod labels.
pub(crate) fn selects(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
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
pub(crate) fn probe(container: &Value, which: &str) -> R<(String, u16)> {
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

pub(crate) fn check_k8s(repo: &Repo) -> R<()> {
    in_k8s(check_k8s_manifests(repo))
}

/// A check's error, prefixed with the manifests' folder unless it names its file already.
pub(crate) fn in_k8s(result: R<()>) -> R<()> {
    result.map_err(|e| {
        if e.starts_with("deploy/") {
            e
        } else {
            format!("{K8S}: {e}")
        }
    })
}

pub(crate) fn check_k8s_manifests(repo: &Repo) -> R<()> {
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
    check_hardened(pod, container)?;

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

    // A PDB selects exactly the StatefulSet's pods.
    check_pdb(&k, "StatefulSet `goalpost`", &sts_selector, &pod_labels)?;
    Ok(())
}

/// Exactly one PodDisruptionBudget selects a workload's pods, with the workload's own selector,
/// and it bounds the disruption.
pub(crate) fn check_pdb(
    k: &K8s,
    what: &str,
    selector: &BTreeMap<String, String>,
    pod_labels: &BTreeMap<String, String>,
) -> R<()> {
    let pdbs: Vec<&Value> = k
        .of_kind("PodDisruptionBudget")
        .into_iter()
        .filter(|p| {
            string_map(p, "spec.selector.matchLabels").is_ok_and(|s| selects(&s, pod_labels))
        })
        .collect();
    ensure(pdbs.len() == 1, || {
        format!(
            "{} PodDisruptionBudgets select the pods of {what}, expected 1",
            pdbs.len()
        )
    })?;
    let pdb_selector = string_map(pdbs[0], "spec.selector.matchLabels")?;
    ensure(pdb_selector == *selector, || {
        format!("PDB selector {pdb_selector:?} != the selector of {what} {selector:?}")
    })?;
    ensure(
        pdbs[0]
            .get("spec")
            .is_some_and(|s| s.get("maxUnavailable").is_some() || s.get("minAvailable").is_some()),
        || format!("the PDB of {what} sets neither maxUnavailable nor minAvailable"),
    )
}

/// A pod's container runs as non-root with a read-only root file system.
pub(crate) fn check_hardened(pod: &Value, container: &Value) -> R<()> {
    let name = text_at(container, "name").unwrap_or_default();
    let csc = container
        .get("securityContext")
        .ok_or_else(|| format!("the container `{name}` has no securityContext"))?;
    ensure(
        csc.get("readOnlyRootFilesystem").and_then(Value::as_bool) == Some(true),
        || format!("the container `{name}`'s root file system is not read-only"),
    )?;
    let non_root = [csc, pod.get("securityContext").unwrap_or(&Value::Null)]
        .iter()
        .any(|s| s.get("runAsNonRoot").and_then(Value::as_bool) == Some(true));
    ensure(non_root, || format!("runAsNonRoot is not set for `{name}`"))
}
