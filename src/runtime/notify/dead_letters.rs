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
}
