//! One instance's HTTP side for `goalpost run`: its settings, secrets, advertised URL, and the
//! start of the server with the link the worker keeps.

use std::net::SocketAddr;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use rdkafka::config::ClientConfig;

use super::http::{self, ServeError, ServeOptions, Server, Token};
use super::{guard, peers, HttpConfig, Hub, QueryReceiver, Telemetry};
use crate::goals::GoalSet;

/// What the HTTP side of one instance needs to know about it. No `Debug`: the Kafka client
/// settings may hold secrets.
#[derive(Clone)]
pub struct Instance {
    /// `[http]`.
    pub http: HttpConfig,
    /// Goal ids whose progress is exported per group (`[metrics] progress_gauges`).
    pub progress_gauges: Vec<String>,
    /// This instance's id.
    pub id: String,
    /// The consumer group whose members are the peers.
    pub group: String,
    /// How to reach Kafka, to list the group's members.
    pub kafka: ClientConfig,
}

/// The link to the HTTP side: where committed attainments and readiness go, and where window
/// queries come from.
pub struct Serving {
    /// The shared state.
    pub hub: Arc<Hub>,
    /// Window queries, answered between poll rounds.
    pub queries: QueryReceiver,
    /// This instance's HTTP base URL, advertised to the group in the consumer's `client.id`.
    pub advertised_url: Option<String>,
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
    cfg: &Instance,
    goals: Arc<GoalSet>,
    metrics_handle: Option<PrometheusHandle>,
) -> Result<Option<(Serving, Server)>, ServeError> {
    if !cfg.http.enabled {
        return Ok(None);
    }
    let listen = cfg.http.listen_addr().map_err(ServeError::Config)?;
    let token = resolve_token(&cfg.http)?;
    let peer_token = resolve_peer_token(&cfg.http)?;
    let telemetry = Telemetry::new(&goals, &cfg.progress_gauges);
    let (hub, queries) = Hub::new(goals, cfg.id.clone(), telemetry);
    let listener = http::bind(listen)?;
    let bound = listener.local_addr().map_err(ServeError::Runtime)?;
    let url = advertised_url(&cfg.http, bound);
    // Peers get the peer secret; without one, the API token (only ever to trusted hosts).
    let trust = peers::PeerTrust::new(
        &cfg.http.peer_hosts,
        &url,
        peer_token.clone().or_else(|| token.clone()),
    );
    let peers = peers::Peers::new(cfg.kafka.clone(), cfg.group.clone(), cfg.id.clone(), trust);
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
