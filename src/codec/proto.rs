//! Protobuf events and attainment events (`proto/goalpost/v1/events.proto`).

use std::io::{self, BufRead};

use prost::Message;

use super::{DecodeError, RejectReason};
use crate::model::money::parse_amount;
use crate::model::{Attainment, GoalProgress, SalesEvent, StringField, Timestamp};

/// Generated protobuf types.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/goalpost.v1.rs"));
}

fn to_pb_ts(t: Timestamp) -> prost_types::Timestamp {
    let n = t.as_nanos();
    prost_types::Timestamp {
        seconds: n.div_euclid(1_000_000_000),
        nanos: n.rem_euclid(1_000_000_000) as i32,
    }
}

pub(super) fn from_pb_ts(t: &prost_types::Timestamp) -> Option<Timestamp> {
    if !(0..1_000_000_000).contains(&t.nanos) {
        return None;
    }
    t.seconds
        .checked_mul(1_000_000_000)
        .and_then(|s| s.checked_add(i64::from(t.nanos)))
        .map(Timestamp::from_nanos)
}

/// Decodes one protobuf `SalesEvent` into `ev` (cleared first), with the same rules as JSON.
pub fn decode_event(bytes: &[u8], ev: &mut SalesEvent) -> Result<(), DecodeError> {
    let m = pb::SalesEvent::decode(bytes).map_err(|e| {
        DecodeError::new(
            RejectReason::InvalidProto,
            format!("not a goalpost.v1.SalesEvent: {e}"),
        )
    })?;
    for (name, value) in [("event_id", &m.event_id), ("event_type", &m.event_type)] {
        if value.is_empty() {
            return Err(DecodeError::new(
                RejectReason::MissingField,
                format!("required field `{name}` is missing or empty"),
            ));
        }
    }
    let occurred_at = match &m.occurred_at {
        None => {
            return Err(DecodeError::new(
                RejectReason::MissingField,
                "required field `occurred_at` is missing",
            ))
        }
        Some(t) => from_pb_ts(t).ok_or_else(|| {
            DecodeError::new(
                RejectReason::InvalidTimestamp,
                format!("occurred_at {}s {}ns is out of range", t.seconds, t.nanos),
            )
        })?,
    };
    let amount =
        match &m.amount {
            None => None,
            Some(a) => Some(parse_amount(a).map_err(|e| {
                DecodeError::new(RejectReason::InvalidAmount, format!("amount: {e}"))
            })?),
        };
    ev.clear();
    ev.event_id = m.event_id;
    ev.event_type = m.event_type;
    ev.occurred_at = occurred_at;
    ev.amount = amount;
    let strings = [
        m.rep_id,
        m.team_id,
        m.region,
        m.account_id,
        m.opportunity_id,
        m.lead_id,
        m.product,
        m.stage,
        m.previous_stage,
        m.currency,
    ];
    for (field, value) in StringField::ALL.into_iter().zip(strings) {
        ev.set_string(field, value.unwrap_or_default());
    }
    ev.attributes.extend(m.attributes);
    Ok(())
}

/// Encodes an event as a protobuf message (not length-delimited).
pub fn encode_event(ev: &SalesEvent, out: &mut Vec<u8>) {
    let s = |f: StringField| ev.string(f).map(str::to_string);
    let m = pb::SalesEvent {
        event_id: ev.event_id.clone(),
        event_type: ev.event_type.clone(),
        occurred_at: Some(to_pb_ts(ev.occurred_at)),
        rep_id: s(StringField::RepId),
        team_id: s(StringField::TeamId),
        region: s(StringField::Region),
        account_id: s(StringField::AccountId),
        opportunity_id: s(StringField::OpportunityId),
        lead_id: s(StringField::LeadId),
        product: s(StringField::Product),
        stage: s(StringField::Stage),
        previous_stage: s(StringField::PreviousStage),
        currency: s(StringField::Currency),
        amount: ev.amount.map(|a| a.to_string()),
        attributes: ev.attributes.iter().cloned().collect(),
    };
    m.encode(out).expect("a Vec grows as needed");
}

/// Encodes an attainment event as a protobuf message (not length-delimited).
pub fn encode_attainment(a: &Attainment, out: &mut Vec<u8>) {
    let d = |v: Option<rust_decimal::Decimal>| v.map(|v| v.normalize().to_string());
    let m = pb::Attainment {
        attainment_id: a.attainment_id.clone(),
        goal_id: a.goal_id.to_string(),
        kind: a.kind.as_str().to_string(),
        group: a
            .group
            .iter()
            .map(|(k, v)| pb::GroupEntry {
                key: k.to_string(),
                value: v.clone(),
            })
            .collect(),
        window_start: Some(to_pb_ts(a.window.start)),
        window_end: Some(to_pb_ts(a.window.end)),
        value: d(a.value),
        target: a.target.normalize().to_string(),
        progress: d(a.progress),
        milestone: d(a.milestone),
        outcome: a.outcome.map(|o| o.as_str().to_string()),
        triggered_by: a.triggered_by.clone(),
        event_time: Some(to_pb_ts(a.event_time)),
        expected: d(a.expected),
        projected: d(a.projected),
        tick: a.tick.map(to_pb_ts),
    };
    m.encode(out).expect("a Vec grows as needed");
}

/// Encodes a progress record as `goalpost.v1.GoalProgress`.
pub fn encode_progress(p: &GoalProgress, out: &mut Vec<u8>) {
    let d = |v: Option<rust_decimal::Decimal>| v.map(|v| v.normalize().to_string());
    let status = p.status.as_ref();
    let m = pb::GoalProgress {
        goal_id: p.goal_id.to_string(),
        group: p
            .group
            .iter()
            .map(|(k, v)| pb::GroupEntry {
                key: k.to_string(),
                value: v.clone(),
            })
            .collect(),
        window_start: Some(to_pb_ts(p.window.start)),
        window_end: Some(to_pb_ts(p.window.end)),
        value: d(p.value),
        target: p.target.normalize().to_string(),
        progress: d(p.progress),
        direction: p.direction.to_string(),
        milestones_reached: p
            .milestones_reached
            .iter()
            .map(|m| m.normalize().to_string())
            .collect(),
        breached: p.breached,
        status: status.map(|s| s.status.to_string()),
        status_tick: status.and_then(|s| s.tick).map(to_pb_ts),
        expected: status.and_then(|s| d(s.expected)),
        projected: status.and_then(|s| d(s.projected)),
        open: p.open,
        outcome: p.outcome.map(|o| o.as_str().to_string()),
        last_event_time: p.last_event_time.map(to_pb_ts),
        updated_at: p.updated_at.map(to_pb_ts),
    };
    m.encode(out).expect("a Vec grows as needed");
}

/// Writes a varint length prefix.
pub fn write_length_prefix(len: usize, out: &mut Vec<u8>) {
    prost::encoding::encode_varint(len as u64, out);
}

/// One frame of a length-delimited stream.
#[derive(Debug)]
pub enum Frame {
    /// A complete message body.
    Message(Vec<u8>),
    /// A frame whose prefix or body is broken; the stream cannot be read past it.
    Broken(DecodeError, Vec<u8>),
    /// A frame longer than the limit, skipped whole.
    Oversized(usize),
}

/// Reads varint-length-prefixed messages from a byte stream.
pub struct FrameReader<R> {
    inner: R,
    max_frame_bytes: usize,
    done: bool,
}

impl<R: BufRead> FrameReader<R> {
    /// Wraps a buffered reader; frames longer than `max_frame_bytes` are skipped as
    /// [`Frame::Oversized`] without being held in memory.
    pub fn new(inner: R, max_frame_bytes: usize) -> Self {
        FrameReader {
            inner,
            max_frame_bytes,
            done: false,
        }
    }

    /// The next frame; `None` at a clean end of input.
    pub fn next_frame(&mut self) -> io::Result<Option<Frame>> {
        if self.done {
            return Ok(None);
        }
        let mut len: u64 = 0;
        let mut prefix = Vec::new();
        for shift in (0..70).step_by(7) {
            let mut byte = [0u8; 1];
            if self.inner.read(&mut byte)? == 0 {
                self.done = true;
                if prefix.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(Frame::Broken(
                    DecodeError::new(
                        RejectReason::InvalidProto,
                        "input ends inside a length prefix",
                    ),
                    prefix,
                )));
            }
            prefix.push(byte[0]);
            if shift == 63 && byte[0] > 1 {
                self.done = true;
                return Ok(Some(Frame::Broken(
                    DecodeError::new(
                        RejectReason::InvalidProto,
                        "length prefix is not a valid varint",
                    ),
                    prefix,
                )));
            }
            len |= u64::from(byte[0] & 0x7f) << shift;
            if byte[0] & 0x80 == 0 {
                break;
            }
        }
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > self.max_frame_bytes {
            let mut limited = io::Read::take(&mut self.inner, len as u64);
            let skipped = io::copy(&mut limited, &mut io::sink())?;
            if (skipped as usize) < len {
                self.done = true;
            }
            return Ok(Some(Frame::Oversized(len)));
        }
        let mut body = vec![0u8; len];
        let mut filled = 0;
        while filled < len {
            let n = self.inner.read(&mut body[filled..])?;
            if n == 0 {
                self.done = true;
                body.truncate(filled);
                return Ok(Some(Frame::Broken(
                    DecodeError::new(
                        RejectReason::InvalidProto,
                        format!("input ends inside a message: {filled} of {len} bytes"),
                    ),
                    body,
                )));
            }
            filled += n;
        }
        Ok(Some(Frame::Message(body)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::json;

    #[test]
    fn proto_and_json_decode_to_the_same_event() {
        let text = r#"{"event_id":"e1","event_type":"deal_won","occurred_at":"2017-03-01T14:00:00.5Z","region":"East","amount":4514.00,"attributes":{"a":"1"}}"#;
        let mut from_json = SalesEvent::default();
        json::decode_event(text.as_bytes(), &mut from_json).unwrap();
        let mut bytes = Vec::new();
        encode_event(&from_json, &mut bytes);
        let mut from_proto = SalesEvent::default();
        decode_event(&bytes, &mut from_proto).unwrap();
        assert_eq!(from_json, from_proto);
    }

    #[test]
    fn frames_round_trip_and_breaks_are_reported() {
        let mut stream = Vec::new();
        for body in [&b"abc"[..], &b""[..], &[7u8; 300][..]] {
            write_length_prefix(body.len(), &mut stream);
            stream.extend_from_slice(body);
        }
        stream.extend_from_slice(&[5, 1, 2]); // truncated frame
        let max = crate::limits::Limits::DEFAULT.record_bytes;
        let mut r = FrameReader::new(&stream[..], max);
        let mut lens = Vec::new();
        while let Some(f) = r.next_frame().unwrap() {
            match f {
                Frame::Message(b) => lens.push(b.len()),
                Frame::Broken(e, _) => {
                    assert_eq!(e.reason, RejectReason::InvalidProto);
                    lens.push(usize::MAX);
                }
                Frame::Oversized(_) => unreachable!(),
            }
        }
        assert_eq!(lens, vec![3, 0, 300, usize::MAX]);
    }

    #[test]
    fn garbage_is_invalid_proto() {
        let mut ev = SalesEvent::default();
        let err = decode_event(&[0xff, 0xff, 0xff], &mut ev).unwrap_err();
        assert_eq!(err.reason, RejectReason::InvalidProto);
        let err = decode_event(&[], &mut ev).unwrap_err();
        assert_eq!(err.reason, RejectReason::MissingField);
    }
}
