//! `[notify]`: what `goalpost notify` delivers, and where.

use serde::Deserialize;

use super::alertmanager::AlertmanagerConfig;
use super::webhook::WebhookConfig;

/// Where `goalpost notify` serves `/metrics` and `/healthz` unless `[notify] listen` says
/// otherwise (loopback only).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9465";

/// `[notify]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Listen address of notify's HTTP server (`/metrics`, `/healthz`). Default
    /// `127.0.0.1:9465` (loopback only); in a container, `0.0.0.0:9465`.
    pub listen: String,
    /// `[notify.alertmanager]`: alerts for Prometheus Alertmanager; absent: none.
    pub alertmanager: Option<AlertmanagerConfig>,
    /// `[[notify.webhooks]]`: signed HTTP POSTs of attainment events.
    pub webhooks: Vec<WebhookConfig>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            listen: DEFAULT_LISTEN.into(),
            alertmanager: None,
            webhooks: Vec::new(),
        }
    }
}
