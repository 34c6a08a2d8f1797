//! Repartition batches: the hand-written code against the generated code, damage refused.

use std::borrow::Cow;

use prost::Message;
use rust_decimal::Decimal;

use crate::aggregate::Delta;
use crate::engine::Contribution;
use crate::model::Timestamp;
use crate::runtime::kafka::wire::{
    pb, read_batch_each, window_state_from_records, BatchHeader, BatchWriter, ChangelogKey,
    ContributionView, WireError,
};

/// A repartition batch read whole: its header and its contributions, in order.
fn read_batch(bytes: &[u8]) -> Result<(BatchHeader, Vec<ContributionView<'_>>), WireError> {
    let mut contributions = Vec::new();
    let header = read_batch_each(bytes, |c| contributions.push(c))?;
    Ok((header, contributions))
}

#[test]
fn garbage_never_panics_the_batch_reader() {
    // Deterministic pseudo-random bytes: every input is read or refused with a reason.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for len in 0..2_000usize {
        let bytes: Vec<u8> = (0..len % 97)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let _ = read_batch(&bytes);
        let _ = ChangelogKey::from_bytes(&bytes);
        let _ = window_state_from_records(&bytes, |_| None);
    }
}

fn contribution<'a>(
    group: &[&'a str],
    event_id: &'a str,
    t: i64,
    delta: Delta<'a>,
) -> Contribution<'a> {
    Contribution {
        goal: 0,
        group: group.iter().copied().collect(),
        delta,
        event_id,
        event_time: Timestamp::from_nanos(t),
    }
}

fn sample() -> Vec<(&'static str, Contribution<'static>)> {
    vec![
        (
            "won",
            contribution(
                &["EMEA", "Ana"],
                "ev-1",
                1_700_000_000_000_000_000,
                Delta::Count,
            ),
        ),
        (
            "revenue",
            contribution(&[], "ev-2", -5, Delta::Number(Decimal::new(-105, 1))),
        ),
        (
            "accounts",
            contribution(&["é"], "ev-3", 0, Delta::Text(Cow::Borrowed("acct-1"))),
        ),
        (
            "rate",
            contribution(
                &["x"],
                "",
                i64::MAX,
                Delta::Ratio {
                    num: true,
                    den: false,
                },
            ),
        ),
        (
            "rate",
            contribution(
                &["x"],
                "ev-5",
                i64::MIN,
                Delta::Ratio {
                    num: false,
                    den: false,
                },
            ),
        ),
    ]
}

/// The hand-written encoder and reader agree with the generated protobuf code both ways.
#[test]
fn batches_match_the_generated_protobuf_code() {
    let mut w = BatchWriter::new(7);
    for (goal, c) in sample() {
        w.push(goal, &c);
    }
    assert_eq!(w.len(), 5);
    w.set_stream_time(Timestamp::from_nanos(42));
    w.set_earliest(Timestamp::from_nanos(-3));
    w.set_idle();
    let bytes = w.finish();
    let generated = pb::RepartitionBatch::decode(bytes.as_slice()).unwrap();
    assert_eq!(generated.upstream, 7);
    assert_eq!(generated.stream_time, Some(42));
    assert_eq!(generated.earliest, Some(-3));
    assert!(generated.idle);
    assert_eq!(generated.contributions.len(), 5);
    for (record, (goal, c)) in generated.contributions.iter().zip(sample()) {
        assert_eq!(record.goal_id, goal);
        assert_eq!(
            record.group,
            c.group.iter().map(|g| g.to_string()).collect::<Vec<_>>()
        );
        assert_eq!(record.event_id, c.event_id);
        assert_eq!(record.event_time, c.event_time.as_nanos());
    }
    // And the generated encoding reads back through the borrowed reader.
    let reencoded = generated.encode_to_vec();
    let view = read_batch(&bytes).unwrap();
    let again = read_batch(&reencoded).unwrap();
    assert_eq!(view, again);
    let (header, contributions) = view;
    assert_eq!(header.upstream, 7);
    assert_eq!(header.stream_time, Some(Timestamp::from_nanos(42)));
    assert_eq!(header.earliest, Some(Timestamp::from_nanos(-3)));
    assert!(header.idle);
    for (v, (goal, c)) in contributions.iter().zip(sample()) {
        assert_eq!(v.goal_id, goal);
        assert_eq!(v.group, c.group);
        assert_eq!(v.event_id, c.event_id);
        assert_eq!(v.event_time, c.event_time);
        assert_eq!(v.delta, c.delta);
    }
    let sentinel = pb::RepartitionBatch {
        upstream: u32::MAX,
        sentinel: 99,
        ..Default::default()
    };
    let sentinel = sentinel.encode_to_vec();
    let (header, _) = read_batch(&sentinel).unwrap();
    assert_eq!((header.upstream, header.sentinel), (u32::MAX, 99));
}

/// A batch of an older version, without the earliest time, reads with it unknown.
#[test]
fn batches_without_the_earliest_time_read_it_as_unknown() {
    let old = pb::RepartitionBatch {
        upstream: 2,
        stream_time: Some(42),
        ..Default::default()
    };
    let (header, _) = read_batch(&old.encode_to_vec()).unwrap();
    assert_eq!(header.stream_time, Some(Timestamp::from_nanos(42)));
    assert_eq!(header.earliest, None);
}

#[test]
fn damaged_batches_are_errors_not_panics() {
    let mut w = BatchWriter::new(1);
    w.push("won", &sample()[0].1);
    let bytes = w.finish();
    for cut in 0..bytes.len() {
        // Every strict prefix either fails or reads fewer fields; never panics.
        let _ = read_batch(&bytes[..cut]);
    }
    assert!(read_batch(&bytes[..bytes.len() - 1]).is_err());
    // A contribution without a delta is refused.
    let bad = pb::RepartitionBatch {
        upstream: 1,
        contributions: vec![pb::ContributionRecord {
            goal_id: "won".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    assert!(read_batch(&bad.encode_to_vec()).is_err());
}
