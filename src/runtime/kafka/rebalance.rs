//! Assignment changes: the consumer's rebalance callbacks, assignment epochs, restoring newly
//! assigned partitions from the changelog, dropping revoked ones, and the rebuild after an
//! abort.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::changelog::changelog_partition;
use super::clients::note_client_error;
use super::error::RunError;
use super::poll::Part;
use super::restore::{decode_partition, read_partitions, Restored, RestoredRouter};
use super::txn::KAFKA_TIMEOUT;
use super::worker::{RouterTask, Worker};
use crate::engine::{GroupKey, Owner, Router};

/// The group consumer's context: runs the worker's side of each rebalance, and notes broker
/// disruptions.
pub struct Ctx {
    pub worker: Arc<Mutex<Worker>>,
    pub disrupted: Arc<AtomicBool>,
}

impl ClientContext for Ctx {
    fn error(&self, error: KafkaError, reason: &str) {
        note_client_error(&self.disrupted, error, reason);
    }
}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        let mut w = self.worker.lock().expect("worker lock");
        tracing::info!(
            partitions = tpl.count(),
            "partitions revoked: committing in-flight work"
        );
        let cgm = consumer.group_metadata().map(Arc::new);
        if let Err(e) = w.commit(cgm.as_ref()) {
            w.fail_or_reset(e);
        }
        for el in tpl.elements() {
            w.drop_partition(el.topic(), el.partition());
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => self.assigned(consumer, tpl),
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}

impl Ctx {
    fn assigned(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let mut w = self.worker.lock().expect("worker lock");
        let parts = names(tpl);
        tracing::info!(partitions = ?parts, "partitions assigned: restoring state");
        if let Some(hub) = &w.hub {
            hub.hub.set_ready(false);
        }
        // Our own open transaction may hold changelog records of the partitions to restore, and
        // the restore reads to the end offset: commit it first.
        if w.txn.is_open() {
            let cgm = consumer.group_metadata().map(Arc::new);
            if let Err(e) = w.commit(cgm.as_ref()) {
                w.fail_or_reset(e);
            }
        }
        match w.assign(&parts) {
            Ok(()) => {
                // A transaction with nothing but barriers, so that the owners here are reached
                // directly from (nearly) the first records on (see `Link`).
                let cgm = consumer.group_metadata().map(Arc::new);
                if let Err(e) = w.txn.begin().and_then(|()| w.commit(cgm.as_ref())) {
                    w.fail_or_reset(e);
                }
            }
            Err(e @ RunError::Wire(_)) => {
                w.fatal.get_or_insert(e);
            }
            Err(e) => {
                // E.g. metadata not yet available after a broker restart: rebuild later.
                tracing::warn!(error = %e, "cannot restore the assigned partitions yet");
                w.needs_reset = true;
            }
        }
        w.note_committed(consumer, tpl);
        w.assigned_once = true;
    }
}

/// The (topic, partition) pairs of a list.
fn names(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

/// A committed offset as where reading resumes: none committed is the beginning.
fn resume_at(offset: Offset) -> i64 {
    match offset {
        Offset::Offset(o) => o,
        _ => 0,
    }
}

impl Worker {
    /// Records the committed offsets of newly assigned partitions as where reading resumes.
    pub fn note_committed<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        tpl: &TopicPartitionList,
    ) {
        match consumer.committed_offsets(tpl.clone(), KAFKA_TIMEOUT) {
            Ok(committed) => {
                for el in committed.elements() {
                    if let Some(part) = self.part(el.topic(), el.partition()) {
                        self.next_offsets.insert(part, resume_at(el.offset()));
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read committed offsets"),
        }
    }

    /// Rebuilds every assigned partition from the changelog and rewinds to the committed offsets.
    pub fn reset(&mut self, consumer: &BaseConsumer<Ctx>) -> Result<(), RunError> {
        // Work of the open transaction is redone from the committed offsets: drop it first, or
        // it would be committed twice.
        if !self.abort("rebuilding state") {
            return Err(self
                .fatal
                .take()
                .unwrap_or(RunError::Invariant("a failed abort left no error")));
        }
        self.needs_reset = false;
        let assignment = consumer
            .assignment()
            .map_err(|e| RunError::kafka("read the assignment", e))?;
        let parts = names(&assignment);
        for (t, p) in &parts {
            self.drop_partition(t, *p);
        }
        self.assign(&parts)?;
        self.note_committed(consumer, &assignment);
        let committed = consumer
            .committed_offsets(assignment, KAFKA_TIMEOUT)
            .map_err(|e| RunError::kafka("read committed offsets", e))?;
        for el in committed.elements() {
            let offset = match el.offset() {
                Offset::Offset(o) => Offset::Offset(o),
                _ => Offset::Beginning,
            };
            consumer
                .seek(el.topic(), el.partition(), offset, KAFKA_TIMEOUT)
                .map_err(|e| RunError::kafka("rewind to the committed offset", e))?;
        }
        Ok(())
    }

    /// A new assignment epoch: records polled before it are stale.
    fn bump_epoch(&mut self) {
        self.repart.reassigned();
        self.epoch.current += 1;
        self.epoch
            .shared
            .store(self.epoch.current, Ordering::Release);
    }

    /// Forgets a revoked partition's router or owner.
    pub fn drop_partition(&mut self, topic: &str, partition: i32) {
        self.bump_epoch();
        let Some(part) = self.part(topic, partition) else {
            return;
        };
        self.offsets.remove(&part);
        match part {
            Part::Repartition(p) => {
                self.owners.remove(&p);
                self.owner_since.remove(&p);
                self.split_windows.remove(&p);
            }
            Part::Input(up) => {
                self.routers.remove(&up);
                if let Some(hub) = &self.hub {
                    // Another instance reports it now.
                    hub.set_lag(up, 0);
                }
            }
        }
    }

    /// Creates tasks for newly assigned partitions and restores them from the changelog.
    pub fn assign(&mut self, parts: &[(String, i32)]) -> Result<(), RunError> {
        self.bump_epoch();
        // Per changelog partition: the owner (if assigned here) and the routers it holds.
        let mut by_changelog: BTreeMap<i32, (Option<i32>, Vec<u32>)> = BTreeMap::new();
        for (topic, p) in parts {
            match self.part(topic, *p) {
                Some(Part::Repartition(p)) => by_changelog.entry(p).or_default().0 = Some(p),
                Some(Part::Input(up)) => {
                    let part = changelog_partition(up, self.owners_count);
                    by_changelog.entry(part).or_default().1.push(up);
                }
                None => {}
            }
        }
        let wanted: Vec<i32> = by_changelog.keys().copied().collect();
        let mut states = read_partitions(&self.client, &self.changelog, &wanted)?;
        let upstreams = self.topics.inputs.len() as u32;
        for (part, (owner, ups)) in by_changelog {
            let state = states.remove(&part).unwrap_or_default();
            let restored = decode_partition(&state, owner.is_some(), &ups, upstreams);
            drop(state);
            self.restore_partition(part, owner, &ups, restored);
        }
        if !self.cleanup.is_empty() {
            // Dead-lettered and tombstoned by the next commit.
            self.txn.begin()?;
        }
        Ok(())
    }

    /// Rebuilds the owner (if any) and the routers of changelog partition `part`.
    fn restore_partition(
        &mut self,
        part: i32,
        owner: Option<i32>,
        ups: &[u32],
        mut restored: Restored,
    ) {
        for u in std::mem::take(&mut restored.unreadable) {
            self.cleanup.unreadable.push((part, u));
        }
        for key in std::mem::take(&mut restored.orphan_parts) {
            self.cleanup.orphan_parts.push((part, key));
        }
        let mut routers = std::mem::take(&mut restored.routers);
        if let Some(p) = owner {
            let (o, split) = self.restored_owner(p, restored);
            tracing::info!(
                partition = p,
                open_windows = o.open_windows(),
                "owner ready"
            );
            self.owners.insert(p, o);
            self.owner_since.insert(p, self.epoch.current);
            self.split_windows.insert(p, split);
        }
        for &up in ups {
            let r = routers.remove(&up).unwrap_or_default();
            let task = self.restored_router(up, r);
            self.routers.insert(up, task);
        }
    }

    /// The owner of repartition partition `partition`, with the rosters as they are now, the
    /// restored windows, upstream clocks and watermark, and its windows stored in parts. Windows
    /// of goals no longer in the goal file are left out.
    fn restored_owner(&self, partition: i32, restored: Restored) -> (Owner, HashMap<Vec<u8>, u32>) {
        let mut o = Owner::new(self.goals.clone(), self.topics.inputs.len() as u32);
        let ownership = (partition as u32, self.owners_count as u32);
        o.set_rosters(self.rosters.rosters().to_vec(), ownership);
        o.track_changes();
        let split = restore_owner(&mut o, &self.goal_index, restored);
        (o, split)
    }

    /// The router of input partition `up`, with its restored clock and dedupe memory.
    fn restored_router(&self, up: u32, r: RestoredRouter) -> RouterTask {
        let mut router = Router::new(self.goals.clone(), up, &self.cfg.input.limits());
        router.set_dedupe_max_ids(self.cfg.app.dedupe_max_ids);
        router.track_changes();
        let stream_time = r.stream_time;
        router.restore(stream_time, r.ids);
        router.restore_earliest(r.earliest);
        tracing::info!(
            upstream = up,
            remembered_ids = router.dedupe().len(),
            stream_time = ?stream_time.map(|t| t.to_rfc3339()),
            "router ready"
        );
        RouterTask {
            router,
            since_epoch: self.epoch.current,
            sent: None,
            batches: r.batches,
            next_batch: r.next_batch,
            clock_dirty: false,
            last_record: Instant::now(),
            records_since_check: 0,
            idle_sent: false,
        }
    }
}

/// Restores `restored` into a new owner (its rosters already set): windows, upstream clocks and
/// watermark. Windows of goals no longer in the goal file (`goal_index`) are left out. Returns
/// the windows stored in parts, and how many.
pub(super) fn restore_owner(
    o: &mut Owner,
    goal_index: &hashbrown::HashMap<String, usize>,
    restored: Restored,
) -> HashMap<Vec<u8>, u32> {
    let mut split = HashMap::new();
    for w in restored.windows {
        let Some(&g) = goal_index.get(&w.goal_id) else {
            continue;
        };
        if w.parts > 0 {
            split.insert(w.key, w.parts);
        }
        let group = GroupKey(w.group.into_iter().map(Box::from).collect());
        o.restore_window(g, group, w.start, w.state);
    }
    for u in restored.upstreams {
        o.restore_upstream(u.partition, u.stream_time, u.idle, u.earliest);
    }
    if let Some(wm) = restored.watermark {
        o.restore_watermark(wm);
    }
    split
}
