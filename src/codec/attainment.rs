//! Reading attainment events back (what `goalpost notify` consumes), JSON and protobuf, into the
//! model: the inverse of `json::encode_attainment` and `proto::encode_attainment`.

use std::str::FromStr;
use std::sync::Arc;

use prost::Message;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::json::Attributes;
use super::proto::pb;
use super::{DecodeError, Format, RejectReason};
use crate::model::{Attainment, AttainmentKind, Decimal, Outcome, Timestamp, Window};

/// Decodes one attainment record in `format`.
pub fn decode_attainment(format: Format, bytes: &[u8]) -> Result<Attainment, DecodeError> {
    match format {
        Format::Json => from_json(bytes),
        Format::Proto => from_proto(bytes),
    }
}

/// The fields of either encoding, decimals and names still as text.
struct Fields {
    attainment_id: String,
    goal_id: String,
    kind: String,
    group: Vec<(String, String)>,
    window: (Option<Timestamp>, Option<Timestamp>),
    value: Option<String>,
    target: String,
    progress: Option<String>,
    milestone: Option<String>,
    outcome: Option<String>,
    triggered_by: Option<String>,
    event_time: Option<Timestamp>,
    expected: Option<String>,
    projected: Option<String>,
    tick: Option<Timestamp>,
}

#[derive(Deserialize)]
struct RawAttainment<'a> {
    attainment_id: String,
    goal_id: String,
    kind: String,
    #[serde(borrow)]
    group: Attributes<'a>,
    window_start: String,
    window_end: String,
    #[serde(borrow, default)]
    value: Option<&'a RawValue>,
    #[serde(borrow)]
    target: &'a RawValue,
    #[serde(borrow, default)]
    progress: Option<&'a RawValue>,
    #[serde(borrow, default)]
    milestone: Option<&'a RawValue>,
    #[serde(default)]
    outcome: Option<String>,
    #[serde(default)]
    triggered_by: Option<String>,
    event_time: String,
    #[serde(borrow, default)]
    expected: Option<&'a RawValue>,
    #[serde(borrow, default)]
    projected: Option<&'a RawValue>,
    #[serde(default)]
    tick: Option<String>,
}

fn from_json(bytes: &[u8]) -> Result<Attainment, DecodeError> {
    let r: RawAttainment<'_> = serde_json::from_slice(bytes)
        .map_err(|e| DecodeError::new(RejectReason::InvalidJson, e.to_string()))?;
    let ts = |s: &str| Timestamp::parse_rfc3339(s).ok();
    let text = |v: Option<&RawValue>| v.map(|v| v.get().to_string());
    build(Fields {
        attainment_id: r.attainment_id,
        goal_id: r.goal_id,
        kind: r.kind,
        group: r
            .group
            .0
            .into_iter()
            .map(|(k, v)| (k.0.into_owned(), v.0.into_owned()))
            .collect(),
        window: (ts(&r.window_start), ts(&r.window_end)),
        value: text(r.value),
        target: r.target.get().to_string(),
        progress: text(r.progress),
        milestone: text(r.milestone),
        outcome: r.outcome,
        triggered_by: r.triggered_by,
        event_time: ts(&r.event_time),
        expected: text(r.expected),
        projected: text(r.projected),
        tick: match r.tick {
            Some(t) => Some(ts(&t).ok_or_else(|| bad_time("tick"))?),
            None => None,
        },
    })
}

fn from_proto(bytes: &[u8]) -> Result<Attainment, DecodeError> {
    let m = pb::Attainment::decode(bytes)
        .map_err(|e| DecodeError::new(RejectReason::InvalidProto, e.to_string()))?;
    let ts = |t: Option<prost_types::Timestamp>| t.as_ref().and_then(super::proto::from_pb_ts);
    build(Fields {
        attainment_id: m.attainment_id,
        goal_id: m.goal_id,
        kind: m.kind,
        group: m.group.into_iter().map(|g| (g.key, g.value)).collect(),
        window: (ts(m.window_start), ts(m.window_end)),
        value: m.value,
        target: m.target,
        progress: m.progress,
        milestone: m.milestone,
        outcome: m.outcome,
        triggered_by: m.triggered_by,
        event_time: ts(m.event_time),
        expected: m.expected,
        projected: m.projected,
        tick: match m.tick {
            Some(t) => Some(super::proto::from_pb_ts(&t).ok_or_else(|| bad_time("tick"))?),
            None => None,
        },
    })
}

fn bad_time(field: &str) -> DecodeError {
    DecodeError::new(
        RejectReason::InvalidTimestamp,
        format!("`{field}` is absent or not an RFC 3339 timestamp"),
    )
}

fn decimal(field: &str, text: Option<String>) -> Result<Option<Decimal>, DecodeError> {
    text.map(|t| {
        Decimal::from_str(&t).map_err(|_| {
            DecodeError::new(
                RejectReason::WrongType,
                format!("`{field}` is `{t}`, not a decimal number"),
            )
        })
    })
    .transpose()
}

fn build(f: Fields) -> Result<Attainment, DecodeError> {
    let kind = AttainmentKind::from_name(&f.kind).ok_or_else(|| {
        DecodeError::new(
            RejectReason::WrongType,
            format!(
                "kind `{}` is not one of milestone, breached, final, at_risk, on_track",
                f.kind
            ),
        )
    })?;
    let outcome = match f.outcome {
        Some(o) => Some(Outcome::from_name(&o).ok_or_else(|| {
            DecodeError::new(RejectReason::WrongType, format!("outcome `{o}` is unknown"))
        })?),
        None => None,
    };
    if f.attainment_id.is_empty() || f.goal_id.is_empty() {
        return Err(DecodeError::new(
            RejectReason::EmptyField,
            "attainment_id and goal_id must not be empty",
        ));
    }
    let target = decimal("target", Some(f.target))?.expect("given");
    Ok(Attainment {
        attainment_id: f.attainment_id,
        goal_id: Arc::from(f.goal_id),
        kind,
        group: f
            .group
            .into_iter()
            .map(|(k, v)| (Arc::from(k), v))
            .collect(),
        window: Window {
            start: f.window.0.ok_or_else(|| bad_time("window_start"))?,
            end: f.window.1.ok_or_else(|| bad_time("window_end"))?,
        },
        value: decimal("value", f.value)?,
        target,
        progress: decimal("progress", f.progress)?,
        milestone: decimal("milestone", f.milestone)?,
        outcome,
        triggered_by: f.triggered_by,
        event_time: f.event_time.ok_or_else(|| bad_time("event_time"))?,
        expected: decimal("expected", f.expected)?,
        projected: decimal("projected", f.projected)?,
        tick: f.tick,
    })
}
