//! The HTTP side of a running instance: Prometheus metrics, the query API (interactive
//! queries), the live dashboard, health and readiness.
//!
//! The worker thread answers window queries between poll rounds (its state as of the last record
//! processed, which an abort may still roll back) and publishes attainment events once their
//! transaction has committed, through a [`Hub`]; the HTTP server (axum, on its own tokio runtime)
//! serves them. Nothing here touches Kafka or the engine's state directly.

pub mod config;
pub mod guard;
pub mod http;
pub mod hub;
mod instance;
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

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub use config::{HttpConfig, MetricsConfig};
pub use http::{ServeError, ServeOptions, Server, Token};
pub use instance::{
    advertised_url, resolve_peer_token, resolve_token, start_for_run, Instance, Serving,
};

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
