//! What leaves the pipeline in the open transaction: attainment events to the output topic, and
//! rejected or unreadable records to the dead-letter topic.

use std::time::Instant;

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::types::RDKafkaErrorCode;

use super::roster_topic::BadRecord;
use super::telemetry::Counters;
use super::txn::Txn;
use super::warn_limit::WarnLimit;
use super::wire::WireError;
use crate::codec::{json, proto, DecodeError, Format};
use crate::model::{Attainment, AttainmentKind};
use crate::serve::hub::Committed;

/// The most bytes of an error's detail kept in a dead letter's `goalpost.detail` header: a few
/// hundred bytes of a quoted bad value say enough.
const DETAIL_MAX: usize = 512;
/// The `goalpost.reason` of a dead-lettered repartition or changelog record.
const INTERNAL_REASON: &str = "unreadable_internal_record";
/// The `goalpost.reason` of a dead-lettered roster topic record.
const ROSTER_REASON: &str = "roster_record";

/// A record's origin: (topic, partition, offset).
pub type Source<'a> = (&'a str, i32, i64);

/// An attainment event of the open transaction, for the query hub: (goal index, kind, event).
pub type PendingAttainment = (usize, AttainmentKind, Committed);

/// The output topic.
pub struct Output {
    topic: String,
    format: Format,
    buf: Vec<u8>,
    /// Attainment events of the open transaction, published to the hub once it commits; `None`
    /// without a hub.
    pub pending: Option<Vec<PendingAttainment>>,
}

impl Output {
    /// Attainment events go to `topic` in `format`; kept for a hub when `serving`.
    pub fn new(topic: String, format: Format, serving: bool) -> Self {
        Output {
            topic,
            format,
            buf: Vec::new(),
            pending: serving.then(Vec::new),
        }
    }

    /// Sends `attainments` (left empty) to the output topic, keyed by goal and group values.
    pub fn emit(
        &mut self,
        attainments: &mut Vec<Attainment>,
        goal_index: &hashbrown::HashMap<String, usize>,
        txn: &mut Txn,
        counts: &mut Counters,
    ) {
        for a in attainments.drain(..) {
            self.buf.clear();
            match self.format {
                Format::Json => json::encode_attainment(&a, &mut self.buf),
                Format::Proto => proto::encode_attainment(&a, &mut self.buf),
            }
            if let Some(pending) = &mut self.pending {
                let committed = match self.format {
                    Format::Json => Committed::from_json(&a, self.buf.clone()),
                    Format::Proto => Committed::of(&a),
                };
                let goal = goal_index.get(&*a.goal_id).copied().unwrap_or(0);
                pending.push((goal, a.kind, committed));
            }
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "content-type",
                    value: Some(content_type(self.format)),
                })
                .insert(Header {
                    key: "goalpost.attainment_id",
                    value: Some(a.attainment_id.as_str()),
                });
            let key = attainment_key(&a);
            txn.send(
                &self.topic,
                None,
                key.as_bytes(),
                Some(&self.buf),
                Some(headers),
            );
            counts.report.attainments += 1;
        }
    }
}

/// An attainment event's record key: its goal id and group values, separated by `|`.
fn attainment_key(a: &Attainment) -> String {
    let mut key = a.goal_id.to_string();
    for (_, v) in &a.group {
        key.push('|');
        key.push_str(v);
    }
    key
}

/// The `content-type` header of a record in `format`.
pub(super) fn content_type(format: Format) -> &'static str {
    match format {
        Format::Json => "application/json",
        Format::Proto => "application/x-protobuf",
    }
}

/// The dead-letter topic.
pub struct DeadLetters {
    /// The dead-letter topic.
    pub topic: String,
    /// The changelog topic, to tell its unreadable records from the repartition topic's.
    changelog: String,
}

impl DeadLetters {
    /// Dead letters go to `topic`.
    pub fn new(topic: String, changelog: String) -> Self {
        DeadLetters { topic, changelog }
    }

    /// A rejected input record: counted, and dead-lettered with its reason.
    pub fn reject(
        &self,
        txn: &mut Txn,
        counts: &mut Counters,
        source: Source<'_>,
        record: (&[u8], &[u8]),
        error: &DecodeError,
    ) {
        counts.rejected(error.reason);
        let detail = truncate_str(&error.detail, DETAIL_MAX);
        self.send(txn, source, record, error.reason.as_str(), detail);
    }

    /// Skips a record of an internal topic that cannot be read: counted, dead-lettered with its
    /// origin in the open transaction, and logged at most once per partition every interval of
    /// `warnings`.
    pub fn skip_internal(
        &self,
        txn: &mut Txn,
        (counts, warnings): (&mut Counters, &mut WarnLimit),
        source: Source<'_>,
        record: (&[u8], &[u8]),
        error: &WireError,
    ) {
        let (topic, partition, offset) = source;
        counts.report.internal_skipped += 1;
        let detail = error.to_string();
        let detail = truncate_str(&detail, DETAIL_MAX);
        self.send(txn, source, record, INTERNAL_REASON, detail);
        let kind = if topic == self.changelog {
            "unreadable changelog record"
        } else {
            "unreadable repartition record"
        };
        if let Some(held_back) = warnings.allow(kind, partition, Instant::now()) {
            tracing::warn!(
                topic,
                partition,
                offset,
                error = %error,
                held_back,
                "{kind}: skipped and dead-lettered"
            );
        }
    }

    /// A refused roster topic record: counted, and dead-lettered with its origin and why.
    pub fn roster_record(&self, txn: &mut Txn, counts: &mut Counters, bad: &BadRecord) {
        counts.report.roster_rejected += 1;
        let source = (bad.topic.as_str(), bad.partition, bad.offset);
        let detail = truncate_str(&bad.detail, DETAIL_MAX);
        let record = (&bad.key[..], &bad.value[..]);
        self.send(txn, source, record, ROSTER_REASON, detail);
    }

    /// Sends a record (key, payload) read from `source` to the dead-letter topic in the open
    /// transaction, with its reason, detail and origin in headers. A record the producer finds
    /// too large (headers added) keeps its first half, quarter, … (then so does its key), so
    /// that it does not stop the stream.
    fn send(
        &self,
        txn: &mut Txn,
        source: Source<'_>,
        (key, payload): (&[u8], &[u8]),
        reason: &str,
        detail: &str,
    ) {
        let (mut keep, mut keep_key) = (payload.len(), key.len());
        let mut truncated = None;
        loop {
            let headers = dead_letter_headers(source, reason, detail, truncated);
            let sent = txn.try_send(
                &self.topic,
                None,
                &key[..keep_key],
                Some(&payload[..keep]),
                Some(headers),
            );
            match sent {
                Ok(()) => return,
                Err(KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)) => {
                    let Some(smaller) = halved(keep, keep_key) else {
                        let e =
                            KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
                        return txn.note_send_failed(&self.topic, e);
                    };
                    (keep, keep_key) = smaller;
                    truncated = Some(payload.len());
                }
                Err(err) => return txn.note_send_failed(&self.topic, err),
            }
        }
    }
}

/// The next (payload, key) lengths to try for a dead letter too large: the payload halved, then,
/// once it is empty, the key; `None` when both are empty.
fn halved(keep: usize, keep_key: usize) -> Option<(usize, usize)> {
    match (keep, keep_key) {
        (0, 0) => None,
        (0, k) => Some((0, k / 2)),
        (p, k) => Some((p / 2, k)),
    }
}

fn dead_letter_headers(
    (topic, partition, offset): Source<'_>,
    reason: &str,
    detail: &str,
    truncated_from: Option<usize>,
) -> OwnedHeaders {
    let h = OwnedHeaders::new()
        .insert(Header {
            key: "goalpost.reason",
            value: Some(reason),
        })
        .insert(Header {
            key: "goalpost.detail",
            value: Some(detail),
        })
        .insert(Header {
            key: "goalpost.source.topic",
            value: Some(topic),
        })
        .insert(Header {
            key: "goalpost.source.partition",
            value: Some(&partition.to_string()),
        })
        .insert(Header {
            key: "goalpost.source.offset",
            value: Some(&offset.to_string()),
        });
    match truncated_from {
        Some(len) => h.insert(Header {
            key: "goalpost.truncated_from",
            value: Some(&len.to_string()),
        }),
        None => h,
    }
}

/// `s` cut to at most `max` bytes, at a character boundary.
pub fn truncate_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use rdkafka::message::Headers;

    use super::*;

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate_str("short", 512), "short");
        assert_eq!(truncate_str("abcdef", 3), "abc");
        // "é" is two bytes: cutting inside it keeps what precedes it.
        assert_eq!(truncate_str("aéb", 2), "a");
        assert_eq!(truncate_str("aéb", 3), "aé");
    }

    #[test]
    fn a_dead_letter_too_large_loses_its_payload_first_then_its_key() {
        assert_eq!(halved(100, 8), Some((50, 8)));
        assert_eq!(halved(1, 8), Some((0, 8)));
        assert_eq!(halved(0, 8), Some((0, 4)));
        assert_eq!(halved(0, 1), Some((0, 0)));
        assert_eq!(halved(0, 0), None);
    }

    #[test]
    fn dead_letter_headers_name_the_origin_and_a_truncation() {
        let h = dead_letter_headers(("in", 3, 42), "invalid_json", "bad", Some(9));
        let pairs: Vec<(String, String)> = h
            .iter()
            .map(|h| {
                let v = String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned();
                (h.key.to_string(), v)
            })
            .collect();
        let names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "goalpost.reason",
                "goalpost.detail",
                "goalpost.source.topic",
                "goalpost.source.partition",
                "goalpost.source.offset",
                "goalpost.truncated_from"
            ]
        );
        assert_eq!(pairs[3].1, "3");
        assert_eq!(pairs[4].1, "42");
        assert_eq!(pairs[5].1, "9");
    }

    #[test]
    fn content_types_name_the_format() {
        assert_eq!(content_type(Format::Json), "application/json");
        assert_eq!(content_type(Format::Proto), "application/x-protobuf");
    }
}
