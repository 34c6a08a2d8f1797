//! `[http]` and `[metrics]` of `goalpost run`: what the HTTP side serves and how.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::Deserialize;

/// `[http]`: the HTTP server of `goalpost run` (metrics, query API, dashboard, health checks).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Serve HTTP at all. Default `true`.
    pub enabled: bool,
    /// Listen address. Default `127.0.0.1:8080` (loopback only). A non-loopback address needs a
    /// bearer token (`token_file` or `token_env`) unless `allow_unauthenticated = true`.
    pub listen: String,
    /// File holding the bearer token that clients must send (`Authorization: Bearer ...`) to
    /// every path except `/healthz` and `/readyz`. Surrounding whitespace is ignored.
    pub token_file: Option<PathBuf>,
    /// Name of an environment variable holding the bearer token (instead of `token_file`).
    pub token_env: Option<String>,
    /// Listen on a non-loopback address without a token. Default `false`: refused.
    pub allow_unauthenticated: bool,
    /// Base URL other instances use to reach this one, for queries about goals and groups this
    /// instance does not own, e.g. `http://goalpost-1.goalpost:8080`. Default: `http://` plus
    /// the listen address, with the host name in place of an unspecified address (`0.0.0.0`).
    pub advertised_url: Option<String>,
    /// Hosts of other instances this one may ask (any member of the consumer group can advertise
    /// a URL): an exact host name or IP, `*.suffix` for any host under `suffix`, or `loopback`.
    /// Members advertising another host are never called and are listed as unavailable.
    /// Default (empty): derived from this instance's advertised URL: `loopback` for a loopback
    /// host, else that host and, for a DNS name, every host under its parent domain
    /// (`goalpost-0.goalpost-headless` allows `*.goalpost-headless`).
    pub peer_hosts: Vec<String>,
    /// File holding the secret instances send each other instead of the bearer token; it allows
    /// only their `scope=local` queries. Default none: the bearer token is sent (to trusted
    /// hosts only).
    pub peer_token_file: Option<PathBuf>,
    /// Name of an environment variable holding the peer secret (instead of `peer_token_file`).
    pub peer_token_env: Option<String>,
    /// Open connections at most; more are closed at once. Default 256.
    pub max_connections: usize,
    /// Requests handled at once at most; more get 503. Default 64.
    pub max_requests: usize,
    /// Event streams (`/v1/stream`, one per dashboard) open at once at most; more get 503.
    /// Default 32.
    pub max_streams: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: true,
            listen: super::DEFAULT_LISTEN.into(),
            token_file: None,
            token_env: None,
            allow_unauthenticated: false,
            advertised_url: None,
            peer_hosts: Vec::new(),
            peer_token_file: None,
            peer_token_env: None,
            max_connections: 256,
            max_requests: 64,
            max_streams: 32,
        }
    }
}

/// `[metrics]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Goal ids whose current-window progress is exported per group as
    /// `goalpost_goal_progress_ratio` (one series per group: mind the cardinality). Default none.
    pub progress_gauges: Vec<String>,
}

impl HttpConfig {
    /// The listen address, parsed.
    pub fn listen_addr(&self) -> Result<SocketAddr, String> {
        self.listen.parse().map_err(|_| {
            format!(
                "http.listen `{}` is not an address; expected IP:PORT, e.g. 127.0.0.1:8080",
                self.listen
            )
        })
    }

    /// Checks the settings when HTTP is enabled: one token source each, caps of at least 1, peer
    /// hosts that are hosts, and a token (or an explicit opt-out) off loopback. The error says
    /// what is wrong and what is allowed.
    pub fn validate(&self) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        let addr = self.listen_addr()?;
        if self.token_file.is_some() && self.token_env.is_some() {
            return Err("http.token_file and http.token_env are both set: choose one".into());
        }
        if self.peer_token_file.is_some() && self.peer_token_env.is_some() {
            return Err(
                "http.peer_token_file and http.peer_token_env are both set: choose one".into(),
            );
        }
        let caps = [
            ("max_connections", self.max_connections),
            ("max_requests", self.max_requests),
            ("max_streams", self.max_streams),
        ];
        if let Some((key, _)) = caps.iter().find(|(_, v)| *v == 0) {
            return Err(format!("http.{key} is 0; allowed 1 or more"));
        }
        if let Some(h) = self.peer_hosts.iter().find(|h| !is_peer_host(h)) {
            return Err(format!(
                "http.peer_hosts entry `{h}` is not a host; expected a host name or IP, \
                 `*.domain` or `loopback`"
            ));
        }
        let has_token = self.token_file.is_some() || self.token_env.is_some();
        if !addr.ip().is_loopback() && !has_token && !self.allow_unauthenticated {
            return Err(format!(
                "http.listen `{}` is not a loopback address and no bearer token is set: set \
                 http.token_file or http.token_env, or http.allow_unauthenticated = true",
                self.listen
            ));
        }
        Ok(())
    }
}

/// Whether a `peer_hosts` entry names a host: a host name or IP, optionally behind `*.`.
fn is_peer_host(entry: &str) -> bool {
    let name = entry.strip_prefix("*.").unwrap_or(entry);
    !name.is_empty() && (!name.contains(['/', ':', '*', '@']) || name.parse::<IpAddr>().is_ok())
}
