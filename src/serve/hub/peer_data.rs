//! Data read from other instances, checked before it is shown: attainment events re-encoded
//! from typed fields, window views of the goal and instance asked.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use thiserror::Error;

use super::views::{Num, WindowView};
use crate::model::Timestamp;

/// An attainment event's JSON text, embedded as is when this instance wrote it. Read from a peer,
/// it is first parsed as an [`AttainmentJson`] (typed fields, numbers as numbers, known kinds
/// and outcomes only) and written anew, so nothing a peer sends is passed through unchecked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawJson(pub String);

impl Serialize for RawJson {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let raw: &RawValue = serde_json::from_str(&self.0).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let typed = AttainmentJson::deserialize(d)?;
        typed.check().map_err(serde::de::Error::custom)?;
        serde_json::to_string(&typed)
            .map(RawJson)
            .map_err(serde::de::Error::custom)
    }
}

/// The fields of an attainment event as `json::encode_attainment` writes them.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttainmentJson {
    attainment_id: String,
    goal_id: String,
    kind: String,
    group: BTreeMap<String, String>,
    window_start: String,
    window_end: String,
    value: Option<Num>,
    target: Num,
    progress: Option<Num>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    milestone: Option<Num>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    triggered_by: Option<String>,
    event_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expected: Option<Num>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    projected: Option<Num>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tick: Option<String>,
}

/// Why an answer of another instance was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PeerDataError {
    /// A field holds a value outside its allowed set.
    #[error("{field} `{value}` is not allowed; expected {allowed}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
        /// What is allowed.
        allowed: &'static str,
    },
}

fn one_of(
    field: &'static str,
    value: &str,
    ok: bool,
    allowed: &'static str,
) -> Result<(), PeerDataError> {
    if ok {
        Ok(())
    } else {
        Err(PeerDataError::Invalid {
            field,
            value: value.chars().take(64).collect(),
            allowed,
        })
    }
}

fn check_time(field: &'static str, value: &str) -> Result<(), PeerDataError> {
    let ok = Timestamp::parse_rfc3339(value).is_ok();
    one_of(field, value, ok, "an RFC 3339 time")
}

impl AttainmentJson {
    /// Checks the fields a type alone does not: kinds, outcomes, times (`tick` when present).
    pub fn check(&self) -> Result<(), PeerDataError> {
        let kinds = crate::model::AttainmentKind::ALL.map(|k| k.as_str());
        one_of(
            "kind",
            &self.kind,
            kinds.contains(&self.kind.as_str()),
            "milestone, breached, final, at_risk or on_track",
        )?;
        if let Some(o) = &self.outcome {
            let ok = crate::model::Outcome::from_name(o).is_some();
            one_of("outcome", o, ok, "attained, missed or insufficient_data")?;
        }
        check_time("window_start", &self.window_start)?;
        check_time("window_end", &self.window_end)?;
        if let Some(t) = &self.tick {
            check_time("tick", t)?;
        }
        check_time("event_time", &self.event_time)
    }
}

impl WindowView {
    /// Checks a window view read from another instance: its goal, instance and times.
    pub fn check(&self, goal_id: &str, instance: &str) -> Result<(), PeerDataError> {
        one_of(
            "goal_id",
            &self.goal_id,
            self.goal_id == goal_id,
            "the goal asked for",
        )?;
        one_of(
            "instance",
            &self.instance,
            self.instance == instance,
            "the instance asked",
        )?;
        let ok = ["at_least", "at_most"].contains(&self.direction.as_str());
        one_of("direction", &self.direction, ok, "at_least or at_most")?;
        if let Some(status) = &self.status {
            let ok = super::STATUS_NAMES.contains(&status.as_str());
            one_of("status", status, ok, "on_track, pending or at_risk")?;
        }
        if let Some(Some(tick)) = &self.status_tick {
            check_time("status_tick", tick)?;
        }
        check_time("window_start", &self.window_start)?;
        check_time("window_end", &self.window_end)
    }
}
