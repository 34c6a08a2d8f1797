//! An alert: its identity, labels and annotations, and its Alertmanager API v2 form.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::Timestamp;

/// Which rule raised an alert.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A `breached` event.
    Breached,
    /// An `at_risk` event (resolved by `on_track`).
    AtRisk,
    /// A `final` event with outcome `missed` (`missed_alert`); it ends on its own.
    Missed,
}

/// What identifies an alert: goal, group, window and kind. Its labels follow from it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AlertKey {
    /// The goal's id.
    pub goal: String,
    /// The group: each group-by field as written in the goal file, with its value.
    pub group: Vec<(String, String)>,
    /// The window's start, nanoseconds since the epoch.
    pub window_start: i64,
    /// The rule that raised it.
    pub kind: AlertKind,
}

/// An alert as goalpost keeps and sends it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Its identity.
    pub key: AlertKey,
    /// The window's end, nanoseconds since the epoch: a later window starting at or after it
    /// resolves this alert.
    pub window_end: i64,
    /// Its labels: `alertname`, `goal`, the group labels, `window_start`, the static labels.
    pub labels: BTreeMap<String, String>,
    /// Its annotations: the numbers, the triggering event, the attainment id, the link.
    pub annotations: BTreeMap<String, String>,
    /// When goalpost first fired it (wall clock, nanoseconds): sent unchanged every time.
    pub starts_at: i64,
    /// When it ends (wall clock, nanoseconds): set when resolved, or from the start for an
    /// alert that ends on its own (a missed window).
    pub ends_at: Option<i64>,
    /// The dashboard link, Alertmanager's `generatorURL`.
    pub generator_url: Option<String>,
}

/// Alertmanager API v2 `PostableAlert`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Postable<'a> {
    labels: &'a BTreeMap<String, String>,
    annotations: &'a BTreeMap<String, String>,
    starts_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ends_at: Option<String>,
    #[serde(rename = "generatorURL", skip_serializing_if = "Option::is_none")]
    generator_url: Option<&'a str>,
}

/// The body of `POST /api/v2/alerts` for `alerts`: a JSON array of `PostableAlert`s. A firing
/// alert without its own end has no `endsAt`, so Alertmanager resolves it after its
/// `resolve_timeout` unless it is sent again.
pub fn postable_json<'a>(alerts: impl IntoIterator<Item = &'a Alert>) -> Vec<u8> {
    let rfc3339 = |nanos: i64| Timestamp::from_nanos(nanos).to_rfc3339();
    let body: Vec<Postable<'_>> = alerts
        .into_iter()
        .map(|a| Postable {
            labels: &a.labels,
            annotations: &a.annotations,
            starts_at: rfc3339(a.starts_at),
            ends_at: a.ends_at.map(rfc3339),
            generator_url: a.generator_url.as_deref(),
        })
        .collect();
    serde_json::to_vec(&body).expect("string maps serialise")
}
