//! Reading a changelog partition back into state.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration as StdDuration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use prost::Message as _;

use super::wire::{self, pb, ChangelogKey, WireError};
use super::RunError;
use crate::engine::WindowState;
use crate::model::Timestamp;
use crate::runtime::progress::{Reporter, Unit};

/// Client context of the restore consumer: reaching the end of the partition is how a restore
/// ends, not an error worth logging.
struct RestoreContext;

impl rdkafka::ClientContext for RestoreContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let eof = matches!(
            error,
            KafkaError::PartitionEOF(_)
                | KafkaError::MessageConsumption(RDKafkaErrorCode::PartitionEOF)
        ) || reason.contains("reached end of partition");
        if !eof {
            tracing::warn!(error = %error, reason, "restore consumer error");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for RestoreContext {}

/// How long a restore waits for transactions open on the changelog (longer than goalpost's
/// transaction timeout of 60 s, after which the broker aborts them).
const STABLE_WAIT: StdDuration = StdDuration::from_secs(90);

/// The latest value of a changelog key, and its offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Latest {
    /// The record's offset.
    pub offset: i64,
    /// Its value.
    pub value: Vec<u8>,
}

/// The latest value of every key of a changelog partition (tombstoned keys removed).
pub type PartitionState = HashMap<Vec<u8>, Latest>;

/// Reads changelog partitions back, all at once with one consumer: the latest value of every key
/// of each partition asked for.
pub fn read_partitions(
    base: &ClientConfig,
    topic: &str,
    partitions: &[i32],
) -> Result<BTreeMap<i32, PartitionState>, RunError> {
    let mut states: BTreeMap<i32, PartitionState> =
        partitions.iter().map(|&p| (p, HashMap::new())).collect();
    if partitions.is_empty() {
        return Ok(states);
    }
    let mut cfg = base.clone();
    cfg.set("group.id", format!("{topic}-restore"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        // The end of the partition is signalled after a fetch that waits up to this long.
        .set("fetch.wait.max.ms", "10");
    let consumer: BaseConsumer<RestoreContext> = cfg
        .create_with_context(RestoreContext)
        .map_err(|e| RunError::kafka("create the restore consumer", e))?;
    // If this fails (e.g. metadata lagging after a broker restart), the worker retries the whole
    // rebuild every second without processing these partitions.
    let mut ranges: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
    for &p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, StdDuration::from_secs(10))
            .map_err(|e| RunError::kafka("read changelog offsets", e))?;
        if high > low {
            ranges.insert(p, (low, high));
        }
    }
    if ranges.is_empty() {
        close_in_background(consumer);
        return Ok(states);
    }
    let mut tpl = TopicPartitionList::new();
    for &p in ranges.keys() {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .map_err(|e| RunError::kafka("assign the changelog partitions", e))?;
    }
    consumer
        .assign(&tpl)
        .map_err(|e| RunError::kafka("assign the changelog partitions", e))?;
    let total: i64 = ranges.values().map(|(low, high)| high - low).sum();
    let started = Instant::now();
    let mut records: u64 = 0;
    let label = format!("restoring {topic} {partitions:?}");
    let mut progress = Reporter::new(
        &label,
        Some(total as u64),
        Unit::Records,
        StdDuration::from_secs(2),
        Box::new(|line| tracing::info!("{line}")),
    );
    let restored = metrics::counter!(crate::serve::metrics::RESTORE_RECORDS);
    let remaining = metrics::gauge!(crate::serve::metrics::RESTORE_REMAINING);
    remaining.set(total as f64);
    let mut pending = ranges.len();
    let mut waiting_logged = false;
    // Partitions that signalled their end before reaching the end offset seen at start.
    let mut at_stable_end: Vec<i32> = Vec::new();
    while pending > 0 {
        let polled = consumer.poll(StdDuration::from_millis(100));
        let eof = match &polled {
            Some(Err(KafkaError::PartitionEOF(p))) => Some(*p),
            _ => None,
        };
        if let Some(p) = eof {
            if ranges.contains_key(&p) && !at_stable_end.contains(&p) {
                at_stable_end.push(p);
            }
        }
        if eof.is_some() || (polled.is_none() && !at_stable_end.is_empty()) {
            // read_committed signals the end at the last stable offset. Records committed by
            // other producers after a transaction still open there (e.g. of an instance that
            // crashed mid-commit) are behind it: read on until the end offset seen at start,
            // which the open transaction's end (at most the transaction timeout) lets through.
            let positions = consumer.position().ok();
            let position_of = |p: i32| {
                positions
                    .as_ref()
                    .and_then(|tpl| tpl.find_partition(topic, p))
                    .map(|e| match e.offset() {
                        Offset::Offset(o) => o,
                        _ => -1,
                    })
                    .unwrap_or(-1)
            };
            at_stable_end.retain(|&p| {
                let high = ranges.get(&p).map_or(0, |r| r.1);
                if position_of(p) >= high {
                    ranges.remove(&p);
                    pending -= 1;
                    false
                } else {
                    true
                }
            });
            if !at_stable_end.is_empty() {
                if started.elapsed() > STABLE_WAIT {
                    return Err(RunError::kafka(
                        "read the changelog to its end (a transaction on it stays open)",
                        KafkaError::MessageConsumption(RDKafkaErrorCode::OperationTimedOut),
                    ));
                }
                if !waiting_logged {
                    waiting_logged = true;
                    tracing::info!(
                        topic,
                        partitions = ?at_stable_end,
                        "restore waits for an open transaction on the changelog to finish"
                    );
                }
            }
        }
        match polled {
            None | Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => return Err(RunError::kafka("read the changelog", e)),
            Some(Ok(m)) => {
                records += 1;
                let state = states.entry(m.partition()).or_default();
                if let Some(k) = m.key() {
                    match m.payload() {
                        Some(v) => {
                            let latest = Latest {
                                offset: m.offset(),
                                value: v.to_vec(),
                            };
                            state.insert(k.to_vec(), latest);
                        }
                        None => {
                            state.remove(k);
                        }
                    }
                }
                if records % 1024 == 0 {
                    // Offsets include transaction markers: the count is a lower bound.
                    progress.set(records, records);
                    restored.increment(1024);
                    remaining.set((total as u64).saturating_sub(records) as f64);
                }
            }
        }
    }
    progress.finish();
    restored.increment(records % 1024);
    remaining.set(0.0);
    tracing::info!(
        topic,
        partitions = ?partitions,
        records,
        keys = states.values().map(HashMap::len).sum::<usize>(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "restored changelog partitions"
    );
    close_in_background(consumer);
    Ok(states)
}

/// Closes the restore consumer on a thread of its own: closing a librdkafka client waits for its
/// threads (about 100 ms), which would otherwise hold up every assignment. It has no group
/// membership and commits nothing, so nothing depends on when it is gone.
fn close_in_background(consumer: BaseConsumer<RestoreContext>) {
    let spawned = std::thread::Builder::new()
        .name("goalpost-restore-close".into())
        .spawn(move || drop(consumer));
    if let Err(e) = spawned {
        // The consumer was moved into the closure that failed to start, and is closed with it.
        tracing::debug!(error = %e, "closing the restore consumer in the foreground");
    }
}

/// A restored open window.
#[derive(Clone, Debug, PartialEq)]
pub struct RestoredWindow {
    /// Its changelog key.
    pub key: Vec<u8>,
    /// The goal's id.
    pub goal_id: String,
    /// The window's start.
    pub start: Timestamp,
    /// The group's values.
    pub group: Vec<String>,
    /// Its state.
    pub state: WindowState,
    /// The number of parts its state is stored in (0: one record).
    pub parts: u32,
}

/// A router's restored state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RestoredRouter {
    /// Its stream time.
    pub stream_time: Option<Timestamp>,
    /// The next dedupe batch number to write.
    pub next_batch: u64,
    /// Dedupe batches in the changelog: number -> latest time in it.
    pub batches: BTreeMap<u64, Timestamp>,
    /// The remembered event ids, by time.
    pub ids: Vec<(String, Timestamp)>,
}

/// A changelog record that cannot be read back: skipped, and dead-lettered with its origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreadable {
    /// Its offset.
    pub offset: i64,
    /// Its key.
    pub key: Vec<u8>,
    /// Its value.
    pub value: Vec<u8>,
    /// Why it cannot be read.
    pub reason: String,
}

/// What a changelog partition holds for the roles an instance has in it: the owner of its
/// repartition partition, and the routers of some input partitions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Restored {
    /// The owner's open windows.
    pub windows: Vec<RestoredWindow>,
    /// The owner's view of each upstream partition: (upstream, stream time, idle).
    pub upstreams: Vec<(u32, Option<Timestamp>, bool)>,
    /// The owner's watermark.
    pub watermark: Option<Timestamp>,
    /// The routers asked for that have state here.
    pub routers: BTreeMap<u32, RestoredRouter>,
    /// Records that cannot be read, by offset: those of the owner (and those whose key is
    /// unreadable, or names an upstream partition that does not exist) when `owner` is set,
    /// those of the routers asked for.
    pub unreadable: Vec<Unreadable>,
    /// Keys of window parts that belong to no restored window (their head was unreadable or is
    /// gone), when `owner` is set: left over, to be tombstoned.
    pub orphan_parts: Vec<Vec<u8>>,
}

/// Decodes a changelog partition's state for the owner (when `owner`) and the `routers` asked
/// for, with `upstreams` input partitions in all. A record that cannot be read is listed in
/// [`Restored::unreadable`] and otherwise skipped: one bad record does not stop a restore.
pub fn decode_partition(
    state: &PartitionState,
    owner: bool,
    routers: &[u32],
    upstreams: u32,
) -> Restored {
    let mut out = Restored::default();
    for (key, latest) in state {
        let claimed = decode_entry(
            state,
            key,
            &latest.value,
            owner,
            routers,
            upstreams,
            &mut out,
        );
        match claimed {
            Ok(()) => {}
            Err((mine, e)) if mine => out.unreadable.push(Unreadable {
                offset: latest.offset,
                key: key.clone(),
                value: latest.value.clone(),
                reason: e.to_string(),
            }),
            Err(_) => {}
        }
    }
    out.unreadable.sort_by_key(|u| u.offset);
    if owner {
        out.orphan_parts = orphan_parts(state, &out.windows);
    }
    for router in out.routers.values_mut() {
        router
            .ids
            .sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    }
    out
}

/// The keys of window parts in `state` that no window in `windows` uses, in key order.
fn orphan_parts(state: &PartitionState, windows: &[RestoredWindow]) -> Vec<Vec<u8>> {
    let used: HashMap<&[u8], u32> = windows
        .iter()
        .filter(|w| w.parts > 0)
        .map(|w| (w.key.as_slice(), w.parts))
        .collect();
    let mut orphans: Vec<Vec<u8>> = state
        .keys()
        .filter(|key| key.first() == Some(&b'p'))
        .filter(|key| match ChangelogKey::from_bytes(key) {
            Ok(ChangelogKey::WindowPart { window, part }) => {
                used.get(window.as_slice()).is_none_or(|&n| part >= n)
            }
            _ => false,
        })
        .cloned()
        .collect();
    orphans.sort();
    orphans
}

/// Decodes one record into `out` if it belongs to a role asked for. An error comes with whether
/// the record is this caller's to report.
fn decode_entry(
    state: &PartitionState,
    key: &[u8],
    value: &[u8],
    owner: bool,
    routers: &[u32],
    upstreams: u32,
    out: &mut Restored,
) -> Result<(), (bool, WireError)> {
    let decoded = ChangelogKey::from_bytes(key).map_err(|e| (owner, e))?;
    let out_of_range = |what: &'static str, up: u32| wire::WireError::Invalid {
        what,
        detail: format!(
            "upstream partition {up} does not exist: the input has {upstreams} partitions"
        ),
    };
    let decode = |what: &'static str| move |cause| WireError::Decode { what, cause };
    match decoded {
        ChangelogKey::Window {
            goal_id,
            start,
            group,
        } if owner => {
            let part = |i: u32| {
                state
                    .get(&ChangelogKey::window_part(key, i))
                    .map(|l| l.value.as_slice())
            };
            let (ws, parts) =
                wire::window_state_from_records(value, part).map_err(|e| (true, e))?;
            out.windows.push(RestoredWindow {
                key: key.to_vec(),
                goal_id,
                start,
                group,
                state: ws,
                parts,
            });
        }
        ChangelogKey::Upstream(up) if owner => {
            if up >= upstreams {
                return Err((true, out_of_range("upstream", up)));
            }
            let r = pb::UpstreamRecord::decode(value).map_err(|e| (true, decode("upstream")(e)))?;
            out.upstreams
                .push((up, r.stream_time.map(Timestamp::from_nanos), r.idle));
        }
        ChangelogKey::Watermark if owner => {
            let r =
                pb::WatermarkRecord::decode(value).map_err(|e| (true, decode("watermark")(e)))?;
            out.watermark = Some(Timestamp::from_nanos(r.watermark));
        }
        ChangelogKey::RouterClock(up) | ChangelogKey::DedupeBatch { upstream: up, .. }
            if up >= upstreams =>
        {
            return Err((owner, out_of_range("router state", up)));
        }
        ChangelogKey::RouterClock(up) if routers.contains(&up) => {
            let r = pb::RouterClockRecord::decode(value)
                .map_err(|e| (true, decode("router clock")(e)))?;
            let router = out.routers.entry(up).or_default();
            router.stream_time = r.stream_time.map(Timestamp::from_nanos);
            router.next_batch = router.next_batch.max(r.next_batch);
        }
        ChangelogKey::DedupeBatch { upstream, batch } if routers.contains(&upstream) => {
            let r = pb::DedupeBatchRecord::decode(value)
                .map_err(|e| (true, decode("dedupe batch")(e)))?;
            let router = out.routers.entry(upstream).or_default();
            let mut max = Timestamp::MIN;
            for (id, t) in r.ids.into_iter().zip(r.times) {
                let t = Timestamp::from_nanos(t);
                max = max.max(t);
                router.ids.push((id, t));
            }
            router.batches.insert(batch, max);
            router.next_batch = router.next_batch.max(batch + 1);
        }
        // Parts are read with their window; other roles' records are theirs.
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Aggregate;
    use crate::engine::GroupKey;

    fn state(records: &[(Vec<u8>, Vec<u8>)]) -> PartitionState {
        records
            .iter()
            .enumerate()
            .map(|(i, (k, v))| {
                let latest = Latest {
                    offset: i as i64 * 10,
                    value: v.clone(),
                };
                (k.clone(), latest)
            })
            .collect()
    }

    fn window(goal: &str, n: usize) -> (Vec<u8>, WindowState) {
        let key = ChangelogKey::window(
            goal,
            &GroupKey::from_values(&["EMEA"]),
            Timestamp::from_nanos(0),
        );
        let ws = WindowState {
            end: Timestamp::from_nanos(1_000),
            aggregate: Aggregate::Distinct((0..n).map(|i| format!("v{i:06}").into()).collect()),
            reached: 0,
            breached: false,
        };
        (key, ws)
    }

    #[test]
    fn a_partition_restores_with_its_unreadable_records_set_aside() {
        let (small_key, small) = window("small", 3);
        let (big_key, big) = window("big", 20_000);
        let mut records = vec![(small_key.clone(), wire::window_state_to_bytes(&small))];
        let split = wire::window_state_records(&big_key, &big, 10_000);
        assert!(split.len() > 10);
        records.extend(split.iter().cloned());
        let upstream = |up: u32, t: i64| {
            let v = pb::UpstreamRecord {
                stream_time: Some(t),
                idle: false,
            };
            (ChangelogKey::Upstream(up).to_bytes(), v.encode_to_vec())
        };
        records.push(upstream(1, 77));
        // Forged: an upstream far beyond the input's 4 partitions (would allocate gigabytes).
        records.push(upstream(u32::MAX - 1, 5));
        records.push((
            ChangelogKey::Watermark.to_bytes(),
            pb::WatermarkRecord { watermark: 9 }.encode_to_vec(),
        ));
        let clock = pb::RouterClockRecord {
            stream_time: Some(40),
            next_batch: 3,
        };
        records.push((
            ChangelogKey::RouterClock(2).to_bytes(),
            clock.encode_to_vec(),
        ));
        let ids = pb::DedupeBatchRecord {
            ids: vec!["b".into(), "a".into()],
            times: vec![20, 10],
        };
        records.push((
            ChangelogKey::DedupeBatch {
                upstream: 2,
                batch: 5,
            }
            .to_bytes(),
            ids.encode_to_vec(),
        ));
        // Garbage: an unknown key, a window whose value is not a state, a bad router clock.
        records.push((b"garbage key".to_vec(), b"x".to_vec()));
        let (bad_window, _) = window("bad", 1);
        records.push((bad_window.clone(), vec![0xff, 0xff, 0xff]));
        records.push((ChangelogKey::RouterClock(3).to_bytes(), vec![0x0a, 0xff]));
        let state = state(&records);

        let r = decode_partition(&state, true, &[2, 3], 4);
        let mut windows: Vec<(String, WindowState, u32)> = r
            .windows
            .iter()
            .map(|w| (w.goal_id.clone(), w.state.clone(), w.parts))
            .collect();
        windows.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            windows,
            vec![
                ("big".to_string(), big, split.len() as u32 - 1),
                ("small".to_string(), small, 0)
            ]
        );
        assert_eq!(
            r.upstreams,
            vec![(1, Some(Timestamp::from_nanos(77)), false)]
        );
        assert_eq!(r.watermark, Some(Timestamp::from_nanos(9)));
        let router = &r.routers[&2];
        assert_eq!(router.stream_time, Some(Timestamp::from_nanos(40)));
        assert_eq!(router.next_batch, 6);
        assert_eq!(
            router.ids,
            vec![
                ("a".to_string(), Timestamp::from_nanos(10)),
                ("b".to_string(), Timestamp::from_nanos(20))
            ]
        );
        let bad: Vec<&[u8]> = r.unreadable.iter().map(|u| u.key.as_slice()).collect();
        assert_eq!(
            bad,
            vec![
                ChangelogKey::Upstream(u32::MAX - 1).to_bytes().as_slice(),
                b"garbage key",
                bad_window.as_slice(),
                ChangelogKey::RouterClock(3).to_bytes().as_slice(),
            ],
            "by offset"
        );
        for u in &r.unreadable {
            assert_eq!(state[&u.key].offset, u.offset);
            assert_eq!(state[&u.key].value, u.value);
            assert!(!u.reason.is_empty());
        }
        assert!(
            r.unreadable[0].reason.contains("input has 4 partitions"),
            "{}",
            r.unreadable[0].reason
        );

        // A router alone reports only its own records; the owner's are the owner's to report.
        let r = decode_partition(&state, false, &[2], 4);
        assert!(r.windows.is_empty() && r.upstreams.is_empty() && r.watermark.is_none());
        assert!(r.unreadable.is_empty(), "{:?}", r.unreadable);
        assert_eq!(r.routers.len(), 1);
    }

    #[test]
    fn a_split_window_with_a_part_missing_is_unreadable_not_wrong() {
        let (key, ws) = window("big", 20_000);
        let mut records = wire::window_state_records(&key, &ws, 10_000);
        records.remove(3);
        let r = decode_partition(&state(&records), true, &[], 1);
        assert!(r.windows.is_empty());
        assert_eq!(r.unreadable.len(), 1);
        assert_eq!(r.unreadable[0].key, key);
        assert!(
            r.unreadable[0].reason.contains("missing"),
            "{}",
            r.unreadable[0].reason
        );
        // Its remaining parts are left over, to be tombstoned with it.
        let mut parts: Vec<Vec<u8>> = records[1..].iter().map(|(k, _)| k.clone()).collect();
        parts.sort();
        assert_eq!(r.orphan_parts, parts);
        // Parts of a readable window are not orphans; a router alone reports none.
        let whole = wire::window_state_records(&key, &ws, 10_000);
        assert!(decode_partition(&state(&whole), true, &[], 1)
            .orphan_parts
            .is_empty());
        assert!(decode_partition(&state(&records), false, &[0], 1)
            .orphan_parts
            .is_empty());
    }
}
