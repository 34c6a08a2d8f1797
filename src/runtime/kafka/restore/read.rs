//! Reading changelog partitions to their end with a consumer of their own.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::{Latest, PartitionState};
use crate::runtime::kafka::clients::restore_config;
use crate::runtime::kafka::RunError;
use crate::runtime::progress::{Reporter, Unit};

/// How long a restore waits for transactions open on the changelog (longer than goalpost's
/// transaction timeout of 60 s, after which the broker aborts them).
const STABLE_WAIT: Duration = Duration::from_secs(90);
/// How long one poll of the restore consumer waits.
const POLL_WAIT: Duration = Duration::from_millis(100);
/// How long reading the changelog's offsets may take.
const OFFSETS_TIMEOUT: Duration = Duration::from_secs(10);
/// How often restore progress is logged.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// Restored records between two updates of the progress and the restore metrics.
const METRICS_EVERY: u64 = 1024;

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

/// Reads changelog partitions back, all at once with one consumer: the latest value of every key
/// of each partition asked for.
pub fn read_partitions(
    base: &ClientConfig,
    topic: &str,
    partitions: &[i32],
) -> Result<BTreeMap<i32, PartitionState>, RunError> {
    let states: BTreeMap<i32, PartitionState> =
        partitions.iter().map(|&p| (p, HashMap::new())).collect();
    if partitions.is_empty() {
        return Ok(states);
    }
    let consumer: BaseConsumer<RestoreContext> = restore_config(base, topic)
        .create_with_context(RestoreContext)
        .map_err(|e| RunError::kafka("create the restore consumer", e))?;
    // If this fails (e.g. metadata lagging after a broker restart), the worker retries the whole
    // rebuild every second without processing these partitions.
    let mut ranges: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
    for &p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, OFFSETS_TIMEOUT)
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
    let mut reading = Reading::new(topic, partitions, ranges, states);
    let result = reading.read_to_end(&consumer);
    close_in_background(consumer);
    result.map(|()| reading.finish(partitions))
}

/// A restore in progress.
struct Reading<'a> {
    topic: &'a str,
    /// Partitions still to read: (log start, end offset at start).
    ranges: BTreeMap<i32, (i64, i64)>,
    states: BTreeMap<i32, PartitionState>,
    /// Partitions that signalled their end before reaching the end offset seen at start.
    at_stable_end: Vec<i32>,
    waiting_logged: bool,
    started: Instant,
    records: u64,
    total: u64,
    progress: Reporter,
    restored: metrics::Counter,
    remaining: metrics::Gauge,
}

impl<'a> Reading<'a> {
    fn new(
        topic: &'a str,
        partitions: &[i32],
        ranges: BTreeMap<i32, (i64, i64)>,
        states: BTreeMap<i32, PartitionState>,
    ) -> Self {
        let total = ranges.values().map(|(low, high)| high - low).sum::<i64>() as u64;
        let label = format!("restoring {topic} {partitions:?}");
        let progress = Reporter::new(
            &label,
            Some(total),
            Unit::Records,
            PROGRESS_EVERY,
            Box::new(|line| tracing::info!("{line}")),
        );
        let remaining = metrics::gauge!(crate::serve::metrics::RESTORE_REMAINING);
        remaining.set(total as f64);
        Reading {
            topic,
            ranges,
            states,
            at_stable_end: Vec::new(),
            waiting_logged: false,
            started: Instant::now(),
            records: 0,
            total,
            progress,
            restored: metrics::counter!(crate::serve::metrics::RESTORE_RECORDS),
            remaining,
        }
    }

    fn read_to_end(&mut self, consumer: &BaseConsumer<RestoreContext>) -> Result<(), RunError> {
        while !self.ranges.is_empty() {
            let polled = consumer.poll(POLL_WAIT);
            let eof = match &polled {
                Some(Err(KafkaError::PartitionEOF(p))) => Some(*p),
                _ => None,
            };
            if let Some(p) = eof {
                if self.ranges.contains_key(&p) && !self.at_stable_end.contains(&p) {
                    self.at_stable_end.push(p);
                }
            }
            if eof.is_some() || (polled.is_none() && !self.at_stable_end.is_empty()) {
                self.check_stable_end(consumer)?;
            }
            match polled {
                None | Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => return Err(RunError::kafka("read the changelog", e)),
                Some(Ok(m)) => self.keep(&m),
            }
        }
        Ok(())
    }

    /// read_committed signals the end at the last stable offset. Records committed by other
    /// producers after a transaction still open there (e.g. of an instance that crashed
    /// mid-commit) are behind it: read on until the end offset seen at start, which the open
    /// transaction's end (at most the transaction timeout) lets through.
    fn check_stable_end(
        &mut self,
        consumer: &BaseConsumer<RestoreContext>,
    ) -> Result<(), RunError> {
        let positions = consumer.position().ok();
        let position_of = |p: i32| {
            let offset = positions
                .as_ref()
                .and_then(|tpl| tpl.find_partition(self.topic, p))
                .map(|e| e.offset());
            match offset {
                Some(Offset::Offset(o)) => o,
                _ => -1,
            }
        };
        let ranges = &mut self.ranges;
        self.at_stable_end.retain(|&p| {
            let high = ranges.get(&p).map_or(0, |r| r.1);
            let done = position_of(p) >= high;
            if done {
                ranges.remove(&p);
            }
            !done
        });
        if self.at_stable_end.is_empty() {
            return Ok(());
        }
        if self.started.elapsed() > STABLE_WAIT {
            return Err(RunError::kafka(
                "read the changelog to its end (a transaction on it stays open)",
                KafkaError::MessageConsumption(RDKafkaErrorCode::OperationTimedOut),
            ));
        }
        if !self.waiting_logged {
            self.waiting_logged = true;
            tracing::info!(
                topic = self.topic,
                partitions = ?self.at_stable_end,
                "restore waits for an open transaction on the changelog to finish"
            );
        }
        Ok(())
    }

    /// Keeps a record as its key's latest value (a tombstone removes the key).
    fn keep(&mut self, m: &BorrowedMessage<'_>) {
        self.records += 1;
        let state = self.states.entry(m.partition()).or_default();
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
        if self.records % METRICS_EVERY == 0 {
            // Offsets include transaction markers: the count is a lower bound.
            self.progress.set(self.records, self.records);
            self.restored.increment(METRICS_EVERY);
            let left = self.total.saturating_sub(self.records);
            self.remaining.set(left as f64);
        }
    }

    fn finish(&mut self, partitions: &[i32]) -> BTreeMap<i32, PartitionState> {
        self.progress.finish();
        self.restored.increment(self.records % METRICS_EVERY);
        self.remaining.set(0.0);
        let states = std::mem::take(&mut self.states);
        tracing::info!(
            topic = self.topic,
            partitions = ?partitions,
            records = self.records,
            keys = states.values().map(HashMap::len).sum::<usize>(),
            elapsed_ms = self.started.elapsed().as_millis() as u64,
            "restored changelog partitions"
        );
        states
    }
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
