//! `[[notify.webhooks]]`.

use serde::Deserialize;

/// One `[[notify.webhooks]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Names the webhook in logs, metrics (`sink="webhook:NAME"`) and dead letters.
    pub name: String,
    /// Where events are POSTed (`http` or `https`).
    pub url: String,
}
