//! From routers to owners: one [`Repartition::deliver`] path that applies to an owner on this
//! instance directly or batches for the repartition topic, the links and barriers that decide
//! which, and [`apply_batch`], which applies a batch read back to its owner.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use prost::Message as _;

use super::telemetry::Counters;
use super::txn::Txn;
use super::warn_limit::WarnLimit;
use super::wire::{self, pb};
use crate::engine::{Contribution, Owner, Progress};
use crate::model::{Attainment, Timestamp};

/// Contributions per repartition record, at most.
pub const MAX_BATCH: usize = 2_000;
/// How long the periodic commit waits for a barrier to come back before sending the
/// contributions it holds through the topic after all (see [`Link`]).
const BARRIER_PATIENCE: Duration = Duration::from_millis(500);

/// How this instance's routers reach the owner of a repartition partition.
///
/// Contributions go through the repartition topic, so each (goal, group) has one owner wherever
/// its events are read. When the owner is on this instance too, the trip through the broker only
/// costs time: once the owner has read back a barrier sent after everything this instance's
/// routers sent it, nothing of theirs is pending in the topic, and their contributions, progress
/// and idle markers are applied to the owner directly, in the same transaction as the input
/// offsets. Any change of assignment (and any abort) goes back to the topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// Through the repartition topic.
    Topic,
    /// A barrier went out through the topic (read back only once its transaction commits; an
    /// abort resets every link); contributions for this owner are held until the owner reads it.
    Draining { barrier: u64, sent: Instant },
    /// Applied directly: the owner is here and has read everything sent before.
    Local,
}

/// What a router sends an owner.
pub enum Item<'a, 'c> {
    /// A contribution, with its goal's id.
    Contribution(&'a str, &'a Contribution<'c>),
    /// The router's new stream time, and the earliest event time it accepted.
    Progress {
        /// Its stream time.
        stream_time: Timestamp,
        /// Its earliest accepted event time.
        earliest: Timestamp,
    },
    /// The router's partition is idle.
    Idle,
}

/// Ids of barriers and sentinels: distinct from those of an earlier process with the same
/// instance id still in the topic, thanks to a random nonce.
struct Markers {
    instance: String,
    nonce: u64,
    sent: u64,
}

impl Markers {
    fn next(&mut self) -> u64 {
        self.sent += 1;
        wire::fnv1a(&[
            self.instance.as_bytes(),
            &self.nonce.to_be_bytes(),
            &self.sent.to_be_bytes(),
        ]) | 1
    }
}

/// A repartition record that carries only a marker id (a barrier or a sentinel).
pub fn marker_record(id: u64) -> Vec<u8> {
    pb::RepartitionBatch {
        upstream: u32::MAX,
        sentinel: id,
        ..Default::default()
    }
    .encode_to_vec()
}

/// Key of a batch: (upstream partition, owner partition).
type BatchKey = (u32, i32);

/// The routers' side of the repartition topic.
pub struct Repartition {
    /// The repartition topic.
    pub topic: String,
    owners_count: i32,
    /// The size at which batches are cut.
    split_bytes: usize,
    /// Pending batches.
    batches: BTreeMap<BatchKey, wire::BatchWriter>,
    /// Full batches held for an owner whose barrier is on its way back, encoded, in order (they
    /// precede that key's batch in `batches`).
    held: BTreeMap<BatchKey, Vec<Vec<u8>>>,
    /// Per repartition partition: how this instance's routers reach its owner.
    links: Vec<Link>,
    /// Per repartition partition: a barrier wait was given up in this assignment, so commits no
    /// longer wait for its barriers.
    impatient: Vec<bool>,
    markers: Markers,
}

impl Repartition {
    /// Nothing pending; every owner reached through `topic`.
    pub fn new(topic: String, owners_count: i32, split_bytes: usize, instance: &str) -> Self {
        let nonce = {
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        };
        Repartition {
            topic,
            owners_count,
            split_bytes,
            batches: BTreeMap::new(),
            held: BTreeMap::new(),
            links: vec![Link::Topic; owners_count as usize],
            impatient: vec![false; owners_count as usize],
            markers: Markers {
                instance: instance.to_string(),
                nonce,
                sent: 0,
            },
        }
    }

    /// Whether nothing waits to be sent.
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty() && self.held.is_empty()
    }

    /// The link to the owner of `partition`.
    pub fn link(&self, partition: i32) -> Option<Link> {
        self.links.get(partition as usize).copied()
    }

    /// Delivers `item` from `upstream`'s router to the owner of `dest`: applied at once when the
    /// owner is here and reached directly, else added to the batch for `dest`. Returns whether
    /// a batch is full and should be sent.
    #[allow(clippy::too_many_arguments)]
    pub fn deliver(
        &mut self,
        owners: &mut BTreeMap<i32, Owner>,
        upstream: u32,
        dest: i32,
        item: Item<'_, '_>,
        out: &mut Vec<Attainment>,
        counts: &mut Counters,
    ) -> bool {
        let local = self.links[dest as usize] == Link::Local;
        if let Some(owner) = owners.get_mut(&dest).filter(|_| local) {
            match item {
                Item::Contribution(_, c) => {
                    counts.report.local_contributions += 1;
                    owner.apply(c, out);
                }
                Item::Progress {
                    stream_time,
                    earliest,
                } => owner.progress(
                    Progress {
                        partition: upstream,
                        stream_time,
                        earliest,
                    },
                    out,
                ),
                Item::Idle => owner.set_idle(upstream, true, out),
            }
            return false;
        }
        let batch = self
            .batches
            .entry((upstream, dest))
            .or_insert_with(|| wire::BatchWriter::new(upstream));
        let (goal_id, c) = match item {
            Item::Contribution(goal_id, c) => (goal_id, c),
            Item::Progress {
                stream_time,
                earliest,
            } => {
                batch.set_stream_time(stream_time);
                batch.set_earliest(earliest);
                return false;
            }
            Item::Idle => {
                batch.set_idle();
                return false;
            }
        };
        batch.push(goal_id, c);
        if batch.len() < MAX_BATCH && batch.bytes() < self.split_bytes {
            return false;
        }
        if let Link::Draining { .. } = self.links[dest as usize] {
            // Held for the barrier, in batches of the usual size.
            let full = std::mem::replace(batch, wire::BatchWriter::new(upstream));
            self.held
                .entry((upstream, dest))
                .or_default()
                .push(full.finish());
            return false;
        }
        true
    }

    /// Delivers `item` from `upstream`'s router to every owner partition.
    pub fn deliver_all(
        &mut self,
        owners: &mut BTreeMap<i32, Owner>,
        upstream: u32,
        item: impl Fn() -> Item<'static, 'static>,
        out: &mut Vec<Attainment>,
        counts: &mut Counters,
    ) {
        for dest in 0..self.owners_count {
            self.deliver(owners, upstream, dest, item(), out, counts);
        }
    }

    /// Sends pending batches. Batches held for an owner whose barrier is on its way back stay
    /// held, unless `force`: then they are sent too, and that owner is reached through the topic
    /// again.
    pub fn flush(&mut self, txn: &mut Txn, counts: &mut Counters, force: bool) {
        // Full batches held earlier go first: they precede their key's current batch.
        let held = std::mem::take(&mut self.held);
        let batches = std::mem::take(&mut self.batches);
        let chunks = held
            .into_iter()
            .flat_map(|(key, chunks)| chunks.into_iter().map(move |c| (key, Ok(c))));
        let current = batches.into_iter().map(|(key, b)| (key, Err(b)));
        for ((upstream, dest), batch) in chunks.chain(current) {
            let draining = matches!(self.links[dest as usize], Link::Draining { .. });
            if draining && !force {
                match batch {
                    Ok(bytes) => self.held.entry((upstream, dest)).or_default().push(bytes),
                    Err(b) => {
                        self.batches.insert((upstream, dest), b);
                    }
                }
                continue;
            }
            if draining {
                // Sent after the barrier: the barrier no longer covers everything. The next
                // barrier goes out with this commit; commits no longer wait for barriers here.
                self.links[dest as usize] = Link::Topic;
                self.impatient[dest as usize] = true;
            }
            counts.repartition_records += 1;
            let bytes = batch.unwrap_or_else(wire::BatchWriter::finish);
            txn.send(
                &self.topic,
                Some(dest),
                &upstream.to_be_bytes(),
                Some(&bytes),
                None,
            );
        }
    }

    /// Sends a barrier to each of `owned` (repartition partitions whose owner is here) still
    /// reached through the topic, as the last record of the transaction about to commit.
    pub fn send_barriers(&mut self, owned: impl Iterator<Item = i32>, txn: &mut Txn) {
        for p in owned {
            if self.links[p as usize] != Link::Topic {
                continue;
            }
            let barrier = self.markers.next();
            txn.send(
                &self.topic,
                Some(p),
                b"barrier",
                Some(&marker_record(barrier)),
                None,
            );
            self.links[p as usize] = Link::Draining {
                barrier,
                sent: Instant::now(),
            };
        }
    }

    /// A new sentinel id (see `Worker::caught_up`).
    pub fn next_sentinel(&mut self) -> u64 {
        self.markers.next()
    }

    /// Whether a barrier sent less than [`BARRIER_PATIENCE`] ago is still on its way back: the
    /// periodic commit waits for it, as committing would send the held contributions through the
    /// topic.
    pub fn awaiting_barrier(&self) -> bool {
        self.links
            .iter()
            .zip(&self.impatient)
            .any(|(l, impatient)| {
                !impatient
                    && matches!(l, Link::Draining { sent, .. } if sent.elapsed() < BARRIER_PATIENCE)
            })
    }

    /// The owner of `partition` read back its barrier: takes the batches for it, in the order
    /// they are to be applied (per key: the full batches held, then the current one), and
    /// reaches it directly from now on.
    pub fn go_local(&mut self, partition: i32) -> Vec<Vec<u8>> {
        let keys: Vec<BatchKey> = self
            .held
            .keys()
            .chain(self.batches.keys())
            .filter(|(_, dest)| *dest == partition)
            .copied()
            .collect();
        let mut out = Vec::new();
        for key in keys {
            out.extend(self.held.remove(&key).unwrap_or_default());
            if let Some(batch) = self.batches.remove(&key) {
                out.push(batch.finish());
            }
        }
        self.links[partition as usize] = Link::Local;
        out
    }

    /// After an abort: nothing pending, every owner through the topic.
    pub fn clear(&mut self) {
        self.batches.clear();
        self.held.clear();
        self.links.fill(Link::Topic);
    }

    /// After a change of assignment: other instances may have sent to the owners here, or own
    /// what was here: the topic again, until new barriers come back.
    pub fn reassigned(&mut self) {
        self.links.fill(Link::Topic);
        self.impatient.fill(false);
    }
}

/// What [`apply_batch`] needs besides the owner.
pub struct BatchContext<'a> {
    /// Goal id -> index in the goal file.
    pub goal_index: &'a hashbrown::HashMap<String, usize>,
    /// The number of input partitions.
    pub upstreams: usize,
    pub counts: &'a mut Counters,
    pub warnings: &'a mut WarnLimit,
    pub out: &'a mut Vec<Attainment>,
}

/// Applies a repartition batch of `partition` to its owner, if it is here: contributions, then
/// the upstream's progress and idleness. Returns the batch's header and the number of
/// contributions applied. A batch that cannot be read, or names an upstream partition that does
/// not exist, is an error, and nothing of it is applied.
pub fn apply_batch(
    owner: Option<&mut Owner>,
    partition: i32,
    payload: &[u8],
    cx: BatchContext<'_>,
) -> Result<(wire::BatchHeader, u64), wire::WireError> {
    // Read whole before anything is applied, so that a damaged record is skipped whole; the
    // contributions are kept (strings borrowed from the record) up to MAX_BATCH of them, the
    // most goalpost writes in one batch. A larger batch (another producer's) is read again,
    // applying as it goes, rather than held in memory.
    let keep = owner.is_some();
    let (mut kept, mut larger) = (Vec::new(), false);
    let batch = wire::read_batch_each(payload, |c| {
        if keep && kept.len() < MAX_BATCH {
            kept.push(c);
        } else {
            larger = keep;
        }
    })?;
    if batch.sentinel == 0 && batch.upstream as usize >= cx.upstreams {
        return Err(wire::WireError::Invalid {
            what: "repartition batch",
            detail: format!(
                "upstream partition {} does not exist: the input has {} partitions",
                batch.upstream, cx.upstreams
            ),
        });
    }
    let Some(owner) = owner else {
        return Ok((batch, 0));
    };
    let BatchContext {
        goal_index,
        counts,
        warnings,
        out,
        ..
    } = cx;
    let mut applied = 0;
    let mut apply = |c: wire::ContributionView<'_>| {
        let Some(&goal) = goal_index.get(c.goal_id) else {
            counts.unknown_goal(warnings, c.goal_id, partition);
            return;
        };
        let contribution = Contribution {
            goal,
            group: c.group,
            delta: c.delta,
            event_id: c.event_id,
            event_time: c.event_time,
        };
        applied += 1;
        owner.apply(&contribution, out);
    };
    if larger {
        wire::read_batch_each(payload, &mut apply)?;
    } else {
        kept.into_iter().for_each(&mut apply);
    }
    if batch.sentinel != 0 {
        return Ok((batch, applied));
    }
    if let Some(stream_time) = batch.stream_time {
        let progress = Progress {
            partition: batch.upstream,
            stream_time,
            earliest: batch.earliest.unwrap_or(stream_time),
        };
        owner.progress(progress, out);
    }
    if batch.idle {
        owner.set_idle(batch.upstream, true, out);
    }
    Ok((batch, applied))
}

#[cfg(test)]
#[path = "repartition_tests.rs"]
mod tests;
