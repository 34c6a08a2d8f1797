//! The notify dead-letter topic: events a sink gave up on, and attainment records that could not
//! be read. What goes there is pure ([`DeadLetter`]); [`super::output::Output`] produces it.

use super::sink::GivenUp;

/// `goalpost.reason` of an event a sink gave up on.
pub const REASON_GAVE_UP: &str = "notify_gave_up";
/// `goalpost.reason` of an attainment record that could not be decoded.
pub const REASON_UNREADABLE: &str = "notify_unreadable";

/// One dead-letter record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The record key.
    pub key: Option<Vec<u8>>,
    /// The record value: the event JSON, or the unreadable record's bytes.
    pub value: Vec<u8>,
    /// Headers, in order.
    pub headers: Vec<(&'static str, String)>,
}

/// The dead letter of an event `sink` gave up on; `topic` is the attainment topic.
pub fn gave_up(sink: &str, topic: &str, g: &GivenUp) -> DeadLetter {
    let d = &g.delivery;
    DeadLetter {
        key: Some(d.attainment.attainment_id.clone().into_bytes()),
        value: d.json.clone(),
        headers: vec![
            ("goalpost.reason", REASON_GAVE_UP.into()),
            ("goalpost.sink", sink.into()),
            ("goalpost.detail", g.last_error.clone()),
            ("goalpost.attempts", g.attempts.to_string()),
            ("goalpost.source.topic", topic.into()),
            ("goalpost.source.partition", d.partition.to_string()),
            ("goalpost.source.offset", d.offset.to_string()),
            ("goalpost.attainment_id", d.attainment.attainment_id.clone()),
        ],
    }
}

/// The dead letter of an attainment record that could not be decoded.
pub fn unreadable(
    topic: &str,
    partition: i32,
    offset: i64,
    key: Option<&[u8]>,
    value: &[u8],
    detail: &str,
) -> DeadLetter {
    DeadLetter {
        key: key.map(<[u8]>::to_vec),
        value: value.to_vec(),
        headers: vec![
            ("goalpost.reason", REASON_UNREADABLE.into()),
            ("goalpost.detail", detail.into()),
            ("goalpost.source.topic", topic.into()),
            ("goalpost.source.partition", partition.to_string()),
            ("goalpost.source.offset", offset.to_string()),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_records_keep_their_bytes_and_origin() {
        let d = unreadable("t", 2, 41, Some(b"k"), b"\x00x", "invalid_json: eof");
        assert_eq!(d.value, b"\x00x");
        assert_eq!(d.key.as_deref(), Some(&b"k"[..]));
        assert!(d
            .headers
            .contains(&("goalpost.reason", "notify_unreadable".into())));
        assert!(d.headers.contains(&("goalpost.source.offset", "41".into())));
    }

    #[test]
    fn given_up_events_carry_sink_error_attempts_and_origin() {
        use crate::codec::{decode_attainment, Format};
        use crate::runtime::notify::Delivery;
        let json = br#"{"attainment_id":"a1","goal_id":"g","kind":"final","group":{},"window_start":"2026-01-01T00:00:00Z","window_end":"2026-01-02T00:00:00Z","value":1,"target":1,"progress":1,"outcome":"attained","event_time":"2026-01-02T00:00:00Z"}"#;
        let g = GivenUp {
            delivery: Delivery {
                attainment: decode_attainment(Format::Json, json).unwrap(),
                json: json.to_vec(),
                partition: 1,
                offset: 9,
            },
            attempts: 10,
            last_error: "HTTP 503".into(),
        };
        let d = gave_up("webhook:crm", "goal-attainments", &g);
        assert_eq!(d.value, json.to_vec());
        assert_eq!(d.key.as_deref(), Some(&b"a1"[..]));
        let want: Vec<(&str, String)> = vec![
            ("goalpost.reason", "notify_gave_up".into()),
            ("goalpost.sink", "webhook:crm".into()),
            ("goalpost.detail", "HTTP 503".into()),
            ("goalpost.attempts", "10".into()),
            ("goalpost.source.topic", "goal-attainments".into()),
            ("goalpost.source.partition", "1".into()),
            ("goalpost.source.offset", "9".into()),
            ("goalpost.attainment_id", "a1".into()),
        ];
        assert_eq!(d.headers, want);
    }
}
