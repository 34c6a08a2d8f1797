//! The configuration turned into rules: which goals and kinds raise alerts, and what an alert
//! raised by an attainment event looks like.

use std::collections::BTreeMap;

use super::alert::{Alert, AlertKey, AlertKind};
use super::config::{AlertmanagerConfig, AlertmanagerConfigError, Alertnames};
use super::labels::group_label_names;
use crate::model::{Attainment, AttainmentKind, Decimal, Duration, Timestamp};

/// What the alert book needs of `[notify.alertmanager]`, checked.
#[derive(Debug, Clone)]
pub struct Rules {
    fire: Vec<AttainmentKind>,
    alertnames: Alertnames,
    missed_for: Option<Duration>,
    /// How often active alerts are sent again.
    pub resend_interval: Duration,
    dashboard_url: Option<String>,
    goals: Vec<String>,
    labels: BTreeMap<String, String>,
}

impl Rules {
    /// Checks `config` and keeps what the rules need.
    pub fn new(config: &AlertmanagerConfig) -> Result<Rules, AlertmanagerConfigError> {
        config.validate()?;
        Ok(Rules {
            fire: config.fire_kinds()?,
            alertnames: config.alertnames.clone(),
            missed_for: config.missed_alert.then_some(config.missed_alert_for),
            resend_interval: config.resend_interval,
            dashboard_url: config
                .dashboard_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_string()),
            goals: config.goals.clone(),
            labels: config.labels.clone(),
        })
    }

    /// Whether alerts of `goal` are wanted.
    pub fn wants_goal(&self, goal: &str) -> bool {
        self.goals.is_empty() || self.goals.iter().any(|g| g == goal)
    }

    /// The kind of alert `kind` fires, if it fires one.
    pub fn fires(&self, kind: AttainmentKind) -> Option<AlertKind> {
        let alert = match kind {
            AttainmentKind::Breached => AlertKind::Breached,
            AttainmentKind::AtRisk => AlertKind::AtRisk,
            _ => return None,
        };
        self.fire.contains(&kind).then_some(alert)
    }

    /// How long the alert of a missed window lasts; `None`: missed windows raise no alert.
    pub fn missed_for(&self) -> Option<Duration> {
        self.missed_for
    }

    /// The key of `a`'s alert of kind `kind`.
    pub fn key(a: &Attainment, kind: AlertKind) -> AlertKey {
        AlertKey {
            goal: a.goal_id.to_string(),
            group: a
                .group
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            window_start: a.window.start.as_nanos(),
            kind,
        }
    }

    /// The alert of kind `kind` that `a` raises, first fired at `now`.
    pub fn alert(&self, a: &Attainment, kind: AlertKind, now: Timestamp) -> Alert {
        let link = self.dashboard_link(&a.goal_id);
        let ends_at = match kind {
            AlertKind::Missed => self.missed_for.map(|d| now.saturating_add(d).as_nanos()),
            _ => None,
        };
        Alert {
            key: Self::key(a, kind),
            window_end: a.window.end.as_nanos(),
            labels: self.labels_of(a, kind),
            annotations: annotations(a, kind, link.as_deref()),
            starts_at: now.as_nanos(),
            ends_at,
            generator_url: link,
        }
    }

    fn labels_of(&self, a: &Attainment, kind: AlertKind) -> BTreeMap<String, String> {
        let mut labels = self.labels.clone();
        let names = group_label_names(
            a.group.iter().map(|(field, _)| &**field),
            self.labels.keys().map(String::as_str),
        );
        for (name, (_, value)) in names.into_iter().zip(&a.group) {
            labels.insert(name, value.clone());
        }
        let alertname = match kind {
            AlertKind::Breached => &self.alertnames.breached,
            AlertKind::AtRisk => &self.alertnames.at_risk,
            AlertKind::Missed => &self.alertnames.missed,
        };
        labels.insert("alertname".into(), alertname.clone());
        labels.insert("goal".into(), a.goal_id.to_string());
        labels.insert("window_start".into(), a.window.start.to_rfc3339());
        labels
    }

    fn dashboard_link(&self, goal: &str) -> Option<String> {
        let base = self.dashboard_url.as_ref()?;
        let goal: String = url::form_urlencoded::byte_serialize(goal.as_bytes()).collect();
        Some(format!("{base}/#goal={goal}"))
    }
}

fn annotations(a: &Attainment, kind: AlertKind, link: Option<&str>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    out.insert("summary".into(), summary(a, kind));
    let decimals = [
        ("value", a.value),
        ("target", Some(a.target)),
        ("progress", a.progress),
        ("expected", a.expected),
        ("projected", a.projected),
    ];
    for (name, value) in decimals {
        if let Some(v) = value {
            out.insert(name.into(), decimal(v));
        }
    }
    if let Some(t) = &a.triggered_by {
        out.insert("triggered_by".into(), t.clone());
    }
    if let Some(o) = a.outcome {
        out.insert("outcome".into(), o.to_string());
    }
    out.insert("attainment_id".into(), a.attainment_id.clone());
    out.insert("window_end".into(), a.window.end.to_rfc3339());
    if let Some(link) = link {
        out.insert("dashboard".into(), link.to_string());
    }
    out
}

fn decimal(d: Decimal) -> String {
    d.normalize().to_string()
}

fn summary(a: &Attainment, kind: AlertKind) -> String {
    let group = if a.group.is_empty() {
        "all".to_string()
    } else {
        let parts: Vec<String> = a.group.iter().map(|(k, v)| format!("{k}={v}")).collect();
        parts.join(", ")
    };
    let what = match kind {
        AlertKind::Breached => "breached its target",
        AlertKind::AtRisk => "is at risk",
        AlertKind::Missed => "missed its target",
    };
    format!(
        "goal {} {what} for {group} in the window from {}",
        a.goal_id,
        a.window.start.to_rfc3339()
    )
}
