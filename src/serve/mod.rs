//! The HTTP side of a running instance: Prometheus metrics, the query API (interactive
//! queries), the live dashboard, health and readiness.
//!
//! The worker thread answers window queries between poll rounds (its state as of the last record
//! processed, which an abort may still roll back) and publishes attainment events once their
//! transaction has committed, through a [`Hub`]; the HTTP server (axum, on its own tokio runtime)
//! serves them. Nothing here touches Kafka or the engine's state directly.

pub mod guard;
pub mod http;
pub mod hub;
pub mod metrics;
pub mod peers;
#[cfg(test)]
mod tests;

pub use hub::{Hub, Query, QueryReceiver, WindowView};
pub use metrics::Telemetry;

/// The port of the default listen address.
pub const DEFAULT_PORT: u16 = 8080;
/// The default listen address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// HTTP paths served.
pub mod paths {
    /// Liveness: 200 while the process serves HTTP. Never needs the token.
    pub const HEALTHZ: &str = "/healthz";
    /// Readiness: 200 once every assigned partition's state is restored. Never needs the token.
    pub const READYZ: &str = "/readyz";
    /// Prometheus metrics (text exposition format).
    pub const METRICS: &str = "/metrics";
    /// Goal definitions.
    pub const GOALS: &str = "/v1/goals";
    /// One goal's open windows per group: `/v1/goals/{id}`.
    pub const GOAL: &str = "/v1/goals/{id}";
    /// Recent attainment events: `/v1/attainments?goal=&since=`.
    pub const ATTAINMENTS: &str = "/v1/attainments";
    /// Server-sent events: attainment events and progress updates as they are committed.
    pub const STREAM: &str = "/v1/stream";
    /// The dashboard.
    pub const DASHBOARD: &str = "/";
    /// The OpenAPI description of the API.
    pub const OPENAPI: &str = "/v1/openapi.yaml";
}

use std::net::SocketAddr;
use std::sync::Arc;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use rdkafka::config::ClientConfig;

use crate::goals::GoalSet;
use crate::runtime::kafka::config::HttpConfig;
use crate::runtime::kafka::{RunConfig, Serving};
pub use http::{ServeError, ServeOptions, Server, Token};

/// How often the recorder's upkeep drains histogram samples into their buckets, so that memory
/// stays bounded between scrapes (or without any).
const METRICS_UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Installs the process-wide Prometheus recorder (once per process) and returns its handle; a
/// thread of its own runs the recorder's upkeep every few seconds.
pub fn install_recorder() -> Result<PrometheusHandle, ServeError> {
    let handle = build_recorder()?;
    let upkeep = handle.clone();
    std::thread::Builder::new()
        .name("goalpost-metrics".into())
        .spawn(move || loop {
            std::thread::sleep(METRICS_UPKEEP_EVERY);
            upkeep.run_upkeep();
        })
        .map_err(ServeError::Runtime)?;
    Ok(handle)
}

fn build_recorder() -> Result<PrometheusHandle, ServeError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(metrics::TXN_DURATION.to_string()),
            &[
                0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
            ],
        )
        .and_then(|b| b.install_recorder())
        .map_err(|e| ServeError::Config(format!("cannot install the metrics recorder: {e}")))
}

/// The bearer token of `[http]`, read from its file or environment variable.
pub fn resolve_token(http: &HttpConfig) -> Result<Option<Token>, ServeError> {
    read_secret(
        ("http.token_file", http.token_file.as_deref()),
        ("http.token_env", http.token_env.as_deref()),
    )
}

/// The peer secret of `[http]` (`peer_token_file` or `peer_token_env`), if any.
pub fn resolve_peer_token(http: &HttpConfig) -> Result<Option<Token>, ServeError> {
    read_secret(
        ("http.peer_token_file", http.peer_token_file.as_deref()),
        ("http.peer_token_env", http.peer_token_env.as_deref()),
    )
}

/// A secret from a file or an environment variable, each named by its setting.
fn read_secret(
    (file_key, file): (&str, Option<&std::path::Path>),
    (env_key, env): (&str, Option<&str>),
) -> Result<Option<Token>, ServeError> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ServeError::Token(format!("{file_key} `{}`: {e}", path.display())))?;
        return Token::new(&text)
            .map(Some)
            .ok_or_else(|| ServeError::Token(format!("{file_key} `{}` is empty", path.display())));
    }
    if let Some(var) = env {
        let text = std::env::var(var).map_err(|_| {
            ServeError::Token(format!(
                "{env_key}: environment variable `{var}` is not set"
            ))
        })?;
        return Token::new(&text).map(Some).ok_or_else(|| {
            ServeError::Token(format!("{env_key}: environment variable `{var}` is empty"))
        });
    }
    Ok(None)
}

/// The URL other instances use to reach this one: `GOALPOST_ADVERTISED_URL`, else
/// `http.advertised_url`, else `http://` + the bound address (host name for `0.0.0.0`).
pub fn advertised_url(http: &HttpConfig, bound: SocketAddr) -> String {
    if let Ok(u) = std::env::var("GOALPOST_ADVERTISED_URL") {
        if !u.trim().is_empty() {
            return u.trim().to_string();
        }
    }
    if let Some(u) = &http.advertised_url {
        return u.clone();
    }
    if bound.ip().is_unspecified() {
        let host = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        format!("http://{host}:{}", bound.port())
    } else {
        format!("http://{bound}")
    }
}

/// Starts the HTTP server of `goalpost run` as `[http]` says, or nothing when it is disabled.
/// Returns the link for the worker and the running server.
pub fn start_for_run(
    cfg: &RunConfig,
    goals: Arc<GoalSet>,
    metrics_handle: Option<PrometheusHandle>,
) -> Result<Option<(Serving, Server)>, ServeError> {
    if !cfg.http.enabled {
        return Ok(None);
    }
    let listen: SocketAddr = cfg.http.listen.parse().map_err(|_| {
        ServeError::Config(format!(
            "http.listen `{}` is not an address; expected IP:PORT, e.g. 127.0.0.1:8080",
            cfg.http.listen
        ))
    })?;
    let token = resolve_token(&cfg.http)?;
    let peer_token = resolve_peer_token(&cfg.http)?;
    let telemetry = Telemetry::new(&goals, &cfg.metrics.progress_gauges);
    let instance = cfg.instance_id();
    let (hub, queries) = Hub::new(goals, instance.clone(), telemetry);
    let listener = http::bind(listen)?;
    let bound = listener.local_addr().map_err(ServeError::Runtime)?;
    let url = advertised_url(&cfg.http, bound);
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &cfg.kafka.bootstrap_servers);
    for (k, v) in &cfg.kafka.properties {
        client.set(k, v);
    }
    // Peers get the peer secret; without one, the API token (only ever to trusted hosts).
    let trust = peers::PeerTrust::new(
        &cfg.http.peer_hosts,
        &url,
        peer_token.clone().or_else(|| token.clone()),
    );
    let peers = peers::Peers::new(client, cfg.app.application_id.clone(), instance, trust);
    let server = http::serve(
        listener,
        hub.clone(),
        ServeOptions {
            listen,
            token,
            metrics: metrics_handle,
            peers: Some(peers),
            peer_token,
            limits: guard::Limits {
                max_connections: cfg.http.max_connections,
                max_requests: cfg.http.max_requests,
                max_streams: cfg.http.max_streams,
                ..guard::Limits::default()
            },
            advertised_host: peers::url_host(&url),
        },
    )?;
    Ok(Some((
        Serving {
            hub,
            queries,
            advertised_url: Some(url),
        },
        server,
    )))
}
