//! The deployment files in `deploy/` checked against the code, without Docker or Kubernetes:
//! every file is parsed, and the ports, paths, metric names, config files and goal files they
//! name are compared with what goalpost serves and accepts (`goalpost::serve`, `RunConfig`,
//! `GoalSet`).
//!
//! Every check reads the files through [`Repo`], which can replace a file's text in memory;
//! `checks_catch_mistakes` breaks a copy of each file that way and expects the check to fail.
//! The checks live by subject: `compose` (with Prometheus and Grafana), `k8s`, `notify` (notify
//! and Alertmanager in compose and Kubernetes), `dashboard`, `dockerfile`; `repo` holds the
//! reading of files and YAML.

mod compose;
mod dashboard;
mod dockerfile;
mod k8s;
mod notify;
mod repo;
#[allow(dead_code)]
#[path = "../support/mod.rs"]
mod support;

use compose::{check_compose, check_compose_grafana, check_prometheus};
use dashboard::check_dashboard;
use dockerfile::check_dockerfile;
use k8s::check_k8s;
use notify::{check_compose_notify, check_k8s_notify};
use repo::{Repo, R};

const COMPOSE: &str = "deploy/compose.yaml";
const PROMETHEUS: &str = "deploy/prometheus/prometheus.yml";
const DOCKERFILE: &str = "deploy/Dockerfile";
const DASHBOARD: &str = "deploy/grafana/goalpost-dashboard.json";
const K8S: &str = "deploy/k8s";
const ALERTMANAGER: &str = "deploy/alertmanager/alertmanager.yml";

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
fn compose_runs_notify_and_alertmanager() {
    ok(check_compose_notify(&Repo::default()));
}

#[test]
fn kubernetes_runs_notify_and_alertmanager() {
    ok(check_k8s_notify(&Repo::default()));
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
    let notify = &format!("{K8S}/notify.yaml");
    let am = &format!("{K8S}/alertmanager.yaml");
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
        ("notify: command", check_compose_notify, COMPOSE, "[\"notify\", \"--config\"", "[\"run\", \"--config\""),
        ("notify: other config", check_compose_notify, COMPOSE, "\"notify\", \"--config\", \"/etc/goalpost/goalpost.toml\"", "\"notify\", \"--config\", \"/etc/notify.toml\""),
        ("notify: other image", check_compose_notify, COMPOSE, "    image: goalpost:local\n    command: [\"notify\"", "    image: goalpost:notify\n    command: [\"notify\""),
        ("notify: port not exposed", check_compose_notify, COMPOSE, "      - \"9465\"", "      - \"9466\""),
        ("notify: loopback", check_compose_notify, gp, "listen = \"0.0.0.0:9465\"", "listen = \"127.0.0.1:9465\""),
        ("notify: not the default port", check_compose_notify, gp, "listen = \"0.0.0.0:9465\"", "listen = \"0.0.0.0:9466\""),
        ("notify: no alertmanager dependency", check_compose_notify, COMPOSE, "      alertmanager:\n        condition: service_started\n", ""),
        ("notify: alertmanager port", check_compose_notify, gp, "http://alertmanager:9093", "http://alertmanager:9094"),
        ("notify: alertmanager host", check_compose_notify, gp, "http://alertmanager:9093", "http://am:9093"),
        ("notify: alertmanager image", check_compose_notify, COMPOSE, "prom/alertmanager:v0.28.1", "prom/alertmanager:v0.32.0"),
        ("notify: alertmanager config not mounted", check_compose_notify, COMPOSE, "/etc/alertmanager/alertmanager.yml:ro", "/etc/alertmanager/am.yml:ro"),
        ("notify: resolve_timeout", check_compose_notify, ALERTMANAGER, "resolve_timeout: 5m", "resolve_timeout: 90s"),
        ("notify: resend_interval", check_compose_notify, gp, "urls = [\"http://alertmanager:9093\"]", "urls = [\"http://alertmanager:9093\"]\nresend_interval = \"3m\""),
        ("notify: group_by", check_compose_notify, ALERTMANAGER, "group_by: [alertname, goal]", "group_by: [alertname]"),
        ("notify: receiver", check_compose_notify, ALERTMANAGER, "receiver: \"null\"", "receiver: slack"),
        ("notify: scrape port", check_compose_notify, PROMETHEUS, "notify:9465", "notify:9464"),
        ("notify: scrape path", check_compose_notify, PROMETHEUS, "  - job_name: goalpost-notify\n    metrics_path: /metrics", "  - job_name: goalpost-notify\n    metrics_path: /m"),
        ("k8s notify: replicas", check_k8s_notify, notify, "replicas: 2", "replicas: 1"),
        ("k8s notify: args", check_k8s_notify, notify, "args: [\"notify\"", "args: [\"run\""),
        ("k8s notify: container port", check_k8s_notify, notify, "containerPort: 9465", "containerPort: 9464"),
        ("k8s notify: liveness path", check_k8s_notify, notify, "path: /healthz", "path: /health"),
        ("k8s notify: configmap", check_k8s_notify, notify, "configMap:\n            name: goalpost", "configMap:\n            name: notify"),
        ("k8s notify: scrape annotation", check_k8s_notify, notify, "prometheus.io/port: \"9465\"", "prometheus.io/port: \"9464\""),
        ("k8s notify: root", check_k8s_notify, notify, "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false"),
        ("k8s notify: pdb", check_k8s_notify, pdb, "component: notify", "component: other"),
        ("k8s notify: listen", check_k8s_notify, cm, "listen = \"0.0.0.0:9465\"", "listen = \"127.0.0.1:9465\""),
        ("k8s notify: alertmanager url", check_k8s_notify, cm, "http://alertmanager:9093", "http://alertmanager-0:9093"),
        ("k8s alertmanager: service port", check_k8s_notify, am, "port: 9093", "port: 9094"),
        ("k8s alertmanager: target port", check_k8s_notify, am, "targetPort: http", "targetPort: 9094"),
        ("k8s alertmanager: selector", check_k8s_notify, am, "    app.kubernetes.io/part-of: goalpost\nspec:\n  type: ClusterIP\n  selector:\n    app.kubernetes.io/name: alertmanager", "    app.kubernetes.io/part-of: goalpost\nspec:\n  type: ClusterIP\n  selector:\n    app.kubernetes.io/name: am"),
        ("k8s alertmanager: config differs", check_k8s_notify, am, "resolve_timeout: 5m", "resolve_timeout: 6m"),
        ("k8s alertmanager: config not mounted", check_k8s_notify, am, "mountPath: /etc/alertmanager", "mountPath: /etc/am"),
        ("dockerfile: notify port", check_dockerfile, DOCKERFILE, "EXPOSE 8080 9465", "EXPOSE 8080"),
        ("dashboard: unknown notify metric", check_dashboard, DASHBOARD, "goalpost_notify_delivery_lag_seconds", "goalpost_notify_delivery_lag"),
        ("dashboard: notify metric not shown", check_dashboard, DASHBOARD, "sum(goalpost_notify_active_alerts", "sum(goalpost_notify_events_total"),
        ("dashboard: rate of the active alerts", check_dashboard, DASHBOARD, "goalpost_notify_dead_letters_total", "goalpost_notify_active_alerts"),
        ("dashboard: notify label", check_dashboard, DASHBOARD, "max by (sink)", "max by (sinks)"),
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
