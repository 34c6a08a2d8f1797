//! The worker of one instance: composes the routers and owners of its partitions with the
//! transaction ([`Txn`]), the repartition links ([`Repartition`]), the output and the counts,
//! and handles one polled record at a time.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;

use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::changelog::Cleanup;
use super::config::RunConfig;
use super::error::{ErrorClass, RunError};
use super::output::{DeadLetters, Output};
use super::poll::{Part, Topics};
use super::progress_topic::ProgressTopic;
use super::repartition::{self, BatchContext, Item, Link, Repartition};
use super::roster_topic::RosterTopics;
use super::serving::{HubLink, State};
use super::telemetry::Counters;
use super::txn::{GroupMetadata, Txn};
use super::warn_limit::{WarnLimit, WARN_EVERY};
use super::{wire, Serving};
use crate::codec;
use crate::engine::{Contribution, Owner, Routed, Router};
use crate::goals::GoalSet;
use crate::model::{Attainment, SalesEvent, Timestamp};

/// A router of an input partition, and what the changelog and idleness need to know of it.
pub struct RouterTask {
    pub router: Router,
    /// The assignment epoch in which this task was created: records polled before it are stale.
    pub since_epoch: u64,
    /// Stream time and earliest time last sent to the owners.
    pub sent: Option<(Timestamp, Timestamp)>,
    /// Dedupe batches in the changelog: number -> latest time in it.
    pub batches: BTreeMap<u64, Timestamp>,
    pub next_batch: u64,
    pub clock_dirty: bool,
    /// When a record was last seen, as of the last idle check.
    pub last_record: Instant,
    /// Records seen since the last idle check (cheaper than reading the clock per record).
    pub records_since_check: u64,
    pub idle_sent: bool,
}

impl RouterTask {
    /// The router's stream time and earliest accepted event time, when they differ from what
    /// the owners were last sent. The earliest time of a router restored from a changelog that
    /// did not hold it is unknown until an earlier event comes: its stream time stands for it.
    pub fn unsent_progress(&self) -> Option<(Timestamp, Timestamp)> {
        let stream_time = self.router.stream_time()?;
        let progress = (stream_time, self.router.earliest().unwrap_or(stream_time));
        (self.sent != Some(progress)).then_some(progress)
    }
}

/// A sentinel sent to the owned repartition partitions (see `Worker::caught_up`).
pub struct Sentinel {
    pub id: u64,
    /// The assignment epoch it was sent in.
    pub epoch: u64,
    /// Partitions it has not come back from yet.
    pub pending: std::collections::BTreeSet<i32>,
}

/// The assignment epoch: incremented on every assignment change, and shared with the polling
/// loop, which tags each record with the epoch it was polled in.
pub struct Epoch {
    pub current: u64,
    pub shared: Arc<AtomicU64>,
}

/// Everything one instance holds.
pub struct Worker {
    pub cfg: RunConfig,
    pub instance: String,
    pub goals: Arc<GoalSet>,
    pub goal_index: hashbrown::HashMap<String, usize>,
    /// Per goal: its [`wire::goal_hash`], to find owner partitions.
    pub goal_hashes: Vec<u64>,
    pub client: ClientConfig,
    /// The partitions this instance may read; shared with the decode thread.
    pub topics: Arc<Topics>,
    pub changelog: String,
    pub owners_count: i32,
    /// The size at which records goalpost can split are split.
    pub split_bytes: usize,
    pub txn: Txn,
    pub repart: Repartition,
    pub output: Output,
    /// The progress topic, when `[output] progress_topic` is set.
    pub progress: Option<ProgressTopic>,
    pub dead_letters: DeadLetters,
    pub hub: Option<HubLink>,
    pub routers: BTreeMap<u32, RouterTask>,
    pub owners: BTreeMap<i32, Owner>,
    /// The goals' rosters (the master copy owners start from) and the roster topics' reader.
    pub rosters: RosterTopics,
    /// Per owned partition: the assignment epoch in which its owner was created.
    pub owner_since: BTreeMap<i32, u64>,
    /// Per owned partition: the windows whose state is stored in parts, and how many.
    pub split_windows: BTreeMap<i32, HashMap<Vec<u8>, u32>>,
    /// Next offsets to commit (last processed + 1), this transaction.
    pub offsets: BTreeMap<Part, i64>,
    /// Next offset to read per assigned partition: committed at assignment, then consumed + 1.
    pub next_offsets: hashbrown::HashMap<Part, i64>,
    pub epoch: Epoch,
    pub sentinel: Option<Sentinel>,
    /// What the last restore left to dead-letter and tombstone.
    pub cleanup: Cleanup,
    /// Attainment events produced and not yet sent.
    pub attainments: Vec<Attainment>,
    pub counts: Counters,
    /// The counts as of the last commit.
    pub published: Counters,
    /// Set when an aborted transaction requires rebuilding state from the changelog.
    pub needs_reset: bool,
    pub assigned_once: bool,
    pub fatal: Option<RunError>,
    /// Warnings about single records, rate-limited.
    pub warnings: WarnLimit,
}

/// What [`Worker::new`] is made of besides the configuration.
pub struct Parts {
    pub goals: Arc<GoalSet>,
    pub instance: String,
    pub client: ClientConfig,
    pub txn: Txn,
    pub topics: Topics,
    pub owners_count: i32,
    pub rosters: RosterTopics,
    pub serving: Option<Serving>,
    pub epoch: Arc<AtomicU64>,
}

impl Worker {
    /// A worker without partitions yet.
    pub fn new(cfg: RunConfig, p: Parts) -> Self {
        let goal_index = p
            .goals
            .goals
            .iter()
            .enumerate()
            .map(|(i, g)| (g.id.to_string(), i))
            .collect();
        let goal_hashes = p
            .goals
            .goals
            .iter()
            .map(|g| wire::goal_hash(&g.id))
            .collect();
        let split_bytes = super::clients::split_bytes(&cfg);
        let hub = p.serving.map(|s| HubLink::new(s, &p.topics.inputs));
        let counts = Counters::new(p.goals.goals.len());
        Worker {
            repart: Repartition::new(
                cfg.repartition_topic(),
                p.owners_count,
                split_bytes,
                &p.instance,
            ),
            output: Output::new(cfg.output.topic.clone(), cfg.output.format, hub.is_some()),
            progress: cfg
                .output
                .progress_topic
                .clone()
                .map(|t| ProgressTopic::new(t, cfg.output.format)),
            dead_letters: DeadLetters::new(cfg.dead_letter_topic(), cfg.changelog_topic()),
            changelog: cfg.changelog_topic(),
            topics: Arc::new(p.topics),
            cfg,
            instance: p.instance,
            goals: p.goals,
            goal_index,
            goal_hashes,
            client: p.client,
            owners_count: p.owners_count,
            split_bytes,
            txn: p.txn,
            hub,
            routers: BTreeMap::new(),
            owners: BTreeMap::new(),
            rosters: p.rosters,
            owner_since: BTreeMap::new(),
            split_windows: BTreeMap::new(),
            offsets: BTreeMap::new(),
            next_offsets: hashbrown::HashMap::new(),
            epoch: Epoch {
                current: 0,
                shared: p.epoch,
            },
            sentinel: None,
            cleanup: Cleanup::default(),
            attainments: Vec::new(),
            published: counts.clone(),
            counts,
            needs_reset: false,
            assigned_once: false,
            fatal: None,
            warnings: WarnLimit::new(WARN_EVERY),
        }
    }

    /// The partition a record came from, if this instance reads it.
    pub fn part(&self, topic: &str, partition: i32) -> Option<Part> {
        self.topics.part(topic, partition)
    }

    /// Handles one polled record of `part`. `polled_in` is the assignment epoch when it was
    /// polled; `decoded` its decoded event (input records only).
    pub fn handle(
        &mut self,
        m: &BorrowedMessage<'_>,
        part: Option<Part>,
        polled_in: u64,
        decoded: Option<(&SalesEvent, Result<(), codec::DecodeError>)>,
    ) -> Result<(), RunError> {
        let since = match part {
            Some(Part::Repartition(p)) => self.owner_since.get(&p).copied(),
            Some(Part::Input(up)) => self.routers.get(&up).map(|t| t.since_epoch),
            None => None,
        };
        // A record polled before a rebalance that revoked, or revoked and re-assigned, its
        // partition is not ours to process: the partition's (new) owner reads it again from the
        // committed offset.
        if polled_in < since.unwrap_or(self.epoch.current) {
            tracing::debug!(
                topic = m.topic(),
                partition = m.partition(),
                offset = m.offset(),
                "record polled before a rebalance: left to the partition's owner"
            );
            return Ok(());
        }
        // A record of a partition whose state is not restored is never processed or committed:
        // rebuild first, then it is read again.
        let Some(part) = part.filter(|_| since.is_some()) else {
            tracing::warn!(
                topic = m.topic(),
                partition = m.partition(),
                "record of a partition without restored state: rebuilding"
            );
            self.needs_reset = true;
            return Ok(());
        };
        self.txn.begin()?;
        match (part, decoded) {
            (Part::Repartition(_), _) => self.handle_repartition(m)?,
            (Part::Input(up), Some((event, result))) => self.handle_input(m, up, event, result)?,
            (Part::Input(_), None) => {
                return Err(RunError::Invariant("input record was not decoded"))
            }
        }
        self.next_offsets.insert(part, m.offset() + 1);
        self.offsets.insert(part, m.offset() + 1);
        Ok(())
    }

    fn handle_input(
        &mut self,
        m: &BorrowedMessage<'_>,
        upstream: u32,
        event: &SalesEvent,
        decoded: Result<(), codec::DecodeError>,
    ) -> Result<(), RunError> {
        if let Err(e) = decoded {
            let source = (m.topic(), m.partition(), m.offset());
            let record = (m.key().unwrap_or_default(), m.payload().unwrap_or_default());
            let (txn, counts) = (&mut self.txn, &mut self.counts);
            self.dead_letters.reject(txn, counts, source, record, &e);
            return Ok(());
        }
        // `handle` sends a record of a partition without a router to a rebuild instead:
        // reaching this is a bug, and stopping (nothing committed) loses nothing.
        let Some(task) = self.routers.get_mut(&upstream) else {
            return Err(RunError::Invariant(
                "input record of a partition without a router",
            ));
        };
        task.records_since_check += 1;
        task.idle_sent = false;
        let (goals, goal_hashes, owners) = (&self.goals, &self.goal_hashes, self.owners_count);
        let (repart, owned) = (&mut self.repart, &mut self.owners);
        let (out, counts) = (&mut self.attainments, &mut self.counts);
        let mut full_batch = false;
        let routed = task.router.route(event, |c: Contribution<'_>| {
            let hash = goal_hashes[c.goal];
            let dest = wire::owner_partition_after(hash, &c.group, owners as u32) as i32;
            let item = Item::Contribution(&goals.goals[c.goal].id, &c);
            full_batch |= repart.deliver(owned, upstream, dest, item, out, counts);
        });
        counts.report.dedupe_evicted += task.router.take_dedupe_evicted();
        counts.routed(routed);
        if let Routed::Accepted {
            progress: Some(_), ..
        } = routed
        {
            task.clock_dirty = true;
        }
        if !self.attainments.is_empty() {
            self.emit_attainments();
        }
        if full_batch {
            self.flush_batches(false, false);
        }
        Ok(())
    }

    fn handle_repartition(&mut self, m: &BorrowedMessage<'_>) -> Result<(), RunError> {
        let partition = m.partition();
        let Some(payload) = m.payload() else {
            return Ok(());
        };
        let batch = match self.apply_batch(partition, payload) {
            Ok((batch, _)) => batch,
            Err(e) => {
                let source = (m.topic(), partition, m.offset());
                let record = (m.key().unwrap_or_default(), payload);
                let (txn, counters) = (&mut self.txn, (&mut self.counts, &mut self.warnings));
                self.dead_letters
                    .skip_internal(txn, counters, source, record, &e);
                return Ok(());
            }
        };
        if batch.sentinel == 0 {
            return Ok(());
        }
        if let Some(s) = self.sentinel.as_mut().filter(|s| s.id == batch.sentinel) {
            s.pending.remove(&partition);
        }
        if let Some(Link::Draining { barrier, .. }) = self.repart.link(partition) {
            if barrier == batch.sentinel {
                self.go_local(partition)?;
            }
        }
        Ok(())
    }

    /// Applies a repartition batch to the owner of `partition`, if it is here, and sends the
    /// attainment events it causes (see [`repartition::apply_batch`]).
    fn apply_batch(
        &mut self,
        partition: i32,
        payload: &[u8],
    ) -> Result<(wire::BatchHeader, u64), wire::WireError> {
        let cx = BatchContext {
            goal_index: &self.goal_index,
            upstreams: self.topics.inputs.len(),
            counts: &mut self.counts,
            warnings: &mut self.warnings,
            out: &mut self.attainments,
        };
        let owner = self.owners.get_mut(&partition);
        let applied = repartition::apply_batch(owner, partition, payload, cx)?;
        if applied.0.sentinel == 0 {
            self.emit_attainments();
        }
        Ok(applied)
    }

    /// The owner of `partition` read back its barrier: everything this instance's routers sent
    /// it through the topic is applied. The batches held since are applied now, in order, and
    /// from here on contributions are applied directly.
    fn go_local(&mut self, partition: i32) -> Result<(), RunError> {
        for bytes in self.repart.go_local(partition) {
            let (_, applied) = self.apply_batch(partition, &bytes)?;
            self.counts.report.local_contributions += applied;
        }
        tracing::info!(
            partition,
            "the owner is on this instance: contributions skip the repartition topic"
        );
        Ok(())
    }

    /// Applies the roster records that arrived to the rosters and owners, and dead-letters the
    /// refused ones, in the open transaction (the windows opened are written at its commit).
    pub fn poll_rosters(&mut self) -> Result<(), RunError> {
        let read = self.rosters.poll(&mut self.owners, &mut self.attainments);
        if read == 0 && !self.rosters.rejected.has_pending() {
            return Ok(());
        }
        self.txn.begin()?;
        self.emit_attainments();
        let (txn, counts, dead_letters) = (&mut self.txn, &mut self.counts, &self.dead_letters);
        self.rosters
            .rejected
            .send_pending(|bad| dead_letters.roster_record(txn, counts, bad));
        Ok(())
    }

    /// Sends the attainment events produced so far to the output topic.
    pub fn emit_attainments(&mut self) {
        let (txn, counts) = (&mut self.txn, &mut self.counts);
        self.output
            .emit(&mut self.attainments, &self.goal_index, txn, counts);
    }

    /// Sends pending contribution batches, with each router's progress when `with_progress`
    /// (see [`Repartition::flush`] for `force`).
    pub fn flush_batches(&mut self, with_progress: bool, force: bool) {
        if with_progress {
            let (repart, owners) = (&mut self.repart, &mut self.owners);
            let (out, counts) = (&mut self.attainments, &mut self.counts);
            for (&upstream, task) in self.routers.iter_mut() {
                let Some((stream_time, earliest)) = task.unsent_progress() else {
                    continue;
                };
                let item = || Item::Progress {
                    stream_time,
                    earliest,
                };
                repart.deliver_all(owners, upstream, item, out, counts);
                task.sent = Some((stream_time, earliest));
            }
            self.emit_attainments();
        }
        self.repart.flush(&mut self.txn, &mut self.counts, force);
    }

    /// Whether the next commit has anything to write even without an open transaction.
    fn has_pending_work(&self) -> bool {
        let progress = self.routers.values().any(|t| t.unsent_progress().is_some());
        progress || !self.repart.is_empty() || !self.cleanup.is_empty()
    }

    /// Commits the open transaction: batches with progress, barriers, changelog, offsets.
    pub fn commit(&mut self, cgm: Option<&GroupMetadata>) -> Result<(), RunError> {
        if !self.txn.is_open() && !self.has_pending_work() {
            return Ok(());
        }
        self.txn.begin()?;
        let t0 = Instant::now();
        self.flush_batches(true, true);
        if !self.routers.is_empty() {
            let owned = self.owners.keys().copied();
            self.repart.send_barriers(owned, &mut self.txn);
        }
        self.write_changelog();
        let t_write = t0.elapsed();
        let mut offsets = TopicPartitionList::new();
        for (&part, off) in &self.offsets {
            let (topic, p) = self.topics.name(part);
            offsets
                .add_partition_offset(topic, p, Offset::Offset(*off))
                .map_err(|e| RunError::kafka("build the offsets to commit", e))?;
        }
        let times = self.txn.commit(&offsets, cgm)?;
        tracing::debug!(
            elapsed_us = times.commit.as_micros() as u64,
            write_us = t_write.as_micros() as u64,
            offsets_us = times.offsets.as_micros() as u64,
            txn_age_ms = times.age.as_millis() as u64,
            "committed"
        );
        self.offsets.clear();
        self.rosters.rejected.committed();
        self.counts.report.commits += 1;
        self.after_commit(t0.elapsed());
        Ok(())
    }

    /// Publishes what a commit made visible: attainment events to the hub, metric deltas.
    fn after_commit(&mut self, took: Duration) {
        let routers = self.routers.values_mut().map(|t| &mut t.router);
        self.counts
            .take_from_engine(routers, self.owners.values_mut());
        let Some(hub) = &mut self.hub else {
            // Still the point an abort rolls the counters back to.
            self.published.clone_from(&self.counts);
            return;
        };
        let pending = self.output.pending.as_mut().map(std::mem::take);
        hub.committed(
            took,
            pending.unwrap_or_default(),
            &self.counts,
            &mut self.published,
        );
        self.maybe_state_metrics();
    }

    /// State gauges, at most once a second.
    pub fn maybe_state_metrics(&mut self) {
        let Some(hub) = &mut self.hub else {
            return;
        };
        hub.maybe_state_metrics(State {
            owners: &self.owners,
            goals: &self.goals,
            routers: self.routers.len(),
            remembered_ids: self.routers.values().map(|r| r.router.dedupe().len()).sum(),
        });
    }

    /// Answers the window queries waiting, from the owners' current state.
    pub fn answer_queries(&self) {
        if let Some(hub) = &self.hub {
            hub.answer_queries(&self.owners, &self.goals, &self.instance, &self.published);
        }
    }

    /// Ready: assigned, restored and not rebuilding.
    pub fn update_ready(&self) {
        if let Some(hub) = &self.hub {
            let ready = self.assigned_once && !self.needs_reset && self.fatal.is_none();
            hub.hub.set_ready(ready);
        }
    }

    /// Commits; on failure aborts (and schedules a rebuild) or records a fatal error.
    pub fn try_commit(&mut self, cgm: Option<&GroupMetadata>) -> bool {
        match self.commit(cgm) {
            Ok(()) => true,
            Err(e) => {
                self.fail_or_reset(e);
                false
            }
        }
    }

    /// After a failed commit: an error that is not retriable stops the instance; a retriable
    /// one aborts the transaction and rebuilds state from the changelog at the committed
    /// offsets, with a new producer once commits keep failing (see [`Txn::replace_if_failing`]).
    pub fn fail_or_reset(&mut self, e: RunError) {
        if e.class() != ErrorClass::Retriable {
            self.fatal.get_or_insert(e);
            return;
        }
        match self.txn.replace_if_failing(&e) {
            Ok(Some(was_open)) => return self.producer_recreated(was_open),
            Ok(None) => {}
            Err(fatal) => {
                self.fatal.get_or_insert(fatal);
                return;
            }
        }
        tracing::warn!(error = %e, "aborting the transaction; state is rebuilt from the changelog");
        if self.abort(&e.to_string()) {
            self.needs_reset = true;
        }
    }

    /// After a fatal error: recreates the producer if a broker disruption explains the error
    /// (see [`Txn::recover`]), and rebuilds state from the changelog; else returns the error.
    pub fn recover_producer(&mut self, e: RunError) -> Result<(), RunError> {
        let was_open = self.txn.recover(e)?;
        self.producer_recreated(was_open);
        Ok(())
    }

    /// The producer was recreated: counts it, forgets the transaction's work and schedules the
    /// rebuild from the changelog.
    fn producer_recreated(&mut self, was_open: bool) {
        self.counts.report.producers_recreated += 1;
        if was_open {
            // The new producer's initialisation aborted it on the broker.
            self.count_abort();
        }
        self.abort("producer recreated");
        self.needs_reset = true;
    }

    fn count_abort(&mut self) {
        let telemetry = self.hub.as_ref().map(HubLink::telemetry);
        self.counts.aborted(telemetry);
    }

    /// Aborts the open transaction, if any, and forgets its work; the counters go back to the
    /// last commit (the aborted records are read again). Returns false after a fatal error.
    pub fn abort(&mut self, why: &str) -> bool {
        match self.txn.abort(why) {
            Err(e) => {
                self.fatal.get_or_insert(e);
                return false;
            }
            Ok(true) => self.count_abort(),
            Ok(false) => {}
        }
        self.counts.roll_back_to(&self.published);
        if let Some(pending) = &mut self.output.pending {
            pending.clear();
        }
        self.offsets.clear();
        self.repart.clear();
        self.attainments.clear();
        self.rosters.rejected.aborted();
        // Found again by the rebuild that follows.
        self.cleanup.clear();
        true
    }
}
