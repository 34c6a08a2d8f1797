//! `[notify]`: what `goalpost notify` delivers, and where.

use serde::Deserialize;

use super::alertmanager::AlertmanagerConfig;
use super::webhook::WebhookConfig;

/// `[notify]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// `[notify.alertmanager]`: alerts for Prometheus Alertmanager; absent: none.
    pub alertmanager: Option<AlertmanagerConfig>,
    /// `[[notify.webhooks]]`: signed HTTP POSTs of attainment events.
    pub webhooks: Vec<WebhookConfig>,
}
