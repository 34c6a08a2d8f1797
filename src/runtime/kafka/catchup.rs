//! `--until-caught-up`: whether this instance and the whole group have processed the input up to
//! the end offsets seen at start, and `--close-all-at-end`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};

use super::error::RunError;
use super::idle::cached_watermarks;
use super::poll::Part;
use super::repartition::marker_record;
use super::txn::{GroupMetadata, TXN_PATIENCE};
use super::worker::{Sentinel, Worker};

/// End offsets of the input at start: (topic, partition) -> offset.
pub type Targets = BTreeMap<(String, i32), i64>;

/// How often the group's committed offsets are read while they can be.
const GROUP_CHECK_EVERY: Duration = Duration::from_millis(50);
/// How often they are read while they cannot (e.g. the broker is restarting).
const GROUP_CHECK_RETRY: Duration = Duration::from_secs(1);
/// How long reading the group's offsets may take: the polling loop waits meanwhile.
const GROUP_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads of the group's progress, paced.
pub struct GroupCheck {
    every: Duration,
    last: Instant,
    /// Since when the group's progress has failed to be read, if it has.
    failing: Option<Instant>,
}

impl GroupCheck {
    pub fn new() -> Self {
        GroupCheck {
            every: GROUP_CHECK_EVERY,
            last: Instant::now(),
            failing: None,
        }
    }

    /// Whether the group's progress is to be read again.
    pub fn due(&self) -> bool {
        self.last.elapsed() >= self.every
    }

    /// Whether the group committed every input partition up to its target (see
    /// [`group_committed_all`]). Unanswered (e.g. the broker is restarting): not yet, asked again
    /// a second later; failing for as long as a transaction may be retried is not a restart,
    /// and an error.
    pub fn check<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        targets: &Targets,
    ) -> Result<bool, RunError> {
        self.last = Instant::now();
        match group_committed_all(consumer, targets) {
            Ok(done) => {
                self.every = GROUP_CHECK_EVERY;
                self.failing = None;
                Ok(done)
            }
            Err(e)
                if self
                    .failing
                    .is_some_and(|since| since.elapsed() >= TXN_PATIENCE) =>
            {
                Err(e)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot check the group's progress yet");
                self.every = GROUP_CHECK_RETRY;
                self.failing.get_or_insert_with(Instant::now);
                Ok(false)
            }
        }
    }
}

/// The end offsets of every input partition, read now.
pub fn input_targets<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    inputs: &BTreeMap<String, i32>,
) -> Result<Targets, RunError> {
    let mut targets = Targets::new();
    for (topic, n) in inputs {
        for p in 0..*n {
            let (_, high) = consumer
                .fetch_watermarks(topic, p, super::txn::KAFKA_TIMEOUT)
                .map_err(|e| RunError::kafka("read input end offsets", e))?;
            targets.insert((topic.clone(), p), high);
        }
    }
    Ok(targets)
}

/// Whether the group has committed every input partition up to its target: partitions held by
/// another member (or by a crashed one until its session times out) count too, so an instance
/// never declares the input done while part of it is unprocessed. A partition whose records
/// before its target are all gone (deleted by retention or `DeleteRecords`: its log start
/// offset has reached the target) has nothing left to read, and counts as done.
fn group_committed_all<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    targets: &Targets,
) -> Result<bool, RunError> {
    let mut tpl = TopicPartitionList::new();
    for (topic, p) in targets.keys() {
        tpl.add_partition(topic, *p);
    }
    let committed = consumer
        .committed_offsets(tpl, GROUP_CHECK_TIMEOUT)
        .map_err(|e| RunError::kafka("read the group's committed offsets", e))?;
    let target_of = |topic: &str, p: i32| targets.get(&(topic.to_string(), p)).copied();
    let mut behind = TopicPartitionList::new();
    for el in committed.elements() {
        let target = target_of(el.topic(), el.partition()).unwrap_or(0);
        let done = match el.offset() {
            Offset::Offset(o) => o >= target,
            _ => target == 0,
        };
        if !done {
            // The log start offset, asked for as the offsets of the "earliest" timestamp.
            behind
                .add_partition_offset(el.topic(), el.partition(), Offset::Beginning)
                .map_err(|e| RunError::kafka("ask for the input's log start offsets", e))?;
        }
    }
    if behind.count() == 0 {
        return Ok(true);
    }
    let starts = consumer
        .offsets_for_times(behind, GROUP_CHECK_TIMEOUT)
        .map_err(|e| RunError::kafka("read the input's log start offsets", e))?;
    Ok(starts.elements().iter().all(|el| {
        let target = target_of(el.topic(), el.partition()).unwrap_or(0);
        matches!(el.offset(), Offset::Offset(start) if start >= target)
    }))
}

impl Worker {
    /// Whether every input partition assigned here is read up to its target: its next offset, or
    /// its log start offset when the records before it are gone (retention, `DeleteRecords`), has
    /// reached the target.
    pub fn all_input_read<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        targets: &Targets,
    ) -> bool {
        self.topics.inputs.iter().enumerate().all(|(up, key)| {
            let up = up as u32;
            if !self.routers.contains_key(&up) {
                return true;
            }
            let target = targets.get(key).copied().unwrap_or(0);
            let next = self
                .next_offsets
                .get(&Part::Input(up))
                .copied()
                .unwrap_or(0);
            next >= target
                || cached_watermarks(consumer, &key.0, key.1).is_some_and(|(low, _)| low >= target)
        })
    }

    /// Whether every owner partition is here (for `--close-all-at-end`).
    pub fn owns_all(&self) -> bool {
        self.owners.len() as i32 == self.owners_count
    }

    /// Whether every assigned input partition reached its end offset seen at start and this
    /// instance has read everything committed to the repartition partitions it owns: it sends a
    /// sentinel record to each and waits until it reads them all back under the same assignment.
    pub fn caught_up(&mut self, cgm: Option<&GroupMetadata>) -> Result<bool, RunError> {
        // An instance without partitions (e.g. before its first real assignment) waits.
        if self.txn.is_open()
            || !self.repart.is_empty()
            || (self.routers.is_empty() && self.owners.is_empty())
        {
            return Ok(false);
        }
        if let Some(s) = self
            .sentinel
            .as_ref()
            .filter(|s| s.epoch == self.epoch.current)
        {
            return Ok(s.pending.is_empty());
        }
        let id = self.repart.next_sentinel();
        let owned: std::collections::BTreeSet<i32> = self.owners.keys().copied().collect();
        if !owned.is_empty() {
            self.txn.begin()?;
            let bytes = marker_record(id);
            for &p in &owned {
                let topic = &self.repart.topic;
                self.txn
                    .send(topic, Some(p), b"sentinel", Some(&bytes), None);
            }
            self.commit(cgm)?;
        }
        let done = owned.is_empty();
        self.sentinel = Some(Sentinel {
            id,
            epoch: self.epoch.current,
            pending: owned,
        });
        Ok(done)
    }

    /// Closes every window of the owners here, as replay does at the end of its input.
    pub fn close_all(&mut self) -> Result<(), RunError> {
        self.txn.begin()?;
        for owner in self.owners.values_mut() {
            owner.close_all(&mut self.attainments);
        }
        self.emit_attainments();
        Ok(())
    }
}
