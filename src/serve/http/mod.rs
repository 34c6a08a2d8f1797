//! The HTTP server: axum on a small tokio runtime of its own thread. Routes are grouped by
//! concern: authentication, probes and pages, goal queries, attainment queries, event streams.

mod attainments;
mod auth;
mod goals;
mod pages;
mod sse;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use thiserror::Error;

use super::guard::{self, HostCheck, Limits, Permits};
use super::hub::{Hub, RecentAttainment};
use super::paths;
use super::peers::Peers;
use crate::model::Timestamp;
pub use attainments::AttainmentsBody;
pub use auth::Token;
pub use goals::{GoalBody, DEFAULT_WINDOWS};
use sse::Relay;

/// How long a query waits for the processing loop, or a peer.
pub(super) const QUERY_TIMEOUT: StdDuration = StdDuration::from_secs(5);
/// The dashboard page.
pub const DASHBOARD_HTML: &str = include_str!("../dashboard.html");

/// Why the HTTP server could not start.
#[derive(Debug, Error)]
pub enum ServeError {
    /// The listen address could not be bound.
    #[error(
        "cannot listen on {addr}: {cause}; choose a free address (http.listen, or --listen for \
         the demo) or turn the server off (http.enabled = false, or --no-http)"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        cause: std::io::Error,
    },
    /// The runtime could not start.
    #[error("cannot start the HTTP runtime: {0}")]
    Runtime(std::io::Error),
    /// The token could not be read.
    #[error("cannot read the HTTP token: {0}")]
    Token(String),
    /// A setting of `[http]` or the metrics recorder is not usable.
    #[error("{0}")]
    Config(String),
}

/// What the server needs besides the hub.
pub struct ServeOptions {
    /// Listen address.
    pub listen: SocketAddr,
    /// Required bearer token, if any.
    pub token: Option<Token>,
    /// Renders `/metrics`; `None` serves an empty exposition.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// The other instances of the application, for queries about what this one does not own.
    pub peers: Option<Peers>,
    /// The secret other instances send; it allows only their `scope=local` queries.
    pub peer_token: Option<Token>,
    /// Caps on connections, requests and event streams.
    pub limits: Limits,
    /// The advertised URL's host, allowed in the `Host` header besides loopback names.
    pub advertised_host: Option<String>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            listen: super::DEFAULT_LISTEN
                .parse()
                .expect("the default listen address"),
            token: None,
            metrics: None,
            peers: None,
            peer_token: None,
            limits: Limits::default(),
            advertised_host: None,
        }
    }
}

/// A running server; dropping it does not stop it (it ends with the process).
pub struct Server {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
}

#[derive(Clone)]
pub(super) struct AppState {
    pub(super) hub: Arc<Hub>,
    pub(super) token: Option<Token>,
    pub(super) peer_token: Option<Token>,
    pub(super) permits: Permits,
    pub(super) metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    pub(super) peers: Option<Arc<Peers>>,
    /// The other instances' attainment events, relayed by one task for every event stream.
    pub(super) relayed: Option<tokio::sync::broadcast::Sender<Arc<RecentAttainment>>>,
}

/// Binds the listen address and serves on a thread of its own.
pub fn start(hub: Arc<Hub>, opts: ServeOptions) -> Result<Server, ServeError> {
    let listener = bind(opts.listen)?;
    serve(listener, hub, opts)
}

/// Binds a listen address (before serving, so that the bound port is known).
pub fn bind(listen: SocketAddr) -> Result<std::net::TcpListener, ServeError> {
    let listener = std::net::TcpListener::bind(listen).map_err(|cause| ServeError::Bind {
        addr: listen,
        cause,
    })?;
    listener
        .set_nonblocking(true)
        .map_err(ServeError::Runtime)?;
    Ok(listener)
}

/// Serves on a bound listener, on a thread of its own.
pub fn serve(
    listener: std::net::TcpListener,
    hub: Arc<Hub>,
    opts: ServeOptions,
) -> Result<Server, ServeError> {
    let addr = listener.local_addr().map_err(ServeError::Runtime)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(8)
        .thread_name("goalpost-http")
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    let peers = opts.peers.map(Arc::new);
    let relayed = peers
        .as_ref()
        .map(|_| tokio::sync::broadcast::channel(1024).0);
    let relay = match (&peers, &relayed) {
        (Some(peers), Some(tx)) => Some(Relay::new(peers.clone(), tx.clone())),
        _ => None,
    };
    let hosts = HostCheck::new(
        opts.token.is_some(),
        addr.ip().is_loopback(),
        opts.advertised_host,
    );
    let permits = Permits::new(opts.limits);
    let state = AppState {
        hub,
        token: opts.token,
        peer_token: opts.peer_token,
        permits: permits.clone(),
        metrics: opts.metrics,
        peers,
        relayed,
    };
    let app = router(state, hosts);
    std::thread::Builder::new()
        .name("goalpost-http".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "HTTP listener");
                        return;
                    }
                };
                if let Some(relay) = relay {
                    tokio::spawn(relay.run());
                }
                guard::accept_loop(listener, app, permits).await;
            })
        })
        .map_err(ServeError::Runtime)?;
    tracing::info!(%addr, "HTTP server listening");
    Ok(Server { addr })
}

fn router(state: AppState, hosts: HostCheck) -> Router {
    let protected = Router::new()
        .route(paths::METRICS, get(pages::metrics))
        .route(paths::GOALS, get(goals::goals))
        .route(paths::GOAL, get(goals::goal))
        .route(paths::ATTAINMENTS, get(attainments::attainments))
        .route(paths::STREAM, get(sse::stream_attainments))
        .route(paths::OPENAPI, get(pages::openapi))
        .route(paths::DASHBOARD, get(pages::dashboard))
        .layer(middleware::from_fn_with_state(state.clone(), auth::auth))
        .layer(middleware::from_fn_with_state(
            state.permits.clone(),
            guard::limit,
        ));
    // Outermost first: headers on every answer, then the Host check, then (for all but the
    // probes, which must never get 503 under load) the caps.
    Router::new()
        .route(paths::HEALTHZ, get(|| async { "ok\n" }))
        .route(paths::READYZ, get(pages::readyz))
        .merge(protected)
        .with_state(state)
        .layer(middleware::from_fn_with_state(hosts, guard::check_host))
        .layer(middleware::from_fn(guard::security_headers))
}

#[derive(Serialize)]
struct ErrorBody {
    error: String,
}

pub(super) fn error(status: StatusCode, message: String) -> Response {
    (status, Json(ErrorBody { error: message })).into_response()
}

/// Query parameters. A query string that does not even parse (`limit=abc`) gets the same JSON
/// error body as every other 400, naming the parameter, instead of axum's plain-text rejection.
pub(super) struct QueryParams<T>(pub(super) T);

impl<T, S> FromRequestParts<S> for QueryParams<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(params)) => Ok(Self(params)),
            Err(rejection) => Err(error(StatusCode::BAD_REQUEST, rejection.body_text())),
        }
    }
}

pub(super) fn local_scope(scope: &Option<String>) -> Result<bool, Box<Response>> {
    match scope.as_deref() {
        None | Some("all") => Ok(false),
        Some("local") => Ok(true),
        Some(other) => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("scope `{other}` is not allowed; use `all` or `local`"),
        ))),
    }
}

/// Percent-encodes a query value.
pub(super) fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The wall clock, for commit times shown by the query API (never used by the engine).
pub fn wall_clock() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::from_nanos(d.as_nanos() as i64)
}
