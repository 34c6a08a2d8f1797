//! Decoding and encoding of events and attainment events, shared by every runtime.

mod attainment;
pub mod future;
pub mod json;
pub mod proto;

#[cfg(test)]
mod attainment_tests;
#[cfg(test)]
mod progress_tests;

use std::fmt;

use thiserror::Error;

use crate::limits::Limits;

pub use attainment::decode_attainment;

/// Wire formats for events.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// One JSON object per line (files) or per record (Kafka).
    #[default]
    Json,
    /// Protobuf `goalpost.v1.SalesEvent`; length-delimited in files.
    Proto,
}

impl Format {
    /// The name used on the command line and in configs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Proto => "proto",
        }
    }

    /// Parses a format name, or a `content-type` header value.
    pub fn from_name(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" | "application/json" | "application/x-ndjson" => Some(Format::Json),
            "proto"
            | "protobuf"
            | "application/protobuf"
            | "application/x-protobuf"
            | "application/vnd.google.protobuf" => Some(Format::Proto),
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an input record was rejected. The names are stable: they appear in dead-letter records,
/// summaries and metrics.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// Not JSON (syntax error, truncated, or not UTF-8).
    InvalidJson,
    /// Not a decodable protobuf message, or a broken length prefix.
    InvalidProto,
    /// Valid JSON, but a field has the wrong type (or the record is not an object).
    WrongType,
    /// A required field (`event_id`, `event_type`, `occurred_at`) is absent.
    MissingField,
    /// A required field is an empty string.
    EmptyField,
    /// `occurred_at` is not RFC 3339 with an offset, or out of range.
    InvalidTimestamp,
    /// `amount` is not a finite decimal within range.
    InvalidAmount,
    /// The record exceeds the size limit.
    Oversized,
    /// `occurred_at` lies more than `max_future` ahead of the wall clock (or of stream time); see
    /// [`future`].
    FutureTimestamp,
}

impl RejectReason {
    /// Every reason, in summary order.
    pub const ALL: [RejectReason; 9] = [
        RejectReason::InvalidJson,
        RejectReason::InvalidProto,
        RejectReason::WrongType,
        RejectReason::MissingField,
        RejectReason::EmptyField,
        RejectReason::InvalidTimestamp,
        RejectReason::InvalidAmount,
        RejectReason::Oversized,
        RejectReason::FutureTimestamp,
    ];

    /// The stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            RejectReason::InvalidJson => "invalid_json",
            RejectReason::InvalidProto => "invalid_proto",
            RejectReason::WrongType => "wrong_type",
            RejectReason::MissingField => "missing_field",
            RejectReason::EmptyField => "empty_field",
            RejectReason::InvalidTimestamp => "invalid_timestamp",
            RejectReason::InvalidAmount => "invalid_amount",
            RejectReason::Oversized => "oversized",
            RejectReason::FutureTimestamp => "future_timestamp",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected record: the reason and a message naming the offending value.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{reason}: {detail}")]
pub struct DecodeError {
    /// The stable reason.
    pub reason: RejectReason,
    /// What exactly was wrong.
    pub detail: String,
}

impl DecodeError {
    pub(crate) fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        DecodeError {
            reason,
            detail: detail.into(),
        }
    }
}

/// Decodes one record in `format` into `ev` (cleared first). A record over
/// `limits.record_bytes`, or an `event_id` over `limits.event_id_bytes`, is `oversized`.
pub fn decode_event(
    format: Format,
    bytes: &[u8],
    ev: &mut crate::model::SalesEvent,
    limits: &Limits,
) -> Result<(), DecodeError> {
    let max = limits.record_bytes;
    if bytes.len() > max {
        return Err(DecodeError::new(
            RejectReason::Oversized,
            format!(
                "record of {} bytes exceeds the limit of {max} bytes",
                bytes.len()
            ),
        ));
    }
    match format {
        Format::Json => json::decode_event(bytes, ev),
        Format::Proto => proto::decode_event(bytes, ev),
    }?;
    let max = limits.event_id_bytes;
    if ev.event_id.len() > max {
        return Err(DecodeError::new(
            RejectReason::Oversized,
            format!(
                "event_id of {} bytes exceeds the limit of {max} bytes",
                ev.event_id.len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SalesEvent;

    #[test]
    fn an_event_id_over_the_limit_is_oversized_in_both_formats() {
        let max = Limits::DEFAULT.event_id_bytes;
        for (len, ok) in [(max, true), (max + 1, false)] {
            let ev = SalesEvent {
                event_id: "e".repeat(len),
                event_type: "deal_won".into(),
                occurred_at: crate::model::Timestamp::parse_rfc3339("2026-01-05T10:00:00Z")
                    .unwrap(),
                ..SalesEvent::default()
            };
            let mut text = Vec::new();
            json::encode_event(&ev, &mut text);
            let mut bytes = Vec::new();
            proto::encode_event(&ev, &mut bytes);
            for (format, record) in [(Format::Json, &text), (Format::Proto, &bytes)] {
                let mut out = SalesEvent::default();
                let result = decode_event(format, record, &mut out, &Limits::DEFAULT);
                if ok {
                    assert_eq!(result, Ok(()), "{format}");
                    assert_eq!(out.event_id.len(), len);
                } else {
                    let e = result.unwrap_err();
                    assert_eq!(e.reason, RejectReason::Oversized, "{format}");
                    assert_eq!(
                        e.detail,
                        format!("event_id of {len} bytes exceeds the limit of 1024 bytes")
                    );
                }
            }
        }
    }

    #[test]
    fn the_record_limit_is_the_one_passed() {
        let ev = SalesEvent {
            event_id: "e1".into(),
            event_type: "deal_won".into(),
            occurred_at: crate::model::Timestamp::parse_rfc3339("2026-01-05T10:00:00Z").unwrap(),
            attributes: vec![("pad".into(), "x".repeat(2 << 20))],
            ..SalesEvent::default()
        };
        let mut text = Vec::new();
        json::encode_event(&ev, &mut text);
        let mut out = SalesEvent::default();
        let e = decode_event(Format::Json, &text, &mut out, &Limits::DEFAULT).unwrap_err();
        assert_eq!(e.reason, RejectReason::Oversized);
        let roomy = Limits::with_record_bytes(text.len());
        assert_eq!(decode_event(Format::Json, &text, &mut out, &roomy), Ok(()));
        assert_eq!(out, ev);
    }
}
