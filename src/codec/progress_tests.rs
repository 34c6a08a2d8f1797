//! Progress records on the wire: the same fields in JSON and protobuf, exact decimals, the
//! look-ahead fields only for goals with `status`, and `outcome` only once closed.

use std::str::FromStr;
use std::sync::Arc;

use prost::Message;

use super::json::encode_progress as to_json;
use super::proto::{encode_progress as to_proto, pb};
use crate::model::{Decimal, GoalProgress, Outcome, ProgressStatus, Timestamp, Window};

fn ts(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap()
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// East's January window: 62500.00 of 250000, a quarter reached, open.
fn record() -> GoalProgress {
    GoalProgress {
        goal_id: "revenue".into(),
        group: vec![(Arc::from("region"), "East".to_string())],
        window: Window {
            start: ts("2026-01-01T00:00:00Z"),
            end: ts("2026-02-01T00:00:00Z"),
        },
        value: Some(dec("62500.00")),
        target: dec("250000"),
        progress: Some(dec("0.25")),
        direction: "at_least",
        milestones_reached: vec![dec("0.25")],
        breached: false,
        status: None,
        open: true,
        outcome: None,
        last_event_time: Some(ts("2026-01-09T10:00:00Z")),
        updated_at: Some(ts("2026-01-09T11:30:00Z")),
    }
}

#[test]
fn json_of_an_open_window_without_status_has_exact_bytes() {
    let mut out = Vec::new();
    to_json(&record(), &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"goal_id":"revenue","group":{"region":"East"},"window_start":"2026-01-01T00:00:00Z","window_end":"2026-02-01T00:00:00Z","value":62500,"target":250000,"progress":0.25,"direction":"at_least","milestones_reached":[0.25],"breached":false,"open":true,"outcome":null,"last_event_time":"2026-01-09T10:00:00Z","updated_at":"2026-01-09T11:30:00Z"}"#
    );
}

#[test]
fn json_of_a_closed_window_with_status_carries_outcome_and_look_ahead() {
    let mut p = record();
    p.open = false;
    p.outcome = Some(Outcome::Missed);
    p.status = Some(ProgressStatus {
        status: "at_risk",
        tick: Some(ts("2026-01-08T00:00:00Z")),
        expected: Some(dec("75000.1234")),
        projected: None,
    });
    p.value = None;
    p.progress = None;
    let mut out = Vec::new();
    to_json(&p, &mut out);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["open"], false);
    assert_eq!(v["outcome"], "missed");
    assert_eq!(v["status"], "at_risk");
    assert_eq!(v["status_tick"], "2026-01-08T00:00:00Z");
    assert!(String::from_utf8(out)
        .unwrap()
        .contains(r#""expected":75000.1234,"#));
    assert!(v["projected"].is_null() && v.get("projected").is_some());
    assert!(v["value"].is_null() && v["progress"].is_null());
}

#[test]
fn protobuf_carries_the_same_fields_with_decimals_as_text() {
    let mut p = record();
    p.status = Some(ProgressStatus {
        status: "on_track",
        tick: None,
        expected: Some(dec("1.5")),
        projected: Some(dec("260000.0000")),
    });
    let mut out = Vec::new();
    to_proto(&p, &mut out);
    let m = pb::GoalProgress::decode(out.as_slice()).unwrap();
    assert_eq!(m.goal_id, "revenue");
    assert_eq!(m.group[0].key, "region");
    assert_eq!(m.group[0].value, "East");
    assert_eq!(
        m.window_start.unwrap().seconds,
        ts("2026-01-01T00:00:00Z").as_nanos() / 1_000_000_000
    );
    assert_eq!(m.value.as_deref(), Some("62500"));
    assert_eq!(m.target, "250000");
    assert_eq!(m.progress.as_deref(), Some("0.25"));
    assert_eq!(m.direction, "at_least");
    assert_eq!(m.milestones_reached, ["0.25"]);
    assert!(!m.breached && m.open && m.outcome.is_none());
    assert_eq!(m.status.as_deref(), Some("on_track"));
    assert!(m.status_tick.is_none());
    assert_eq!(m.expected.as_deref(), Some("1.5"));
    assert_eq!(m.projected.as_deref(), Some("260000"));
    assert!(m.last_event_time.is_some() && m.updated_at.is_some());

    let mut closed = record();
    closed.open = false;
    closed.outcome = Some(Outcome::Attained);
    out.clear();
    to_proto(&closed, &mut out);
    let m = pb::GoalProgress::decode(out.as_slice()).unwrap();
    assert_eq!(m.outcome.as_deref(), Some("attained"));
    assert!(!m.open && m.status.is_none() && m.expected.is_none());
}
