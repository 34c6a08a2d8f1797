//! `[notify]`: what `goalpost notify` delivers, and where.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use serde::Deserialize;

use super::alertmanager::AlertmanagerConfig;
use super::webhook::WebhookConfig;

/// The default of `[notify] listen`: loopback only.
pub const DEFAULT_NOTIFY_LISTEN: &str = "127.0.0.1:9465";

/// `[notify]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Where `goalpost notify` serves `/metrics` and `/healthz`. Default `127.0.0.1:9465`.
    pub listen: SocketAddr,
    /// `[notify.alertmanager]`: alerts for Prometheus Alertmanager; absent: none.
    pub alertmanager: Option<AlertmanagerConfig>,
    /// `[[notify.webhooks]]`: signed HTTP POSTs of attainment events.
    pub webhooks: Vec<WebhookConfig>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            listen: DEFAULT_NOTIFY_LISTEN.parse().expect("a valid address"),
            alertmanager: None,
            webhooks: Vec::new(),
        }
    }
}

impl NotifyConfig {
    /// Checks the rules parsing alone does not; the error names the value and what is allowed.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(am) = &self.alertmanager {
            am.validate().map_err(|e| e.to_string())?;
        }
        let mut names = BTreeSet::new();
        for w in &self.webhooks {
            w.validate()?;
            if !names.insert(w.name.as_str()) {
                return Err(format!(
                    "notify.webhooks: the name `{}` is used twice; each webhook needs its own",
                    w.name
                ));
            }
        }
        Ok(())
    }

    /// Whether any sink is configured.
    pub fn has_sinks(&self) -> bool {
        self.alertmanager.is_some() || !self.webhooks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_duplicate_names() {
        let empty: NotifyConfig = toml::from_str("").unwrap();
        assert_eq!(empty.listen.to_string(), DEFAULT_NOTIFY_LISTEN);
        assert!(!empty.has_sinks());
        let hook = "[[webhooks]]\nname = \"crm\"\nurl = \"http://h/\"\n";
        let twice: NotifyConfig = toml::from_str(&format!("{hook}{hook}")).unwrap();
        assert!(twice
            .validate()
            .unwrap_err()
            .contains("`crm` is used twice"));
        let once: NotifyConfig = toml::from_str(hook).unwrap();
        assert!(once.validate().is_ok() && once.has_sinks());
    }
}
