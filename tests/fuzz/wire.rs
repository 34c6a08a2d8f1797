//! Records of the internal Kafka topics: repartition batches, changelog keys and values.

use std::borrow::Cow;

use goalpost::aggregate::{Aggregate, Delta};
use goalpost::engine::{
    Contribution, DedupeMemory, Pacing, StatusState, StatusTracker, WindowState,
};
use goalpost::model::{Decimal, Duration, Timestamp};
use goalpost::runtime::kafka::wire::{
    self, pb, BatchHeader, BatchWriter, ChangelogKey, ContributionView, WireError,
};
use proptest::prelude::*;
use prost::Message;

use crate::support::fuzz::{config, mutate, mutations, within_allowance, VARINT_DICT};

/// Any decimal rust_decimal can hold, every scale.
fn decimal() -> impl Strategy<Value = Decimal> {
    (
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<bool>(),
        0..=28u32,
    )
        .prop_map(|(lo, mid, hi, neg, scale)| Decimal::from_parts(lo, mid, hi, neg, scale))
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![".{0,12}", Just(String::new()), Just("\0\u{10ffff}".into())]
}

/// A contribution as owned parts: goal id, group, event id, time, delta.
type Parts = (String, Vec<String>, String, i64, OwnedDelta);

#[derive(Debug, Clone)]
enum OwnedDelta {
    Count,
    Number(Decimal),
    Text(String),
    Ratio(bool, bool),
}

impl OwnedDelta {
    fn borrow(&self) -> Delta<'_> {
        match self {
            OwnedDelta::Count => Delta::Count,
            OwnedDelta::Number(d) => Delta::Number(*d),
            OwnedDelta::Text(t) => Delta::Text(Cow::Borrowed(t)),
            OwnedDelta::Ratio(num, den) => Delta::Ratio {
                num: *num,
                den: *den,
            },
        }
    }
}

fn parts() -> impl Strategy<Value = Parts> {
    let delta = prop_oneof![
        Just(OwnedDelta::Count),
        decimal().prop_map(OwnedDelta::Number),
        text().prop_map(OwnedDelta::Text),
        (any::<bool>(), any::<bool>()).prop_map(|(n, d)| OwnedDelta::Ratio(n, d)),
    ];
    let time = prop_oneof![any::<i64>(), Just(i64::MIN), Just(i64::MAX), Just(-1)];
    (
        text(),
        prop::collection::vec(text(), 0..6),
        text(),
        time,
        delta,
    )
}

/// A batch as written by a router: upstream, contributions, (stream time, earliest time), idle.
type Batch = (u32, Vec<Parts>, Option<(i64, i64)>, bool);

fn batch() -> impl Strategy<Value = Batch> {
    (
        any::<u32>(),
        prop::collection::vec(parts(), 0..6),
        prop::option::of((any::<i64>(), any::<i64>())),
        any::<bool>(),
    )
}

fn encode_batch((upstream, contributions, progress, idle): &Batch) -> Vec<u8> {
    let mut w = BatchWriter::new(*upstream);
    for (goal_id, group, event_id, t, delta) in contributions {
        w.push(
            goal_id,
            &Contribution {
                goal: 0,
                group: group.iter().map(String::as_str).collect(),
                delta: delta.borrow(),
                event_id,
                event_time: Timestamp::from_nanos(*t),
            },
        );
    }
    if let Some((t, earliest)) = progress {
        w.set_stream_time(Timestamp::from_nanos(*t));
        w.set_earliest(Timestamp::from_nanos(*earliest));
    }
    if *idle {
        w.set_idle();
    }
    w.finish()
}

/// An aggregate of metric `kind` (0..7: count, sum, avg, min, max, count_distinct, ratio).
fn aggregate_of(kind: usize) -> BoxedStrategy<Aggregate> {
    match kind {
        0 => any::<u64>().prop_map(Aggregate::Count).boxed(),
        1 => decimal().prop_map(Aggregate::Sum).boxed(),
        2 => (decimal(), any::<u64>())
            .prop_map(|(sum, count)| Aggregate::Avg { sum, count })
            .boxed(),
        3 => prop::option::of(decimal()).prop_map(Aggregate::Min).boxed(),
        4 => prop::option::of(decimal()).prop_map(Aggregate::Max).boxed(),
        5 => prop::collection::hash_set(text(), 0..8)
            .prop_map(|s| Aggregate::Distinct(s.into_iter().map(Box::from).collect()))
            .boxed(),
        _ => (any::<u64>(), any::<u64>())
            .prop_map(|(num, den)| Aggregate::Ratio { num, den })
            .boxed(),
    }
}

fn tracker() -> impl Strategy<Value = StatusTracker> {
    let state = prop_oneof![
        Just(StatusState::OnTrack),
        any::<i64>().prop_map(|t| StatusState::Pending {
            since: Timestamp::from_nanos(t)
        }),
        Just(StatusState::AtRisk),
    ];
    (state, prop::option::of(any::<i64>())).prop_map(|(state, last)| StatusTracker {
        state,
        last_tick: last.map(Timestamp::from_nanos),
    })
}

/// A look-ahead status whose aggregates are of metric `kind`, with panes after tick `next`.
fn pacing(kind: usize) -> impl Strategy<Value = Pacing> {
    (
        aggregate_of(kind),
        prop::collection::btree_map(1..64u32, aggregate_of(kind), 0..4),
        prop_oneof![0..16u32, Just(u32::MAX - 64)],
        prop::option::of(any::<i64>()),
        tracker(),
    )
        .prop_map(|(before, panes, next, first, tracker)| Pacing {
            before,
            panes: panes.into_iter().map(|(k, a)| (next + k, a)).collect(),
            next,
            first: first.map(Timestamp::from_nanos),
            tracker,
        })
}

fn window_state() -> impl Strategy<Value = WindowState> {
    (0..7usize).prop_flat_map(|kind| {
        (
            any::<i64>(),
            aggregate_of(kind),
            any::<u64>(),
            any::<bool>(),
            prop::option::of(pacing(kind)),
            prop::option::of(any::<i64>()),
        )
            .prop_map(
                |(end, aggregate, reached, breached, pacing, last)| WindowState {
                    end: Timestamp::from_nanos(end),
                    aggregate,
                    reached,
                    breached,
                    pacing: pacing.map(Box::new),
                    last_event: last.map(Timestamp::from_nanos),
                },
            )
    })
}

fn changelog_key() -> impl Strategy<Value = ChangelogKey> {
    prop_oneof![
        (text(), any::<i64>(), prop::collection::vec(text(), 0..5)).prop_map(
            |(goal_id, start, group)| ChangelogKey::Window {
                goal_id,
                start: Timestamp::from_nanos(start),
                group,
            }
        ),
        any::<u32>().prop_map(ChangelogKey::Upstream),
        Just(ChangelogKey::Watermark),
        any::<u32>().prop_map(ChangelogKey::RouterClock),
        (any::<u32>(), any::<u64>())
            .prop_map(|(upstream, batch)| ChangelogKey::DedupeBatch { upstream, batch }),
    ]
}

/// A changelog value of every kind restore reads, encoded.
fn changelog_value() -> impl Strategy<Value = Vec<u8>> {
    let opt_time = prop::option::of(any::<i64>());
    prop_oneof![
        window_state().prop_map(|ws| wire::window_state_to_bytes(&ws)),
        (opt_time.clone(), any::<bool>(), opt_time.clone()).prop_map(
            |(stream_time, idle, earliest)| {
                pb::UpstreamRecord {
                    stream_time,
                    idle,
                    earliest,
                }
                .encode_to_vec()
            }
        ),
        (opt_time.clone(), any::<u64>(), opt_time).prop_map(
            |(stream_time, next_batch, earliest)| {
                pb::RouterClockRecord {
                    stream_time,
                    next_batch,
                    earliest,
                }
                .encode_to_vec()
            }
        ),
        any::<i64>().prop_map(|watermark| pb::WatermarkRecord { watermark }.encode_to_vec()),
        prop::collection::vec((text(), any::<i64>()), 0..6).prop_map(|entries| {
            let (ids, times) = entries.into_iter().unzip();
            pb::DedupeBatchRecord { ids, times }.encode_to_vec()
        }),
    ]
}

/// A wire error says what was being read and why.
fn check_error(e: &WireError) {
    let text = e.to_string();
    assert!(text.len() > "invalid : ".len(), "{text:?}");
}

/// Reads `bytes` as a repartition batch through the runtime's reader, collecting its
/// contributions; an error says what and why.
fn read_batch(bytes: &[u8]) -> Result<(BatchHeader, Vec<ContributionView<'_>>), WireError> {
    let mut contributions = Vec::new();
    let header = within_allowance(bytes.len(), || {
        wire::read_batch_each(bytes, |c| contributions.push(c))
    });
    header
        .map(|header| (header, contributions))
        .inspect_err(check_error)
}

/// Decodes `bytes` as every changelog value kind; none may panic or over-allocate.
fn read_changelog_value(bytes: &[u8]) {
    within_allowance(bytes.len(), || {
        if let Err(e) = wire::window_state_from_records(bytes, |_| None) {
            check_error(&e);
        }
        let _ = pb::UpstreamRecord::decode(bytes);
        let _ = pb::RouterClockRecord::decode(bytes);
        let _ = pb::WatermarkRecord::decode(bytes);
        let _ = pb::DedupeBatchRecord::decode(bytes);
    });
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn batches_round_trip(b in batch()) {
        let bytes = encode_batch(&b);
        let (header, read) = read_batch(&bytes).expect("a written batch reads back");
        let (upstream, contributions, progress, idle) = &b;
        prop_assert_eq!(header.upstream, *upstream);
        prop_assert_eq!(header.stream_time, progress.map(|p| Timestamp::from_nanos(p.0)));
        prop_assert_eq!(header.earliest, progress.map(|p| Timestamp::from_nanos(p.1)));
        prop_assert_eq!(header.idle, *idle);
        prop_assert_eq!(header.sentinel, 0);
        prop_assert_eq!(read.len(), contributions.len());
        for (v, (goal_id, group, event_id, t, delta)) in read.iter().zip(contributions) {
            prop_assert_eq!(v.goal_id, goal_id.as_str());
            prop_assert_eq!(v.group.to_vec(), group.iter().map(String::as_str).collect::<Vec<_>>());
            prop_assert_eq!(v.event_id, event_id.as_str());
            prop_assert_eq!(v.event_time, Timestamp::from_nanos(*t));
            prop_assert_eq!(&v.delta, &delta.borrow());
            if let (Delta::Number(a), OwnedDelta::Number(b)) = (&v.delta, delta) {
                prop_assert_eq!(a.serialize(), b.serialize(), "exactly, scale and sign too");
            }
        }
    }

    #[test]
    fn mutated_batches_are_read_or_rejected(b in batch(), edits in mutations()) {
        let bytes = mutate(encode_batch(&b), &edits, VARINT_DICT);
        let _ = read_batch(&bytes);
    }

    #[test]
    fn arbitrary_bytes_are_read_or_rejected(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = read_batch(&bytes);
        read_changelog_value(&bytes);
        if let Err(e) = ChangelogKey::from_bytes(&bytes) {
            check_error(&e);
        }
    }

    #[test]
    fn window_states_round_trip(ws in window_state()) {
        let bytes = wire::window_state_to_bytes(&ws);
        prop_assert_eq!(wire::window_state_from_records(&bytes, |_| None).expect("reads back"), (ws, 0));
    }

    /// Dedupe entries split into records of at most `max_bytes` (one entry alone may exceed it)
    /// read back, in order, through the generated protobuf code restore uses.
    #[test]
    fn dedupe_batches_round_trip(
        entries in prop::collection::vec((text(), any::<i64>()), 0..40),
        max_bytes in prop_oneof![1..64usize, 64..4096usize, Just(usize::MAX)],
    ) {
        let mut memory = DedupeMemory::new(Duration::from_secs(3600));
        memory.track_changes();
        for (id, t) in &entries {
            memory.remember(id, Timestamp::from_nanos(*t));
        }
        let added = memory.take_added();
        let (mut ids, mut times) = (Vec::new(), Vec::new());
        for (bytes, latest) in wire::dedupe_batches_to_bytes(&added, max_bytes) {
            let record = within_allowance(bytes.len(), || pb::DedupeBatchRecord::decode(bytes.as_slice()))
                .expect("a written record decodes");
            prop_assert!(bytes.len() <= max_bytes || record.ids.len() == 1, "{} bytes", bytes.len());
            prop_assert_eq!(Some(latest.as_nanos()), record.times.iter().copied().max());
            ids.extend(record.ids);
            times.extend(record.times);
        }
        prop_assert_eq!(ids, added.ids().map(str::to_string).collect::<Vec<_>>());
        prop_assert_eq!(times, added.times().iter().map(|t| t.as_nanos()).collect::<Vec<_>>());
    }

    #[test]
    fn changelog_keys_round_trip(key in changelog_key()) {
        prop_assert_eq!(ChangelogKey::from_bytes(&key.to_bytes()).expect("reads back"), key);
    }

    #[test]
    fn mutated_changelog_records_are_read_or_rejected(
        key in changelog_key(),
        value in changelog_value(),
        edits in mutations(),
    ) {
        let key = mutate(key.to_bytes(), &edits, VARINT_DICT);
        let value = mutate(value, &edits, VARINT_DICT);
        if let Err(e) = within_allowance(key.len(), || ChangelogKey::from_bytes(&key)) {
            check_error(&e);
        }
        read_changelog_value(&value);
    }
}

#[test]
fn huge_lengths_and_counts_allocate_nothing_of_their_claim() {
    for claim in &VARINT_DICT[..5] {
        // A contribution (field 2), a string in it, a distinct set's value, a key's goal id.
        let batch = [&[0x12][..], claim, &[0x0a], claim, b"abc"].concat();
        assert!(read_batch(&batch).is_err());
        let inner = [&[0x0a][..], claim, b"abc"].concat();
        let batch = [&[0x12, inner.len() as u8][..], &inner].concat();
        assert!(read_batch(&batch).is_err());
        let state = [&[0x4a][..], claim, &[0x0a], claim].concat();
        read_changelog_value(&state);
        assert!(wire::window_state_from_records(&state, |_| None).is_err());
        let key = [&b"w"[..], claim, b"goal"].concat();
        assert!(ChangelogKey::from_bytes(&key).is_err());
    }
}

#[test]
fn deep_nesting_is_rejected_not_a_stack_overflow() {
    let groups = [0x0bu8].repeat(100_000);
    assert!(read_batch(&groups).is_err());
    read_changelog_value(&groups);
    // Contributions nested in contributions (field 2 inside field 2), as deep as a record allows.
    let mut nested = Vec::new();
    for _ in 0..1_000 {
        let mut outer = vec![0x12];
        prost::encoding::encode_varint(nested.len() as u64, &mut outer);
        outer.extend_from_slice(&nested);
        nested = outer;
    }
    let _ = read_batch(&nested);
}
