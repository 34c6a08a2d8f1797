//! Attainment events on the wire: JSON and protobuf of every kind, and the exact bytes of the
//! kinds that existed before look-ahead status.

use std::str::FromStr;
use std::sync::Arc;

use prost::Message;

use super::json::encode_attainment as to_json;
use super::proto::{encode_attainment as to_proto, pb};
use crate::model::attainment::attainment_id;
use crate::model::{Attainment, AttainmentKind, Decimal, Outcome, Timestamp, Window};

fn ts(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap()
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// An event of `kind` for region East in January 2026 (UTC), value 62500.00 of 250000.
fn event(kind: AttainmentKind) -> Attainment {
    let group = vec![(Arc::from("region"), "East".to_string())];
    let window = Window {
        start: ts("2026-01-01T00:00:00Z"),
        end: ts("2026-02-01T00:00:00Z"),
    };
    Attainment {
        attainment_id: attainment_id("revenue", &group, &window, kind, None, None),
        goal_id: Arc::from("revenue"),
        kind,
        group,
        window,
        value: Some(dec("62500.00")),
        target: dec("250000"),
        progress: Some(dec("0.25")),
        milestone: None,
        outcome: None,
        triggered_by: None,
        event_time: window.end,
        expected: None,
        projected: None,
        tick: None,
    }
}

/// A look-ahead event at the tick of 2026-01-16: expected 120000.0, projected 129166.67.
fn look_ahead(kind: AttainmentKind) -> Attainment {
    let tick = ts("2026-01-16T00:00:00Z");
    let mut a = event(kind);
    a.attainment_id = attainment_id("revenue", &a.group, &a.window, kind, None, Some(tick));
    a.event_time = tick;
    a.expected = Some(dec("120000.0"));
    a.projected = Some(dec("129166.67"));
    a.tick = Some(tick);
    a
}

fn json_text(a: &Attainment) -> String {
    let mut out = Vec::new();
    to_json(a, &mut out);
    String::from_utf8(out).unwrap()
}

fn proto_message(a: &Attainment) -> pb::Attainment {
    let mut out = Vec::new();
    to_proto(a, &mut out);
    pb::Attainment::decode(&out[..]).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn at_risk_and_on_track_in_json_carry_expected_projected_and_tick_last() {
    for (kind, name) in [
        (AttainmentKind::AtRisk, "at_risk"),
        (AttainmentKind::OnTrack, "on_track"),
    ] {
        let a = look_ahead(kind);
        let want = format!(
            r#"{{"attainment_id":"{}","goal_id":"revenue","kind":"{name}","group":{{"region":"East"}},"window_start":"2026-01-01T00:00:00Z","window_end":"2026-02-01T00:00:00Z","value":62500,"target":250000,"progress":0.25,"event_time":"2026-01-16T00:00:00Z","expected":120000,"projected":129166.67,"tick":"2026-01-16T00:00:00Z"}}"#,
            a.attainment_id
        );
        assert_eq!(json_text(&a), want);
    }
}

#[test]
fn at_risk_and_on_track_round_trip_through_protobuf() {
    for kind in [AttainmentKind::AtRisk, AttainmentKind::OnTrack] {
        let a = look_ahead(kind);
        let m = proto_message(&a);
        assert_eq!(m.attainment_id, a.attainment_id);
        assert_eq!(m.kind, kind.as_str());
        assert_eq!(m.value.as_deref(), Some("62500"));
        assert_eq!(m.expected.as_deref(), Some("120000"));
        assert_eq!(m.projected.as_deref(), Some("129166.67"));
        let tick = m.tick.expect("tick is set");
        assert_eq!((tick.seconds, tick.nanos), (1_768_521_600, 0));
        assert_eq!(m.event_time, Some(tick));
        assert_eq!(dec(&m.expected.unwrap()), a.expected.unwrap());
        assert_eq!(dec(&m.projected.unwrap()), a.projected.unwrap());
    }
}

#[test]
fn without_a_projection_only_expected_and_tick_are_written() {
    let mut a = look_ahead(AttainmentKind::AtRisk);
    a.projected = None;
    let text = json_text(&a);
    assert!(
        text.ends_with(r#""expected":120000,"tick":"2026-01-16T00:00:00Z"}"#),
        "{text}"
    );
    let m = proto_message(&a);
    assert_eq!((m.expected.as_deref(), m.projected), (Some("120000"), None));
}

#[test]
fn milestones_and_finals_encode_exactly_as_before() {
    let mut milestone = event(AttainmentKind::Milestone);
    milestone.milestone = Some(dec("0.25"));
    milestone.triggered_by = Some("e15".into());
    milestone.event_time = ts("2026-01-05T12:19:07Z");
    milestone.attainment_id = "m1".into();
    let mut fin = event(AttainmentKind::Final);
    fin.outcome = Some(Outcome::Missed);
    fin.attainment_id = "f1".into();

    assert_eq!(
        json_text(&milestone),
        r#"{"attainment_id":"m1","goal_id":"revenue","kind":"milestone","group":{"region":"East"},"window_start":"2026-01-01T00:00:00Z","window_end":"2026-02-01T00:00:00Z","value":62500,"target":250000,"progress":0.25,"milestone":0.25,"triggered_by":"e15","event_time":"2026-01-05T12:19:07Z"}"#
    );
    assert_eq!(
        json_text(&fin),
        r#"{"attainment_id":"f1","goal_id":"revenue","kind":"final","group":{"region":"East"},"window_start":"2026-01-01T00:00:00Z","window_end":"2026-02-01T00:00:00Z","value":62500,"target":250000,"progress":0.25,"outcome":"missed","event_time":"2026-02-01T00:00:00Z"}"#
    );
    // Both messages end with field 13 (`event_time`, tag 0x6a): fields 14 to 16 are absent.
    let mut bytes = Vec::new();
    to_proto(&milestone, &mut bytes);
    assert_eq!(hex(&bytes), "0a026d311207726576656e75651a096d696c6573746f6e65220e0a06726567696f6e1204456173742a060880f2d6ca0632060880affacb063a05363235303042063235303030304a04302e32355204302e323562036531356a0608bbd8eeca06");
    bytes.clear();
    to_proto(&fin, &mut bytes);
    assert_eq!(hex(&bytes), "0a0266311207726576656e75651a0566696e616c220e0a06726567696f6e1204456173742a060880f2d6ca0632060880affacb063a05363235303042063235303030304a04302e32355a066d69737365646a060880affacb06");
}

#[test]
fn every_kind_decodes_back_from_json_and_protobuf() {
    use super::{decode_attainment, Format};
    let mut milestone = event(AttainmentKind::Milestone);
    milestone.milestone = Some(dec("0.25"));
    milestone.triggered_by = Some("ev-1".into());
    let mut last = event(AttainmentKind::Final);
    last.outcome = Some(Outcome::Missed);
    last.value = None;
    last.progress = None;
    let mut two_keys = event(AttainmentKind::Breached);
    two_keys
        .group
        .insert(0, (Arc::from("team"), "z \"quoted\"".into()));
    let all = [
        milestone,
        last,
        two_keys,
        look_ahead(AttainmentKind::AtRisk),
        look_ahead(AttainmentKind::OnTrack),
    ];
    for a in all {
        let mut json = Vec::new();
        to_json(&a, &mut json);
        assert_eq!(decode_attainment(Format::Json, &json).unwrap(), a);
        let mut proto = Vec::new();
        to_proto(&a, &mut proto);
        assert_eq!(decode_attainment(Format::Proto, &proto).unwrap(), a);
    }
}

#[test]
fn unreadable_attainments_say_why() {
    use super::{decode_attainment, Format, RejectReason};
    let reason = |bytes: &[u8]| decode_attainment(Format::Json, bytes).unwrap_err().reason;
    assert_eq!(reason(b"{not json"), RejectReason::InvalidJson);
    let mut json = Vec::new();
    to_json(&event(AttainmentKind::Final), &mut json);
    let text = String::from_utf8(json).unwrap();
    let wrong_kind = text.replace("\"final\"", "\"won\"");
    let err = decode_attainment(Format::Json, wrong_kind.as_bytes()).unwrap_err();
    assert_eq!(err.reason, RejectReason::WrongType);
    assert!(err.detail.contains("`won`"), "{err}");
    let bad_time = text.replace("2026-02-01T00:00:00Z", "february");
    assert_eq!(reason(bad_time.as_bytes()), RejectReason::InvalidTimestamp);
    let err = decode_attainment(Format::Proto, b"\xff\xff").unwrap_err();
    assert_eq!(err.reason, RejectReason::InvalidProto);
}
