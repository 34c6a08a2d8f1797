//! `[notify.alertmanager]`.

use std::collections::BTreeMap;

use serde::Deserialize;
use thiserror::Error;

use super::labels::{is_label_name, RESERVED};
use crate::model::{AttainmentKind, Duration};

/// `[notify.alertmanager]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Base URLs of Alertmanager, e.g. `http://alertmanager:9093`. Every alert is posted to all
    /// of them (an HA pair), as Prometheus does. At least one.
    pub urls: Vec<String>,
    /// The attainment kinds that fire an alert: `breached`, `at_risk`. Default both.
    #[serde(default = "default_fire")]
    pub fire: Vec<String>,
    /// The `alertname` label per kind of alert.
    #[serde(default)]
    pub alertnames: Alertnames,
    /// Whether a `final` event with outcome `missed` fires a short alert (lasting
    /// `missed_alert_for`). Default `false`.
    #[serde(default)]
    pub missed_alert: bool,
    /// How long the alert of a missed window lasts. Default `1h`.
    #[serde(default = "default_missed_for")]
    pub missed_alert_for: Duration,
    /// How often the active alerts are sent again. Alertmanager resolves an alert that is not
    /// sent again within its `resolve_timeout` (default 5m), so keep it at most half of that.
    /// Default `1m`.
    #[serde(default = "default_resend")]
    pub resend_interval: Duration,
    /// Base URL of goalpost's dashboard, for the `dashboard` annotation and `generatorURL` of
    /// each alert; absent: no link.
    #[serde(default)]
    pub dashboard_url: Option<String>,
    /// Timeout of one request to one Alertmanager. Default `10s`.
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    /// Only these goals raise alerts; empty (the default): all goals.
    #[serde(default)]
    pub goals: Vec<String>,
    /// Static labels added to every alert, e.g. `{ team = "sales-ops" }`. Their names must be
    /// label names and not `alertname`, `goal` or `window_start`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `[notify.alertmanager.alertnames]`: the `alertname` label per kind of alert.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Alertnames {
    /// For `breached` events. Default `GoalpostGoalBreached`.
    pub breached: String,
    /// For `at_risk` events. Default `GoalpostGoalAtRisk`.
    pub at_risk: String,
    /// For missed windows (`missed_alert`). Default `GoalpostGoalMissed`.
    pub missed: String,
}

impl Default for Alertnames {
    fn default() -> Self {
        Alertnames {
            breached: "GoalpostGoalBreached".into(),
            at_risk: "GoalpostGoalAtRisk".into(),
            missed: "GoalpostGoalMissed".into(),
        }
    }
}

/// What is wrong with `[notify.alertmanager]`.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AlertmanagerConfigError {
    /// `urls` is empty.
    #[error("notify.alertmanager.urls is empty; name at least one Alertmanager, e.g. \"http://alertmanager:9093\"")]
    NoUrls,
    /// A URL is not `http(s)://…`.
    #[error("notify.alertmanager: `{0}` is not an http or https URL")]
    BadUrl(String),
    /// A kind in `fire` that cannot fire.
    #[error("notify.alertmanager.fire: `{0}` cannot fire an alert; allowed: breached, at_risk")]
    BadKind(String),
    /// An empty alertname.
    #[error("notify.alertmanager.alertnames.{0} is empty")]
    EmptyAlertname(&'static str),
    /// Two kinds share an alertname: their alerts could not be told apart.
    #[error("notify.alertmanager.alertnames: `{0}` is used twice; each kind needs its own")]
    SharedAlertname(String),
    /// A zero duration.
    #[error("notify.alertmanager.{0} must be above 0s")]
    ZeroDuration(&'static str),
    /// A static label that is not a label name, or is reserved.
    #[error("notify.alertmanager.labels: `{0}` is not allowed; a label name matches [a-zA-Z_][a-zA-Z0-9_]* and is not alertname, goal or window_start")]
    BadLabel(String),
}

impl AlertmanagerConfig {
    /// A configuration with the defaults and these URLs.
    pub fn with_urls(urls: Vec<String>) -> Self {
        AlertmanagerConfig {
            urls,
            fire: default_fire(),
            alertnames: Alertnames::default(),
            missed_alert: false,
            missed_alert_for: default_missed_for(),
            resend_interval: default_resend(),
            dashboard_url: None,
            timeout: default_timeout(),
            goals: Vec::new(),
            labels: BTreeMap::new(),
        }
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), AlertmanagerConfigError> {
        if self.urls.is_empty() {
            return Err(AlertmanagerConfigError::NoUrls);
        }
        for url in self.urls.iter().chain(&self.dashboard_url) {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(AlertmanagerConfigError::BadUrl(url.clone()));
            }
        }
        self.fire_kinds()?;
        let names = &self.alertnames;
        for (field, name) in [
            ("breached", &names.breached),
            ("at_risk", &names.at_risk),
            ("missed", &names.missed),
        ] {
            if name.is_empty() {
                return Err(AlertmanagerConfigError::EmptyAlertname(field));
            }
        }
        if names.breached == names.at_risk || names.breached == names.missed {
            return Err(AlertmanagerConfigError::SharedAlertname(
                names.breached.clone(),
            ));
        }
        if names.at_risk == names.missed {
            return Err(AlertmanagerConfigError::SharedAlertname(
                names.at_risk.clone(),
            ));
        }
        for (field, d) in [
            ("missed_alert_for", self.missed_alert_for),
            ("resend_interval", self.resend_interval),
            ("timeout", self.timeout),
        ] {
            if d.is_zero() {
                return Err(AlertmanagerConfigError::ZeroDuration(field));
            }
        }
        match self
            .labels
            .keys()
            .find(|k| !is_label_name(k) || RESERVED.contains(&k.as_str()))
        {
            Some(bad) => Err(AlertmanagerConfigError::BadLabel(bad.clone())),
            None => Ok(()),
        }
    }

    /// The kinds of `fire`, parsed.
    pub fn fire_kinds(&self) -> Result<Vec<AttainmentKind>, AlertmanagerConfigError> {
        self.fire
            .iter()
            .map(|name| match AttainmentKind::from_name(name) {
                Some(k @ (AttainmentKind::Breached | AttainmentKind::AtRisk)) => Ok(k),
                _ => Err(AlertmanagerConfigError::BadKind(name.clone())),
            })
            .collect()
    }
}

fn default_fire() -> Vec<String> {
    vec!["breached".into(), "at_risk".into()]
}

fn default_missed_for() -> Duration {
    Duration::from_secs(3_600)
}

fn default_resend() -> Duration {
    Duration::from_secs(60)
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
