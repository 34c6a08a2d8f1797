//! The HTTP side of a running instance: Prometheus metrics, the query API (interactive
//! queries), the live dashboard, health and readiness.
//!
//! The worker thread publishes committed state into a [`Hub`]; the HTTP server (axum, on its own
//! tokio runtime) reads it. Nothing here touches Kafka or the engine's state directly.

pub mod metrics;

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
