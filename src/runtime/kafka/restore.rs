//! Reading a changelog partition back into state.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration as StdDuration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::RunError;
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

/// The latest value of every key of a changelog partition (tombstoned keys removed).
pub type PartitionState = HashMap<Vec<u8>, Vec<u8>>;

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
                            state.insert(k.to_vec(), v.to_vec());
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
