//! The changelog records of a transaction: the routers' dedupe batches and clocks, the owners'
//! windows, upstream clocks and watermarks, and the tombstones of what the last restore could
//! not use.

use std::collections::{BTreeMap, HashMap};

use prost::Message as _;

use super::progress_topic::progress_of_changes;
use super::restore::Unreadable;
use super::wire::{self, pb, ChangelogKey, WireError};
use super::worker::{RouterTask, Worker};
use crate::engine::{Owner, OwnerChange, WindowState};
use crate::goals::GoalSet;
use crate::model::{GoalProgress, Timestamp};

/// A changelog record to send: (partition, key, value or tombstone).
pub type ChangelogRecord = (i32, Vec<u8>, Option<Vec<u8>>);

/// What the last restore found it could not use, by changelog partition: to be dead-lettered
/// and tombstoned in the next transaction.
#[derive(Debug, Default)]
pub struct Cleanup {
    /// Unreadable records.
    pub unreadable: Vec<(i32, Unreadable)>,
    /// Window parts without a readable head.
    pub orphan_parts: Vec<(i32, Vec<u8>)>,
}

impl Cleanup {
    /// Whether nothing is left to clean up.
    pub fn is_empty(&self) -> bool {
        self.unreadable.is_empty() && self.orphan_parts.is_empty()
    }

    /// Forgets everything (a rebuild finds it again).
    pub fn clear(&mut self) {
        self.unreadable.clear();
        self.orphan_parts.clear();
    }
}

/// The changelog records of one transaction, in the order they are sent: the tombstones of
/// records the last restore could not use (`cleanup`) before the routers' and owners' `changes`.
/// Compaction and restore keep the last record of a key, so a key written again in the same
/// transaction (a window whose damaged head, or a part of it, got a new contribution) keeps its
/// new value instead of being deleted by a tombstone sent after it.
pub fn changelog_in_order(
    cleanup: Vec<ChangelogRecord>,
    changes: Vec<ChangelogRecord>,
) -> Vec<ChangelogRecord> {
    let mut records = cleanup;
    records.extend(changes);
    records
}

/// The changelog records of a window's new state (`None`: closed), as (key, value or tombstone):
/// its state, split into parts when larger than `max_bytes` (see [`wire::window_state_records`]),
/// and tombstones for the parts of its previous state no longer used. `split` holds the windows
/// of the partition stored in parts, and how many.
pub fn window_records(
    split: &mut HashMap<Vec<u8>, u32>,
    key: Vec<u8>,
    state: Option<WindowState>,
    max_bytes: usize,
) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let before = split.get(&key).copied().unwrap_or(0);
    let mut out: Vec<(Vec<u8>, Option<Vec<u8>>)> = match state {
        Some(ws) => wire::window_state_records(&key, &ws, max_bytes)
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect(),
        None => vec![(key.clone(), None)],
    };
    // The head, then the parts.
    let now = out.len() as u32 - 1;
    for part in now..before {
        out.push((ChangelogKey::window_part(&key, part), None));
    }
    if now > 0 {
        split.insert(key, now);
    } else if before > 0 {
        split.remove(&key);
    }
    out
}

/// The changelog partition of input partition `upstream`: shared with the owner of the same
/// index, so a router's and an owner's state restore together.
pub fn changelog_partition(upstream: u32, owners_count: i32) -> i32 {
    (upstream % owners_count as u32) as i32
}

/// A router's changes: new dedupe entries as batch records, expired batches as tombstones, and
/// its clock.
fn router_records(
    upstream: u32,
    task: &mut RouterTask,
    part: i32,
    split_bytes: usize,
    records: &mut Vec<ChangelogRecord>,
) {
    let added = task.router.take_dedupe_added();
    if !added.is_empty() {
        for (bytes, max) in wire::dedupe_batches_to_bytes(&added, split_bytes) {
            let batch = task.next_batch;
            task.next_batch += 1;
            task.batches.insert(batch, max);
            let key = ChangelogKey::DedupeBatch { upstream, batch }.to_bytes();
            records.push((part, key, Some(bytes)));
        }
        task.clock_dirty = true;
    }
    if let Some(st) = task.router.stream_time() {
        let cutoff = st.saturating_sub(task.router.dedupe().horizon());
        let expired: Vec<u64> = task
            .batches
            .iter()
            .filter(|(_, max)| **max <= cutoff)
            .map(|(b, _)| *b)
            .collect();
        for batch in expired {
            task.batches.remove(&batch);
            let key = ChangelogKey::DedupeBatch { upstream, batch }.to_bytes();
            records.push((part, key, None));
        }
    }
    if task.clock_dirty {
        task.clock_dirty = false;
        let rec = pb::RouterClockRecord {
            stream_time: task.router.stream_time().map(Timestamp::as_nanos),
            next_batch: task.next_batch,
            earliest: task.router.earliest().map(Timestamp::as_nanos),
        };
        let key = ChangelogKey::RouterClock(upstream).to_bytes();
        records.push((part, key, Some(rec.encode_to_vec())));
    }
}

/// An owner's change as (key, value or tombstone) records; `split` as in [`window_records`].
fn owner_change_records(
    change: OwnerChange,
    goals: &GoalSet,
    split: &mut HashMap<Vec<u8>, u32>,
    split_bytes: usize,
) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    match change {
        OwnerChange::Window {
            goal,
            group,
            start,
            state,
        } => {
            let key = ChangelogKey::window(&goals.goals[goal].id, &group, start);
            window_records(split, key, Some(state), split_bytes)
        }
        OwnerChange::Closed {
            goal, group, start, ..
        } => {
            let key = ChangelogKey::window(&goals.goals[goal].id, &group, start);
            window_records(split, key, None, split_bytes)
        }
        OwnerChange::Upstream {
            partition,
            stream_time,
            idle,
            earliest,
        } => {
            let rec = pb::UpstreamRecord {
                stream_time: stream_time.map(Timestamp::as_nanos),
                idle,
                earliest: earliest.map(Timestamp::as_nanos),
            };
            let key = ChangelogKey::Upstream(partition).to_bytes();
            vec![(key, Some(rec.encode_to_vec()))]
        }
        OwnerChange::Watermark(wm) => {
            let rec = pb::WatermarkRecord {
                watermark: wm.as_nanos(),
            };
            vec![(
                ChangelogKey::Watermark.to_bytes(),
                Some(rec.encode_to_vec()),
            )]
        }
    }
}

/// The owners' changes, appended to `records`, and their windows' progress records to
/// `progress` when there is a progress topic.
fn owner_records(
    owners: &mut BTreeMap<i32, Owner>,
    split_windows: &mut BTreeMap<i32, HashMap<Vec<u8>, u32>>,
    goals: &GoalSet,
    split_bytes: usize,
    records: &mut Vec<ChangelogRecord>,
    mut progress: Option<&mut Vec<GoalProgress>>,
) {
    for (&partition, owner) in owners.iter_mut() {
        let split = split_windows.entry(partition).or_default();
        let now = owner.stream_time();
        let changes = owner.take_changes();
        if let Some(progress) = progress.as_deref_mut() {
            progress.extend(progress_of_changes(goals, &changes, now));
        }
        for change in changes {
            let changed = owner_change_records(change, goals, split, split_bytes);
            records.extend(changed.into_iter().map(|(k, v)| (partition, k, v)));
        }
    }
}

impl Worker {
    /// Writes this transaction's changelog records: the tombstones left by the last restore,
    /// then the routers' and owners' changes, in that order (see [`changelog_in_order`]); and
    /// the progress records of the windows that changed, to the progress topic.
    pub fn write_changelog(&mut self) {
        let cleanup = self.restore_cleanup();
        let mut changes = Vec::new();
        for (&upstream, task) in self.routers.iter_mut() {
            let part = changelog_partition(upstream, self.owners_count);
            router_records(upstream, task, part, self.split_bytes, &mut changes);
        }
        let mut progress = Vec::new();
        owner_records(
            &mut self.owners,
            &mut self.split_windows,
            &self.goals,
            self.split_bytes,
            &mut changes,
            self.progress.is_some().then_some(&mut progress),
        );
        let records = changelog_in_order(cleanup, changes);
        self.counts.changelog_records += records.len() as u64;
        for (part, key, value) in records {
            self.txn
                .send(&self.changelog, Some(part), &key, value.as_deref(), None);
        }
        if let Some(topic) = &mut self.progress {
            self.counts.progress_records += topic.send(progress, &mut self.txn);
        }
    }

    /// The records the last restore could not use: dead-lettered in the open transaction, and
    /// their tombstones, with those of window parts left without a readable head.
    fn restore_cleanup(&mut self) -> Vec<ChangelogRecord> {
        let mut records = Vec::new();
        for (part, u) in std::mem::take(&mut self.cleanup.unreadable) {
            let reason = WireError::Invalid {
                what: "changelog record",
                detail: u.reason,
            };
            let source = (self.changelog.as_str(), part, u.offset);
            let counters = (&mut self.counts, &mut self.warnings);
            let record = (u.key.as_slice(), u.value.as_slice());
            self.dead_letters
                .skip_internal(&mut self.txn, counters, source, record, &reason);
            // A key too large for a record of ours (written by another producer) stays: it is
            // met, and dead-lettered, again by each restore, rather than stopping the instance.
            if u.key.len() <= self.split_bytes {
                records.push((part, u.key, None));
            }
        }
        for (part, key) in std::mem::take(&mut self.cleanup.orphan_parts) {
            records.push((part, key, None));
        }
        records
    }
}

#[cfg(test)]
#[path = "changelog_tests.rs"]
mod tests;
